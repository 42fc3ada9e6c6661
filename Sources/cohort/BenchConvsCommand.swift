import ArgumentParser
import CohortCUDA
import CohortKernels
import CohortNN
import CohortTensor
import Foundation

extension ConvolutionPathPolicy: ExpressibleByArgument {}

/// `cohort bench convs`: where a ResNet-18 training step's GPU time goes, op
/// by op, to decide what to optimise next. For every distinct convolution of
/// ResNet-18 (CIFAR stem) it times the forward, data gradient and weight
/// gradient as the backend runs them, with what cuDNN's Find reported, next
/// to a cuBLAS bf16 GEMM of the same three dimensions (what a plain matrix
/// product reaches on that shape); then every batch-norm kernel and the
/// residual add and ReLU backward at their shapes, with bytes moved and GB/s.
///
/// Timing: each op runs once eagerly (algorithm search, scratch growth),
/// then `--repetitions` calls are captured in one CUDA graph and replayed
/// three times between CUDA events; the median replay / repetitions is the
/// time of one call, with no host launch gaps (`CUDABackend.deviceMilliseconds`).
struct BenchConvs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convs",
        abstract: "Time ResNet-18's convolutions (with cuDNN's choices and an equal cuBLAS GEMM) and its batch-norm kernels on a GPU.",
        discussion: """
            Needs an NVIDIA GPU. Convolutions: forward, backward data and backward weight of each \
            distinct geometry, as the backend runs them (the forward and data gradient include the \
            OIHW->KRSC weight transpose, the weight gradient its KRSC->OIHW widening: microseconds), \
            TFLOP/s counting 2*N*P*Q*K*C*R*S, the path that ran (cuDNN, or the 1x1 and im2col GEMM \
            paths with their gather, im2col and scatter kernels included; --conv-path cudnn or \
            COHORT_CONV_PATH=cudnn keeps every convolution on cuDNN), cuDNN's chosen algorithm and \
            every candidate Find timed, and a cuBLAS GEMM (bf16 in and out, fp32 accumulation, TN) \
            of the implicit-GEMM dimensions: forward m=K n=NPQ k=CRS, backward data m=CRS n=NPQ k=K, backward weight \
            m=CRS n=K k=NPQ (the same FLOPs). Then the batch-norm kernels, add and ReLU backward \
            at ResNet-18's activation shapes with the bytes each moves. Per-step totals weight \
            every row by how often a training step runs it.
            """)

    @Option(help: "The GPU: cuda or cuda:N.")
    var device: Device = .cuda(0)

    @Option(help: "Batch size (images).")
    var batch: Int = 512

    @Option(help: "Activation precision: bf16 (float32 accumulation) or fp32 (TF32 convolutions unless --no-tf32).")
    var precision: Precision = .bfloat16

    @Option(help: "Calls per timed graph replay; the median of three replays is reported.")
    var repetitions: Int = 20

    @Flag(name: .customLong("no-tf32"), help: "Keep float32 convolutions off TF32 tensor cores.")
    var noTF32 = false

    @Option(name: .customLong("conv-path"),
            help: "auto: the 1x1 and few-channel convolutions as cuBLAS GEMMs (Note [Convolution paths]); cudnn: every convolution on cuDNN. Default: COHORT_CONV_PATH, else auto.")
    var convPath: ConvolutionPathPolicy?

    @Option(help: ArgumentHelp("Also write the results as JSON to this file.", valueName: "file"))
    var json: String?

    func validate() throws {
        guard !device.isHost else {
            throw ValidationError("cohort bench convs times cuDNN, cuBLAS and CUDA kernels: it needs an NVIDIA GPU (--device cuda)")
        }
        guard batch > 0, repetitions > 0 else { throw ValidationError("--batch and --repetitions must be positive") }
    }

    func run() throws {
        let backend: CUDABackend
        do {
            backend = try CUDABackend(deviceIndex: device.index, allowsTF32: !noTF32, convolutionPaths: convPath)
            backend.usesAlgorithmCache = false  // it prints every candidate's timing: always search
        } catch let error as ConvolutionPathPolicyError {
            throw BenchConvsError("\(error)")
        } catch {
            throw BenchConvsError("cohort bench convs needs an NVIDIA GPU with its driver, NVRTC, cuDNN and cuBLAS; "
                                  + "\(device) is not usable here: \(error)")
        }
        let dtype = precision.dtype
        print("bench convs: ResNet-18 (CIFAR) at batch \(batch) in \(precision.rawValue) on \(backend.details)")
        print("each time: one call, the median of 3 CUDA-graph replays of \(repetitions) calls between CUDA events")
        print("convolution paths: \(backend.convolutionPathPolicy.rawValue) (Note [Convolution paths]; "
              + (backend.convolutionPathPolicy == .cudnn ? "every convolution on cuDNN)"
                 : "--conv-path cudnn or COHORT_CONV_PATH=cudnn runs every one on cuDNN)"))
        var report = BenchConvsReport(device: backend.details, batch: batch, precision: precision.rawValue,
                                      repetitions: repetitions, convolutionPaths: backend.convolutionPathPolicy.rawValue)
        let filler = RandomFiller(backend: backend)
        report.convolutions = try timeConvolutions(backend, dtype, filler)
        report.memoryBound = try timeMemoryBound(backend, dtype, filler)
        report.totals = Totals(report)
        report.totals.print()
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json))
        }
    }

    // MARK: Convolutions

    /// Every distinct convolution of ResNet-18's CIFAR form and how often a training step runs it.
    func resnet18Convolutions() -> [(layers: String, geometry: Conv2dGeometry, calls: Int, needsInputGradient: Bool)] {
        func conv(_ ci: Int, _ co: Int, _ size: Int, k: Int = 3, s: Int = 1) -> Conv2dGeometry {
            Conv2dGeometry(batch: batch, inputChannels: ci, outputChannels: co, inputHeight: size, inputWidth: size,
                           kernelSize: k, stride: s, padding: k / 2)
        }
        return [
            ("conv1 (stem; no data gradient)", conv(3, 64, 32), 1, false),
            ("layer1.*.conv1/conv2", conv(64, 64, 32), 4, true),
            ("layer2.0.conv1", conv(64, 128, 32, s: 2), 1, true),
            ("layer2.0.downsample", conv(64, 128, 32, k: 1, s: 2), 1, true),
            ("layer2 3x3 (3 of 4)", conv(128, 128, 16), 3, true),
            ("layer3.0.conv1", conv(128, 256, 16, s: 2), 1, true),
            ("layer3.0.downsample", conv(128, 256, 16, k: 1, s: 2), 1, true),
            ("layer3 3x3 (3 of 4)", conv(256, 256, 8), 3, true),
            ("layer4.0.conv1", conv(256, 512, 8, s: 2), 1, true),
            ("layer4.0.downsample", conv(256, 512, 8, k: 1, s: 2), 1, true),
            ("layer4 3x3 (3 of 4)", conv(512, 512, 4), 3, true),
        ]
    }

    func timeConvolutions(_ backend: CUDABackend, _ dtype: DType, _ filler: RandomFiller) throws -> [ConvolutionRow] {
        print("\n" + pad("convolution (calls per step)", 44) + pad("direction", 16) + lpad("ms", 8) + lpad("TFLOP/s", 9)
              + "  " + pad("path or algo/math  MB", 22) + pad("GEMM m x n x k", 22) + lpad("GEMM ms", 8)
              + lpad("TFLOP/s", 9) + lpad("conv/GEMM", 10) + "  cuDNN Find (algo: ms)")
        var rows: [ConvolutionRow] = []
        for layer in resnet18Convolutions() {
            let g = layer.geometry
            let x = try filler.tensor(g.inputShape, dtype), w = try filler.tensor(g.weightShape, dtype, scale: 0.05)
            let dy = try filler.tensor(g.outputShape, dtype)
            let y = try backend.makeTensor(g.outputShape, dtype: dtype), dx = try backend.makeTensor(g.inputShape, dtype: dtype)
            let dw = try backend.makeTensor(g.weightShape, dtype: .float32)
            let (npq, crs, k) = (g.batch * g.outputHeight * g.outputWidth, g.inputChannels * g.kernelSize * g.kernelSize,
                                 g.outputChannels)
            let flops = 2 * Double(g.multiplyAdds)
            for direction in ConvolutionDirection.allCases {
                let call: () -> Void
                let gemm: (m: Int, n: Int, k: Int)
                switch direction {
                case .forward:
                    call = { backend.conv2dForward(output: y, input: x, weight: w, geometry: g) }
                    gemm = (k, npq, crs)
                case .backwardData:
                    call = { backend.conv2dBackwardData(dInput: dx, dOutput: dy, weight: w, geometry: g) }
                    gemm = (crs, npq, k)
                case .backwardWeight:
                    call = { backend.conv2dBackwardWeight(dWeight: dw, input: x, dOutput: dy, geometry: g) }
                    gemm = (crs, k, npq)
                }
                call()  // cuDNN's Find, workspace growth
                let path = backend.convolutionPath(g, direction)
                let algorithm = path == .cudnn ? backend.convolutionAlgorithm(g, dtype: dtype, direction) : nil
                // A widened direction allocates float32 copies per call: it cannot be captured.
                let time = try backend.deviceMilliseconds(repetitions: repetitions, capture: !(algorithm?.widened ?? false),
                                                          call)
                let gemmTime = try timeGEMM(backend, m: gemm.m, n: gemm.n, k: gemm.k, filler)
                let row = ConvolutionRow(layers: layer.layers, geometry: "\(g)", callsPerStep: layer.calls,
                                         inStep: direction != .backwardData || layer.needsInputGradient,
                                         direction: direction.rawValue, path: path.rawValue, milliseconds: time.milliseconds,
                                         tflops: flops / time.milliseconds / 1e9, captured: time.captured,
                                         algorithm: algorithm,
                                         gemm: GEMMRow(m: gemm.m, n: gemm.n, k: gemm.k, milliseconds: gemmTime,
                                                       tflops: flops / gemmTime / 1e9))
                row.print()
                rows.append(row)
            }
        }
        return rows
    }

    /// One bf16 cuBLAS GEMM (TN, fp32 accumulation) of m x n x k, in milliseconds.
    func timeGEMM(_ backend: CUDABackend, m: Int, n: Int, k: Int, _ filler: RandomFiller) throws -> Double {
        let a = try filler.tensor([k * m], .bfloat16, scale: 0.05), b = try filler.tensor([k * n], .bfloat16)
        let c = try backend.makeTensor([m * n], dtype: .bfloat16)
        let call = { backend.gemmTN(m: m, n: n, k: k, a: a, b: b, c: c) }
        call()
        return try backend.deviceMilliseconds(repetitions: repetitions, call).milliseconds
    }

    // MARK: Batch norm, add, ReLU backward

    func timeMemoryBound(_ backend: CUDABackend, _ dtype: DType, _ filler: RandomFiller) throws -> [KernelRow] {
        print("\n" + pad("memory-bound kernel", 22) + pad("shape", 22) + pad("relu", 6) + pad("path", 8) + lpad("calls", 6)
              + lpad("us", 9) + lpad("MB", 9) + lpad("GB/s", 8))
        var rows: [KernelRow] = []
        // (channels, size, batch norms with a fused ReLU per step, without): stem + layer1, then layers 2-4.
        for (channels, size, withReLU, withoutReLU) in [(64, 32, 3, 2), (128, 16, 2, 3), (256, 8, 2, 3), (512, 4, 2, 3)] {
            let shape: Shape = [batch, size, size, channels]
            let t = try BatchNormTensors(
                x: filler.tensor(shape, dtype), y: backend.makeTensor(shape, dtype: dtype), dy: filler.tensor(shape, dtype),
                dx: backend.makeTensor(shape, dtype: dtype), scale: filler.tensor([channels], .float32, offset: 1),
                shift: filler.tensor([channels], .float32), mean: backend.makeTensor([channels], dtype: .float32),
                invStd: backend.makeTensor([channels], dtype: .float32),
                runningMean: filler.tensor([channels], .float32), runningVar: filler.tensor([channels], .float32, offset: 1),
                dScale: backend.makeTensor([channels], dtype: .float32), dShift: backend.makeTensor([channels], dtype: .float32))
            let path = backend.usesVectorBatchNorm(t) ? "bf16x8" : "scalar"
            // Once through the ops: saved statistics, partial sums and dScale/dShift hold real values.
            backend.batchNormForwardTraining(output: t.y, input: t.x, scale: t.scale, shift: t.shift,
                                             runningMean: t.runningMean, runningVar: t.runningVar, savedMean: t.mean,
                                             savedInvStd: t.invStd, momentum: 0.1, epsilon: 1e-5, fuseReLU: true)
            for kernel in BatchNormKernel.allCases {
                let readsReLU = [.normalize, .backwardPartials, .inputGradient].contains(kernel)
                for fuseReLU in readsReLU ? [false, true] : [false] {
                    let call = { backend.runBatchNormKernel(kernel, t, fuseReLU: fuseReLU) }
                    call()
                    let calls = readsReLU ? (fuseReLU ? withReLU : withoutReLU) : withReLU + withoutReLU
                    let time = try backend.deviceMilliseconds(repetitions: repetitions, call)
                    let row = KernelRow(kernel: kernel.rawValue, shape: shape.dimensions, relu: readsReLU ? fuseReLU : nil, path: path,
                                        callsPerStep: calls, milliseconds: time.milliseconds, captured: time.captured,
                                        bytes: backend.batchNormKernelBytes(kernel, t, fuseReLU: fuseReLU),
                                        forward: [.statisticsPartials, .statisticsFinalize, .normalize].contains(kernel))
                    row.print()
                    rows.append(row)
                }
            }
            // Per block: the forward's add+ReLU, and in the backward the ReLU mask and the gradient sum (2 blocks per width).
            let elementwise: [(String, Bool, () -> Void)] = [
                ("add+relu", true, { backend.add(output: t.y, t.x, t.dy, fuseReLU: true) }),
                ("reluBackward", false, { backend.reluBackward(dInput: t.dx, dOutput: t.dy, output: t.y) }),
                ("add", false, { backend.add(output: t.dx, t.dx, t.dy, fuseReLU: false) }),
            ]
            for (name, forward, call) in elementwise {
                call()
                let time = try backend.deviceMilliseconds(repetitions: repetitions, call)
                let row = KernelRow(kernel: name, shape: shape.dimensions, relu: nil, path: dtype == .bfloat16 ? "bf16x8" : "fp32",
                                    callsPerStep: 2, milliseconds: time.milliseconds, captured: time.captured,
                                    bytes: 3 * t.x.byteCount, forward: forward)
                row.print()
                rows.append(row)
            }
        }
        return rows
    }
}

