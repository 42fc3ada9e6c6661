import CohortKernels
import Foundation

/// Which implementation runs one direction of a convolution (Note [Convolution paths]).
public enum ConvolutionPath: String, Codable, Sendable, CaseIterable {
    /// cuDNN's legacy API with the algorithm its Find picked (Note [Convolution algorithms]).
    case cudnn
    /// A 1x1 convolution without padding as one cuBLAS GEMM over its (strided) pixels.
    case pointwiseGEMM = "1x1 GEMM"
    /// A k x k convolution of few input channels as im2col plus one cuBLAS GEMM.
    case im2colGEMM = "im2col GEMM"

    /// Note [Convolution paths]: the one place that decides how a geometry
    /// runs. cuDNN runs most of ResNet-18's convolutions at 430-675 TFLOP/s
    /// in bf16, but two kinds badly. Measured with `cohort bench convs` on an
    /// H200 (cuDNN 9.14, cuBLAS 13.1, bf16, batch 512, commit 3a97443),
    /// cuDNN's time against a cuBLAS GEMM of the same m x n x k:
    ///
    /// - 1x1 stride 2, the shortcuts 64->128 on 32x32, 128->256 on 16x16,
    ///   256->512 on 8x8: forward 0.130 / 0.131 / 0.011 ms (Find picks
    ///   algorithm 0, no tensor ops) against 0.017 / 0.009 / 0.007 ms;
    ///   backward data 0.043 / 0.028 / 0.020 against 0.014 / 0.007 / 0.006;
    ///   backward weight 0.043 / 0.022 / 0.025 against 0.017 / 0.011 / 0.009.
    ///   In NHWC a 1x1 convolution is a GEMM over its sampled pixels, so
    ///   `pointwiseGEMM` runs exactly that: a gather of the strided pixels
    ///   (a quarter of x at stride 2: 4 MB at 64->128, about 3 us at HBM
    ///   speed) and one GEMM; the data gradient one GEMM and a scatter that
    ///   writes dx once; the weight gradient a gather again and one GEMM
    ///   straight into the float32 gradient. Every 1x1 geometry without
    ///   padding takes it (at stride 1 there is no gather or scatter at all).
    /// - The stem, 3->64 3x3 on 512x32x32: forward 0.157 ms (11.5 TFLOP/s),
    ///   backward weight 0.193 ms; a GEMM 64 x 524288 x 27 takes 0.055 ms.
    ///   cuDNN's NHWC kernels want channels in multiples of 8. `im2colGEMM`
    ///   writes the [N*P*Q, 32] im2col matrix (C*k*k = 27 columns padded to
    ///   32: 34 MB in bf16, about 10 us) and runs one GEMM for the forward and
    ///   one for the weight gradient: expected about 0.065 ms each (the GEMM's
    ///   measured time plus the im2col write at HBM bandwidth) against 0.157
    ///   and 0.193. The new paths have not been timed alone yet; the whole
    ///   bf16 step at batch 512 went from 6.8 to 6.3 ms (Q1 of the 4 x H200
    ///   suite, commits 33a499b and 81940ad, two calls). It takes geometries with fewer than 8 input channels whose
    ///   padded row holds at most 64 columns (3x3 up to 7 channels), where the
    ///   im2col matrix stays within about 11x the input. Their data gradient
    ///   stays on cuDNN: a model never asks for the images' gradient (the
    ///   stem is called with `needsInputGradient: false`).
    ///
    /// Both precisions take the same paths (the float32 GEMMs run in TF32
    /// when `allowsTF32`, as cuDNN does). Geometries whose tensors or GEMM
    /// operands reach 2^31 elements stay on cuDNN (the kernels index in 32
    /// bits). `COHORT_CONV_PATH=cudnn` sends everything to cuDNN, to compare.
    public static func choose(_ g: Conv2dGeometry, _ direction: ConvolutionDirection,
                              policy: ConvolutionPathPolicy = .auto) -> ConvolutionPath {
        guard policy == .auto else { return .cudnn }
        let path: ConvolutionPath
        if g.kernelSize == 1 && g.padding == 0 {
            path = .pointwiseGEMM
        } else if g.inputChannels < 8 && ConvolutionGEMMPlan.paddedDepth(g) <= 64 && direction != .backwardData {
            path = .im2colGEMM
        } else {
            return .cudnn
        }
        return ConvolutionGEMMPlan(g, path).fitsIn32BitIndices ? path : .cudnn
    }
}

