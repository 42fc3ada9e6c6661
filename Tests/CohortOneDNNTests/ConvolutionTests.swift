import CohortKernels
import CohortOneDNN
import CohortTensor
import XCTest

final class ConvolutionTests: OneDNNComparisonTestCase {
    /// ResNet-18 (CIFAR) geometries at batch 2, plus odd channel counts,
    /// non-square inputs, stride 2 with an odd size, a 1x1 stride-2 shortcut
    /// and unpadded 3x3s: shapes that fall outside oneDNN's fast paths.
    let geometries = [
        Conv2dGeometry(batch: 2, inputChannels: 3, outputChannels: 64, inputHeight: 32, inputWidth: 32, kernelSize: 3, stride: 1, padding: 1),
        Conv2dGeometry(batch: 2, inputChannels: 64, outputChannels: 64, inputHeight: 32, inputWidth: 32, kernelSize: 3, stride: 1, padding: 1),
        Conv2dGeometry(batch: 2, inputChannels: 64, outputChannels: 128, inputHeight: 32, inputWidth: 32, kernelSize: 3, stride: 2, padding: 1),
        Conv2dGeometry(batch: 2, inputChannels: 64, outputChannels: 128, inputHeight: 32, inputWidth: 32, kernelSize: 1, stride: 2, padding: 0),
        Conv2dGeometry(batch: 2, inputChannels: 256, outputChannels: 512, inputHeight: 8, inputWidth: 8, kernelSize: 3, stride: 2, padding: 1),
        Conv2dGeometry(batch: 2, inputChannels: 512, outputChannels: 512, inputHeight: 4, inputWidth: 4, kernelSize: 3, stride: 1, padding: 1),
        Conv2dGeometry(batch: 3, inputChannels: 5, outputChannels: 7, inputHeight: 9, inputWidth: 6, kernelSize: 3, stride: 2, padding: 1),
        Conv2dGeometry(batch: 1, inputChannels: 13, outputChannels: 3, inputHeight: 7, inputWidth: 7, kernelSize: 1, stride: 2, padding: 0),
        Conv2dGeometry(batch: 2, inputChannels: 6, outputChannels: 10, inputHeight: 5, inputWidth: 8, kernelSize: 3, stride: 1, padding: 0),
        // Winograd-shaped (3x3, stride 1, 64+ channels) but off its usual
        // sizes: channels not a multiple of 16, no padding, a 1-wide image.
        Conv2dGeometry(batch: 2, inputChannels: 72, outputChannels: 80, inputHeight: 6, inputWidth: 5, kernelSize: 3, stride: 1, padding: 1),
        Conv2dGeometry(batch: 1, inputChannels: 64, outputChannels: 64, inputHeight: 7, inputWidth: 7, kernelSize: 3, stride: 1, padding: 0),
        Conv2dGeometry(batch: 3, inputChannels: 64, outputChannels: 96, inputHeight: 1, inputWidth: 1, kernelSize: 3, stride: 1, padding: 1),
    ]

    /// 1e-4: each output sums up to 512*9 = 4608 float products; oneDNN's
    /// blocked order differs from the reference's, which bounds the error
    /// near 4608 * 2^-24 * max|term|, about 1e-4 of the largest output.
    /// Measured: direct kernels up to 1.6e-6, Winograd (the 3x3 stride-1
    /// convs with 64+ channels, see Note [oneDNN convolution layouts]) up to 3e-6.
    let tolerance: Float = 1e-4

    /// Both activation layouts of direct convolutions, whichever this CPU's
    /// default is (Note [oneDNN convolution layouts]).
    func layouts() throws -> [OneDNNBackend] {
        try [DirectConvolutionLayout.nhwc, .blocked].map { try OneDNNBackend(directConvolutionLayout: $0) }
    }

    func testForward() throws {
        for onednn in try layouts() { for g in geometries {
            let input = randomTensor(g.inputShape), weight = randomTensor(g.weightShape, in: -0.1...0.1)
            let expected = Tensor.zeros(g.outputShape), actual = Tensor.zeros(g.outputShape)
            reference.conv2dForward(output: expected, input: input, weight: weight, geometry: g)
            onednn.conv2dForward(output: actual, input: input, weight: weight, geometry: g)
            onednn.synchronize()
            assertClose(actual, expected, tolerance: tolerance, "forward \(g), \(onednn.directConvolutionLayout)")
        } }
    }

    func testBackwardData() throws {
        for onednn in try layouts() { for g in geometries {
            let dOutput = randomTensor(g.outputShape), weight = randomTensor(g.weightShape, in: -0.1...0.1)
            let expected = Tensor.zeros(g.inputShape), actual = Tensor.zeros(g.inputShape)
            reference.conv2dBackwardData(dInput: expected, dOutput: dOutput, weight: weight, geometry: g)
            onednn.conv2dBackwardData(dInput: actual, dOutput: dOutput, weight: weight, geometry: g)
            onednn.synchronize()
            assertClose(actual, expected, tolerance: tolerance, "backward data \(g), \(onednn.directConvolutionLayout)")
        } }
    }

    /// Backward weights sums over batch and pixels (up to 2*32*32 = 2048
    /// terms per weight), fewer than the forward's 4608: the same 1e-4 holds.
    func testBackwardWeight() throws {
        for onednn in try layouts() { for g in geometries {
            let input = randomTensor(g.inputShape), dOutput = randomTensor(g.outputShape)
            let expected = Tensor.zeros(g.weightShape), actual = Tensor.zeros(g.weightShape)
            reference.conv2dBackwardWeight(dWeight: expected, input: input, dOutput: dOutput, geometry: g)
            onednn.conv2dBackwardWeight(dWeight: actual, input: input, dOutput: dOutput, geometry: g)
            onednn.synchronize()
            assertClose(actual, expected, tolerance: tolerance, "backward weight \(g), \(onednn.directConvolutionLayout)")
        } }
    }

    /// A cached plan must give the same results on new data (the data
    /// handles are swapped in per call, the weight reorder rerun).
    func testRepeatedCallsReuseThePlan() {
        let g = geometries[2]
        for _ in 0..<3 {
            let input = randomTensor(g.inputShape), weight = randomTensor(g.weightShape, in: -0.1...0.1)
            let expected = Tensor.zeros(g.outputShape), actual = Tensor.zeros(g.outputShape)
            reference.conv2dForward(output: expected, input: input, weight: weight, geometry: g)
            onednn.conv2dForward(output: actual, input: input, weight: weight, geometry: g)
            onednn.synchronize()
            assertClose(actual, expected, tolerance: tolerance, "forward \(g)")
        }
    }
}