// MARK: Results

struct BenchConvsReport: Codable {
    var device: String
    var batch: Int
    var precision: String
    var repetitions: Int
    /// `auto` or `cudnn` (Note [Convolution paths]); each row says which path it ran.
    var convolutionPaths: String
    var timing = "one call: median of 3 CUDA-graph replays of `repetitions` calls, CUDA events"
    var convolutions: [ConvolutionRow] = []
    var memoryBound: [KernelRow] = []
    var totals = Totals()
}

struct GEMMRow: Codable {
    var m, n, k: Int
    var milliseconds: Double
    var tflops: Double
}

struct ConvolutionRow: Codable {
    var layers: String
    var geometry: String
    var callsPerStep: Int
    /// False for the stem's data gradient, which a training step skips.
    var inStep: Bool
    var direction: String
    /// `cudnn`, `1x1 GEMM` or `im2col GEMM` (Note [Convolution paths]).
    var path: String
    var milliseconds: Double
    var tflops: Double
    /// False: timed eagerly (a widened bf16 direction), host launch time may show.
    var captured: Bool
    /// cuDNN's choice (nil on the GEMM paths).
    var algorithm: ConvolutionAlgorithmReport?
    var gemm: GEMMRow

    func print() {
        let choice = path != ConvolutionPath.cudnn.rawValue ? path : algorithm.map {
            $0.widened ? "fp32 widened" : "\($0.algorithm)/\($0.mathType)  " + String(format: "%6.1f MB", Double($0.workspaceBytes) / 1e6)
        } ?? "?"
        let find = (algorithm?.candidates ?? []).map {
            $0.status == 0 ? "\($0.algorithm): " + String(format: "%.3f", $0.milliseconds) : "\($0.algorithm): status \($0.status)"
        }.joined(separator: ", ")
        Swift.print(pad("\(geometry) (x\(callsPerStep))", 44) + pad(direction + (inStep ? "" : "*"), 16)
                    + lpad(String(format: "%.3f", milliseconds), 8) + lpad(String(format: "%.1f", tflops), 9) + "  "
                    + pad(choice, 22) + pad("\(gemm.m) x \(gemm.n) x \(gemm.k)", 22)
                    + lpad(String(format: "%.3f", gemm.milliseconds), 8) + lpad(String(format: "%.1f", gemm.tflops), 9)
                    + lpad(String(format: "%.2fx", milliseconds / gemm.milliseconds), 10) + "  " + find
                    + (captured ? "" : "  (eager)"))
    }
}

