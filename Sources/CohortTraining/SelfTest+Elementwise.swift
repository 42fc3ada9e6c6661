import CohortKernels
import CohortTensor

extension Tolerance {
    /// A mean of up to 63 values (pooling), or one division by H*W (its backward).
    static let pooling = Tolerance(1e-6, "a mean of at most 63 values, or one division: summation order, x/n vs x*(1/n)")
}

/// ReLU forward and backward (out of place and in place), the residual
/// addition with and without ReLU (into a new tensor and into either input),
/// and global average pooling forward and backward.
extension BackendSelfTest {
    func elementwiseChecks() -> [SelfTestCheck] {
        let shapes: [Shape] = [[options.batch, 32, 32, 64], [3, 7, 9, 5]]
        var checks: [SelfTestCheck] = []
        for shape in shapes {
            let label = "\(shape)"
            checks.append(SelfTestCheck(name: "reluForward", shape: label) { c in
                let x = c.pair(c.uniform(shape)), y = c.output(shape)
                c.run { backend, side in backend.reluForward(output: side(y), input: side(x)) }
                c.compare(nil, y, .exact)
            })
            checks.append(SelfTestCheck(name: "reluForward in place", shape: label) { c in
                let x = c.pair(c.uniform(shape))
                c.run { backend, side in backend.reluForward(output: side(x), input: side(x)) }
                c.compare(nil, x, .exact)
            })
            for inPlace in [false, true] {
                checks.append(SelfTestCheck(name: "reluBackward" + (inPlace ? " in place" : ""), shape: label) { c in
                    // A ReLU output: exact zeros where the input was negative (ReLU'(0) = 0).
                    let output = c.uniform(shape)
                    for index in output.floats.indices { output.floats[index] = max(0, output.floats[index]) }
                    let y = c.pair(output), dy = c.pair(c.uniform(shape))
                    let dx = inPlace ? dy : c.output(shape)
                    c.run { backend, side in backend.reluBackward(dInput: side(dx), dOutput: side(dy), output: side(y)) }
                    c.compare(nil, dx, .exact)
                })
            }
            for fuseReLU in [false, true] {
                for into in ["new", "a", "b"] {
                    checks.append(SelfTestCheck(name: "add\(fuseReLU ? " +relu" : "") into \(into)", shape: label) { c in
                        let a = c.pair(c.uniform(shape)), b = c.pair(c.uniform(shape))
                        let y = into == "a" ? a : into == "b" ? b : c.output(shape)
                        c.run { backend, side in backend.add(output: side(y), side(a), side(b), fuseReLU: fuseReLU) }
                        c.compare(nil, y, .exact)
                    })
                }
            }
        }
        for shape in [[options.batch, 4, 4, 512], [3, 7, 9, 5]] as [Shape] {
            let pooled: Shape = [shape[0], shape[3]]
            checks.append(SelfTestCheck(name: "globalAveragePoolForward", shape: "\(shape)") { c in
                let x = c.pair(c.uniform(shape)), y = c.output(pooled)
                c.run { backend, side in backend.globalAveragePoolForward(output: side(y), input: side(x)) }
                c.compare(nil, y, .pooling)
            })
            checks.append(SelfTestCheck(name: "globalAveragePoolBackward", shape: "\(shape)") { c in
                let dy = c.pair(c.uniform(pooled)), dx = c.output(shape)
                c.run { backend, side in backend.globalAveragePoolBackward(dInput: side(dx), dOutput: side(dy)) }
                c.compare(nil, dx, .pooling)
            })
        }
        return checks
    }
}
