import CohortCUDA
import CohortKernels
import CohortTensor

extension Tolerance {
    /// Convolutions and matrix products: sums of up to 4,608 products (512
    /// channels x 3x3) forward, and of batch x 1,024 pixels for the weight
    /// gradient.
    static func matrix(_ precision: MatrixPrecision) -> Tolerance {
        switch precision {
        case .float32:
            return Tolerance(1e-5, "fp32 sums of products in another order (blocked, Winograd); reference sums in fp32")
        case .tf32:
            return Tolerance(3e-3, "TF32 operands (10-bit mantissa, rounding 2^-11 = 4.9e-4 per product), fp32 sums")
        }
    }
}

/// `conv2dForward`, `conv2dBackwardData` and `conv2dBackwardWeight` on every
/// convolution of ResNet-18's CIFAR form (at the run's small batch), and on
/// shapes off that path: odd channel counts and image sizes, an odd batch,
/// no padding, stride 2 without padding, a 5x5 kernel. On CUDA each row
/// names the path that ran (Note [Convolution paths]), and the shapes cover
/// both GEMM paths: 1x1 at strides 1, 2 and 3 with C and K multiples of 8
/// and not (so the gather and scatter move 16-, 4- and 2-byte units), and
/// im2col for few input channels (the stem, also at batch 1; stride 2 with
/// and without padding; a 5x5 filter of one channel).
extension BackendSelfTest {
    var convolutionGeometries: [Conv2dGeometry] {
        let n = options.batch
        func conv(_ ci: Int, _ co: Int, _ size: Int, k: Int = 3, s: Int = 1, p: Int = 1, batch: Int? = nil,
                  width: Int? = nil) -> Conv2dGeometry {
            Conv2dGeometry(batch: batch ?? n, inputChannels: ci, outputChannels: co, inputHeight: size,
                           inputWidth: width ?? size, kernelSize: k, stride: s, padding: p)
        }
        return [
            conv(3, 64, 32),                     // stem
            conv(64, 64, 32),                    // layer1
            conv(64, 128, 32, s: 2),             // layer2.0.conv1
            conv(64, 128, 32, k: 1, s: 2, p: 0), // layer2.0.downsample
            conv(128, 128, 16),
            conv(128, 256, 16, s: 2),
            conv(128, 256, 16, k: 1, s: 2, p: 0),
            conv(256, 256, 8),
            conv(256, 512, 8, s: 2),
            conv(256, 512, 8, k: 1, s: 2, p: 0),
            conv(512, 512, 4),
            conv(3, 5, 7, batch: 3, width: 9),               // odd channels, batch and image
            conv(6, 10, 7, p: 0, batch: 3, width: 9),        // no padding
            conv(5, 7, 9, s: 2, p: 0, batch: 3, width: 7),   // stride 2 without padding
            conv(7, 3, 9, k: 1, s: 2, p: 0, batch: 3, width: 7),
            conv(13, 11, 11, k: 5, p: 2, batch: 3, width: 5),
            conv(16, 24, 6, k: 1, s: 1, p: 0, batch: 3, width: 5),  // 1x1 stride 1: x is the GEMM operand
            conv(5, 7, 5, k: 1, s: 1, p: 0, batch: 2, width: 4),    // 1x1 stride 1, odd channels
            conv(24, 16, 9, k: 1, s: 2, p: 0, batch: 3, width: 7),  // 1x1 stride 2, 16-byte units, odd image
            conv(12, 8, 8, k: 1, s: 2, p: 0, batch: 1, width: 6),   // C 12: 4-byte units in bf16, 16 in fp32
            conv(8, 16, 7, k: 1, s: 3, p: 0, batch: 2, width: 7),   // 1x1 stride 3, sizes it does not divide
            conv(3, 64, 32, batch: 1),                              // the stem at batch 1
            conv(4, 8, 6, s: 2, p: 1, batch: 2, width: 5),          // im2col at stride 2 with padding
            conv(1, 4, 6, k: 5, p: 2, batch: 2, width: 5),          // im2col of a 5x5 filter, one channel
        ]
    }

