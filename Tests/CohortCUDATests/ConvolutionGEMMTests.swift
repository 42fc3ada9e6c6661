import CohortCUDA
import CohortKernels
import CohortTensor
import XCTest

/// Note [Convolution paths] without a GPU: which geometries leave cuDNN, and
/// the cuBLAS calls of `ConvolutionGEMMPlan` run by a textbook column-major
/// GEMM (BLAS's definition of `gemm`, with cuBLAS's checks on the leading
/// dimensions) on matrices built from their definitions, against the
/// reference backend's convolutions. The kernels that build those matrices
/// are checked against the same definitions in KernelEmulationTests; the GPU
/// self-test then runs the whole path against the reference.
final class ConvolutionGEMMTests: XCTestCase {
    func conv(_ ci: Int, _ co: Int, _ h: Int, _ w: Int, k: Int, s: Int, p: Int, batch: Int = 2) -> Conv2dGeometry {
        Conv2dGeometry(batch: batch, inputChannels: ci, outputChannels: co, inputHeight: h, inputWidth: w,
                       kernelSize: k, stride: s, padding: p)
    }

    func testResNet18PathsAndTheCuDNNPolicy() {
        let shortcuts = [conv(64, 128, 32, 32, k: 1, s: 2, p: 0, batch: 512), conv(128, 256, 16, 16, k: 1, s: 2, p: 0, batch: 512),
                         conv(256, 512, 8, 8, k: 1, s: 2, p: 0, batch: 512)]
        let stem = conv(3, 64, 32, 32, k: 3, s: 1, p: 1, batch: 512)
        let others = [conv(64, 64, 32, 32, k: 3, s: 1, p: 1, batch: 512), conv(64, 128, 32, 32, k: 3, s: 2, p: 1, batch: 512),
                      conv(512, 512, 4, 4, k: 3, s: 1, p: 1, batch: 512)]
        for direction in ConvolutionDirection.allCases {
            for g in shortcuts { XCTAssertEqual(ConvolutionPath.choose(g, direction), .pointwiseGEMM, "\(g) \(direction)") }
            XCTAssertEqual(ConvolutionPath.choose(stem, direction), direction == .backwardData ? .cudnn : .im2colGEMM)
            for g in others { XCTAssertEqual(ConvolutionPath.choose(g, direction), .cudnn, "\(g) \(direction)") }
            for g in shortcuts + [stem] + others { XCTAssertEqual(ConvolutionPath.choose(g, direction, policy: .cudnn), .cudnn) }
        }
        XCTAssertEqual(ConvolutionGEMMPlan(stem, .im2colGEMM).ld, 32)
        XCTAssertEqual(ConvolutionGEMMPlan(shortcuts[0], .pointwiseGEMM).ld, 64)
        // Off the GEMM paths: padding on a 1x1, 8 input channels, a padded row over 64 columns, 2^31 elements.
        XCTAssertEqual(ConvolutionPath.choose(conv(16, 4, 5, 5, k: 1, s: 1, p: 1), .forward), .cudnn)
        XCTAssertEqual(ConvolutionPath.choose(conv(4, 4, 5, 5, k: 1, s: 1, p: 1), .forward), .im2colGEMM)  // few channels
        XCTAssertEqual(ConvolutionPath.choose(conv(8, 4, 5, 5, k: 3, s: 1, p: 1), .forward), .cudnn)
        XCTAssertEqual(ConvolutionPath.choose(conv(3, 4, 9, 9, k: 5, s: 1, p: 2), .forward), .cudnn)  // 75 -> 80 columns
        XCTAssertEqual(ConvolutionPath.choose(conv(7, 4, 9, 9, k: 3, s: 1, p: 1), .forward), .im2colGEMM)  // 63 -> 64
        XCTAssertEqual(ConvolutionPath.choose(conv(64, 64, 256, 256, k: 1, s: 1, p: 0, batch: 512), .forward), .cudnn)
    }

