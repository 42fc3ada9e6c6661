import CohortKernels
import CohortTensor

/// The bf16 rows' tolerances and helpers (Note [bf16 self-test]).
///
/// Both sides get the same bf16 inputs, so what differs is only how each
/// computes in float32 before rounding its bf16 outputs once (round to
/// nearest even, relative error at most 2^-9 = 2.0e-3). Where the two
/// float32 results differ by a hair, an element can round to neighbouring
/// bf16 values, one ulp (2^-8 = 3.9e-3 relative) apart: rare, so the
/// normwise error stays far below 1e-2, and at most one ulp of the largest
/// element in max-abs. A real fault (bf16 bits read as float32, a wrong
/// dtype, an unwritten or unconverted output) errs by order 1.
extension Tolerance {
    /// Elementwise ops and batch norm with bf16 outputs.
    static let bfloat16Output = Tolerance(
        1e-2, maxAbsolute: 2e-2,
        "bf16 inputs, fp32 math, output rounded once to bf16 (2^-9); a hair's difference can round 1 ulp (2^-8) apart")
    /// Convolutions and matrix products with bf16 outputs, and the
    /// convolution weight gradient (rounded to bf16 inside cuDNN, then widened).
    static let bfloat16Matrix = Tolerance(
        1e-2, maxAbsolute: 3e-2,
        "bf16 operands (products exact in fp32), fp32 sums in another order, result rounded to bf16 once (2^-9)")
    /// Float32 results that are sums of bf16 inputs (the linear bias gradient): the
    /// inputs are exact in float32, so as in float32 (the reference sums in Double).
    static let bfloat16InputsFloat32Sums = Tolerance(
        1e-5, "float32 sums (double on the GPU) of bf16 inputs, exact in float32, in another order vs Double")
    /// Matrix products of bf16 operands written in float32 (the linear weight gradient).
    static let bfloat16OperandsFloat32Result = Tolerance(
        1e-3, "bf16 operands (exact in fp32), fp32 tensor-core sums in another order, float32 result: no bf16 rounding")
}

extension BackendSelfTest {
    /// `name` for float32 checks, `name bf16` for their bf16 twins (filter with `--filter bf16`).
    func checkName(_ name: String, _ dtype: DType) -> String {
        dtype == .bfloat16 ? name + " bf16" : name
    }

    /// The tolerance of an op whose result is in `dtype`: `float32` for
    /// float32 checks, `.bfloat16Output` for bf16 ones.
    func elementwiseTolerance(_ float32: Tolerance, _ dtype: DType) -> Tolerance {
        dtype == .bfloat16 ? .bfloat16Output : float32
    }
}

extension SelfTestContext {
    /// `host`'s values rounded to `dtype` (float32: unchanged), on both
    /// backends: both sides start from the same bf16 values.
    func pair(_ host: Tensor, _ dtype: DType) -> TensorPair {
        pair(rounded(host, dtype))
    }

    /// A host copy of float32 `host` in `dtype` (round to nearest even for bfloat16).
    func rounded(_ host: Tensor, _ dtype: DType) -> Tensor {
        guard dtype != host.dtype else { return host }
        let copy = Tensor.zeros(host.shape, dtype: dtype)
        copy.copy(from: host.toArray())
        return copy
    }
}
