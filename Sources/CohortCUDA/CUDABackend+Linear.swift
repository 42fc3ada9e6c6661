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
extension CUDABackend {
    public func linearForward(output: Tensor, input: Tensor, weight: Tensor, bias: Tensor) {
        let (batch, inFeatures, outFeatures) = linearShapes("linearForward", input: input, weight: weight)
        expect("linearForward", bias, [outFeatures])
        expect("linearForward", output, [batch, outFeatures])
        context.makeCurrent()
        // y = bias broadcast, then the GEMM adds x W^T (beta = 1): no separate read-modify-write pass.
        kernels.elementwise(.elementwise, "broadcast_rows", count: output.elementCount,
                            [.tensor(output), .tensor(bias), .count(output.elementCount), .int(outFeatures)])
        gemm("linearForward y", transposeA: true, transposeB: false, m: outFeatures, n: batch, k: inFeatures,
             a: weight, lda: inFeatures, b: input, ldb: inFeatures, beta: 1, c: output, ldc: outFeatures)
    }

    public func linearBackward(dInput: Tensor?, dWeight: Tensor, dBias: Tensor,
                               dOutput: Tensor, input: Tensor, weight: Tensor) {
        let (batch, inFeatures, outFeatures) = linearShapes("linearBackward", input: input, weight: weight)
        expect("linearBackward", dOutput, [batch, outFeatures])
        expect("linearBackward", dWeight, [outFeatures, inFeatures])
        expect("linearBackward", dBias, [outFeatures])
        context.makeCurrent()
        if let dInput {
            expect("linearBackward", dInput, [batch, inFeatures])
            gemm("linearBackward dx", transposeA: false, transposeB: false, m: inFeatures, n: batch, k: outFeatures,
                 a: weight, lda: inFeatures, b: dOutput, ldb: outFeatures, beta: 0, c: dInput, ldc: inFeatures)
        }
        gemm("linearBackward dW", transposeA: false, transposeB: true, m: inFeatures, n: outFeatures, k: batch,
             a: input, lda: inFeatures, b: dOutput, ldb: outFeatures, beta: 0, c: dWeight, ldc: inFeatures)
        // dBias = column sums of dy: 32 x 8 blocks, one per 32 outputs (see Kernels+Elementwise.swift).
        kernels.launch(.elementwise, "column_sums", grid: ((outFeatures + 31) / 32, 1, 1), block: (32, 8, 1),
                       [.tensor(dBias), .tensor(dOutput), .int(batch), .int(outFeatures)])
    }

    /// C = A' B' + beta C in column-major terms, fp32 in and out.
    private func gemm(_ what: String, transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                      a: Tensor, lda: Int, b: Tensor, ldb: Int, beta: Float, c: Tensor, ldc: Int) {
        var alpha: Float = 1, beta = beta
        let float32 = Int32(COHORT_CUDA_R_32F)
        let status = cublas.cublasGemmEx(
            cublasHandle, Int32(transposeA ? COHORT_CUBLAS_OP_T : COHORT_CUBLAS_OP_N),
            Int32(transposeB ? COHORT_CUBLAS_OP_T : COHORT_CUBLAS_OP_N), Int32(m), Int32(n), Int32(k), &alpha,
            devicePointer(a.devicePointer), float32, Int32(lda), devicePointer(b.devicePointer), float32, Int32(ldb),
            &beta, devicePointer(c.devicePointer), float32, Int32(ldc),
            Int32(COHORT_CUBLAS_COMPUTE_32F), Int32(COHORT_CUBLAS_GEMM_DEFAULT))
        mustSucceed { try checkCUBLAS(status, "cublasGemmEx", "\(what): m \(m) n \(n) k \(k)") }
    }

    private func linearShapes(_ op: String, input: Tensor, weight: Tensor) -> (batch: Int, inFeatures: Int, outFeatures: Int) {
        require(input.shape.rank == 2 && weight.shape.rank == 2 && input.shape[1] == weight.shape[1],
                "\(op): input \(input.shape) does not match weight \(weight.shape) ([out, in])")
        expect(op, input, input.shape)
        expect(op, weight, weight.shape)
        return (input.shape[0], input.shape[1], weight.shape[0])
    }
}