    func testPolicyFromTheEnvironment() throws {
        XCTAssertEqual(try ConvolutionPathPolicy(environment: [:]), .auto)
        XCTAssertEqual(try ConvolutionPathPolicy(environment: ["COHORT_CONV_PATH": ""]), .auto)
        XCTAssertEqual(try ConvolutionPathPolicy(environment: ["COHORT_CONV_PATH": "cudnn"]), .cudnn)
        XCTAssertEqual(try ConvolutionPathPolicy(environment: ["COHORT_CONV_PATH": "cuDNN"]), .cudnn)
        XCTAssertEqual(try ConvolutionPathPolicy(environment: ["COHORT_CONV_PATH": "auto"]), .auto)
        XCTAssertThrowsError(try ConvolutionPathPolicy(environment: ["COHORT_CONV_PATH": "gemm"])) {
            XCTAssertTrue("\($0)".contains("COHORT_CONV_PATH=gemm") && "\($0)".contains("auto or cudnn"), "\($0)")
        }
    }

    /// 1x1 at strides 1-3 (C and K multiples of 8 and not, sizes the stride does not divide) and
    /// im2col geometries (the stem, stride 2, no padding, a 5x5 filter of one channel).
    var geometries: [Conv2dGeometry] {
        [conv(16, 24, 6, 5, k: 1, s: 1, p: 0, batch: 3), conv(5, 7, 5, 4, k: 1, s: 1, p: 0),
         conv(24, 16, 9, 7, k: 1, s: 2, p: 0, batch: 3), conv(12, 8, 8, 6, k: 1, s: 2, p: 0), conv(7, 3, 9, 7, k: 1, s: 3, p: 0),
         conv(3, 16, 8, 8, k: 3, s: 1, p: 1), conv(3, 5, 7, 9, k: 3, s: 1, p: 1, batch: 3), conv(5, 7, 9, 7, k: 3, s: 2, p: 0),
         conv(6, 10, 7, 9, k: 3, s: 1, p: 0), conv(1, 4, 6, 5, k: 5, s: 1, p: 2), conv(4, 8, 6, 5, k: 3, s: 2, p: 1)]
    }

    func testGEMMCallsComputeTheReferenceConvolutions() {
        let reference = ReferenceBackend()
        var random = SplitMix64(seed: 7)
        func uniform(_ shape: Shape) -> Tensor {
            Tensor((0..<shape.elementCount).map { _ in random.nextUniform(-1, 1) }, shape: shape)
        }
        for g in geometries {
            let path = ConvolutionPath.choose(g, .forward)
            XCTAssertNotEqual(path, .cudnn, "\(g)")
            let plan = ConvolutionGEMMPlan(g, path)
            let x = uniform(g.inputShape), w = uniform(g.weightShape), dy = uniform(g.outputShape)
            let xHat = operandMatrix(x.toArray(), plan), wHat = paddedWeight(w.toArray(), plan)

            let y = columnMajorGEMM(plan.forward, a: wHat, b: xHat)
            let expectedY = Tensor.zeros(g.outputShape)
            reference.conv2dForward(output: expectedY, input: x, weight: w, geometry: g)
            assertClose(y, expectedY.toArray(), "forward \(g)")

            let dwHat = columnMajorGEMM(plan.backwardWeight, a: xHat, b: dy.toArray())
            let dw = (0..<g.outputChannels).flatMap { row in dwHat[(row * plan.ld)..<(row * plan.ld + plan.depth)] }
            let expectedDW = Tensor.zeros(g.weightShape)
            reference.conv2dBackwardWeight(dWeight: expectedDW, input: x, dOutput: dy, geometry: g)
            assertClose(dw, expectedDW.toArray(), "backward weight \(g)")

            guard ConvolutionPath.choose(g, .backwardData) == .pointwiseGEMM else {
                XCTAssertEqual(ConvolutionPath.choose(g, .backwardData), .cudnn, "\(g)")
                continue
            }
            let dxHat = columnMajorGEMM(plan.backwardData, a: w.toArray(), b: dy.toArray())
            let expectedDX = Tensor.zeros(g.inputShape)
            reference.conv2dBackwardData(dInput: expectedDX, dOutput: dy, weight: w, geometry: g)
            assertClose(scattered(dxHat, plan), expectedDX.toArray(), "backward data \(g)")
        }
    }

    // MARK: The matrices, from their definitions (ConvolutionGEMMPlan's documentation)

