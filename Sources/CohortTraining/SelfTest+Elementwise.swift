import CohortKernels
import CohortTensor

extension Tolerance {
    /// A mean of up to 63 values (pooling), or one division by H*W (its backward).
    static let pooling = Tolerance(1e-6, "a mean of at most 63 values, or one division: summation order, x/n vs x*(1/n)")
}

/// ReLU forward and backward (out of place and in place), the residual
/// addition with and without ReLU (into a new tensor and into either input),
/// and global average pooling forward and backward. In bf16 (`dtype`) every
/// tensor is bf16: ReLU and the addition stay bit-exact (max(0, x) of a
/// bf16 value is that value; a + b is one fp32 addition, rounded once, to
/// nearest even, on both sides); pooling gets `.bfloat16Output`. The shapes'
/// element counts (multiples of 8 and not) cover both the vectorised and the
/// scalar bf16 kernels; [3, 7, 9, 8] (189 units of 8) ends inside a pass of
/// the vector kernels (4 units per thread), and in bf16 without `--quick`
/// [32, 64, 64, 64] (1,048,576 units) needs two passes of their one-wave
/// grid on a 132-SM GPU (about 540,000 units a pass).
extension BackendSelfTest {
    func elementwiseChecks(_ dtype: DType) -> [SelfTestCheck] {
        let poolingTolerance = elementwiseTolerance(.pooling, dtype)
        let shapes: [Shape] = [[options.batch, 32, 32, 64], [3, 7, 9, 5], [3, 7, 9, 8]]
            + (options.quick || dtype != .bfloat16 ? [] : [[32, 64, 64, 64]])
        var checks: [SelfTestCheck] = []
        for shape in shapes {
            let label = "\(shape)"
            checks.append(SelfTestCheck(name: checkName("reluForward", dtype), shape: label) { c in
                let x = c.pair(c.uniform(shape), dtype), y = c.output(shape, dtype: dtype)
                c.run { backend, side in backend.reluForward(output: side(y), input: side(x)) }
                c.compare(nil, y, .exact)
            })
            checks.append(SelfTestCheck(name: checkName("reluForward in place", dtype), shape: label) { c in
                let x = c.pair(c.uniform(shape), dtype)
                c.run { backend, side in backend.reluForward(output: side(x), input: side(x)) }
                c.compare(nil, x, .exact)
            })
            for inPlace in [false, true] {
                checks.append(SelfTestCheck(name: checkName("reluBackward" + (inPlace ? " in place" : ""), dtype),
                                            shape: label) { c in
                    // A ReLU output: exact zeros where the input was negative (ReLU'(0) = 0).
                    let output = c.uniform(shape)
                    for index in output.floats.indices { output.floats[index] = max(0, output.floats[index]) }
                    let y = c.pair(output, dtype), dy = c.pair(c.uniform(shape), dtype)
                    let dx = inPlace ? dy : c.output(shape, dtype: dtype)
                    c.run { backend, side in backend.reluBackward(dInput: side(dx), dOutput: side(dy), output: side(y)) }
                    c.compare(nil, dx, .exact)
                })
            }
            for fuseReLU in [false, true] {
                for into in ["new", "a", "b"] {
                    checks.append(SelfTestCheck(name: checkName("add\(fuseReLU ? " +relu" : "") into \(into)", dtype),
                                                shape: label) { c in
                        let a = c.pair(c.uniform(shape), dtype), b = c.pair(c.uniform(shape), dtype)
                        let y = into == "a" ? a : into == "b" ? b : c.output(shape, dtype: dtype)
                        c.run { backend, side in backend.add(output: side(y), side(a), side(b), fuseReLU: fuseReLU) }
                        c.compare(nil, y, .exact)
                    })
                }
            }
        }
        for shape in [[options.batch, 4, 4, 512], [3, 7, 9, 5]] as [Shape] {
            let pooled: Shape = [shape[0], shape[3]]
            checks.append(SelfTestCheck(name: checkName("globalAveragePoolForward", dtype), shape: "\(shape)") { c in
                let x = c.pair(c.uniform(shape), dtype), y = c.output(pooled, dtype: dtype)
                c.run { backend, side in backend.globalAveragePoolForward(output: side(y), input: side(x)) }
                c.compare(nil, y, poolingTolerance)
            })
            checks.append(SelfTestCheck(name: checkName("globalAveragePoolBackward", dtype), shape: "\(shape)") { c in
                let dy = c.pair(c.uniform(pooled), dtype), dx = c.output(shape, dtype: dtype)
                c.run { backend, side in backend.globalAveragePoolBackward(dInput: side(dx), dOutput: side(dy)) }
                c.compare(nil, dx, poolingTolerance)
            })
        }
        return checks
    }
}
