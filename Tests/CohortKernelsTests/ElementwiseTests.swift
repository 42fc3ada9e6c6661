import CohortKernels
import CohortTensor
import XCTest

/// ReLU, add, global average pooling, linear, and the memory ops.
final class ElementwiseTests: XCTestCase {
    let backend = ReferenceBackend()

    func testReLUForwardAndBackward() {
        let input = Tensor([-2, -0.5, 0, 0.5, 3, -1], shape: [1, 1, 2, 3])
        let output = Tensor.zeros(input.shape)
        backend.reluForward(output: output, input: input)
        XCTAssertEqual(output.toArray(), [0, 0, 0, 0.5, 3, 0])
        // ReLU'(0) = 0: the third element's gradient is dropped.
        let dInput = Tensor.zeros(input.shape)
        backend.reluBackward(dInput: dInput, dOutput: Tensor([1, 2, 3, 4, 5, 6], shape: input.shape), output: output)
        XCTAssertEqual(dInput.toArray(), [0, 0, 0, 4, 5, 0])
        // In place, as the protocol allows.
        backend.reluForward(output: input, input: input)
        XCTAssertEqual(input.toArray(), [0, 0, 0, 0.5, 3, 0])
    }

    func testReLUBackwardMatchesFiniteDifferences() {
        var generator = SplitMix64(seed: 20)
        let input = randomTensorAwayFromZero([2, 3, 2, 2], using: &generator)
        let projection = randomTensor(input.shape, using: &generator)
        let output = Tensor.zeros(input.shape)
        func f() -> Double {
            backend.reluForward(output: output, input: input)
            return weightedSum(output, projection)
        }
        _ = f()
        let dInput = Tensor.zeros(input.shape)
        backend.reluBackward(dInput: dInput, dOutput: projection, output: output)
        // Tolerance 1e-4 with eps 1e-2: inputs are 0.1 from the kink, so f is linear
        // around each; only float32 rounding of f (~1e-7) over 2 eps remains.
        assertClose(dInput.toArray(), finiteDifferenceGradient(of: f, withRespectTo: input, epsilon: 1e-2), absolute: 1e-4)
    }

    func testAdd() {
        let a = Tensor([1, -2, 3, -4], shape: [1, 2, 2, 1]), b = Tensor([0.5, 1, -5, 2], shape: [1, 2, 2, 1])
        let output = Tensor.zeros(a.shape)
        backend.add(output: output, a, b, fuseReLU: false)
        XCTAssertEqual(output.toArray(), [1.5, -1, -2, -2])
        backend.add(output: output, a, b, fuseReLU: true)
        XCTAssertEqual(output.toArray(), [1.5, 0, 0, 0])
        // In place into `a`, as a residual block does.
        backend.add(output: a, a, b, fuseReLU: false)
        XCTAssertEqual(a.toArray(), [1.5, -1, -2, -2])
    }

    func testGlobalAveragePool() {
        // [N=2, H=2, W=1, C=2]: image 0 holds channel 0 = (1, 3), channel 1 = (2, 6).
        let input = Tensor([1, 2, 3, 6, -1, 0, 1, 4], shape: [2, 2, 1, 2])
        let output = Tensor.zeros([2, 2])
        backend.globalAveragePoolForward(output: output, input: input)
        XCTAssertEqual(output.toArray(), [2, 4, 0, 2])

        var generator = SplitMix64(seed: 21)
        let x = randomTensor([2, 3, 2, 4], using: &generator)
        let projection = randomTensor([2, 4], using: &generator)
        let pooled = Tensor.zeros([2, 4])
        func f() -> Double {
            backend.globalAveragePoolForward(output: pooled, input: x)
            return weightedSum(pooled, projection)
        }
        let dInput = Tensor.zeros(x.shape)
        backend.globalAveragePoolBackward(dInput: dInput, dOutput: projection)
        // Tolerance 1e-4 with eps 1e-2: f is linear; float32 rounding (~1e-7) over 2 eps.
        assertClose(dInput.toArray(), finiteDifferenceGradient(of: f, withRespectTo: x, epsilon: 1e-2), absolute: 1e-4)
    }