struct KernelRow: Codable {
    var kernel: String
    var shape: [Int]
    /// Whether the fused ReLU is on, for kernels that read it (nil: the same kernel either way).
    var relu: Bool?
    /// bf16x8 (Note [Vector batch norm], [Vector bf16 access]), scalar, or fp32.
    var path: String
    var callsPerStep: Int
    var milliseconds: Double
    var captured: Bool
    var bytes: Int
    /// Part of the forward pass (else the backward).
    var forward: Bool
    var gigabytesPerSecond: Double

    init(kernel: String, shape: [Int], relu: Bool?, path: String, callsPerStep: Int, milliseconds: Double, captured: Bool,
         bytes: Int, forward: Bool) {
        (self.kernel, self.shape, self.relu, self.path, self.callsPerStep) = (kernel, shape, relu, path, callsPerStep)
        (self.milliseconds, self.captured, self.bytes, self.forward) = (milliseconds, captured, bytes, forward)
        gigabytesPerSecond = Double(bytes) / milliseconds / 1e6
    }

    func print() {
        Swift.print(pad(kernel, 22) + pad("\(shape)", 22) + pad(relu.map { $0 ? "yes" : "no" } ?? "-", 6) + pad(path, 8)
                    + lpad("x\(callsPerStep)", 6) + lpad(String(format: "%.1f", milliseconds * 1000), 9)
                    + lpad(String(format: "%.1f", Double(bytes) / 1e6), 9) + lpad(String(format: "%.0f", gigabytesPerSecond), 8)
                    + (captured ? "" : "  (eager)"))
    }
}

