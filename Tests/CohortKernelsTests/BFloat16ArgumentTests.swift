import CohortKernels
import CohortTensor
import XCTest

/// bfloat16 arguments: each op must equal the float32 op run on the
/// bf16-rounded inputs, with its outputs rounded to bf16 once: bit for bit,
/// since that is exactly what the reference promises.
final class BFloat16ArgumentTests: XCTestCase {
    let backend = ReferenceBackend()
    var generator = SplitMix64(seed: 17)

    /// A random tensor in both forms: bf16, and float32 holding the same (rounded) values.
    func pair(_ shape: Shape) -> (bf16: Tensor, f32: Tensor) {
        let values = (0..<shape.elementCount).map { _ in generator.nextNormal() }
        let bf16 = try! backend.makeTensor(shape, dtype: .bfloat16)
        bf16.copy(from: values)
        return (bf16, Tensor(bf16.toArray(), shape: shape))
    }

    func rounded(_ tensor: Tensor) -> [Float] { tensor.toArray().map { BFloat16.toFloat(BFloat16.fromFloat($0)) } }

    func testConvolutionReluAndAdd() throws {
        let g = Conv2dGeometry(batch: 2, inputChannels: 3, outputChannels: 4, inputHeight: 5, inputWidth: 6,
                               kernelSize: 3, stride: 2, padding: 1)
        let (x16, x32) = pair(g.inputShape), (w16, w32) = pair(g.weightShape)
        let y16 = try backend.makeTensor(g.outputShape, dtype: .bfloat16), y32 = Tensor.zeros(g.outputShape)
        backend.conv2dForward(output: y16, input: x16, weight: w16, geometry: g)
        backend.conv2dForward(output: y32, input: x32, weight: w32, geometry: g)
        XCTAssertEqual(y16.toArray(), rounded(y32))

        // Weight gradient into a float32 buffer from bf16 activations (the mixed-precision contract).
        let dw = Tensor.zeros(g.weightShape), dw32 = Tensor.zeros(g.weightShape)
        let (dy16, dy32) = pair(g.outputShape)
        backend.conv2dBackwardWeight(dWeight: dw, input: x16, dOutput: dy16, geometry: g)
        backend.conv2dBackwardWeight(dWeight: dw32, input: x32, dOutput: dy32, geometry: g)
        XCTAssertEqual(dw.toArray(), dw32.toArray())

        // In place, as the residual block runs it: output aliases an input.
        let (a16, a32) = pair(g.outputShape)
        backend.add(output: a16, a16, y16, fuseReLU: true)
        backend.add(output: a32, a32, Tensor(y16.toArray(), shape: g.outputShape), fuseReLU: true)
        XCTAssertEqual(a16.toArray(), rounded(a32))
        backend.reluForward(output: y16, input: y16)
        XCTAssertEqual(y16.toArray(), rounded(y32).map { max(0, $0) })
    }

    func testBatchNormKeepsFloat32Statistics() throws {
        let shape: Shape = [2, 3, 3, 4]
        let (x16, x32) = pair(shape)
        let scale = Tensor([1, 2, 0.5, -1], shape: [4]), shift = Tensor([0, 0.1, -0.2, 0.3], shape: [4])
        var results: [[Float]] = []
        for input in [x16, x32] {
            let output = try backend.makeTensor(shape, dtype: input.dtype)
            let runningMean = Tensor.zeros([4]), runningVar = Tensor([1, 1, 1, 1], shape: [4])
            let savedMean = Tensor.zeros([4]), savedInvStd = Tensor.zeros([4])
            backend.batchNormForwardTraining(output: output, input: input, scale: scale, shift: shift,
                                             runningMean: runningMean, runningVar: runningVar,
                                             savedMean: savedMean, savedInvStd: savedInvStd,
                                             momentum: 0.1, epsilon: 1e-5, fuseReLU: true)
            results.append(output.dtype == .bfloat16 ? output.toArray() : rounded(output))
            results.append(runningMean.toArray() + runningVar.toArray() + savedMean.toArray() + savedInvStd.toArray())
        }
        XCTAssertEqual(results[0], results[2])
        XCTAssertEqual(results[1], results[3])
    }

    func testLinearAndLossFromBFloat16Logits() throws {
        let (x16, x32) = pair([3, 5]), (w16, w32) = pair([4, 5])
        let bias = Tensor([0.1, 0.2, 0.3, 0.4], shape: [4])
        let y16 = try backend.makeTensor([3, 4], dtype: .bfloat16), y32 = Tensor.zeros([3, 4])
        backend.linearForward(output: y16, input: x16, weight: w16, bias: bias)
        backend.linearForward(output: y32, input: x32, weight: w32, bias: bias)
        XCTAssertEqual(y16.toArray(), rounded(y32))

        let labels = Tensor.int32([0, 3, 1])
        let loss16 = Tensor.zeros([1]), loss32 = Tensor.zeros([1])
        let p16 = Tensor.zeros([3, 4]), p32 = Tensor.zeros([3, 4])
        let c16 = Tensor.zeros([1]), c32 = Tensor.zeros([1])
        backend.softmaxCrossEntropyForward(loss: loss16, probabilities: p16, correct: c16, logits: y16, labels: labels, labelSmoothing: 0.1)
        backend.softmaxCrossEntropyForward(loss: loss32, probabilities: p32, correct: c32,
                                           logits: Tensor(y16.toArray(), shape: [3, 4]), labels: labels, labelSmoothing: 0.1)
        XCTAssertEqual(loss16.toArray(), loss32.toArray())
        XCTAssertEqual(c16.toArray(), c32.toArray())
        let d16 = try backend.makeTensor([3, 4], dtype: .bfloat16), d32 = Tensor.zeros([3, 4])
        backend.softmaxCrossEntropyBackward(dLogits: d16, probabilities: p16, labels: labels, labelSmoothing: 0.1)
        backend.softmaxCrossEntropyBackward(dLogits: d32, probabilities: p32, labels: labels, labelSmoothing: 0.1)
        XCTAssertEqual(d16.toArray(), rounded(d32))
    }
}
