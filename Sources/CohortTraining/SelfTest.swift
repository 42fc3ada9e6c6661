import CohortKernels
import CohortTensor
import Foundation

/// Proves a backend correct against `ReferenceBackend`, the plain-Swift
/// oracle (see `Note [Backends]`): every method of `Backend`, forward and
/// backward, on fresh random inputs of several shapes, then a whole
/// ResNet-18 training step. `cohort selftest` runs it.
///
/// Note [Self-test method]
/// - Inputs are fresh random values (never zeros, which hide unwritten
///   outputs and wrong indexing), drawn from a generator seeded by the run's
///   seed and the check's name, so one seed reproduces any failure.
/// - The same host inputs are uploaded to both backends. Before the op runs,
///   every output of the backend under test is poisoned with NaN, so an
///   element it leaves unwritten shows as NaN. Outputs that are also inputs
///   (running statistics, the optimiser's buffers, in-place ops) cannot be
///   poisoned; both sides then start from the same values.
/// - Each output is downloaded and compared with the reference by two
///   relative errors, both in Double: the max-abs one
///   `‖out − ref‖∞ / ‖ref‖∞` (a few wrong elements stand out) and the
///   normwise one `‖out − ref‖₂ / ‖ref‖₂` (the usual measure of rounding).
///   A row passes when both are within its tolerance and no element of
///   either side is NaN or infinite. (Where `ref` is all zeros, the errors
///   are absolute.)
/// - Each tolerance is written beside its check with the reason for its size.
///
/// Note [bf16 self-test]: on a backend that `supportsBFloat16`, every op
/// check runs a second time (`<name> bf16`) with the dtypes the layers pass
/// in bf16 mode (`Note [Mixed precision]`): activations, their gradients and
/// conv/linear weights bfloat16; batch-norm scale, shift and statistics,
/// probabilities, the loss and weight gradients float32. The same bf16 host
/// values go to both sides, and the reference computes in float32 and rounds
/// each bf16 output once, so the rows measure the backend's bf16 kernels,
/// not the rounding of the inputs. A bf16 ResNet-18 step (`.bfloat16`
/// model on both backends) follows the float32 one. Tolerances sit beside
/// each check (SelfTest+BFloat16.swift). A backend without bf16 compute
/// runs only the bf16 memory checks and says so in `notes`.
public final class BackendSelfTest {
    public let backend: Backend
    public let options: Options
    let reference = ReferenceBackend()

    public struct Options: Sendable {
        /// Seeds every check's inputs; print it so a failure can be rerun.
        public var seed: UInt64
        /// Batch 2 instead of 8 in every check and the model step: the same
        /// ops and geometries, a quarter of the work.
        public var quick: Bool
        /// Runs the bfloat16 rows (Note [bf16 self-test]): `fill`/`copy`/
        /// `upload` in bf16 on every backend, and, where the backend
        /// `supportsBFloat16`, every op check in bf16 and a bf16 model step.
        public var bfloat16: Bool
        /// How the backend multiplies in convolutions and linear layers; sets their tolerances.
        public var matrixPrecision: MatrixPrecision
        /// Runs only the checks whose name or shape contains this text (case-insensitive).
        public var filter: String?
        /// One-rank communicators for the data-parallel step checks (Note [Self-test of the
        /// data-parallel step]); nil: those checks are not run.
        public var dataParallelCommunicators: DataParallelCommunicatorFactory?

        public init(seed: UInt64 = UInt64.random(in: 0...UInt64.max), quick: Bool = false, bfloat16: Bool = true,
                    matrixPrecision: MatrixPrecision = .float32, filter: String? = nil,
                    dataParallelCommunicators: DataParallelCommunicatorFactory? = nil) {
            self.seed = seed
            self.quick = quick
            self.bfloat16 = bfloat16
            self.matrixPrecision = matrixPrecision
            self.filter = filter
            self.dataParallelCommunicators = dataParallelCommunicators
        }

        /// The batch of every check (odd shapes use their own).
        var batch: Int { quick ? 2 : 8 }
    }

    public init(backend: Backend, options: Options) {
        self.backend = backend
        self.options = options
    }

    /// Whether the bf16 op checks and model step run (Note [bf16 self-test]).
    public var runsBFloat16Ops: Bool { options.bfloat16 && backend.supportsBFloat16 }

    /// What the run leaves out and why, for the caller to print.
    public var notes: [String] {
        guard options.bfloat16 && !backend.supportsBFloat16 else { return [] }
        return ["the \(backend.name) backend has no bfloat16 compute (supportsBFloat16 is false): "
                + "bf16 op checks and the bf16 ResNet-18 step skipped; bf16 memory checks run"]
    }

    /// Every check in the order it runs, after `options.filter`.
    var checks: [SelfTestCheck] {
        var all = memoryChecks() + convolutionChecks(.float32) + batchNormChecks(.float32) + elementwiseChecks(.float32)
            + classifierChecks(.float32) + lossChecks(.float32) + optimizerChecks(.float32) + augmentationChecks()
            + [modelStepCheck(.float32)]
        if runsBFloat16Ops {
            all += convolutionChecks(.bfloat16) + batchNormChecks(.bfloat16) + elementwiseChecks(.bfloat16)
                + classifierChecks(.bfloat16) + lossChecks(.bfloat16) + optimizerChecks(.bfloat16)
                + [modelStepCheck(.bfloat16)]
        }
        all += graphChecks() + dataParallelStepChecks()
        guard let filter = options.filter?.lowercased(), !filter.isEmpty else { return all }
        return all.filter { $0.name.lowercased().contains(filter) || $0.shape.lowercased().contains(filter) }
    }

