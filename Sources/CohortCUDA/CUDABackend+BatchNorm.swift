import CCUDA
import CohortKernels
import CohortTensor

/// Batch normalisation on the backend's own kernels (Kernels+BatchNorm.swift).
///
/// Note [Own batch-norm kernels]: cuDNN's BN training calls keep a reserve
/// space from forward to backward and recompute the ReLU mask from it, while
/// our protocol hands the backward the forward's post-ReLU output (masking
/// dy where it is not positive) and keeps only the saved mean and inverse
/// std; cuDNN also updates the running variance its own way (PyTorch
/// re-derives it). Our kernels follow the reference exactly: batch mean and
/// biased variance over N*H*W, savedInvStd = 1/sqrt(var + eps), running
/// statistics with the unbiased variance and PyTorch's momentum. cuDNN's
/// fused NHWC BN (and its graph-API fusions with the convolution) can be
/// tried later as an optimisation, measured against these.
///
/// In bf16 mode x, y, dy and dx are bfloat16 and scale, shift and every
/// statistic stay float32 (as cuDNN and PyTorch keep them); the kernels are
/// the same template bodies instantiated for bf16, and the elementwise ones
/// take eight bf16 per thread when C % 8 == 0 (Note [Vector bf16 access]).
extension CUDABackend {
    public func batchNormForwardTraining(output: Tensor, input: Tensor, scale: Tensor, shift: Tensor,
                                         runningMean: Tensor, runningVar: Tensor,
                                         savedMean: Tensor, savedInvStd: Tensor,
                                         momentum: Float, epsilon: Float, fuseReLU: Bool) {
        let op = "batchNormForwardTraining"
        let (rows, channels, dtype) = checkBatchNorm(op, input: input, output: output, outputName: "output",
                                                     scale: scale, shift: shift, shiftName: "shift")
        for statistic in [runningMean, runningVar, savedMean, savedInvStd] { expect(op, statistic, [channels]) }
        require(rows > 1, "\(op): \(input.shape) has one value per channel; training needs more")
        context.makeCurrent()
        let slicing = batchNormSlicing(rows: rows, channels: channels)
        let partial = reductionScratch.pointer(byteCount: slicing.slices * 2 * channels * 8)
        kernels.launch(.batchNorm, kernelName("bn_statistics_partials", dtype),
                       grid: ((channels + 31) / 32, slicing.slices, 1), block: (32, 8, 1),
                       [.pointer(partial), .tensor(input), .count(rows), .int(channels), .count(slicing.rowsPerSlice)])
        // One thread per channel, 128 per block (C is 64-512 in ResNet-18: one to four blocks).
        kernels.launch(.batchNorm, kernelName("bn_statistics_finalize", dtype), grid: ((channels + 127) / 128, 1, 1), block: (128, 1, 1),
                       [.tensor(savedMean), .tensor(savedInvStd), .tensor(runningMean), .tensor(runningVar),
                        .pointer(partial), .tensor(input), .int(slicing.slices), .count(rows), .int(channels),
                        .float(momentum), .float(epsilon)])
        let count = input.elementCount
        elementwise(.batchNorm, "bn_normalize", dtype: dtype, count: count,
                    vectorizable: channels % 8 == 0 && vectorizable(count: count, output, input)) {
            [.tensor(output), .tensor(input), .tensor(scale), .tensor(shift), .tensor(savedMean),
             .tensor(savedInvStd), .count($0), .int(channels), .int32(fuseReLU ? 1 : 0)]
        }
    }

    public func batchNormForwardInference(output: Tensor, input: Tensor, scale: Tensor, shift: Tensor,
                                          runningMean: Tensor, runningVar: Tensor, epsilon: Float, fuseReLU: Bool) {
        let op = "batchNormForwardInference"
        let (_, channels, dtype) = checkBatchNorm(op, input: input, output: output, outputName: "output",
                                                  scale: scale, shift: shift, shiftName: "shift")
        expect(op, runningMean, [channels])
        expect(op, runningVar, [channels])
        context.makeCurrent()
        // Scalar in bf16 too: evaluation only, off the training step's path.
        kernels.elementwise(.batchNorm, kernelName("bn_inference", dtype), count: input.elementCount,
                            [.tensor(output), .tensor(input), .tensor(scale), .tensor(shift), .tensor(runningMean),
                             .tensor(runningVar), .float(epsilon), .count(input.elementCount), .int(channels),
                             .int32(fuseReLU ? 1 : 0)])
    }

