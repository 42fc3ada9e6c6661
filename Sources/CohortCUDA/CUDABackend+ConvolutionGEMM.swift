import CCUDA
import CohortKernels
import CohortTensor

/// The convolutions that run as cuBLAS GEMMs (Note [Convolution paths],
/// ConvolutionGEMM.swift, which defines the matrices and the calls; the
/// kernels are in Kernels+ConvolutionGEMM.swift).
///
/// Scratch: X̂ (gathered pixels or im2col) and dX̂ live in
/// `convolutionOperands`, the padded weight Ŵ and the padded float32 weight
/// gradient dŴ in `weightScratch`; no op needs two matrices in one buffer.
/// Both grow at the first call of a geometry, so after the eager warm-up
/// steps nothing allocates and the calls capture into a CUDA graph (Note
/// [Graph capture]): kernels and cublasGemmEx on the backend's stream, with
/// the workspace cuBLAS was given at start-up. X̂ is built again by the
/// weight gradient rather than kept from the forward: the scratch buffer is
/// shared by every convolution of the step (a gather reads a quarter of x,
/// microseconds), and a kept copy would cost a buffer per layer.
///
/// Precision: bf16 operands into a bf16 output (Y, dX̂) or the float32
/// weight gradient, float32 accumulation (CUBLAS_COMPUTE_32F), each output
/// rounded once, as the reference does; float32 operands run in TF32 when
/// `allowsTF32` (as cuDNN's float32 convolutions do), else in float32.
extension CUDABackend {
    /// Which path runs `direction` of `g` here (Note [Convolution paths]; `COHORT_CONV_PATH`).
    public func convolutionPath(_ g: Conv2dGeometry, _ direction: ConvolutionDirection) -> ConvolutionPath {
        ConvolutionPath.choose(g, direction, policy: convolutionPathPolicy)
    }

    /// Y = X̂ Ŵ^T.
    func gemmConvolutionForward(output: Tensor, input: Tensor, weight: Tensor, _ plan: ConvolutionGEMMPlan) {
        let dtype = input.dtype
        let x = operandMatrix(input, plan)
        let w = weightMatrix(weight, plan)
        gemm("conv2dForward (\(plan.geometry), \(plan.path.rawValue))", plan.forward, a: w, b: x, abType: dtype, beta: 0,
             c: output.devicePointer, cType: dtype, tf32: usesTF32(dtype))
    }

    /// dX̂ = dY Ŵ, scattered into dx at stride > 1 (1x1 only: Ŵ is the weight as it stands).
    func gemmConvolutionBackwardData(dInput: Tensor, dOutput: Tensor, weight: Tensor, _ plan: ConvolutionGEMMPlan) {
        let g = plan.geometry, dtype = dInput.dtype
        precondition(plan.path == .pointwiseGEMM && !plan.padsWeight)
        let dx = plan.buildsOperand ? convolutionOperands.pointer(byteCount: plan.rows * plan.ld * dtype.byteSize)
            : dInput.devicePointer
        gemm("conv2dBackwardData (\(g), \(plan.path.rawValue))", plan.backwardData, a: weight.devicePointer,
             b: dOutput.devicePointer, abType: dtype, beta: 0, c: dx, cType: dtype, tf32: usesTF32(dtype))
        if plan.buildsOperand {
            movePixels("scatter_pixels", to: dInput.devicePointer, from: dx, pixels: g.batch * g.inputHeight * g.inputWidth,
                       dtype: dtype, g)
        }
    }

    /// dŴ = dY^T X̂ into the float32 gradient (narrowed from ld to C*k*k columns when padded).
    func gemmConvolutionBackwardWeight(dWeight: Tensor, input: Tensor, dOutput: Tensor, _ plan: ConvolutionGEMMPlan) {
        let g = plan.geometry, dtype = input.dtype
        let x = operandMatrix(input, plan)
        let dw = plan.padsWeight ? weightScratch.pointer(byteCount: g.outputChannels * plan.ld * 4) : dWeight.devicePointer
        gemm("conv2dBackwardWeight (\(g), \(plan.path.rawValue))", plan.backwardWeight, a: x, b: dOutput.devicePointer,
             abType: dtype, beta: 0, c: dw, cType: .float32, tf32: usesTF32(dtype))
        if plan.padsWeight {
            copyColumns(to: dWeight.devicePointer, from: dw, rows: g.outputChannels, columns: plan.depth,
                        sourceColumns: plan.ld, sourceStride: plan.ld, dtype: .float32)
        }
    }

