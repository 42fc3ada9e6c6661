import CohortKernels
import CohortTensor

extension Tolerance {
    /// The loss is a mean of per-row log-sum-exps: fp32 exp and log against
    /// the reference's Double.
    static let loss = Tolerance(1e-5, "fp32 exp/log and a mean over rows vs Double")
    /// dLogits = (p - target) / N: one subtraction and one scaling of p.
    static let lossGradient = Tolerance(1e-6, "(p - target) / N: two roundings per element")
    /// The count of rows whose arg-max is the label: an integer.
    static let count = Tolerance(0, "an integer count")
}

/// The linear layer forward and backward (with and without dInput) and
/// softmax cross-entropy forward and backward with label smoothing 0 and 0.1.
///
/// In bf16 (`dtype`): x, W, y, dy, dx, logits and dLogits bf16; the bias,
/// dW, dBias, probabilities, loss and count float32 (Note [bf16 self-test]).
extension BackendSelfTest {
    func classifierChecks(_ dtype: DType) -> [SelfTestCheck] {
        let bfloat16 = dtype == .bfloat16
        let tolerance = bfloat16 ? .bfloat16Matrix : Tolerance.matrix(options.matrixPrecision)
        // dW: bf16 operands, float32 result; dBias: double sums of bf16 dy (exact in float32), as in float32.
        let weightGradientTolerance = bfloat16 ? .bfloat16OperandsFloat32Result : tolerance
        let biasGradientTolerance = bfloat16 ? .bfloat16InputsFloat32Sums : tolerance
        let shapes: [(batch: Int, inputs: Int, outputs: Int)] = [(options.batch, 512, 10), (3, 7, 5), (33, 100, 17)]
        return shapes.flatMap { s in
            let label = "\(s.batch)x\(s.inputs) -> \(s.outputs)"
            let weightShape: Shape = [s.outputs, s.inputs], inputShape: Shape = [s.batch, s.inputs]
            return [
                SelfTestCheck(name: checkName("linearForward", dtype), shape: label) { c in
                    let x = c.pair(c.uniform(inputShape), dtype), w = c.pair(c.uniform(weightShape), dtype)
                    let b = c.pair(c.uniform([s.outputs])), y = c.output([s.batch, s.outputs], dtype: dtype)
                    c.run { backend, side in backend.linearForward(output: side(y), input: side(x), weight: side(w), bias: side(b)) }
                    c.compare(nil, y, tolerance)
                },
                SelfTestCheck(name: checkName("linearBackward", dtype), shape: label) { c in
                    let x = c.pair(c.uniform(inputShape), dtype), w = c.pair(c.uniform(weightShape), dtype)
                    let dy = c.pair(c.uniform([s.batch, s.outputs]), dtype)
                    let dx = c.output(inputShape, dtype: dtype), dw = c.output(weightShape), db = c.output([s.outputs])
                    c.run { backend, side in
                        backend.linearBackward(dInput: side(dx), dWeight: side(dw), dBias: side(db),
                                               dOutput: side(dy), input: side(x), weight: side(w))
                    }
                    c.compare("dInput", dx, tolerance)
                    c.compare("dWeight", dw, weightGradientTolerance)
                    c.compare("dBias", db, biasGradientTolerance)
                },
                SelfTestCheck(name: checkName("linearBackward without dInput", dtype), shape: label) { c in
                    let x = c.pair(c.uniform(inputShape), dtype), w = c.pair(c.uniform(weightShape), dtype)
                    let dy = c.pair(c.uniform([s.batch, s.outputs]), dtype)
                    let dw = c.output(weightShape), db = c.output([s.outputs])
                    c.run { backend, side in
                        backend.linearBackward(dInput: nil, dWeight: side(dw), dBias: side(db),
                                               dOutput: side(dy), input: side(x), weight: side(w))
                    }
                    c.compare("dWeight", dw, weightGradientTolerance)
                    c.compare("dBias", db, biasGradientTolerance)
                },
            ]
        }
    }

    /// In bf16 the logits are bf16 (ties in the arg-max get likelier: 2^-6 apart near 4) and
    /// dLogits bf16; loss and probabilities keep their float32 tolerances (exact bf16 inputs).
    func lossChecks(_ dtype: DType) -> [SelfTestCheck] {
        let shapes: [Shape] = [[options.batch, 10], [64, 10], [37, 7], [5, 1000]]
        return shapes.flatMap { shape in
            [Float(0), 0.1].flatMap { smoothing in
                let label = "\(shape) smoothing \(smoothing)"
                return [
                    SelfTestCheck(name: checkName("softmaxCrossEntropyForward", dtype), shape: label) { c in
                        let z = c.pair(c.uniform(shape, -4...4), dtype), t = c.pair(c.labels(shape[0], classes: shape[1]))
                        let loss = c.output([1]), p = c.output(shape), correct = c.output([1])
                        c.run { backend, side in
                            backend.softmaxCrossEntropyForward(loss: side(loss), probabilities: side(p), correct: side(correct),
                                                               logits: side(z), labels: side(t), labelSmoothing: smoothing)
                        }
                        c.compare("loss", loss, .loss)
                        c.compare("probabilities", p, .loss)
                        c.compare("correct", correct, .count)
                    },
                    SelfTestCheck(name: checkName("softmaxCrossEntropyBackward", dtype), shape: label) { c in
                        // Real probabilities (rows summing to 1), from the reference's forward.
                        let logits = c.rounded(c.uniform(shape, -4...4), dtype), labels = c.labels(shape[0], classes: shape[1])
                        let probabilities = Tensor.zeros(shape)
                        c.reference.softmaxCrossEntropyForward(loss: Tensor.zeros([1]), probabilities: probabilities,
                                                               correct: Tensor.zeros([1]), logits: logits,
                                                               labels: labels, labelSmoothing: smoothing)
                        let p = c.pair(probabilities), t = c.pair(labels), dz = c.output(shape, dtype: dtype)
                        c.run { backend, side in
                            backend.softmaxCrossEntropyBackward(dLogits: side(dz), probabilities: side(p), labels: side(t),
                                                                labelSmoothing: smoothing)
                        }
                        c.compare(nil, dz, self.elementwiseTolerance(.lossGradient, dtype))
                    },
                ]
            }
        }
    }
}