    func testLinear() {
        // input [1, 2] = (1, 2); weight [3, 2] rows (1, 0), (0, 1), (1, -1); bias (0.5, 0, -1).
        let input = Tensor([1, 2], shape: [1, 2]), weight = Tensor([1, 0, 0, 1, 1, -1], shape: [3, 2])
        let bias = Tensor([0.5, 0, -1], shape: [3]), output = Tensor.zeros([1, 3])
        backend.linearForward(output: output, input: input, weight: weight, bias: bias)
        XCTAssertEqual(output.toArray(), [1.5, 2, -2])
    }

    func testLinearBackwardMatchesFiniteDifferences() {
        var generator = SplitMix64(seed: 22)
        let input = randomTensor([3, 5], using: &generator), weight = randomTensor([4, 5], using: &generator)
        let bias = randomTensor([4], using: &generator), projection = randomTensor([3, 4], using: &generator)
        let output = Tensor.zeros([3, 4])
        func f() -> Double {
            backend.linearForward(output: output, input: input, weight: weight, bias: bias)
            return weightedSum(output, projection)
        }
        let dInput = Tensor.zeros(input.shape), dWeight = Tensor.zeros(weight.shape), dBias = Tensor.zeros(bias.shape)
        backend.linearBackward(dInput: dInput, dWeight: dWeight, dBias: dBias, dOutput: projection, input: input, weight: weight)
        // Tolerance 1e-4 with eps 1e-2: f is linear in each argument; float32 rounding
        // of f (~1e-6) over 2 eps leaves about 5e-5.
        assertClose(dInput.toArray(), finiteDifferenceGradient(of: f, withRespectTo: input, epsilon: 1e-2), absolute: 1e-4, "dInput")
        assertClose(dWeight.toArray(), finiteDifferenceGradient(of: f, withRespectTo: weight, epsilon: 1e-2), absolute: 1e-4, "dWeight")
        assertClose(dBias.toArray(), finiteDifferenceGradient(of: f, withRespectTo: bias, epsilon: 1e-2), absolute: 1e-4, "dBias")

        // Skipping dInput leaves the parameter gradients unchanged.
        let dWeightAgain = Tensor.zeros(weight.shape)
        backend.linearBackward(dInput: nil, dWeight: dWeightAgain, dBias: dBias, dOutput: projection, input: input, weight: weight)
        XCTAssertEqual(dWeightAgain.toArray(), dWeight.toArray())
    }

    func testFillCopyUploadDownload() throws {
        let float32 = try backend.makeTensor([2, 3])
        let bfloat16 = try backend.makeTensor([2, 3], dtype: .bfloat16)
        backend.fill(float32, value: 1.5)
        XCTAssertEqual(float32.toArray(), Array(repeating: 1.5, count: 6))
        backend.fill(bfloat16, value: -0.25)
        XCTAssertEqual(bfloat16.toArray(), Array(repeating: -0.25, count: 6))

        // 1 + 2^-8 lies halfway between the bfloat16 neighbours 1 and 1 + 2^-7:
        // round-to-nearest-even picks 1. 1 + 3 * 2^-8 rounds up to 1 + 2^-6.
        let host = Tensor([1, 1 + 1.0 / 256, 1 + 3.0 / 256, -3, 0.1, 1e30], shape: [2, 3])
        backend.upload(host, to: float32)
        backend.copy(float32, to: bfloat16)
        let rounded = bfloat16.toArray()
        XCTAssertEqual(Array(rounded[0..<4]), [1, 1, 1 + 1.0 / 64, -3])
        XCTAssertEqual(rounded[4], BFloat16.toFloat(BFloat16.fromFloat(0.1)))
        backend.copy(bfloat16, to: float32)
        XCTAssertEqual(backend.download(float32).toArray(), rounded)
        // Widening with a factor (a summed all-reduce made an average): one float32 multiply each.
        backend.copy(bfloat16, to: float32, scaledBy: 0.25)
        XCTAssertEqual(backend.download(float32).toArray(), rounded.map { $0 * 0.25 })
        backend.copy(bfloat16, to: float32, scaledBy: 1 / 3)
        XCTAssertEqual(Array(backend.download(float32).toArray()[0..<4]), [Float(1) / 3, Float(1) / 3, (1 + 1.0 / 64) * (Float(1) / 3), -1])

        let same = try backend.makeTensor(copying: host)
        XCTAssertEqual(backend.download(same).toArray(), host.toArray())
    }
}
