import CohortKernels
import CohortTensor
import XCTest

final class ConvolutionTests: XCTestCase {
    let backend = ReferenceBackend()

    /// The geometries ResNet-18 uses (3x3 same, 3x3 downsampling, 1x1
    /// downsampling shortcut) on small, non-square inputs with 1 to 5 channels.
    let geometries = [
        Conv2dGeometry(batch: 2, inputChannels: 3, outputChannels: 4, inputHeight: 5, inputWidth: 4, kernelSize: 3, stride: 1, padding: 1),
        Conv2dGeometry(batch: 2, inputChannels: 2, outputChannels: 5, inputHeight: 6, inputWidth: 5, kernelSize: 3, stride: 2, padding: 1),
        Conv2dGeometry(batch: 1, inputChannels: 5, outputChannels: 3, inputHeight: 5, inputWidth: 6, kernelSize: 1, stride: 2, padding: 0),
        Conv2dGeometry(batch: 1, inputChannels: 1, outputChannels: 2, inputHeight: 4, inputWidth: 3, kernelSize: 3, stride: 1, padding: 0),
        Conv2dGeometry(batch: 3, inputChannels: 4, outputChannels: 1, inputHeight: 3, inputWidth: 3, kernelSize: 3, stride: 1, padding: 1),
    ]

    /// The convolution written from its definition, in Double, indexing NHWC and OIHW directly.
    func naiveConvolution(_ x: [Float], _ w: [Float], _ g: Conv2dGeometry) -> [Float] {
        var y = [Float]()
        for n in 0..<g.batch {
            for oh in 0..<g.outputHeight {
                for ow in 0..<g.outputWidth {
                    for co in 0..<g.outputChannels {
                        var sum = 0.0
                        for ci in 0..<g.inputChannels {
                            for kh in 0..<g.kernelSize {
                                for kw in 0..<g.kernelSize {
                                    let ih = oh * g.stride - g.padding + kh, iw = ow * g.stride - g.padding + kw
                                    if ih < 0 || ih >= g.inputHeight || iw < 0 || iw >= g.inputWidth { continue }
                                    let input = x[((n * g.inputHeight + ih) * g.inputWidth + iw) * g.inputChannels + ci]
                                    let weight = w[((co * g.inputChannels + ci) * g.kernelSize + kh) * g.kernelSize + kw]
                                    sum += Double(input) * Double(weight)
                                }
                            }
                        }
                        y.append(Float(sum))
                    }
                }
            }
        }
        return y
    }

    func testForwardMatchesDefinition() {
        var generator = SplitMix64(seed: 1)
        for g in geometries {
            let input = randomTensor(g.inputShape, using: &generator)
            let weight = randomTensor(g.weightShape, using: &generator)
            let output = Tensor.zeros(g.outputShape)
            backend.conv2dForward(output: output, input: input, weight: weight, geometry: g)
            // Tolerance 1e-5: at most 45 products of values in [-1, 1] summed in
            // float32 against the same sum in Double; rounding stays near 1e-6.
            assertClose(output.toArray(), naiveConvolution(input.toArray(), weight.toArray(), g),
                        absolute: 1e-5, "\(g)")
        }
    }

    func testForwardByHand() {
        // One 3x3 image of 1..9, one 3x3 kernel of ones with a 1 in the middle
        // doubled, stride 1, padding 1: the centre output is 45 + 5 = 50, the
        // top-left corner sums the 2x2 block 1, 2, 4, 5 plus its centre 1 again: 13.
        let g = Conv2dGeometry(batch: 1, inputChannels: 1, outputChannels: 1, inputHeight: 3, inputWidth: 3,
                               kernelSize: 3, stride: 1, padding: 1)
        let input = Tensor((1...9).map(Float.init), shape: g.inputShape)
        let weight = Tensor([1, 1, 1, 1, 2, 1, 1, 1, 1], shape: g.weightShape)
        let output = Tensor.zeros(g.outputShape)
        backend.conv2dForward(output: output, input: input, weight: weight, geometry: g)
        XCTAssertEqual(output.toArray()[0], 13)
        XCTAssertEqual(output.toArray()[4], 50)
    }

    /// f = sum(conv(x, w) * r) for fixed random r; its gradients are the backward's outputs with dOutput = r.
    func testBackwardMatchesFiniteDifferences() {
        var generator = SplitMix64(seed: 2)
        for g in geometries {
            let input = randomTensor(g.inputShape, using: &generator)
            let weight = randomTensor(g.weightShape, using: &generator)
            let projection = randomTensor(g.outputShape, using: &generator)
            let output = Tensor.zeros(g.outputShape)
            func f() -> Double {
                backend.conv2dForward(output: output, input: input, weight: weight, geometry: g)
                return weightedSum(output, projection)
            }
            let dInput = Tensor.zeros(g.inputShape), dWeight = Tensor.zeros(g.weightShape)
            backend.conv2dBackwardData(dInput: dInput, dOutput: projection, weight: weight, geometry: g)
            backend.conv2dBackwardWeight(dWeight: dWeight, input: input, dOutput: projection, geometry: g)
            // Tolerance 1e-3 with eps 1e-2: f is linear in x and in w, so the central
            // difference has no truncation error; what is left is float32 rounding of
            // the outputs (~1e-6 in f) divided by 2 eps, about 1e-4.
            assertClose(dInput.toArray(), finiteDifferenceGradient(of: f, withRespectTo: input, epsilon: 1e-2),
                        absolute: 1e-3, "dInput \(g)")
            assertClose(dWeight.toArray(), finiteDifferenceGradient(of: f, withRespectTo: weight, epsilon: 1e-2),
                        absolute: 1e-3, "dWeight \(g)")
        }
    }
}
