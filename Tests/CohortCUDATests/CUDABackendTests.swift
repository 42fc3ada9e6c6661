import XCTest
import CohortCUDA
import CohortKernels
import CohortTensor

/// A few ops against the reference on a real GPU; skipped where CUDA is
/// unavailable (always here and in CI). The full proof of every op is
/// `cohort selftest`, run on the GPU machine.
final class CUDABackendTests: XCTestCase {
    var backend: CUDABackend!
    let reference = ReferenceBackend()

    override func setUpWithError() throws {
        do {
            backend = try CUDABackend()
        } catch let error as CUDAUnavailable {
            throw XCTSkip("\(error)")
        }
    }

    private func random(_ shape: Shape, seed: UInt64) -> Tensor {
        var generator = Xoshiro256StarStar(seed: seed)
        return Tensor((0..<shape.elementCount).map { _ in generator.nextUniform(-1, 1) }, shape: shape)
    }

    private func assertClose(_ actual: Tensor, _ expected: Tensor, tolerance: Float, _ what: String) {
        let a = actual.toArray(), e = expected.toArray()
        XCTAssertEqual(a.count, e.count, what)
        let scale = max(e.map(abs).max() ?? 0, 1)
        let worst = zip(a, e).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, tolerance * scale, "\(what): largest difference \(worst)")
    }

    func testDetailsNameTheDeviceAndLibraries() {
        XCTAssertTrue(backend.details.contains("cuDNN"), backend.details)
        XCTAssertEqual(backend.device, .cuda(0))
    }

    func testUploadFillCopyAndDownload() throws {
        let host = random([3, 5], seed: 1)
        let device = try backend.makeTensor(copying: host)
        assertClose(backend.download(device), host, tolerance: 0, "round trip")
        let half = try backend.makeTensor([3, 5], dtype: .bfloat16)
        backend.copy(device, to: half)
        let back = try backend.makeTensor([3, 5])
        backend.copy(half, to: back)
        let expectedHalf = try reference.makeTensor([3, 5], dtype: .bfloat16)
        reference.copy(host, to: expectedHalf)
        let expected = try reference.makeTensor([3, 5])
        reference.copy(expectedHalf, to: expected)
        assertClose(backend.download(back), expected, tolerance: 0, "bfloat16 round trip")
        backend.fill(device, value: 2.5)
        XCTAssertEqual(backend.download(device).toArray(), [Float](repeating: 2.5, count: 15))
    }

    func testConvolutionMatchesTheReferenceAtTF32Tolerance() throws {
        let g = Conv2dGeometry(batch: 2, inputChannels: 8, outputChannels: 16, inputHeight: 9, inputWidth: 9,
                               kernelSize: 3, stride: 2, padding: 1)
        let x = random(g.inputShape, seed: 2), w = random(g.weightShape, seed: 3), dy = random(g.outputShape, seed: 4)
        let y = try reference.makeTensor(g.outputShape), dx = try reference.makeTensor(g.inputShape)
        let dw = try reference.makeTensor(g.weightShape)
        reference.conv2dForward(output: y, input: x, weight: w, geometry: g)
        reference.conv2dBackwardData(dInput: dx, dOutput: dy, weight: w, geometry: g)
        reference.conv2dBackwardWeight(dWeight: dw, input: x, dOutput: dy, geometry: g)
        let gx = try backend.makeTensor(copying: x), gw = try backend.makeTensor(copying: w)
        let gdy = try backend.makeTensor(copying: dy)
        let gy = try backend.makeTensor(g.outputShape), gdx = try backend.makeTensor(g.inputShape)
        let gdw = try backend.makeTensor(g.weightShape)
        backend.conv2dForward(output: gy, input: gx, weight: gw, geometry: g)
        backend.conv2dBackwardData(dInput: gdx, dOutput: gdy, weight: gw, geometry: g)
        backend.conv2dBackwardWeight(dWeight: gdw, input: gx, dOutput: gdy, geometry: g)
        // TF32 keeps 10 mantissa bits: about 1e-3 relative per product.
        assertClose(backend.download(gy), y, tolerance: 5e-3, "forward")
        assertClose(backend.download(gdx), dx, tolerance: 5e-3, "backward data")
        assertClose(backend.download(gdw), dw, tolerance: 5e-3, "backward weight")
    }

    func testBatchNormTrainingMatchesTheReference() throws {
        let shape: Shape = [4, 3, 5, 40]
        let x = random(shape, seed: 5), scale = random([40], seed: 6), shift = random([40], seed: 7)
        let outputs = (0..<6).map { _ in try! reference.makeTensor([40]) }
        for statistic in outputs { reference.fill(statistic, value: 0.5) }
        let y = try reference.makeTensor(shape)
        reference.batchNormForwardTraining(output: y, input: x, scale: scale, shift: shift,
                                           runningMean: outputs[0], runningVar: outputs[1],
                                           savedMean: outputs[2], savedInvStd: outputs[3],
                                           momentum: 0.1, epsilon: 1e-5, fuseReLU: true)
        let device = try outputs.map { try backend.makeTensor(copying: $0) }
        let gx = try backend.makeTensor(copying: x), gy = try backend.makeTensor(shape)
        backend.batchNormForwardTraining(output: gy, input: gx, scale: try backend.makeTensor(copying: scale),
                                         shift: try backend.makeTensor(copying: shift),
                                         runningMean: device[0], runningVar: device[1],
                                         savedMean: device[2], savedInvStd: device[3],
                                         momentum: 0.1, epsilon: 1e-5, fuseReLU: true)
        assertClose(backend.download(gy), y, tolerance: 1e-5, "output")
        for index in 0..<4 { assertClose(backend.download(device[index]), outputs[index], tolerance: 1e-5, "statistic \(index)") }
    }

    func testLossMatchesTheReference() throws {
        let logits = random([37, 10], seed: 8)
        let labels = Tensor.int32((0..<37).map { Int32($0 % 10) })
        let loss = try reference.makeTensor([1]), correct = try reference.makeTensor([1])
        let probabilities = try reference.makeTensor([37, 10])
        reference.softmaxCrossEntropyForward(loss: loss, probabilities: probabilities, correct: correct,
                                             logits: logits, labels: labels, labelSmoothing: 0.1)
        let gLoss = try backend.makeTensor([1]), gCorrect = try backend.makeTensor([1])
        let gProbabilities = try backend.makeTensor([37, 10])
        backend.softmaxCrossEntropyForward(loss: gLoss, probabilities: gProbabilities, correct: gCorrect,
                                           logits: try backend.makeTensor(copying: logits),
                                           labels: try backend.makeTensor(copying: labels), labelSmoothing: 0.1)
        assertClose(backend.download(gLoss), loss, tolerance: 1e-5, "loss")
        assertClose(backend.download(gProbabilities), probabilities, tolerance: 1e-5, "probabilities")
        XCTAssertEqual(backend.download(gCorrect).toArray(), correct.toArray())
    }
}
