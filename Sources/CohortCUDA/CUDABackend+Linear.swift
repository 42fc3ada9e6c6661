import CCUDA
import CohortKernels
import CohortTensor

/// The classifier's linear layer on cuBLAS (`cublasGemmEx`).
///
/// cuBLAS is column-major: a row-major `[r, c]` matrix is its transpose
/// `[c, r]` with leading dimension c, so each product below is written for
/// the transposes (shapes: x `[N, in]`, W `[out, in]`, y `[N, out]`):
///     y^T  = W^T(as stored, transposed) x^T   GemmEx(T, N, m: out, n: N, k: in,  A: W lda in,  B: x  ldb in)
///     dx^T = W^T dy^T                         GemmEx(N, N, m: in,  n: N, k: out, A: W lda in,  B: dy ldb out)
///     dW^T = x^T dy                           GemmEx(N, T, m: in,  n: out, k: N, A: x lda in,  B: dy ldb out)
/// Compute type CUBLAS_COMPUTE_32F: full fp32, as PyTorch's default for
/// matrix products (`allow_tf32 = False` for matmul); this layer is tiny
/// (512 x 10 for ResNet-18), so TF32 (compute type 77) would gain nothing.
///
/// bf16 mode: x, W, y, dy and dx are bf16, the bias and the weight and bias
/// gradients float32. cublasGemmEx takes bf16 A and B with a bf16 or a
/// float32 C under CUBLAS_COMPUTE_32F (float32 accumulation): dx is written
/// in bf16, dW straight into the float32 gradient. y goes through a float32
/// scratch (bias broadcast, GEMM with beta = 1, one conversion to bf16), so
/// y = round(x W^T + b) is rounded once, as the reference does; the scratch
/// is N x out floats (512 x 10 for ResNet-18).
extension CUDABackend {
    public func linearForward(output: Tensor, input: Tensor, weight: Tensor, bias: Tensor) {
        let dtype = activationDType("linearForward", [("output", output), ("input", input), ("weight", weight)])
        let (batch, inFeatures, outFeatures) = linearShapes("linearForward", input: input, weight: weight)
        require(bias.dtype == .float32,
                "linearForward: unsupported dtype combination (input \(input.dtype), weight \(weight.dtype), "
                    + "bias \(bias.dtype), output \(output.dtype)); the bias is float32 in every precision")
        expect("linearForward", bias, [outFeatures])
        expect("linearForward", output, [batch, outFeatures], dtype)
        context.makeCurrent()
        let count = output.elementCount
        // The reduction scratch is free between ops (everything runs on one stream, Note [Stream-ordered reuse]).
        let sums = dtype == .float32 ? output.devicePointer : reductionScratch.pointer(byteCount: count * 4)
        // y = bias broadcast, then the GEMM adds x W^T (beta = 1): no separate read-modify-write pass.
        kernels.elementwise(.elementwise, "broadcast_rows", count: count,
                            [.pointer(sums), .tensor(bias), .count(count), .int(outFeatures)])
        gemm("linearForward y", transposeA: true, transposeB: false, m: outFeatures, n: batch, k: inFeatures,
             a: weight, lda: inFeatures, b: input, ldb: inFeatures, beta: 1,
             c: sums, cType: .float32, ldc: outFeatures)
        if dtype == .bfloat16 {
            kernels.elementwise(.elementwise, "convert_f32_to_bf16", count: count,
                                [.tensor(output), .pointer(sums), .count(count)])
        }
    }

    public func linearBackward(dInput: Tensor?, dWeight: Tensor, dBias: Tensor,
                               dOutput: Tensor, input: Tensor, weight: Tensor) {
        var named: [(name: String, tensor: Tensor)] = [("dOutput", dOutput), ("input", input), ("weight", weight)]
        if let dInput { named.append(("dInput", dInput)) }
        let dtype = activationDType("linearBackward", named)
        let (batch, inFeatures, outFeatures) = linearShapes("linearBackward", input: input, weight: weight)
        require(dWeight.dtype == .float32 && dBias.dtype == .float32,
                "linearBackward: unsupported dtype combination (dOutput \(dOutput.dtype), dWeight \(dWeight.dtype), "
                    + "dBias \(dBias.dtype)); weight and bias gradients are float32 in every precision")
        expect("linearBackward", dOutput, [batch, outFeatures], dtype)
        expect("linearBackward", dWeight, [outFeatures, inFeatures])
        expect("linearBackward", dBias, [outFeatures])
        context.makeCurrent()
        if let dInput {
            expect("linearBackward", dInput, [batch, inFeatures], dtype)
            gemm("linearBackward dx", transposeA: false, transposeB: false, m: inFeatures, n: batch, k: outFeatures,
                 a: weight, lda: inFeatures, b: dOutput, ldb: outFeatures, beta: 0,
                 c: dInput.devicePointer, cType: dtype, ldc: inFeatures)
        }
        gemm("linearBackward dW", transposeA: false, transposeB: true, m: inFeatures, n: outFeatures, k: batch,
             a: input, lda: inFeatures, b: dOutput, ldb: outFeatures, beta: 0,
             c: dWeight.devicePointer, cType: .float32, ldc: inFeatures)
        // dBias = column sums of dy: 32 x 8 blocks, one per 32 outputs (see Kernels+Elementwise.swift).
        kernels.launch(.elementwise, kernelName("column_sums", dtype), grid: ((outFeatures + 31) / 32, 1, 1), block: (32, 8, 1),
                       [.tensor(dBias), .tensor(dOutput), .int(batch), .int(outFeatures)])
    }