    /// `dtype` is the activations' and weights' (bf16: Note [bf16 self-test]); dWeight is float32 in both.
    func convolutionChecks(_ dtype: DType) -> [SelfTestCheck] {
        let tolerance = dtype == .bfloat16 ? .bfloat16Matrix : Tolerance.matrix(options.matrixPrecision)
        return convolutionGeometries.flatMap { g in
            let (forward, backwardData, backwardWeight) = (convolutionPathNote(g, .forward),
                                                           convolutionPathNote(g, .backwardData),
                                                           convolutionPathNote(g, .backwardWeight))
            return [
                SelfTestCheck(name: checkName("conv2dForward", dtype), shape: g.shortDescription) { c in
                    let x = c.pair(c.uniform(g.inputShape), dtype), w = c.pair(c.uniform(g.weightShape), dtype)
                    let y = c.output(g.outputShape, dtype: dtype)
                    c.run { backend, side in backend.conv2dForward(output: side(y), input: side(x), weight: side(w), geometry: g) }
                    c.compare(nil, y, tolerance, note: forward)
                },
                SelfTestCheck(name: checkName("conv2dBackwardData", dtype), shape: g.shortDescription) { c in
                    let dy = c.pair(c.uniform(g.outputShape), dtype), w = c.pair(c.uniform(g.weightShape), dtype)
                    let dx = c.output(g.inputShape, dtype: dtype)
                    c.run { backend, side in
                        backend.conv2dBackwardData(dInput: side(dx), dOutput: side(dy), weight: side(w), geometry: g)
                    }
                    c.compare(nil, dx, tolerance, note: backwardData)
                },
                // Note [KRSC weights kept for the data gradient] (CUDA): a data gradient told its weight is
                // the forward's reads what that forward derived from it; one told otherwise must not. The
                // weight changes between the forwards, and again before the second data gradient.
                SelfTestCheck(name: checkName("conv2dBackwardData", dtype) + " after forward", shape: g.shortDescription) { c in
                    let x = c.pair(c.uniform(g.inputShape), dtype), dy = c.pair(c.uniform(g.outputShape), dtype)
                    let w = c.pair(c.uniform(g.weightShape), dtype), w2 = c.pair(c.uniform(g.weightShape), dtype)
                    let w3 = c.pair(c.uniform(g.weightShape), dtype)
                    let y = c.output(g.outputShape, dtype: dtype)
                    let dxAsInForward = c.output(g.inputShape, dtype: dtype), dxChanged = c.output(g.inputShape, dtype: dtype)
                    c.run { backend, side in
                        backend.conv2dForward(output: side(y), input: side(x), weight: side(w), geometry: g)
                        backend.copy(side(w2), to: side(w))
                        backend.conv2dForward(output: side(y), input: side(x), weight: side(w), geometry: g)
                        backend.conv2dBackwardData(dInput: side(dxAsInForward), dOutput: side(dy), weight: side(w),
                                                   geometry: g, weightAsInForward: true)
                        backend.copy(side(w3), to: side(w))
                        backend.conv2dBackwardData(dInput: side(dxChanged), dOutput: side(dy), weight: side(w),
                                                   geometry: g, weightAsInForward: false)
                    }
                    c.compare("dInput", dxAsInForward, tolerance, note: backwardData)
                    c.compare("dInput after a change", dxChanged, tolerance)
                },
                SelfTestCheck(name: checkName("conv2dBackwardWeight", dtype), shape: g.shortDescription) { c in
                    let x = c.pair(c.uniform(g.inputShape), dtype), dy = c.pair(c.uniform(g.outputShape), dtype)
                    let dw = c.output(g.weightShape)
                    c.run { backend, side in
                        backend.conv2dBackwardWeight(dWeight: side(dw), input: side(x), dOutput: side(dy), geometry: g)
                    }
                    c.compare(nil, dw, tolerance, note: backwardWeight)
                },
            ]
        }
    }
}

extension BackendSelfTest {
    /// `path: 1x1 GEMM` (cudnn, im2col GEMM): how the CUDA backend ran this direction; nil on other backends.
    func convolutionPathNote(_ g: Conv2dGeometry, _ direction: ConvolutionDirection) -> String? {
        (backend as? CUDABackend).map { "path: \($0.convolutionPath(g, direction).rawValue)" }
    }
}

extension Conv2dGeometry {
    /// `3->64 k3 s1 p1 8x32x32`: the table's shape column.
    var shortDescription: String {
        "\(inputChannels)->\(outputChannels) k\(kernelSize) s\(stride) p\(padding) \(batch)x\(inputHeight)x\(inputWidth)"
    }
}