/// Milliseconds per training step, each row weighted by its calls per step.
struct Totals: Codable {
    var convolutionForward = 0.0, convolutionBackwardData = 0.0, convolutionBackwardWeight = 0.0
    var gemmEquivalent = 0.0
    var batchNormForward = 0.0, batchNormBackward = 0.0
    var addAndReLU = 0.0
    var batchNormAndElementwiseBytes = 0

    init() {}

    init(_ report: BenchConvsReport) {
        for row in report.convolutions where row.inStep {
            let weight = Double(row.callsPerStep)
            switch ConvolutionDirection(rawValue: row.direction) {
            case .forward: convolutionForward += weight * row.milliseconds
            case .backwardData: convolutionBackwardData += weight * row.milliseconds
            default: convolutionBackwardWeight += weight * row.milliseconds
            }
            gemmEquivalent += weight * row.gemm.milliseconds
        }
        for row in report.memoryBound {
            let weight = Double(row.callsPerStep)
            if row.kernel.hasPrefix("add") || row.kernel == "reluBackward" {
                addAndReLU += weight * row.milliseconds
            } else if row.forward {
                batchNormForward += weight * row.milliseconds
            } else {
                batchNormBackward += weight * row.milliseconds
            }
            batchNormAndElementwiseBytes += row.callsPerStep * row.bytes
        }
    }

