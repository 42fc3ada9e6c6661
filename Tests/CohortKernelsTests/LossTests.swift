import CohortKernels
import CohortTensor
import Foundation
import XCTest

final class LossTests: XCTestCase {
    let backend = ReferenceBackend()

    func forward(logits: Tensor, labels: Tensor, labelSmoothing: Float) -> (loss: Float, correct: Float, probabilities: Tensor) {
        let loss = Tensor.zeros([1]), correct = Tensor.zeros([1]), probabilities = Tensor.zeros(logits.shape)
        backend.softmaxCrossEntropyForward(loss: loss, probabilities: probabilities, correct: correct,
                                           logits: logits, labels: labels, labelSmoothing: labelSmoothing)
        return (loss.toArray()[0], correct.toArray()[0], probabilities)
    }

    func testLossByHand() {
        // Row 0: logits (1, 2, 3), label 2, arg-max 2: correct.
        // Row 1: logits (0, 0, 0), label 1, arg-max 0 (ties pick the lowest index): wrong.
        // Row 2: logits (5, 5, 1), label 0, arg-max 0 by the same tie rule: correct.
        let logits = Tensor([1, 2, 3, 0, 0, 0, 5, 5, 1], shape: [3, 3])
        let labels = Tensor.int32([2, 1, 0])
        let lse0 = log(exp(1.0) + exp(2.0) + exp(3.0)), lse1 = log(3.0), lse2 = log(2 * exp(5.0) + exp(1.0))
        // Smoothing s over K = 3: row loss = lse - (1 - s) * z[label] - (s / 3) * sum(z).
        for (smoothing, expected) in [
            (0.0, (lse0 - 3 + lse1 + lse2 - 5) / 3),
            (0.1, (lse0 - (0.9 * 3 + 0.1 / 3 * 6) + lse1 + lse2 - (0.9 * 5 + 0.1 / 3 * 11)) / 3),
        ] {
            let result = forward(logits: logits, labels: labels, labelSmoothing: Float(smoothing))
            // Tolerance 1e-6 relative: the loss is computed in Double and rounded to float32 once.
            XCTAssertEqual(result.loss, Float(expected), accuracy: 1e-6 * Float(expected), "smoothing \(smoothing)")
            XCTAssertEqual(result.correct, 2)
            let p = result.probabilities.toArray()
            assertClose(Array(p[0..<3]), [1, 2, 3].map { Float(exp($0 - lse0)) }, absolute: 1e-7, "probabilities")
            assertClose(Array(p[3..<6]), Array(repeating: 1.0 / 3, count: 3), absolute: 1e-7, "probabilities")
        }
    }

    func testGradientMatchesFiniteDifferences() {
        var generator = SplitMix64(seed: 30)
        let logits = randomTensor([4, 5], in: -2...2, using: &generator)
        let labels = Tensor.int32([0, 3, 4, 3])
        for smoothing: Float in [0, 0.1] {
            func f() -> Double { Double(forward(logits: logits, labels: labels, labelSmoothing: smoothing).loss) }
            let probabilities = forward(logits: logits, labels: labels, labelSmoothing: smoothing).probabilities
            let dLogits = Tensor.zeros(logits.shape)
            backend.softmaxCrossEntropyBackward(dLogits: dLogits, probabilities: probabilities, labels: labels,
                                                labelSmoothing: smoothing)
            // Tolerance 2e-4 with eps 1e-2: the mean loss is smooth with third derivatives
            // below 1/N, so truncation is ~1e-5; the loss is float32 (~1e-7 of ~2) and
            // divided by 2 eps adds ~1e-5.
            assertClose(dLogits.toArray(), finiteDifferenceGradient(of: f, withRespectTo: logits, epsilon: 1e-2),
                        absolute: 2e-4, "smoothing \(smoothing)")
        }
    }
}
