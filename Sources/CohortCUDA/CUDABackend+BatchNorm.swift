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
/// statistic stay float32 (as cuDNN and PyTorch keep them). With C % 8 == 0
/// and 16-byte aligned tensors (every ResNet-18 layer) all four passes run
/// the vector kernels, eight channels per thread (Note [Vector batch norm]);
/// otherwise the scalar kernels, the float32 ones' template bodies
/// instantiated for bf16.
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
        let vector = usesVectorBatchNorm(dtype, channels: channels, input, output)
        let slices = batchNormStatistics(input: input, rows: rows, channels: channels, vector: vector)
        batchNormStatisticsFinalize(slices, input: input, savedMean: savedMean, savedInvStd: savedInvStd,
                                    runningMean: runningMean, runningVar: runningVar, rows: rows, channels: channels,
                                    momentum: momentum, epsilon: epsilon)
        batchNormNormalize(output: output, input: input, scale: scale, shift: shift, mean: savedMean, invStd: savedInvStd,
                           rows: rows, channels: channels, fuseReLU: fuseReLU, vector: vector)
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
        let vector = usesVectorBatchNorm(dtype, channels: channels, dInput, dOutput, input, y)
        let slices = batchNormBackwardSums(dOutput: dOutput, input: input, output: y, mean: savedMean, invStd: savedInvStd,
                                           rows: rows, channels: channels, fuseReLU: fuseReLU, vector: vector)
        batchNormBackwardFinalize(slices, dScale: dScale, dShift: dShift, channels: channels)
        batchNormInputGradient(dInput: dInput, dOutput: dOutput, input: input, output: y, scale: scale, mean: savedMean,
                               invStd: savedInvStd, dScale: dScale, dShift: dShift, rows: rows, channels: channels,
                               fuseReLU: fuseReLU, vector: vector)
    }

    // MARK: The kernels, one function each (`cohort bench convs` times them one by one)

    /// Whether the vector kernels run (Note [Vector batch norm]): bf16, C % 8 == 0, every tensor 16-byte aligned.
    func usesVectorBatchNorm(_ dtype: DType, channels: Int, _ tensors: Tensor...) -> Bool {
        dtype == .bfloat16 && channels % 8 == 0 && tensors.allSatisfy { $0.devicePointer % 16 == 0 }
    }

    /// Statistics partials of `input` ([rows, channels]) into the reduction
    /// scratch: `partial[slice][0/1][c]`, sums of (x - x[0, c]) and its square.
    func batchNormStatistics(input: Tensor, rows: Int, channels: Int, vector: Bool) -> (partial: CUdeviceptr, count: Int) {
        let slices = batchNormPartialSlices(.statisticsPartials, rows: rows, channels: channels, vector: vector)
        if let launch = slices.vector {
            kernels.launch(.batchNormVector, "bn_statistics_partials_bf16x8", grid: launch.grid, block: launch.block,
                           [.pointer(slices.partial), .tensor(input), .count(rows), .int(channels / 8),
                            .count(slices.rowsPerSlice)])
        } else {
            kernels.launch(.batchNorm, kernelName("bn_statistics_partials", input.dtype),
                           grid: ((channels + 31) / 32, slices.count, 1), block: (32, 8, 1),
                           [.pointer(slices.partial), .tensor(input), .count(rows), .int(channels),
                            .count(slices.rowsPerSlice)])
        }
        return (slices.partial, slices.count)
    }

    /// Where a partials kernel (`.statisticsPartials` or `.backwardPartials`)
    /// writes, how many slices it makes, and its vector launch shape (nil:
    /// the scalar kernel, sliced by `batchNormSlicing`). The unroll given to
    /// the vector shape is the kernel's U (rows per thread per tile); the
    /// kernels stay correct for any, only the balance between blocks needs it.
    func batchNormPartialSlices(_ kernel: BatchNormKernel, rows: Int, channels: Int, vector: Bool)
        -> (partial: CUdeviceptr, count: Int, rowsPerSlice: Int, vector: BatchNormVectorLaunch?) {
        precondition(kernel == .statisticsPartials || kernel == .backwardPartials, "\(kernel) writes no partial sums")
        var launch: BatchNormVectorLaunch?
        let count: Int, rowsPerSlice: Int
        if vector {
            let statistics = kernel == .statisticsPartials
            let shape = batchNormVectorLaunch(statistics ? "bn_statistics_partials_bf16x8" : "bn_backward_partials_bf16x8",
                                              rows: rows, channels: channels, unroll: statistics ? 8 : 4)
            (launch, count, rowsPerSlice) = (shape, shape.slices, shape.rowsPerSlice)
        } else {
            (count, rowsPerSlice) = batchNormSlicing(rows: rows, channels: channels)
        }
        return (reductionScratch.pointer(byteCount: count * 2 * channels * 8), count, rowsPerSlice, launch)
    }

    /// Mean, inverse std and the running statistics from the statistics
    /// partials; 32 x 8 threads per 32 channels (C is 64-512 in ResNet-18: two to sixteen blocks).
    func batchNormStatisticsFinalize(_ slices: (partial: CUdeviceptr, count: Int), input: Tensor, savedMean: Tensor,
                                     savedInvStd: Tensor, runningMean: Tensor, runningVar: Tensor, rows: Int,
                                     channels: Int, momentum: Float, epsilon: Float) {
        kernels.launch(.batchNorm, kernelName("bn_statistics_finalize", input.dtype), grid: ((channels + 31) / 32, 1, 1),
                       block: (32, 8, 1),
                       [.tensor(savedMean), .tensor(savedInvStd), .tensor(runningMean), .tensor(runningVar),
                        .pointer(slices.partial), .tensor(input), .int(slices.count), .count(rows), .int(channels),
                        .float(momentum), .float(epsilon)])
    }

    /// y = scale * (x - mean) * invStd + shift, then ReLU if `fuseReLU`.
    func batchNormNormalize(output: Tensor, input: Tensor, scale: Tensor, shift: Tensor, mean: Tensor, invStd: Tensor,
                            rows: Int, channels: Int, fuseReLU: Bool, vector: Bool) {
        let relu: KernelArgument = .int32(fuseReLU ? 1 : 0)
        if vector {
            let kernel = "bn_normalize_bf16x8"
            let launch = batchNormVectorLaunch(kernel, rows: rows, channels: channels, unroll: 4)
            kernels.launch(.batchNormVector, kernel, grid: launch.grid, block: launch.block,
                           [.tensor(output), .tensor(input), .tensor(scale), .tensor(shift), .tensor(mean), .tensor(invStd),
                            .count(rows), .int(channels / 8), .count(launch.rowsPerSlice), relu])
            return
        }
        let count = input.elementCount
        kernels.elementwise(.batchNorm, kernelName("bn_normalize", input.dtype), count: count,
                            [.tensor(output), .tensor(input), .tensor(scale), .tensor(shift), .tensor(mean),
                             .tensor(invStd), .count(count), .int(channels), relu])
    }

    /// Backward partials into the reduction scratch: `partial[slice][0][c]` =
    /// sum g, `[1][c]` = sum g * xhat, g = dy masked where `output` <= 0 if `fuseReLU`.
    func batchNormBackwardSums(dOutput: Tensor, input: Tensor, output: Tensor, mean: Tensor, invStd: Tensor,
                               rows: Int, channels: Int, fuseReLU: Bool, vector: Bool) -> (partial: CUdeviceptr, count: Int) {
        let relu: KernelArgument = .int32(fuseReLU ? 1 : 0)
        let slices = batchNormPartialSlices(.backwardPartials, rows: rows, channels: channels, vector: vector)
        let tensors: [KernelArgument] = [.pointer(slices.partial), .tensor(dOutput), .tensor(input), .tensor(output),
                                         .tensor(mean), .tensor(invStd), .count(rows)]
        if let launch = slices.vector {
            kernels.launch(.batchNormVector, "bn_backward_partials_bf16x8", grid: launch.grid, block: launch.block,
                           tensors + [.int(channels / 8), .count(slices.rowsPerSlice), relu])
        } else {
            kernels.launch(.batchNorm, kernelName("bn_backward_partials", input.dtype),
                           grid: ((channels + 31) / 32, slices.count, 1), block: (32, 8, 1),
                           tensors + [.int(channels), .count(slices.rowsPerSlice), relu])
        }
        return (slices.partial, slices.count)
    }

    /// dShift and dScale from the backward partials (32 x 8 threads per 32 channels).
    func batchNormBackwardFinalize(_ slices: (partial: CUdeviceptr, count: Int), dScale: Tensor, dShift: Tensor,
                                   channels: Int) {
        kernels.launch(.batchNorm, "bn_backward_finalize", grid: ((channels + 31) / 32, 1, 1), block: (32, 8, 1),
                       [.tensor(dScale), .tensor(dShift), .pointer(slices.partial), .int(slices.count), .int(channels)])
    }

    /// dx = scale * invStd * (g - dShift / rows - xhat * dScale / rows).
    func batchNormInputGradient(dInput: Tensor, dOutput: Tensor, input: Tensor, output: Tensor, scale: Tensor,
                                mean: Tensor, invStd: Tensor, dScale: Tensor, dShift: Tensor,
                                rows: Int, channels: Int, fuseReLU: Bool, vector: Bool) {
        let relu: KernelArgument = .int32(fuseReLU ? 1 : 0)
        if vector {
            let kernel = "bn_backward_data_bf16x8"
            let launch = batchNormVectorLaunch(kernel, rows: rows, channels: channels, unroll: 4)
            kernels.launch(.batchNormVector, kernel, grid: launch.grid, block: launch.block,
                           [.tensor(dInput), .tensor(dOutput), .tensor(input), .tensor(output), .tensor(scale),
                            .tensor(mean), .tensor(invStd), .tensor(dScale), .tensor(dShift),
                            .count(rows), .int(channels / 8), .count(launch.rowsPerSlice), relu])
            return
        }
        let count = input.elementCount
        kernels.elementwise(.batchNorm, kernelName("bn_backward_data", input.dtype), count: count,
                            [.tensor(dInput), .tensor(dOutput), .tensor(input), .tensor(output), .tensor(scale),
                             .tensor(mean), .tensor(invStd), .tensor(dScale), .tensor(dShift),
                             .count(count), .int(channels), .count(rows), relu])
    }

    // MARK: Launch shapes

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

    /// The launch of vector kernel `kernel` (Note [Vector batch norm]) with
    /// as many blocks as the GPU holds at once.
    func batchNormVectorLaunch(_ kernel: String, rows: Int, channels: Int, unroll: Int) -> BatchNormVectorLaunch {
        let resident = kernels.residentBlocksPerMultiprocessor(.batchNormVector, kernel,
                                                               threads: BatchNormVectorLaunch.threads(channels: channels))
        return BatchNormVectorLaunch(rows: rows, channels: channels, unroll: unroll,
                                     residentBlocks: resident * kernels.multiprocessorCount)
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

/// The launch shape of the vector batch-norm kernels (Note [Vector batch
/// norm]) over `[rows, channels]` bf16 (channels % 8 == 0): blocks of
/// (columns, rowsPerBlock) threads, a grid of (slices, columnGroups), each
/// block owning `rowsPerSlice` rows (the last slice fewer), walked in tiles
/// of `unroll * rowsPerBlock` rows.
public struct BatchNormVectorLaunch: Equatable, Sendable {
    /// Threads per block at most (the kernels' `__launch_bounds__`).
    public static let maximumThreads = 256

    /// Vector columns (eight channels each) per block: all of them up to 256.
    public var columns: Int
    public var rowsPerBlock: Int
    public var columnGroups: Int
    public var slices: Int
    public var rowsPerSlice: Int

    public var block: (Int, Int, Int) { (columns, rowsPerBlock, 1) }
    public var grid: (Int, Int, Int) { (slices, columnGroups, 1) }

    /// Threads per block for `channels` channels (what the occupancy query needs before the shape).
    public static func threads(channels: Int) -> Int {
        let columns = min(channels / 8, maximumThreads)
        return columns * (maximumThreads / columns)
    }

    /// `residentBlocks`: how many blocks of this kernel the whole GPU holds
    /// at once; the grid has at most that many (one wave), fewer when the
    /// rows make fewer tiles, and every slice holds the same whole number of
    /// tiles except the last, which is never empty.
    public init(rows: Int, channels: Int, unroll: Int, residentBlocks: Int) {
        precondition(rows > 0 && channels > 0 && channels % 8 == 0 && unroll > 0 && residentBlocks > 0,
                     "vector batch norm over \(rows) x \(channels), unroll \(unroll), \(residentBlocks) blocks")
        let vectors = channels / 8
        columns = min(vectors, Self.maximumThreads)
        rowsPerBlock = Self.maximumThreads / columns
        columnGroups = (vectors + columns - 1) / columns
        let tileRows = unroll * rowsPerBlock
        let tiles = (rows + tileRows - 1) / tileRows
        let wanted = max(1, min(tiles, residentBlocks / columnGroups))
        let tilesPerSlice = (tiles + wanted - 1) / wanted
        rowsPerSlice = tilesPerSlice * tileRows
        slices = (tiles + tilesPerSlice - 1) / tilesPerSlice
    }
}
