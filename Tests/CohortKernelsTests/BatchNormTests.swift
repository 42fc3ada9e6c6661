import CohortKernels
import CohortTensor
import XCTest

final class BatchNormTests: XCTestCase {
    let backend = ReferenceBackend()

    /// The training-mode tensors of one batch-norm call on an NHWC shape.
    struct Layer {
        let input: Tensor, output: Tensor, scale: Tensor, shift: Tensor
        let runningMean: Tensor, runningVar: Tensor, savedMean: Tensor, savedInvStd: Tensor

        init(input: Tensor, scale: Tensor, shift: Tensor) {
            let channels = input.shape[3]
            self.input = input
            self.scale = scale
            self.shift = shift
            output = Tensor.zeros(input.shape)
            runningMean = Tensor.zeros([channels])
            runningVar = Tensor(Array(repeating: 1, count: channels), shape: [channels])
            savedMean = Tensor.zeros([channels])
            savedInvStd = Tensor.zeros([channels])
        }

        func forward(_ backend: Backend, fuseReLU: Bool, momentum: Float = 0.1) {
            backend.batchNormForwardTraining(output: output, input: input, scale: scale, shift: shift,
                                             runningMean: runningMean, runningVar: runningVar,
                                             savedMean: savedMean, savedInvStd: savedInvStd,
                                             momentum: momentum, epsilon: 1e-5, fuseReLU: fuseReLU)
        }
    }

    func testTrainingForwardAndRunningStatisticsByHand() {
        // Two channels over N*H*W = 4 rows: channel 0 holds 1, 2, 3, 6 and channel 1 holds 0, 0, 4, 4.
        //   channel 0: mean 3, biased var (4 + 1 + 0 + 9) / 4 = 3.5, unbiased 14 / 3
        //   channel 1: mean 2, biased var 4, unbiased 16 / 3
        // Running statistics start at mean (0.5, 0) and var (2, 1); with momentum 0.1:
        //   runningMean = 0.9 * (0.5, 0) + 0.1 * (3, 2)        = (0.75, 0.2)
        //   runningVar  = 0.9 * (2, 1) + 0.1 * (14/3, 16/3)    = (2.26667, 1.43333)
        let layer = Layer(input: Tensor([1, 0, 2, 0, 3, 4, 6, 4], shape: [1, 2, 2, 2]),
                          scale: Tensor([2, 0.5], shape: [2]), shift: Tensor([1, -1], shape: [2]))
        layer.runningMean.copy(from: [0.5, 0])
        layer.runningVar.copy(from: [2, 1])
        layer.forward(backend, fuseReLU: false)
        // Tolerance 1e-5 relative: float32 rounding of a handful of operations.
        assertClose(layer.savedMean.toArray(), [3, 2], absolute: 0, relative: 1e-6, "savedMean")
        assertClose(layer.savedInvStd.toArray(), [Float(1 / (3.5 + 1e-5).squareRoot()), Float(1 / (4 + 1e-5).squareRoot())],
                    absolute: 0, relative: 1e-6, "savedInvStd")
        assertClose(layer.runningMean.toArray(), [0.75, 0.2], absolute: 0, relative: 1e-6, "runningMean")
        assertClose(layer.runningVar.toArray(), [Float(1.8 + 1.4 / 3), Float(0.9 + 1.6 / 3)],
                    absolute: 0, relative: 1e-6, "runningVar")
        // y = scale * (x - mean) / sqrt(var + eps) + shift, row by row.
        let std0: Double = (3.5 + 1e-5).squareRoot(), std1: Double = (4 + 1e-5).squareRoot()
        var expected: [Float] = []
        for (x0, x1): (Double, Double) in [(1, 0), (2, 0), (3, 4), (6, 4)] {
            expected.append(Float(2 * (x0 - 3) / std0 + 1))
            expected.append(Float(0.5 * (x1 - 2) / std1 - 1))
        }
        assertClose(layer.output.toArray(), expected, absolute: 1e-6, relative: 1e-5, "output")

        layer.forward(backend, fuseReLU: true)
        assertClose(layer.output.toArray(), expected.map { max(0, $0) }, absolute: 1e-6, relative: 1e-5, "output with ReLU")
    }