/// Whether `ConvolutionPath.choose` may pick the GEMM paths: `COHORT_CONV_PATH`,
/// `auto` (unset or empty: the default) or `cudnn` (every convolution on cuDNN).
public enum ConvolutionPathPolicy: String, Sendable, CaseIterable {
    case auto
    case cudnn

    public static let variable = "COHORT_CONV_PATH"

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConvolutionPathPolicyError) {
        let value = environment[Self.variable] ?? ""
        if value.isEmpty {
            self = .auto
        } else if let policy = ConvolutionPathPolicy(rawValue: value.lowercased()) {
            self = policy
        } else {
            throw ConvolutionPathPolicyError(value: value)
        }
    }
}

public struct ConvolutionPathPolicyError: Error, CustomStringConvertible {
    public var value: String
    public var description: String {
        "\(ConvolutionPathPolicy.variable)=\(value) is not a convolution path policy: use "
            + ConvolutionPathPolicy.allCases.map(\.rawValue).joined(separator: " or ")
            + " (auto: the GEMM paths where Note [Convolution paths] picks them; cudnn: cuDNN for every convolution)"
    }
}

/// One `cublasGemmEx` call in cuBLAS's column-major terms:
/// C (m x n, ldc) = op(A) (m x k) op(B) (k x n), op = transpose when set.
public struct GEMMCall: Equatable, Sendable {
    public var transposeA: Bool
    public var transposeB: Bool
    public var m, n, k: Int
    public var lda, ldb, ldc: Int
}

/// The matrices of a convolution run as GEMMs, and the three cuBLAS calls on
/// them (Note [Convolution paths]). Every matrix is row-major in memory:
///
/// - X̂ `[M, ld]`, M = N*P*Q output pixels: row (n, p, q) holds what the
///   filter sees at that pixel, column j = (c*k + r)*k + s, columns from
///   `depth` = C*k*k to `ld` zero. 1x1: x's pixel (n, p*stride, q*stride),
///   ld = depth = C (at stride 1, x itself).
/// - Ŵ `[K, ld]`: the OIHW weight, which is `[K, depth]` row-major as it
///   stands (OIHW orders a filter c, r, s, as X̂'s columns), zero-padded to
///   ld columns when ld > depth.
/// - Y and dY `[M, K]`: the NHWC output and its gradient as they are.
/// - dX̂ `[M, C]` (1x1 only): the gradient of X̂, scattered into dx.
/// - dŴ `[K, ld]`, float32: the weight gradient (the OIHW gradient itself
///   when ld == depth, else its first `depth` columns are).
///
/// cuBLAS is column-major: it reads a row-major `[r, c]` matrix with row
/// stride ld as the c x r matrix with leading dimension ld, its transpose.
/// So each product is computed as its transpose, every operand seen as its
/// transpose (the linear layer's scheme, CUDABackend+Linear.swift, with X̂
/// for x and Ŵ for W):
///
///     forward:          Y = X̂ Ŵ^T,    as Y^T = (Ŵ^T)^T X̂^T
///                       transa T, transb N, m K,  n M, k ld;  A Ŵ,  lda ld;  B X̂,  ldb ld;  C Y,   ldc K
///     backward data:    dX̂ = dY Ŵ,    as dX̂^T = Ŵ^T dY^T
///                       transa N, transb N, m C,  n M, k K;   A Ŵ,  lda C;   B dY, ldb K;   C dX̂,  ldc C
///     backward weight:  dŴ = dY^T X̂,  as dŴ^T = X̂^T (dY^T)^T
///                       transa N, transb T, m ld, n K, k M;   A X̂,  lda ld;  B dY, ldb K;   C dŴ,  ldc ld
///
/// (Ŵ^T is what cuBLAS sees of Ŵ, ld x K; X̂^T is ld x M; dY^T is K x M.)
/// The forward sums over all ld columns: the padding is zero in both X̂ and
/// Ŵ (both written whole by their kernels), so it adds exact zeros, and
/// every operand keeps a row length that is a multiple of 8 (16-byte rows in
/// bf16, which cuBLAS's fastest kernels want). `ConvolutionGEMMTests` runs
/// these calls with a textbook column-major GEMM on the CPU against the
/// reference backend's convolutions.
public struct ConvolutionGEMMPlan: Equatable, Sendable {
    public let geometry: Conv2dGeometry
    public let path: ConvolutionPath
    /// M = N*P*Q: X̂'s and Y's rows.
    public let rows: Int
    /// C*k*k: the filter's length.
    public let depth: Int
    /// X̂'s and Ŵ's row length: depth (1x1), or depth rounded up to a multiple of 8 (im2col).
    public let ld: Int

