import CohortKernels
import CohortTensor

extension Tolerance {
    /// Batch norm: per-channel sums over up to 8 x 32 x 32 = 8,192 rows; the
    /// reference sums in Double, a backend in fp32 in its own order.
    static let batchNorm = Tolerance(1e-5, "per-channel fp32 sums over up to 8,192 rows vs Double sums")
    /// dScale and dShift are such sums of products of the gradient; dInput
    /// subtracts their means from dOutput.
    static let batchNormBackward = Tolerance(1e-5, "per-channel fp32 sums of dy and dy*xhat over up to 8,192 rows")
}

/// Training-mode forward (output, saved mean and inverse std, updated
/// running statistics), inference-mode forward and the backward (dInput,
/// dScale, dShift), each with and without the fused ReLU, on ResNet-18's
/// batch-norm shapes, an odd one, and shapes for the CUDA backend's bf16
/// vector kernels (Note [Vector batch norm], C % 8 == 0): row counts that
/// are not a multiple of a block's rows ([3, 7, 9, 64]: 189 rows; [2, 5,
/// 5, 512]: 50), a width that is not a power of two (C = 24: blocks of 3 x
/// 85 threads), one wider than a block (C = 2,056: two column groups, the
/// second with one column), and, in bf16 without `--quick`, one large
/// enough that every block of the one-wave grid loops over several tiles
/// ([48, 64, 64, 64]: 196,608 rows; a 132-SM GPU holds about 260-660 such
/// blocks, with 128-256 rows a tile). Only in bf16: float32 sums over that
/// many rows (oneDNN's) exceed the 1e-5 tolerance, which is for up to 8,192
/// rows. C % 8 != 0 ([3, 7, 9, 5]) takes the scalar kernels.
///
/// In bf16 (`dtype`), x, y, dy and dx are bf16 and everything per channel
/// float32: the statistics and dScale/dShift are sums of the same bf16
/// values (exact in float32), so they keep the float32 tolerances; the
/// bf16 outputs get `.bfloat16Output`.
extension BackendSelfTest {
    func batchNormChecks(_ dtype: DType) -> [SelfTestCheck] {
        let outputTolerance = elementwiseTolerance(.batchNorm, dtype)
        let dInputTolerance = elementwiseTolerance(.batchNormBackward, dtype)
        let n = options.batch
        let shapes: [Shape] = [[n, 32, 32, 64], [n, 8, 8, 256], [n, 4, 4, 512], [3, 7, 9, 5],
                               [3, 7, 9, 64], [2, 5, 5, 512], [3, 5, 7, 24], [1, 3, 5, 2056]]
            + (options.quick || dtype != .bfloat16 ? [] : [[48, 64, 64, 64]])
        let momentum: Float = 0.1, epsilon: Float = 1e-5
        var checks: [SelfTestCheck] = []
        for shape in shapes {
            for fuseReLU in [false, true] {
                let label = "\(shape)" + (fuseReLU ? " +relu" : "")
                checks.append(SelfTestCheck(name: checkName("batchNormForwardTraining", dtype), shape: label) { c in
                    let inputs = BatchNormInputs(c, shape, dtype)
                    let y = c.output(shape, dtype: dtype), mean = c.output(inputs.channels), invStd = c.output(inputs.channels)
                    c.run { backend, side in
                        backend.batchNormForwardTraining(
                            output: side(y), input: side(inputs.x), scale: side(inputs.scale), shift: side(inputs.shift),
                            runningMean: side(inputs.runningMean), runningVar: side(inputs.runningVar),
                            savedMean: side(mean), savedInvStd: side(invStd),
                            momentum: momentum, epsilon: epsilon, fuseReLU: fuseReLU)
                    }
                    c.compare("output", y, outputTolerance)
                    c.compare("savedMean", mean, .batchNorm)
                    c.compare("savedInvStd", invStd, .batchNorm)
                    c.compare("runningMean", inputs.runningMean, .batchNorm)
                    c.compare("runningVar", inputs.runningVar, .batchNorm)
                })
                checks.append(SelfTestCheck(name: checkName("batchNormForwardInference", dtype), shape: label) { c in
                    let inputs = BatchNormInputs(c, shape, dtype)
                    let y = c.output(shape, dtype: dtype)
                    c.run { backend, side in
                        backend.batchNormForwardInference(
                            output: side(y), input: side(inputs.x), scale: side(inputs.scale), shift: side(inputs.shift),
                            runningMean: side(inputs.runningMean), runningVar: side(inputs.runningVar),
                            epsilon: epsilon, fuseReLU: fuseReLU)
                    }
                    c.compare("output", y, outputTolerance)
                })
                checks.append(SelfTestCheck(name: checkName("batchNormBackward", dtype), shape: label) { c in
                    let inputs = BatchNormInputs(c, shape, dtype)
                    // The forward's saved statistics and output, from the reference, are inputs to both backwards.
                    let forward = inputs.referenceForward(momentum: momentum, epsilon: epsilon, fuseReLU: fuseReLU)
                    let y = c.pair(forward.output), mean = c.pair(forward.savedMean)
                    let invStd = c.pair(forward.savedInvStd), dy = c.pair(c.uniform(shape), dtype)
                    let dx = c.output(shape, dtype: dtype), dScale = c.output(inputs.channels), dShift = c.output(inputs.channels)
                    c.run { backend, side in
                        backend.batchNormBackward(
                            dInput: side(dx), dScale: side(dScale), dShift: side(dShift), dOutput: side(dy),
                            input: side(inputs.x), output: side(y), scale: side(inputs.scale),
                            savedMean: side(mean), savedInvStd: side(invStd), fuseReLU: fuseReLU)
                    }
                    c.compare("dInput", dx, dInputTolerance)
                    c.compare("dScale", dScale, .batchNormBackward)
                    c.compare("dShift", dShift, .batchNormBackward)
                })
            }
        }
        return checks
    }
}