    public func batchNormBackward(dInput: Tensor, dScale: Tensor, dShift: Tensor, dOutput: Tensor,
                                  input: Tensor, output: Tensor, scale: Tensor,
                                  savedMean: Tensor, savedInvStd: Tensor, fuseReLU: Bool) {
        let op = "batchNormBackward"
        let (rows, channels, dtype) = checkBatchNorm(op, input: input, output: dOutput, outputName: "dOutput",
                                                     scale: scale, shift: dShift, shiftName: "dShift")
        expect(op, dInput, input.shape, dtype)
        if fuseReLU { expect(op, output, input.shape, dtype) }
        for statistic in [dScale, savedMean, savedInvStd] { expect(op, statistic, [channels]) }
        context.makeCurrent()
        // Without the fused ReLU the kernels never read `output`; pass dOutput so the pointer is valid anyway.
        let y = fuseReLU ? output : dOutput
        let relu: KernelArgument = .int32(fuseReLU ? 1 : 0)
        let slicing = batchNormSlicing(rows: rows, channels: channels)
        let partial = reductionScratch.pointer(byteCount: slicing.slices * 2 * channels * 8)
        kernels.launch(.batchNorm, kernelName("bn_backward_partials", dtype),
                       grid: ((channels + 31) / 32, slicing.slices, 1), block: (32, 8, 1),
                       [.pointer(partial), .tensor(dOutput), .tensor(input), .tensor(y), .tensor(savedMean),
                        .tensor(savedInvStd), .count(rows), .int(channels), .count(slicing.rowsPerSlice), relu])
        kernels.launch(.batchNorm, "bn_backward_finalize", grid: ((channels + 127) / 128, 1, 1), block: (128, 1, 1),
                       [.tensor(dScale), .tensor(dShift), .pointer(partial), .int(slicing.slices), .int(channels)])
        let count = input.elementCount
        elementwise(.batchNorm, "bn_backward_data", dtype: dtype, count: count,
                    vectorizable: channels % 8 == 0 && vectorizable(count: count, dInput, dOutput, input, y)) {
            [.tensor(dInput), .tensor(dOutput), .tensor(input), .tensor(y), .tensor(scale),
             .tensor(savedMean), .tensor(savedInvStd), .tensor(dScale), .tensor(dShift),
             .count($0), .int(channels), .count(rows), relu]
        }
    }

    /// How the partial-sum kernels split the rows: about four 256-thread
    /// blocks per SM over all channel groups (enough to fill the GPU, few
    /// enough that the finalize kernel's serial sum over slices stays
    /// short), each slice at least 64 rows (8 per thread), at most 65,535
    /// slices (the grid's y limit).
    func batchNormSlicing(rows: Int, channels: Int) -> (slices: Int, rowsPerSlice: Int) {
        Self.batchNormSlicing(rows: rows, channels: channels, multiprocessors: kernels.multiprocessorCount)
    }

    public static func batchNormSlicing(rows: Int, channels: Int, multiprocessors: Int) -> (slices: Int, rowsPerSlice: Int) {
        let channelGroups = (channels + 31) / 32
        let wanted = max(1, (4 * multiprocessors + channelGroups - 1) / channelGroups)
        let most = min(65535, max(1, rows / 64))
        let rowsPerSlice = (rows + min(wanted, most) - 1) / min(wanted, most)
        return ((rows + rowsPerSlice - 1) / rowsPerSlice, rowsPerSlice)
    }

    /// Checks an NHWC input, an output of its shape and dtype (float32 or
    /// bfloat16) and float32 `[C]` scale and shift (or dShift); returns (N*H*W, C, activation dtype).
    private func checkBatchNorm(_ op: String, input: Tensor, output: Tensor, outputName: String,
                                scale: Tensor, shift: Tensor, shiftName: String) -> (rows: Int, channels: Int, dtype: DType) {
        let (batch, height, width, channels) = nhwc(op, input)
        let dtype = activationDType(op, [("input", input), (outputName, output)])
        require(scale.dtype == .float32 && shift.dtype == .float32,
                "\(op): unsupported dtype combination (input \(input.dtype), scale \(scale.dtype), \(shiftName) "
                    + "\(shift.dtype)); scale, shift and statistics are float32 in every precision")
        expect(op, output, input.shape, dtype)
        expect(op, scale, [channels])
        expect(op, shift, [channels])
        return (batch * height * width, channels, dtype)
    }
}
