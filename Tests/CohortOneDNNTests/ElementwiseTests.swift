import CohortKernels
import CohortTensor
import XCTest

/// ReLU, residual addition, global average pooling and the classifier.
final class ElementwiseTests: OneDNNComparisonTestCase {
    let shapes: [Shape] = [[2, 8, 8, 64], [3, 5, 7, 13], [1, 1, 1, 1]]

    /// A tensor whose values include exact zeros, where ReLU's derivative is defined as 0.
    func withZeros(_ shape: Shape) -> Tensor {
        let tensor = randomTensor(shape)
        for index in stride(from: 0, to: tensor.elementCount, by: 5) { tensor.floats[index] = 0 }
        return tensor
    }

    /// ReLU and its backward are exact (a comparison and a copy): tolerance 0.
    func testReLU() {
        for shape in shapes {
            let input = withZeros(shape), dOutput = randomTensor(shape)
            let expected = Tensor.zeros(shape), actual = Tensor.zeros(shape)
            reference.reluForward(output: expected, input: input)
            onednn.reluForward(output: actual, input: input)
            onednn.synchronize()
            assertClose(actual, expected, tolerance: 0, "relu \(shape)")

            let inPlace = clone(input)
            onednn.reluForward(output: inPlace, input: inPlace)
            onednn.synchronize()
            assertClose(inPlace, expected, tolerance: 0, "relu in place \(shape)")

            let expectedGradient = Tensor.zeros(shape), actualGradient = Tensor.zeros(shape)
            reference.reluBackward(dInput: expectedGradient, dOutput: dOutput, output: expected)
            onednn.reluBackward(dInput: actualGradient, dOutput: dOutput, output: expected)
            onednn.synchronize()
            assertClose(actualGradient, expectedGradient, tolerance: 0, "relu backward \(shape)")
        }
    }

    /// One float addition per element, rounded identically: tolerance 0,
    /// including the in-place forms the protocol allows.
    func testAdd() {
        for shape in shapes {
            for fuseReLU in [false, true] {
                let a = randomTensor(shape), b = randomTensor(shape)
                let expected = Tensor.zeros(shape), actual = Tensor.zeros(shape)
                reference.add(output: expected, a, b, fuseReLU: fuseReLU)
                onednn.add(output: actual, a, b, fuseReLU: fuseReLU)
                let intoA = clone(a), intoB = clone(b)
                onednn.add(output: intoA, intoA, b, fuseReLU: fuseReLU)
                onednn.add(output: intoB, a, intoB, fuseReLU: fuseReLU)
                onednn.synchronize()
                assertClose(actual, expected, tolerance: 0, "add \(shape) fuseReLU \(fuseReLU)")
                assertClose(intoA, expected, tolerance: 0, "add into a \(shape) fuseReLU \(fuseReLU)")
                assertClose(intoB, expected, tolerance: 0, "add into b \(shape) fuseReLU \(fuseReLU)")
            }
        }
    }

    /// 1e-6: a mean of at most 64 values per channel, summed in another order.
    func testGlobalAveragePool() {
        for shape in shapes {
            let input = randomTensor(shape), dOutput = randomTensor([shape[0], shape[3]])
            let expected = Tensor.zeros([shape[0], shape[3]]), actual = Tensor.zeros([shape[0], shape[3]])
            reference.globalAveragePoolForward(output: expected, input: input)
            onednn.globalAveragePoolForward(output: actual, input: input)
            assertClose(actual, expected, tolerance: 1e-6, "pool \(shape)")
            let expectedGradient = Tensor.zeros(shape), actualGradient = Tensor.zeros(shape)
            reference.globalAveragePoolBackward(dInput: expectedGradient, dOutput: dOutput)
            onednn.globalAveragePoolBackward(dInput: actualGradient, dOutput: dOutput)
            assertClose(actualGradient, expectedGradient, tolerance: 1e-6, "pool backward \(shape)")
        }
    }

    /// 1e-5: dot products of at most 512 terms (forward, dInput) or sums over
    /// a batch of at most 32 (dWeight, dBias), in oneDNN's GEMM order.
    func testLinear() {
        for (batch, inputs, outputs) in [(32, 512, 10), (3, 7, 5), (1, 1, 1)] {
            let input = randomTensor([batch, inputs]), weight = randomTensor([outputs, inputs], in: -0.1...0.1)
            let bias = randomTensor([outputs]), dOutput = randomTensor([batch, outputs])
            let expected = Tensor.zeros([batch, outputs]), actual = Tensor.zeros([batch, outputs])
            reference.linearForward(output: expected, input: input, weight: weight, bias: bias)
            onednn.linearForward(output: actual, input: input, weight: weight, bias: bias)
            onednn.synchronize()
            assertClose(actual, expected, tolerance: 1e-5, "linear \(batch)x\(inputs)->\(outputs)")

            var gradients: [[Tensor]] = []
            for backend in [reference, onednn] as [Backend] {
                let dInput = Tensor.zeros(input.shape), dWeight = Tensor.zeros(weight.shape), dBias = Tensor.zeros([outputs])
                backend.linearBackward(dInput: dInput, dWeight: dWeight, dBias: dBias, dOutput: dOutput, input: input, weight: weight)
                backend.synchronize()
                gradients.append([dInput, dWeight, dBias])
            }
            for (index, name) in ["dInput", "dWeight", "dBias"].enumerated() {
                assertClose(gradients[1][index], gradients[0][index], tolerance: 1e-5, "linear \(name) \(batch)x\(inputs)->\(outputs)")
            }

            // Without dInput (the first layer's input needs no gradient) the others are unchanged.
            let dWeight = Tensor.zeros(weight.shape), dBias = Tensor.zeros([outputs])
            onednn.linearBackward(dInput: nil, dWeight: dWeight, dBias: dBias, dOutput: dOutput, input: input, weight: weight)
            onednn.synchronize()
            assertClose(dWeight, gradients[0][1], tolerance: 1e-5, "linear dWeight without dInput")
            assertClose(dBias, gradients[0][2], tolerance: 1e-5, "linear dBias without dInput")
        }
    }
}
