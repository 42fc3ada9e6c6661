import CohortKernels
import CohortTensor
import XCTest

final class BatchNormTests: OneDNNComparisonTestCase {
    /// NHWC shapes: ResNet-like channel counts, an odd one, and a tiny batch.
    let shapes: [Shape] = [[2, 8, 8, 64], [3, 5, 7, 13], [4, 4, 4, 512], [2, 1, 3, 3]]

    /// 1e-5: statistics are sums of at most 4096 values per channel (the
    /// reference sums in Double, oneDNN in float across vector lanes), which
    /// moves results by a few float ulps of the largest value.
    let tolerance: Float = 1e-5

    struct Parameters {
        var scale, shift, runningMean, runningVar: Tensor
    }

    func parameters(channels: Int) -> Parameters {
        Parameters(scale: randomTensor([channels], in: 0.5...1.5), shift: randomTensor([channels], in: -0.5...0.5),
                   runningMean: randomTensor([channels], in: -0.2...0.2), runningVar: randomTensor([channels], in: 0.5...2))
    }

    func testForwardTrainingAndRunningStatistics() {
        for shape in shapes {
            for fuseReLU in [false, true] {
                let channels = shape[3]
                // An offset and spread per call so the statistics are not trivially 0 and 1.
                let input = randomTensor(shape, in: -2...3)
                let p = parameters(channels: channels)
                var outputs: [Tensor] = [], statistics: [[Tensor]] = []
                for backend in [reference, onednn] as [Backend] {
                    let output = Tensor.zeros(shape), mean = Tensor.zeros([channels]), invStd = Tensor.zeros([channels])
                    let runningMean = clone(p.runningMean), runningVar = clone(p.runningVar)
                    backend.batchNormForwardTraining(output: output, input: input, scale: p.scale, shift: p.shift,
                                                     runningMean: runningMean, runningVar: runningVar,
                                                     savedMean: mean, savedInvStd: invStd,
                                                     momentum: 0.1, epsilon: 1e-5, fuseReLU: fuseReLU)
                    backend.synchronize()
                    outputs.append(output)
                    statistics.append([mean, invStd, runningMean, runningVar])
                }
                let what = "\(shape) fuseReLU \(fuseReLU)"
                assertClose(outputs[1], outputs[0], tolerance: tolerance, "output \(what)")
                for (index, name) in ["saved mean", "saved inverse std", "running mean", "running var"].enumerated() {
                    assertClose(statistics[1][index], statistics[0][index], tolerance: tolerance, "\(name) \(what)")
                }
            }
        }
    }

    func testForwardInference() {
        for shape in shapes {
            for fuseReLU in [false, true] {
                let input = randomTensor(shape, in: -2...2), p = parameters(channels: shape[3])
                let expected = Tensor.zeros(shape), actual = Tensor.zeros(shape)
                reference.batchNormForwardInference(output: expected, input: input, scale: p.scale, shift: p.shift,
                                                    runningMean: p.runningMean, runningVar: p.runningVar,
                                                    epsilon: 1e-5, fuseReLU: fuseReLU)
                onednn.batchNormForwardInference(output: actual, input: input, scale: p.scale, shift: p.shift,
                                                 runningMean: p.runningMean, runningVar: p.runningVar,
                                                 epsilon: 1e-5, fuseReLU: fuseReLU)
                onednn.synchronize()
                assertClose(actual, expected, tolerance: tolerance, "\(shape) fuseReLU \(fuseReLU)")
            }
        }
    }

    /// The backward runs on the reference's saved statistics and output, so
    /// only the backward itself is compared. 1e-4: dInput subtracts two
    /// batch sums from dOutput, so the float sums' rounding (a few ulps of
    /// sums over up to 4096 terms) shows up amplified by scale * invStd.
    func testBackward() {
        for shape in shapes {
            for fuseReLU in [false, true] {
                let channels = shape[3]
                let input = randomTensor(shape, in: -2...3), dOutput = randomTensor(shape)
                let p = parameters(channels: channels)
                let output = Tensor.zeros(shape), mean = Tensor.zeros([channels]), invStd = Tensor.zeros([channels])
                reference.batchNormForwardTraining(output: output, input: input, scale: p.scale, shift: p.shift,
                                                   runningMean: p.runningMean, runningVar: p.runningVar,
                                                   savedMean: mean, savedInvStd: invStd,
                                                   momentum: 0.1, epsilon: 1e-5, fuseReLU: fuseReLU)
                var gradients: [[Tensor]] = []
                for backend in [reference, onednn] as [Backend] {
                    let dInput = Tensor.zeros(shape), dScale = Tensor.zeros([channels]), dShift = Tensor.zeros([channels])
                    backend.batchNormBackward(dInput: dInput, dScale: dScale, dShift: dShift, dOutput: dOutput,
                                              input: input, output: output, scale: p.scale,
                                              savedMean: mean, savedInvStd: invStd, fuseReLU: fuseReLU)
                    backend.synchronize()
                    gradients.append([dInput, dScale, dShift])
                }
                for (index, name) in ["dInput", "dScale", "dShift"].enumerated() {
                    assertClose(gradients[1][index], gradients[0][index], tolerance: 1e-4, "\(name) \(shape) fuseReLU \(fuseReLU)")
                }
            }
        }
    }
}