    /// C = A' B' + beta C in column-major terms. A and B share a dtype
    /// (float32, or bf16: cuBLAS's 16BF x 16BF -> 16BF or 32F), C has
    /// `cType`; always float32 accumulation (CUBLAS_COMPUTE_32F, float alpha and beta).
    func gemm(_ what: String, transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                      a: Tensor, lda: Int, b: Tensor, ldb: Int, beta: Float, c: CUdeviceptr, cType: DType, ldc: Int) {
        require(a.dtype == b.dtype, "\(what): GEMM operands of different dtypes (\(a.dtype), \(b.dtype))")
        gemm(what, GEMMCall(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc),
             a: a.devicePointer, b: b.devicePointer, abType: a.dtype, beta: beta, c: c, cType: cType)
    }

    /// `call` on device addresses: A and B of `abType`, C of `cType`, float32
    /// accumulation and float alpha (1) and beta. The compute type is
    /// CUBLAS_COMPUTE_32F, or CUBLAS_COMPUTE_32F_FAST_TF32 when `tf32` (float32
    /// operands rounded to TF32 for the tensor cores, sums in float32).
    func gemm(_ what: String, _ call: GEMMCall, a: CUdeviceptr, b: CUdeviceptr, abType: DType, beta: Float,
              c: CUdeviceptr, cType: DType, tf32: Bool = false) {
        var alpha: Float = 1, beta = beta
        func cudaType(_ dtype: DType) -> Int32 {
            switch dtype {
            case .float32: return Int32(COHORT_CUDA_R_32F)
            case .bfloat16: return Int32(COHORT_CUDA_R_16BF)
            default: fatalError("CUDABackend.\(what): no GEMM for \(dtype)")
            }
        }
        require(!tf32 || abType == .float32, "\(what): TF32 compute asked for \(abType) operands")
        let abCUDAType = cudaType(abType)
        let computeType = Int32(tf32 ? COHORT_CUBLAS_COMPUTE_32F_FAST_TF32 : COHORT_CUBLAS_COMPUTE_32F)
        let status = cublas.cublasGemmEx(
            cublasHandle, Int32(call.transposeA ? COHORT_CUBLAS_OP_T : COHORT_CUBLAS_OP_N),
            Int32(call.transposeB ? COHORT_CUBLAS_OP_T : COHORT_CUBLAS_OP_N), Int32(call.m), Int32(call.n), Int32(call.k),
            &alpha, devicePointer(a), abCUDAType, Int32(call.lda), devicePointer(b), abCUDAType, Int32(call.ldb),
            &beta, devicePointer(c), cudaType(cType), Int32(call.ldc), computeType, Int32(COHORT_CUBLAS_GEMM_DEFAULT))
        mustSucceed {
            try checkCUBLAS(status, "cublasGemmEx",
                            "\(what): \(call), A/B \(abType), C \(cType), compute \(tf32 ? "32F_FAST_TF32" : "32F")")
        }
    }

    private func linearShapes(_ op: String, input: Tensor, weight: Tensor) -> (batch: Int, inFeatures: Int, outFeatures: Int) {
        require(input.shape.rank == 2 && weight.shape.rank == 2 && input.shape[1] == weight.shape[1],
                "\(op): input \(input.shape) does not match weight \(weight.shape) ([out, in])")
        expect(op, input, input.shape, input.dtype)
        expect(op, weight, weight.shape, input.dtype)
        return (input.shape[0], input.shape[1], weight.shape[0])
    }
}