    // MARK: Operands

    private func usesTF32(_ dtype: DType) -> Bool { dtype == .float32 && allowsTF32 }

    /// X̂ `[M, ld]`: x itself (1x1, stride 1), its strided pixels, or its im2col matrix, in `convolutionOperands`.
    private func operandMatrix(_ input: Tensor, _ plan: ConvolutionGEMMPlan) -> CUdeviceptr {
        guard plan.buildsOperand else { return input.devicePointer }
        let g = plan.geometry, dtype = input.dtype
        let matrix = convolutionOperands.pointer(byteCount: plan.rows * plan.ld * dtype.byteSize)
        switch plan.path {
        case .pointwiseGEMM:
            movePixels("gather_pixels", to: matrix, from: input.devicePointer, pixels: plan.rows, dtype: dtype, g)
        case .im2colGEMM:
            // One thread per eight columns of a row (ld is a multiple of 8, the scratch 512-byte aligned).
            kernels.elementwise(.convolutionGEMM, kernelName("im2col", dtype), count: plan.rows * plan.ld / 8,
                                [.pointer(matrix), .tensor(input), .int(plan.rows), .int(plan.ld), .int(g.inputChannels),
                                 .int(g.inputHeight), .int(g.inputWidth), .int(g.outputHeight), .int(g.outputWidth),
                                 .int(g.kernelSize), .int(g.stride), .int(g.padding)])
        case .cudnn:
            preconditionFailure("operandMatrix for a cuDNN convolution")
        }
        return matrix
    }

    /// Ŵ `[K, ld]`: the OIHW weight itself, or zero-padded into `weightScratch`.
    private func weightMatrix(_ weight: Tensor, _ plan: ConvolutionGEMMPlan) -> CUdeviceptr {
        guard plan.padsWeight else { return weight.devicePointer }
        let k = plan.geometry.outputChannels
        let padded = weightScratch.pointer(byteCount: k * plan.ld * weight.dtype.byteSize)
        copyColumns(to: padded, from: weight.devicePointer, rows: k, columns: plan.ld, sourceColumns: plan.depth,
                    sourceStride: plan.depth, dtype: weight.dtype)
        return padded
    }

    /// `gather_pixels` (x -> X̂, `pixels` = N*P*Q) or `scatter_pixels` (dX̂ -> dx, `pixels` = N*H*W) of a 1x1
    /// convolution, in units of `pixelUnitBytes` bytes.
    private func movePixels(_ kernel: String, to destination: CUdeviceptr, from source: CUdeviceptr, pixels: Int,
                            dtype: DType, _ g: Conv2dGeometry) {
        let rowBytes = g.inputChannels * dtype.byteSize
        let unit = Self.pixelUnitBytes(rowBytes: rowBytes, destination, source)
        kernels.elementwise(.convolutionGEMM, "\(kernel)_\(unit)", count: pixels * (rowBytes / unit),
                            [.pointer(destination), .pointer(source), .int(pixels), .int(rowBytes / unit),
                             .int(g.inputHeight), .int(g.inputWidth), .int(g.outputHeight), .int(g.outputWidth),
                             .int(g.stride)])
    }

    /// The widest unit the pixel kernels may move a row of `rowBytes` bytes
    /// in: 16 bytes when the row is a multiple of 16 and both addresses are
    /// 16-byte aligned, else 4, else 2 (bf16 rows of an odd channel count).
    public static func pixelUnitBytes(rowBytes: Int, _ addresses: CUdeviceptr...) -> Int {
        for unit in [16, 4] where rowBytes % unit == 0 && addresses.allSatisfy({ $0 % UInt64(unit) == 0 }) {
            return unit
        }
        return 2
    }

    /// `copy_columns`: dst `[rows, columns]` from the first columns of src `[rows, sourceStride]`, 0 past `sourceColumns`.
    private func copyColumns(to destination: CUdeviceptr, from source: CUdeviceptr, rows: Int, columns: Int,
                             sourceColumns: Int, sourceStride: Int, dtype: DType) {
        kernels.elementwise(.convolutionGEMM, kernelName("copy_columns", dtype), count: rows * columns,
                            [.pointer(destination), .pointer(source), .int(rows), .int(columns), .int(sourceColumns),
                             .int(sourceStride)])
    }
}