    func print() {
        let convolutions = convolutionForward + convolutionBackwardData + convolutionBackwardWeight
        let memory = batchNormForward + batchNormBackward + addAndReLU
        Swift.print("\nper training step (each row times its calls per step; * rows are not in a step):")
        Swift.print(String(format: "  convolutions        %8.3f ms  (forward %.3f, backward data %.3f, backward weight %.3f)",
                           convolutions, convolutionForward, convolutionBackwardData, convolutionBackwardWeight))
        Swift.print(String(format: "  the same as GEMMs   %8.3f ms  (cuBLAS bf16, the implicit-GEMM dimensions)", gemmEquivalent))
        Swift.print(String(format: "  batch norm          %8.3f ms  (forward %.3f, backward %.3f)",
                           batchNormForward + batchNormBackward, batchNormForward, batchNormBackward))
        Swift.print(String(format: "  add, ReLU backward  %8.3f ms", addAndReLU))
        Swift.print(String(format: "  memory-bound total  %8.3f ms for %.0f MB: %.0f GB/s", memory,
                           Double(batchNormAndElementwiseBytes) / 1e6, Double(batchNormAndElementwiseBytes) / memory / 1e6))
        Swift.print(String(format: "  all of the above   %8.3f ms", convolutions + memory))
    }
}

