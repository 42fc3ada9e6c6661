import CohortKernels
import CohortTensor
import XCTest

/// SGD and LARS steps against values worked out by hand in the comments
/// (`torch.optim.SGD` semantics; LARS as in the `Backend.optimizerStep` contract).
final class OptimizerTests: XCTestCase {
    let backend = ReferenceBackend()

    /// Runs `steps` steps with a constant gradient and returns the weights after each.
    func run(weights: [Float], gradients: [Float], steps: Int, segments: [ParameterSegment]? = nil,
             _ configuration: OptimizerStepConfiguration) -> [[Float]] {
        let parameters = Tensor(weights, shape: [weights.count])
        let gradient = Tensor(gradients, shape: [gradients.count])
        let momentum = Tensor(Array(repeating: 7, count: weights.count), shape: [weights.count])  // garbage: the first step must overwrite it
        var configuration = configuration
        return (0..<steps).map { step in
            configuration.isFirstStep = step == 0
            backend.optimizerStep(parameters: parameters, gradients: gradient, momentumBuffer: momentum,
                                  segments: segments ?? [ParameterSegment(offset: 0, count: weights.count)],
                                  configuration: configuration)
            return parameters.toArray()
        }
    }

    /// Tolerance 1e-6 relative (and absolute): each value is a few float32 operations from the inputs.
    func assertSteps(_ actual: [[Float]], _ expected: [[Float]], _ message: String, line: UInt = #line) {
        for (step, (actualStep, expectedStep)) in zip(actual, expected).enumerated() {
            assertClose(actualStep, expectedStep, absolute: 1e-6, relative: 1e-6, "\(message), step \(step + 1)", line: line)
        }
    }

    func testPlainSGD() {
        // w -= 0.1 * g with g = (0.5, 1): (1, -2) -> (0.95, -2.1) -> (0.9, -2.2).
        assertSteps(run(weights: [1, -2], gradients: [0.5, 1], steps: 2, .init(learningRate: 0.1)),
                    [[0.95, -2.1], [0.9, -2.2]], "plain SGD")
    }

    func testMomentum() {
        // g = 1, lr 0.1, momentum 0.9: buf 1, 1.9, 2.71; w -0.1, -0.29, -0.561.
        assertSteps(run(weights: [0], gradients: [1], steps: 3, .init(learningRate: 0.1, momentum: 0.9)),
                    [[-0.1], [-0.29], [-0.561]], "momentum")
    }

    func testDampeningSkipsTheFirstStep() {
        // dampening 0.5: buf = g on the first step (1), then 0.9 * 1 + 0.5 = 1.4, 0.9 * 1.4 + 0.5 = 1.76;
        // w -0.1, -0.24, -0.416.
        assertSteps(run(weights: [0], gradients: [1], steps: 3, .init(learningRate: 0.1, momentum: 0.9, dampening: 0.5)),
                    [[-0.1], [-0.24], [-0.416]], "dampening")
    }

    func testNesterov() {
        // buf 1, 1.9, 2.71 as with momentum; the step is g + 0.9 * buf = 1.9, 2.71, 3.439;
        // w -0.19, -0.461, -0.8049.
        assertSteps(run(weights: [0], gradients: [1], steps: 3, .init(learningRate: 0.1, momentum: 0.9, nesterov: true)),
                    [[-0.19], [-0.461], [-0.8049]], "nesterov")
    }

    func testWeightDecayAndExemptSegments() {
        // g = 0, weight decay 0.1, lr 0.5, momentum 0.9 on w = 1: d = 0.1 * w.
        //   step 1: d 0.1,     buf 0.1,     w 0.95
        //   step 2: d 0.095,   buf 0.185,   w 0.8575
        //   step 3: d 0.08575, buf 0.25225, w 0.731375
        // The second element's segment is exempt from decay, so it keeps its value;
        // the third is in no segment and is never touched.
        let segments = [ParameterSegment(offset: 0, count: 1),
                        ParameterSegment(offset: 1, count: 1, weightDecay: false)]
        let steps = run(weights: [1, 1, 1], gradients: [0, 0, 5], steps: 3, segments: segments,
                        .init(learningRate: 0.5, momentum: 0.9, weightDecay: 0.1))
        assertSteps(steps, [[0.95, 1, 1], [0.8575, 1, 1], [0.731375, 1, 1]], "weight decay")
    }

    func testLARSTrustRatio() {
        // eta 0.5, weight decay 0.1, lr 0.1, no momentum, w = (3, 4) (|w| 5), g = (0.6, 0.8) (|g| 1).
        //   step 1: trust = 0.5 * 5 / (1 + 0.1 * 5) = 5/3; d = (g + 0.1 w) * 5/3 = (1.5, 2); w = (2.85, 3.8)
        //   step 2: |w| = 4.75; trust = 2.375 / 1.475; d = (0.885, 1.18) * trust = (1.425, 1.9); w = (2.7075, 3.61)
        let lars = OptimizerStepConfiguration(learningRate: 0.1, weightDecay: 0.1, larsTrustCoefficient: 0.5, larsEpsilon: 0)
        assertSteps(run(weights: [3, 4], gradients: [0.6, 0.8], steps: 2, lars),
                    [[2.85, 3.8], [2.7075, 3.61]], "LARS")
    }

    func testLARSSegmentFlagsAndZeroNorms() {
        let lars = OptimizerStepConfiguration(learningRate: 0.1, weightDecay: 0.1, larsTrustCoefficient: 0.5)
        let segments = [
            // Zero weights: trust 1, d = g + 0.1 * 0 = (1, 2), w = (-0.1, -0.2).
            ParameterSegment(offset: 0, count: 2),
            // Zero gradient: trust 1, d = 0.1 * w = (0.3, 0.4), w = (2.97, 3.96).
            ParameterSegment(offset: 2, count: 2),
            // No adaptation, no decay (a batch-norm scale): d = g, w = (2.94, 3.92).
            ParameterSegment(offset: 4, count: 2, weightDecay: false, layerAdaptation: false),
            // Adaptation without decay: the denominator loses its decay term too,
            // trust = 0.5 * 5 / 1 = 2.5, d = 2.5 g = (1.5, 2), w = (2.85, 3.8).
            ParameterSegment(offset: 6, count: 2, weightDecay: false),
        ]
        let steps = run(weights: [0, 0, 3, 4, 3, 4, 3, 4], gradients: [1, 2, 0, 0, 0.6, 0.8, 0.6, 0.8],
                        steps: 1, segments: segments, lars)
        assertSteps(steps, [[-0.1, -0.2, 2.97, 3.96, 2.94, 3.92, 2.85, 3.8]], "LARS segments")
    }
}