    /// Names and shapes of the checks `run` would do, in order.
    public var plannedChecks: [(name: String, shape: String)] { checks.map { ($0.name, $0.shape) } }

    /// Runs every check, calling `onRow` as each result is known (a long run
    /// shows where it is; a trap leaves the rows before it on screen).
    public func run(onRow: (SelfTestRow) -> Void = { _ in }) -> SelfTestReport {
        var rows: [SelfTestRow] = []
        withoutActuallyEscaping(onRow) { onRow in
            for check in checks {
                let context = SelfTestContext(check: check, tested: backend, reference: reference, runSeed: options.seed)
                context.onRow = { row in
                    rows.append(row)
                    onRow(row)
                }
                check.body(context)
                context.onRow = { _ in }
            }
        }
        return SelfTestReport(backend: backend, options: options, rows: rows)
    }
}

/// How a backend multiplies float32 in convolutions and matrix products.
public enum MatrixPrecision: String, CaseIterable, Sendable, Codable {
    /// Float32 fused multiply-adds (oneDNN; cuDNN and cuBLAS with TF32 off).
    case float32 = "fp32"
    /// TF32 matrix units: operands rounded to a 10-bit mantissa (cuDNN's
    /// default for float32 convolutions on compute capability 8.0 and later).
    case tf32
}

/// One named check: a shape and a body that runs the op on both backends
/// through its context and records one row per output.
struct SelfTestCheck {
    var name: String
    var shape: String
    var body: (SelfTestContext) -> Void
}

/// A tolerance on both relative errors, with why it has that size.
public struct Tolerance: Hashable, Sendable, Codable {
    /// The bound on the normwise error, and on the max-abs one unless `maxAbsolute` is set.
    public var bound: Double
    /// A separate bound on the max-abs error (a whole training step, where
    /// single elements may legitimately differ more than the tensor does).
    public var maxAbsolute: Double?
    public var reason: String

    public init(_ bound: Double, maxAbsolute: Double? = nil, _ reason: String) {
        self.bound = bound
        self.maxAbsolute = maxAbsolute
        self.reason = reason
    }

    /// `1e-05`, or `2e-02/2e-01` (normwise/max-abs) when the bounds differ.
    public var description: String {
        func format(_ value: Double) -> String { value == 0 ? "0" : String(format: "%.0e", value) }
        return format(bound) + (maxAbsolute.map { "/" + format($0) } ?? "")
    }
}

/// One output of one check, compared.
public struct SelfTestRow: Codable, Sendable {
    public var check: String
    public var shape: String
    /// `‖out − ref‖∞ / ‖ref‖∞` (NaN when an element is not finite).
    public var maxRelativeError: Double
    /// `‖out − ref‖₂ / ‖ref‖₂` (NaN when an element is not finite).
    public var normwiseRelativeError: Double
    /// The bound on both errors (`Tolerance.description` when max-abs has its own).
    public var tolerance: String
    public var toleranceReason: String
    public var passed: Bool
    /// What went wrong or what the row summarises ("12 NaN: unwritten?", "worst: fc.weight").
    public var note: String?
}

/// The two relative errors of `actual` against `expected`, in Double.
struct RelativeError {
    var maxAbsolute: Double
    var normwise: Double
    /// Elements that are NaN or infinite on either side.
    var nonFinite: Int

    init(maxAbsolute: Double, normwise: Double, nonFinite: Int) {
        self.maxAbsolute = maxAbsolute
        self.normwise = normwise
        self.nonFinite = nonFinite
    }

    init<A: Collection<Float>, E: Collection<Float>>(_ actual: A, _ expected: E) where A.Index == Int, E.Index == Int {
        precondition(actual.count == expected.count, "comparing \(actual.count) values with \(expected.count)")
        var differenceMax = 0.0, referenceMax = 0.0, differenceSquares = 0.0, referenceSquares = 0.0
        var nonFinite = 0
        for (a, e) in zip(actual.lazy.map(Double.init), expected.lazy.map(Double.init)) {
            guard a.isFinite && e.isFinite else { nonFinite += 1; continue }
            let difference = abs(a - e)
            differenceMax = max(differenceMax, difference)
            referenceMax = max(referenceMax, abs(e))
            differenceSquares += difference * difference
            referenceSquares += e * e
        }
        self.nonFinite = nonFinite
        if nonFinite > 0 {
            maxAbsolute = .nan
            normwise = .nan
        } else {
            maxAbsolute = differenceMax / (referenceMax > 0 ? referenceMax : 1)
            normwise = differenceSquares.squareRoot() / (referenceSquares > 0 ? referenceSquares.squareRoot() : 1)
        }
    }

    func passes(_ tolerance: Tolerance) -> Bool {
        nonFinite == 0 && maxAbsolute <= (tolerance.maxAbsolute ?? tolerance.bound) && normwise <= tolerance.bound
    }
}