/// Device tensors of random values: up to 1 Mi values from a fixed seed,
/// repeated by device copies beyond that (values do not change the timing,
/// and a GEMM operand can reach 300 M elements).
struct RandomFiller {
    let backend: CUDABackend
    private let pattern: [Float]

    init(backend: CUDABackend) {
        self.backend = backend
        var random = SplitMix64(seed: 0x5EED)
        pattern = (0..<(1 << 20)).map { _ in Float(random.next() >> 40) / Float(1 << 24) * 2 - 1 }
    }

    /// Uniform on offset + scale * [-1, 1), in `dtype`.
    func tensor(_ shape: Shape, _ dtype: DType, scale: Float = 1, offset: Float = 0) throws -> Tensor {
        let count = shape.elementCount, first = min(count, pattern.count)
        let host = Tensor(pattern.prefix(first).map { offset + scale * $0 }, shape: [first])
        let wide = try backend.makeTensor([first], dtype: .float32)
        backend.upload(host, to: wide)
        let result = try backend.makeTensor(shape, dtype: dtype)
        backend.copy(wide, to: result.view(elementOffset: 0, shape: [first]))
        var filled = first
        while filled < count {
            let step = min(filled, count - filled)
            backend.copy(result.view(elementOffset: 0, shape: [step]), to: result.view(elementOffset: filled, shape: [step]))
            filled += step
        }
        return result
    }
}

struct BenchConvsError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

private func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text + " " : text.padding(toLength: width, withPad: " ", startingAt: 0)
}

private func lpad(_ text: String, _ width: Int) -> String {
    text.count >= width ? " " + text : String(repeating: " ", count: width - text.count) + text
}