    func testInferenceForward() {
        var generator = SplitMix64(seed: 10)
        let input = randomTensor([2, 2, 3, 4], using: &generator)
        let scale = randomTensor([4], using: &generator), shift = randomTensor([4], using: &generator)
        let mean = randomTensor([4], using: &generator), variance = randomTensor([4], in: 0.5...2, using: &generator)
        let output = Tensor.zeros(input.shape)
        let (x, s, b, m, v) = (input.toArray(), scale.toArray(), shift.toArray(), mean.toArray(), variance.toArray())
        let expected = x.indices.map { index -> Float in
            let c = index % 4
            return Float(Double(s[c]) * Double(x[index] - m[c]) / (Double(v[c]) + 1e-5).squareRoot() + Double(b[c]))
        }
        for fuseReLU in [false, true] {
            backend.batchNormForwardInference(output: output, input: input, scale: scale, shift: shift,
                                              runningMean: mean, runningVar: variance, epsilon: 1e-5, fuseReLU: fuseReLU)
            // Tolerance 1e-5: a few float32 operations on values of order 1.
            assertClose(output.toArray(), fuseReLU ? expected.map { max(0, $0) } : expected,
                        absolute: 1e-5, "fuseReLU \(fuseReLU)")
        }
    }

    /// f = sum(bn(x) * r); checks dInput, dScale and dShift against central differences.
    func testBackwardMatchesFiniteDifferences() {
        var generator = SplitMix64(seed: 11)
        for fuseReLU in [false, true] {
            let layer = reluSafeLayer(shape: [2, 2, 2, 3], using: &generator)
            let projection = randomTensor(layer.input.shape, using: &generator)
            func f() -> Double {
                layer.forward(backend, fuseReLU: fuseReLU)
                return weightedSum(layer.output, projection)
            }
            _ = f()
            let dInput = Tensor.zeros(layer.input.shape), dScale = Tensor.zeros([3]), dShift = Tensor.zeros([3])
            backend.batchNormBackward(dInput: dInput, dScale: dScale, dShift: dShift, dOutput: projection,
                                      input: layer.input, output: layer.output, scale: layer.scale,
                                      savedMean: layer.savedMean, savedInvStd: layer.savedInvStd, fuseReLU: fuseReLU)
            // Tolerance 2e-3 with eps 1e-2: bn is smooth away from the ReLU's kink (the
            // inputs keep every pre-activation 0.15 from it), so the central difference's
            // truncation error is O(eps^2) ~ 1e-4 times the third derivative, plus float32
            // rounding of f (~1e-6) over 2 eps, ~1e-4.
            let label = "fuseReLU \(fuseReLU)"
            assertClose(dInput.toArray(), finiteDifferenceGradient(of: f, withRespectTo: layer.input, epsilon: 1e-2),
                        absolute: 2e-3, relative: 1e-3, "dInput, \(label)")
            assertClose(dScale.toArray(), finiteDifferenceGradient(of: f, withRespectTo: layer.scale, epsilon: 1e-2),
                        absolute: 2e-3, relative: 1e-3, "dScale, \(label)")
            assertClose(dShift.toArray(), finiteDifferenceGradient(of: f, withRespectTo: layer.shift, epsilon: 1e-2),
                        absolute: 2e-3, relative: 1e-3, "dShift, \(label)")
        }
    }

    /// A random layer whose pre-ReLU outputs are all at least 0.15 from zero,
    /// so steps of 1e-2 in any input, scale or shift never cross the ReLU's kink.
    func reluSafeLayer(shape: Shape, using generator: inout SplitMix64) -> Layer {
        let channels = shape[3]
        for _ in 0..<1000 {
            let layer = Layer(input: randomTensor(shape, in: -2...2, using: &generator),
                              scale: randomTensor([channels], in: 0.5...1.5, using: &generator),
                              shift: randomTensor([channels], in: -0.5...0.5, using: &generator))
            layer.forward(backend, fuseReLU: false)
            if layer.output.toArray().allSatisfy({ abs($0) > 0.15 }) { return layer }
        }
        preconditionFailure("no ReLU-safe batch-norm input in 1000 draws")
    }
}
