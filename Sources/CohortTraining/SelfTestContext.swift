import CohortKernels
import CohortTensor

/// The same tensor on the backend under test and on the reference.
struct TensorPair {
    let tested: Tensor
    let reference: Tensor
}

/// What one check works with: its random generator, tensors made on both
/// backends (outputs poisoned on the tested side), and the comparison that
/// records a row. See `Note [Self-test method]`.
final class SelfTestContext {
    let check: SelfTestCheck
    let tested: Backend
    let reference: ReferenceBackend
    /// Seeded from the run's seed and the check's name and shape, so a check
    /// draws the same inputs whichever other checks run.
    var random: SplitMix64
    var onRow: (SelfTestRow) -> Void = { _ in }

    init(check: SelfTestCheck, tested: Backend, reference: ReferenceBackend, runSeed: UInt64) {
        self.check = check
        self.tested = tested
        self.reference = reference
        random = SplitMix64(seed: SplitMix64.mix(runSeed ^ Self.fnv1a(check.name + " " + check.shape)))
    }

    /// FNV-1a over UTF-8: a hash that stays the same across runs and Swift
    /// versions (`Hasher` is seeded per process).
    static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return hash
    }

    // MARK: Host inputs

    /// A host float32 tensor, uniform in `range`.
    func uniform(_ shape: Shape, _ range: ClosedRange<Float> = -1...1) -> Tensor {
        Tensor((0..<shape.elementCount).map { _ in random.nextUniform(range.lowerBound, range.upperBound) }, shape: shape)
    }

    /// Host int32 labels in `0..<classes`.
    func labels(_ count: Int, classes: Int) -> Tensor {
        Tensor.int32((0..<count).map { _ in Int32(random.next(below: classes)) })
    }

    // MARK: Tensors on both backends

    /// `host`'s values on both backends.
    func pair(_ host: Tensor) -> TensorPair {
        // Allocation failing here is the machine's limit, not a finding: stop with the reason.
        do {
            return TensorPair(tested: try tested.makeTensor(copying: host), reference: try reference.makeTensor(copying: host))
        } catch {
            fatalError("selftest \(check.name) \(check.shape): cannot allocate \(host.shape): \(error)")
        }
    }

    /// An output of `shape` on both backends; the tested side is filled with
    /// NaN so that an element the op does not write fails the comparison.
    func output(_ shape: Shape, dtype: DType = .float32) -> TensorPair {
        do {
            let pair = TensorPair(tested: try tested.makeTensor(shape, dtype: dtype),
                                  reference: try reference.makeTensor(shape, dtype: dtype))
            tested.fill(pair.tested, value: .nan)
            reference.fill(pair.reference, value: 0)
            return pair
        } catch {
            fatalError("selftest \(check.name) \(check.shape): cannot allocate \(shape): \(error)")
        }
    }

    /// Runs `body` on the reference, then on the backend under test, each
    /// time with a function that picks that backend's side of a pair.
    func run(_ body: (Backend, (TensorPair) -> Tensor) -> Void) {
        body(reference) { $0.reference }
        body(tested) { $0.tested }
        tested.synchronize()
    }

    // MARK: Comparison

    /// Downloads both sides of `pair` and records a row named
    /// `<check>.<output>` (or `<check>` when `output` is nil), with `note` unless elements are not finite.
    func compare(_ output: String?, _ pair: TensorPair, _ tolerance: Tolerance, note: String? = nil) {
        compare(output, actual: tested.download(pair.tested).toArray(),
                expected: reference.download(pair.reference).toArray(), tolerance, note: note)
    }

    /// Records a row comparing host values.
    func compare(_ output: String?, actual: [Float], expected: [Float], _ tolerance: Tolerance, note: String? = nil) {
        let error = RelativeError(actual, expected)
        record(output, error: error, tolerance: tolerance, note: error.nonFinite > 0
               ? "\(error.nonFinite) of \(expected.count) elements NaN or infinite (unwritten?)" : note)
    }

    func record(_ output: String?, error: RelativeError, tolerance: Tolerance, note: String?) {
        onRow(SelfTestRow(check: output.map { "\(check.name).\($0)" } ?? check.name, shape: check.shape,
                          maxRelativeError: error.maxAbsolute, normwiseRelativeError: error.normwise,
                          tolerance: tolerance.description, toleranceReason: tolerance.reason,
                          passed: error.passes(tolerance), note: note))
    }
}
