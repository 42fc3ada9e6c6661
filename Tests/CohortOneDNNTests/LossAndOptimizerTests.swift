import CohortKernels
import CohortTensor
import XCTest

final class LossAndOptimizerTests: OneDNNComparisonTestCase {
    /// 1e-6: per row a sum of K <= 100 exponentials in float on both sides
    /// (the reference's mean over rows is in Double, ours too).
    func testSoftmaxCrossEntropy() {
        for (rows, classes) in [(32, 10), (5, 3), (1, 100)] {
            for smoothing: Float in [0, 0.1] {
                let logits = randomTensor([rows, classes], in: -5...5)
                let labels = Tensor.int32((0..<rows).map { _ in Int32(random.next() % UInt64(classes)) })
                var results: [[Tensor]] = []
                for backend in [reference, onednn] as [Backend] {
                    let loss = Tensor.zeros([1]), probabilities = Tensor.zeros([rows, classes]), correct = Tensor.zeros([1])
                    let dLogits = Tensor.zeros([rows, classes])
                    backend.softmaxCrossEntropyForward(loss: loss, probabilities: probabilities, correct: correct,
                                                       logits: logits, labels: labels, labelSmoothing: smoothing)
                    backend.softmaxCrossEntropyBackward(dLogits: dLogits, probabilities: probabilities,
                                                        labels: labels, labelSmoothing: smoothing)
                    backend.synchronize()
                    results.append([loss, probabilities, correct, dLogits])
                }
                for (index, name) in ["loss", "probabilities", "correct", "dLogits"].enumerated() {
                    assertClose(results[1][index], results[0][index], tolerance: 1e-6,
                                "\(name) \(rows)x\(classes) smoothing \(smoothing)")
                }
            }
        }
    }

    /// Ties in the arg-max count the lowest index, as the protocol says.
    func testCorrectCountBreaksTiesTowardsTheLowestIndex() {
        let logits = Tensor([1, 3, 3, 0, 2, 2], shape: [2, 3])
        let labels = Tensor.int32([1, 2])
        let loss = Tensor.zeros([1]), probabilities = Tensor.zeros([2, 3]), correct = Tensor.zeros([1])
        onednn.softmaxCrossEntropyForward(loss: loss, probabilities: probabilities, correct: correct,
                                          logits: logits, labels: labels, labelSmoothing: 0)
        XCTAssertEqual(correct.floats[0], 1)
    }

    /// 1e-6 of the largest weight: a few float operations per element, the
    /// same on both sides except LARS's trust ratio (Double there, float here).
    func testOptimizerStep() {
        let count = 1000
        let segments = [
            ParameterSegment(offset: 0, count: 600),
            ParameterSegment(offset: 600, count: 300, weightDecay: false, layerAdaptation: false),
            ParameterSegment(offset: 900, count: 100, weightDecay: true, layerAdaptation: false),
        ]
        let configurations = [
            OptimizerStepConfiguration(learningRate: 0.1),
            OptimizerStepConfiguration(learningRate: 0.1, momentum: 0.9, weightDecay: 5e-4, isFirstStep: true),
            OptimizerStepConfiguration(learningRate: 0.1, momentum: 0.9, dampening: 0.1, weightDecay: 5e-4),
            OptimizerStepConfiguration(learningRate: 0.05, momentum: 0.9, weightDecay: 5e-4, nesterov: true),
            OptimizerStepConfiguration(learningRate: 2, momentum: 0.9, weightDecay: 5e-5, larsTrustCoefficient: 0.001),
            OptimizerStepConfiguration(learningRate: 2, momentum: 0.9, weightDecay: 5e-5, nesterov: true,
                                       larsTrustCoefficient: 0.02, isFirstStep: true),
        ]
        for configuration in configurations {
            let parameters = randomTensor([count]), gradients = randomTensor([count], in: -0.01...0.01)
            let buffer = randomTensor([count], in: -0.01...0.01)
            var results: [[Tensor]] = []
            for backend in [reference, onednn] as [Backend] {
                let w = clone(parameters), b = clone(buffer)
                backend.optimizerStep(parameters: w, gradients: gradients, momentumBuffer: b,
                                      segments: segments, configuration: configuration)
                backend.synchronize()
                results.append([w, b])
            }
            assertClose(results[1][0], results[0][0], tolerance: 1e-6, "weights \(configuration)")
            assertClose(results[1][1], results[0][1], tolerance: 1e-6, "momentum buffer \(configuration)")
        }
    }
}