/// Random batch-norm inputs on both backends: activations off zero mean
/// and unit variance, scales around 1, running statistics as after a few steps.
private struct BatchNormInputs {
    let channels: Shape
    let host: (x: Tensor, scale: Tensor, shift: Tensor)
    let x, scale, shift, runningMean, runningVar: TensorPair
    let context: SelfTestContext

    /// x in `dtype` (the activations'), the rest float32.
    init(_ c: SelfTestContext, _ shape: Shape, _ dtype: DType) {
        context = c
        channels = [shape[3]]
        host = (c.rounded(c.uniform(shape, -1...2), dtype), c.uniform(channels, 0.5...1.5), c.uniform(channels, -0.5...0.5))
        x = c.pair(host.x)
        scale = c.pair(host.scale)
        shift = c.pair(host.shift)
        runningMean = c.pair(c.uniform(channels, -0.2...0.2))
        runningVar = c.pair(c.uniform(channels, 0.5...1.5))
    }

    /// The reference's training forward on host copies: output (in x's dtype), saved mean and inverse std.
    func referenceForward(momentum: Float, epsilon: Float, fuseReLU: Bool)
        -> (output: Tensor, savedMean: Tensor, savedInvStd: Tensor) {
        let output = Tensor.zeros(host.x.shape, dtype: host.x.dtype), mean = Tensor.zeros(channels), invStd = Tensor.zeros(channels)
        context.reference.batchNormForwardTraining(
            output: output, input: host.x, scale: host.scale, shift: host.shift,
            runningMean: Tensor.zeros(channels), runningVar: Tensor(Array(repeating: 1, count: channels[0]), shape: channels),
            savedMean: mean, savedInvStd: invStd, momentum: momentum, epsilon: epsilon, fuseReLU: fuseReLU)
        return (output, mean, invStd)
    }
}