    /// X̂ [M, ld]: row (n, p, q), column (c*k + r)*k + s = x[n, p*stride - pad + r, q*stride - pad + s, c] or 0.
    func operandMatrix(_ x: [Float], _ plan: ConvolutionGEMMPlan) -> [Float] {
        let g = plan.geometry, k = g.kernelSize
        var matrix = [Float](repeating: 0, count: plan.rows * plan.ld)
        for n in 0..<g.batch {
            for p in 0..<g.outputHeight {
                for q in 0..<g.outputWidth {
                    let row = (n * g.outputHeight + p) * g.outputWidth + q
                    for c in 0..<g.inputChannels {
                        for r in 0..<k {
                            for s in 0..<k {
                                let h = p * g.stride - g.padding + r, w = q * g.stride - g.padding + s
                                guard h >= 0 && h < g.inputHeight && w >= 0 && w < g.inputWidth else { continue }
                                matrix[row * plan.ld + (c * k + r) * k + s] =
                                    x[((n * g.inputHeight + h) * g.inputWidth + w) * g.inputChannels + c]
                            }
                        }
                    }
                }
            }
        }
        return matrix
    }

    /// Ŵ [K, ld]: the OIHW weight's rows, zero-padded.
    func paddedWeight(_ w: [Float], _ plan: ConvolutionGEMMPlan) -> [Float] {
        var padded = [Float](repeating: 0, count: plan.geometry.outputChannels * plan.ld)
        for row in 0..<plan.geometry.outputChannels {
            for column in 0..<plan.depth { padded[row * plan.ld + column] = w[row * plan.depth + column] }
        }
        return padded
    }

    /// dx [N, H, W, C] from dX̂ [M, C] of a 1x1 convolution: the sampled pixels' rows, 0 elsewhere.
    func scattered(_ dxHat: [Float], _ plan: ConvolutionGEMMPlan) -> [Float] {
        let g = plan.geometry, c = g.inputChannels
        var dx = [Float](repeating: 0, count: g.inputShape.elementCount)
        for n in 0..<g.batch {
            for h in stride(from: 0, to: g.inputHeight, by: g.stride) {
                for w in stride(from: 0, to: g.inputWidth, by: g.stride) {
                    let row = (n * g.outputHeight + h / g.stride) * g.outputWidth + w / g.stride
                    let pixel = (n * g.inputHeight + h) * g.inputWidth + w
                    dx.replaceSubrange((pixel * c)..<((pixel + 1) * c), with: dxHat[(row * c)..<((row + 1) * c)])
                }
            }
        }
        return dx
    }

    /// BLAS's gemm with alpha 1, beta 0: C (m x n, ldc) = op(A) op(B), every matrix column-major; A is m x k
    /// (k x m stored when transposed), B k x n (n x k stored when transposed). Checks the leading dimensions
    /// as cuBLAS does (CUBLAS_STATUS_INVALID_VALUE otherwise) and that every matrix fits its buffer.
    func columnMajorGEMM(_ call: GEMMCall, a: [Float], b: [Float]) -> [Float] {
        let (m, n, k) = (call.m, call.n, call.k)
        XCTAssertGreaterThanOrEqual(call.lda, call.transposeA ? k : m, "lda")
        XCTAssertGreaterThanOrEqual(call.ldb, call.transposeB ? n : k, "ldb")
        XCTAssertGreaterThanOrEqual(call.ldc, m, "ldc")
        // A stored: rows x columns with leading dimension lda (and likewise B).
        let (aRows, aColumns) = call.transposeA ? (k, m) : (m, k), (bRows, bColumns) = call.transposeB ? (n, k) : (k, n)
        XCTAssertLessThanOrEqual(call.lda * (aColumns - 1) + aRows, a.count, "A's extent")
        XCTAssertLessThanOrEqual(call.ldb * (bColumns - 1) + bRows, b.count, "B's extent")
        var c = [Float](repeating: .nan, count: call.ldc * (n - 1) + m)
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for l in 0..<k {
                    let aValue = call.transposeA ? a[l + i * call.lda] : a[i + l * call.lda]
                    let bValue = call.transposeB ? b[j + l * call.ldb] : b[l + j * call.ldb]
                    sum += Double(aValue) * Double(bValue)
                }
                c[i + j * call.ldc] = Float(sum)
            }
        }
        return c
    }

    /// Float32 sums of up to a few hundred products in another order: within 1e-5 of the largest value.
    func assertClose(_ actual: [Float], _ expected: [Float], _ what: String) {
        XCTAssertEqual(actual.count, expected.count, what)
        let scale = max(expected.map(abs).max() ?? 1, 1e-30)
        let worst = zip(actual, expected).map { abs($0 - $1) / scale }.max() ?? 0
        XCTAssertTrue(worst <= 1e-5, "\(what): max relative error \(worst)")
    }
}
