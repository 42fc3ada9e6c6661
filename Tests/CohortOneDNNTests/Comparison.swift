import CohortKernels
import CohortOneDNN
import CohortTensor
import XCTest

/// A test case that runs each op on `OneDNNBackend` and on the reference
/// oracle with the same random inputs, and compares the outputs.
///
/// Tolerances are on `max |onednn - reference| / max(1, max |reference|)`:
/// relative to the tensor's largest value, since oneDNN sums in another
/// order (blocked, vectorised, split across threads) and single elements
/// can cancel to near zero. Each test states its bound and why.
class OneDNNComparisonTestCase: XCTestCase {
    var onednn: OneDNNBackend!
    let reference = ReferenceBackend()
    var random = SplitMix64(seed: 0x5EED)

    override func setUpWithError() throws {
        do {
            onednn = try OneDNNBackend()
        } catch {
            throw XCTSkip("oneDNN is not available: \(error)")
        }
    }

    /// A host float32 tensor of uniform values in `range`.
    func randomTensor(_ shape: Shape, in range: ClosedRange<Float> = -1...1) -> Tensor {
        Tensor((0..<shape.elementCount).map { _ in random.nextFloat(in: range) }, shape: shape)
    }

    /// A host tensor holding a copy of `tensor`'s values (for outputs both backends write).
    func clone(_ tensor: Tensor) -> Tensor { Tensor(tensor.toArray(), shape: tensor.shape) }

    /// Asserts that `actual` (onednn) is within `tolerance` of `expected` (reference), see the class comment.
    func assertClose(_ actual: Tensor, _ expected: Tensor, tolerance: Float, _ what: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.shape, expected.shape, what, file: file, line: line)
        let a = actual.toArray(), e = expected.toArray()
        var difference: Float = 0, magnitude: Float = 1
        for index in e.indices {
            difference = max(difference, abs(a[index] - e[index]))
            magnitude = max(magnitude, abs(e[index]))
        }
        XCTAssertLessThanOrEqual(difference / magnitude, tolerance,
                                 "\(what): largest difference \(difference) against values up to \(magnitude)",
                                 file: file, line: line)
    }
}

/// A small seeded generator so failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func nextFloat(in range: ClosedRange<Float>) -> Float { Float.random(in: range, using: &self) }
}