    public init(_ g: Conv2dGeometry, _ path: ConvolutionPath) {
        precondition(path != .cudnn, "ConvolutionGEMMPlan: \(g) runs on cuDNN")
        precondition(path != .pointwiseGEMM || (g.kernelSize == 1 && g.padding == 0),
                     "ConvolutionGEMMPlan: \(g) is not a 1x1 convolution without padding")
        geometry = g
        self.path = path
        rows = g.batch * g.outputHeight * g.outputWidth
        depth = g.inputChannels * g.kernelSize * g.kernelSize
        ld = path == .pointwiseGEMM ? depth : Self.paddedDepth(g)
    }

    /// C*k*k rounded up to a multiple of 8.
    public static func paddedDepth(_ g: Conv2dGeometry) -> Int {
        (g.inputChannels * g.kernelSize * g.kernelSize + 7) / 8 * 8
    }

    /// Whether X̂ must be built (gather or im2col); false for a 1x1 convolution at stride 1, whose X̂ is x.
    public var buildsOperand: Bool { path == .im2colGEMM || geometry.stride > 1 }

    /// Whether the weight is padded into Ŵ (and dŴ narrowed back): ld > depth.
    public var padsWeight: Bool { ld > depth }

    /// Every tensor and matrix below 2^31 elements, as the kernels' 32-bit indices need.
    public var fitsIn32BitIndices: Bool {
        let g = geometry, limit = Int(Int32.max)
        return [g.inputShape.elementCount, g.outputShape.elementCount, rows * ld, g.outputChannels * ld]
            .allSatisfy { $0 <= limit }
    }

    public var forward: GEMMCall {
        GEMMCall(transposeA: true, transposeB: false, m: geometry.outputChannels, n: rows, k: ld,
                 lda: ld, ldb: ld, ldc: geometry.outputChannels)
    }

    /// The data gradient's GEMM (1x1 only: ld == C).
    public var backwardData: GEMMCall {
        precondition(path == .pointwiseGEMM, "ConvolutionGEMMPlan: the data gradient runs as a GEMM for 1x1 only")
        return GEMMCall(transposeA: false, transposeB: false, m: ld, n: rows, k: geometry.outputChannels,
                        lda: ld, ldb: geometry.outputChannels, ldc: ld)
    }

    public var backwardWeight: GEMMCall {
        GEMMCall(transposeA: false, transposeB: true, m: ld, n: geometry.outputChannels, k: rows,
                 lda: ld, ldb: geometry.outputChannels, ldc: ld)
    }
}
