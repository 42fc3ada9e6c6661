import CohortKernels
import CohortTensor

extension Tolerance {
    /// Copies, comparisons and single correctly rounded conversions: any
    /// backend gives the same bits.
    static let exact = Tolerance(0, "copies, max(0, x), one addition, RNE bfloat16 rounding: bit-exact")
}

/// `upload`, `download`, `fill` and `copy`, over whole tensors and over views
/// inside a larger buffer (the flat parameter buffer's layers are such
/// views): the elements around a view must keep their values.
extension BackendSelfTest {
    func memoryChecks() -> [SelfTestCheck] {
        let shape: Shape = [options.batch, 7, 9, 5]
        var checks = [
            SelfTestCheck(name: "upload/download float32", shape: "\(shape)") { c in
                let x = c.pair(c.uniform(shape))
                c.compare(nil, x, .exact)
            },
            SelfTestCheck(name: "upload/download int32", shape: "[\(shape.elementCount)]") { c in
                let labels = c.labels(shape.elementCount, classes: 1 << 24)  // exact as Float
                c.compare(nil, c.pair(labels), .exact)
            },
            SelfTestCheck(name: "fill float32", shape: "\(shape)") { c in
                let y = c.output(shape), value = c.random.nextUniform(-3, 3)
                c.run { backend, side in backend.fill(side(y), value: value) }
                c.compare(nil, y, .exact)
            },
            SelfTestCheck(name: "fill float32 view", shape: "[1000] at 123 in [1234]") { c in
                let buffer = c.pair(c.uniform([1234])), value = c.random.nextUniform(-3, 3)
                c.run { backend, side in backend.fill(side(buffer).view(elementOffset: 123, shape: [1000]), value: value) }
                c.compare(nil, buffer, .exact)
            },
            SelfTestCheck(name: "copy float32", shape: "\(shape)") { c in
                let x = c.pair(c.uniform(shape)), y = c.output(shape)
                c.run { backend, side in backend.copy(side(x), to: side(y)) }
                c.compare(nil, y, .exact)
            },
            SelfTestCheck(name: "copy float32 view", shape: "[1000] at 7 -> at 211 in [1234]") { c in
                let source = c.pair(c.uniform([1234])), buffer = c.pair(c.uniform([1234]))
                c.run { backend, side in
                    backend.copy(side(source).view(elementOffset: 7, shape: [1000]),
                                 to: side(buffer).view(elementOffset: 211, shape: [1000]))
                }
                c.compare(nil, buffer, .exact)
            },
        ]
        if options.bfloat16 { checks += bfloat16Checks(shape) }
        return checks
    }

    /// Opt-in (`--bf16`): a backend without bfloat16 traps on these.
    private func bfloat16Checks(_ shape: Shape) -> [SelfTestCheck] {
        [
            SelfTestCheck(name: "upload/download bfloat16", shape: "\(shape)") { c in
                let host = Tensor.zeros(shape, dtype: .bfloat16)
                host.copy(from: c.uniform(shape, -100...100).toArray())
                c.compare(nil, c.pair(host), .exact)
            },
            SelfTestCheck(name: "fill bfloat16", shape: "\(shape)") { c in
                let y = c.output(shape, dtype: .bfloat16), value = c.random.nextUniform(-3, 3)
                c.run { backend, side in backend.fill(side(y), value: value) }
                c.compare(nil, y, .exact)
            },
            SelfTestCheck(name: "copy float32->bfloat16", shape: "\(shape)") { c in
                let x = c.pair(c.uniform(shape, -100...100)), y = c.output(shape, dtype: .bfloat16)
                c.run { backend, side in backend.copy(side(x), to: side(y)) }
                c.compare(nil, y, .exact)
            },
            SelfTestCheck(name: "copy bfloat16->float32", shape: "\(shape)") { c in
                let host = Tensor.zeros(shape, dtype: .bfloat16)
                host.copy(from: c.uniform(shape, -100...100).toArray())
                let x = c.pair(host), y = c.output(shape)
                c.run { backend, side in backend.copy(side(x), to: side(y)) }
                c.compare(nil, y, .exact)
            },
            // The widening that turns a summed bf16 all-reduce into an average
            // (Note [Symmetric wire buffer]); 1/3 is not a power of two, so the multiply rounds.
            SelfTestCheck(name: "copy bfloat16->float32 scaled", shape: "\(shape) x 1/3") { c in
                let host = Tensor.zeros(shape, dtype: .bfloat16)
                host.copy(from: c.uniform(shape, -100...100).toArray())
                let x = c.pair(host), y = c.output(shape)
                c.run { backend, side in backend.copy(side(x), to: side(y), scaledBy: 1 / 3) }
                c.compare(nil, y, .exact)
            },
            SelfTestCheck(name: "copy float32->bfloat16 view", shape: "[1000] at 7 -> at 211 in [1234]") { c in
                let source = c.pair(c.uniform([1234], -100...100)), buffer = c.output([1234], dtype: .bfloat16)
                c.run { backend, side in
                    backend.fill(side(buffer), value: 42)
                    backend.copy(side(source).view(elementOffset: 7, shape: [1000]),
                                 to: side(buffer).view(elementOffset: 211, shape: [1000]))
                }
                c.compare(nil, buffer, .exact)
            },
        ]
    }
}
