import CCUDA
import CohortKernels
import CohortTensor

/// What `cohort bench convs` needs from inside the backend: device timing
/// with CUDA events over a captured graph, the algorithms cuDNN's Find
/// reported for each convolution, a cuBLAS GEMM of any shape, and the
/// batch-norm kernels one at a time. Nothing here runs in training.
extension CUDABackend {
    // MARK: Timing

    /// Milliseconds per call of `body` on the device. `body` must already
    /// have run (algorithm searches and scratch growth happen at first use),
    /// then it is captured `repetitions` times into one CUDA graph, so the
    /// calls follow each other with no host launch gaps, and each of
    /// `trials` replays is timed between two CUDA events; the median replay
    /// over `repetitions` is the result. A body that cannot be captured (or a
    /// driver without graphs) runs `repetitions` times eagerly between the
    /// events instead (`captured` false: host launch time may then show).
    /// `capture: false` skips the capture: for bodies that allocate, which
    /// inside a capture is fatal (a widened bf16 convolution, Note [bf16 convolutions]).
    public func deviceMilliseconds(repetitions: Int = 20, trials: Int = 3, capture: Bool = true,
                                   _ body: () -> Void) throws -> (milliseconds: Double, captured: Bool) {
        precondition(repetitions > 0 && trials > 0)
        let d = driver
        guard let create = d.cuEventCreate, let record = d.cuEventRecord, let wait = d.cuEventSynchronize,
              let destroy = d.cuEventDestroy_v2, let elapsed = d.cuEventElapsedTime_v2 ?? d.cuEventElapsedTime else {
            throw CUDAGraphError("the driver lacks CUDA events with timing (cuEventCreate, cuEventElapsedTime)")
        }
        context.makeCurrent()
        var start: CUevent?, end: CUevent?
        try checkCUDA(create(&start, 0), "cuEventCreate")
        defer { _ = destroy(start!) }
        try checkCUDA(create(&end, 0), "cuEventCreate")
        defer { _ = destroy(end!) }
        let graph = capture ? try? captureGraph { for _ in 0..<repetitions { body() } } : nil
        var times: [Double] = []
        for _ in 0..<trials {
            try checkCUDA(record(start!, stream.stream), "cuEventRecord")
            if let graph { try graph.launch() } else { for _ in 0..<repetitions { body() } }
            try checkCUDA(record(end!, stream.stream), "cuEventRecord")
            try checkCUDA(wait(end!), "cuEventSynchronize", "after \(repetitions) timed calls")
            var milliseconds: Float = 0
            try checkCUDA(elapsed(&milliseconds, start!, end!), "cuEventElapsedTime")
            times.append(Double(milliseconds) / Double(repetitions))
        }
        return (times.sorted()[times.count / 2], graph != nil)
    }

    // MARK: Convolution algorithms

    /// The algorithm cuDNN's Find chose for one direction of a geometry, and
    /// every candidate it reported; nil until that direction has run once.
    public func convolutionAlgorithm(_ g: Conv2dGeometry, dtype: DType,
                                     _ direction: ConvolutionDirection) -> ConvolutionAlgorithmReport? {
        guard let plan = convolutions[ConvolutionPlan.Key(geometry: g, dtype: dtype, deterministic: deterministicAlgorithms)] else { return nil }
        let choice: ConvolutionPlan.Choice?
        switch direction {
        case .forward: choice = plan.forward
        case .backwardData: choice = plan.backwardData
        case .backwardWeight: choice = plan.backwardFilter
        }
        return choice.map {
            ConvolutionAlgorithmReport(algorithm: Int($0.algorithm), mathType: Int($0.mathType),
                                       workspaceBytes: $0.workspaceBytes, widened: $0.widened, candidates: $0.candidates)
        }
    }

    // MARK: GEMM

    /// C = A^T B in cuBLAS's column-major terms ("TN": A is k x m with lda
    /// k, B is k x n with ldb k, both k-contiguous, C is m x n with ldc m),
    /// A, B and C of one dtype (bf16 or float32), float32 accumulation
    /// (CUBLAS_COMPUTE_32F), as the linear layer runs it.
    public func gemmTN(m: Int, n: Int, k: Int, a: Tensor, b: Tensor, c: Tensor) {
        require(a.elementCount >= k * m && b.elementCount >= k * n && c.elementCount >= m * n && c.dtype == a.dtype,
                "gemmTN: m \(m) n \(n) k \(k) does not fit A \(a), B \(b), C \(c)")
        context.makeCurrent()
        gemm("gemmTN", transposeA: true, transposeB: false, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: k, beta: 0,
             c: c.devicePointer, cType: c.dtype, ldc: m)
    }

    // MARK: Batch-norm kernels

    /// Runs one kernel of a batch norm over `t` exactly as the ops launch it
    /// (vector or scalar, Note [Vector batch norm]); the finalize kernels
    /// read the partial sums the last partials kernel of that kind left.
    public func runBatchNormKernel(_ kernel: BatchNormKernel, _ t: BatchNormTensors, fuseReLU: Bool) {
        let (rows, channels) = (t.x.elementCount / t.scale.elementCount, t.scale.elementCount)
        let y = fuseReLU ? t.y : t.dy
        let vector = usesVectorBatchNorm(t.x.dtype, channels: channels, t.x, t.y, t.dy, t.dx)
        context.makeCurrent()
        switch kernel {
        case .statisticsPartials:
            _ = batchNormStatistics(input: t.x, rows: rows, channels: channels, vector: vector)
        case .statisticsFinalize:
            let slices = batchNormPartialSlices(.statisticsPartials, rows: rows, channels: channels, vector: vector)
            batchNormStatisticsFinalize((slices.partial, slices.count), input: t.x, savedMean: t.mean, savedInvStd: t.invStd,
                                        runningMean: t.runningMean, runningVar: t.runningVar, rows: rows,
                                        channels: channels, momentum: 0.1, epsilon: 1e-5)
        case .normalize:
            batchNormNormalize(output: t.y, input: t.x, scale: t.scale, shift: t.shift, mean: t.mean, invStd: t.invStd,
                               rows: rows, channels: channels, fuseReLU: fuseReLU, vector: vector)
        case .backwardPartials:
            _ = batchNormBackwardSums(dOutput: t.dy, input: t.x, output: y, mean: t.mean, invStd: t.invStd, rows: rows,
                                      channels: channels, fuseReLU: fuseReLU, vector: vector)
        case .backwardFinalize:
            let slices = batchNormPartialSlices(.backwardPartials, rows: rows, channels: channels, vector: vector)
            batchNormBackwardFinalize((slices.partial, slices.count), dScale: t.dScale, dShift: t.dShift, channels: channels)
        case .inputGradient:
            batchNormInputGradient(dInput: t.dx, dOutput: t.dy, input: t.x, output: y, scale: t.scale, mean: t.mean,
                                   invStd: t.invStd, dScale: t.dScale, dShift: t.dShift, rows: rows,
                                   channels: channels, fuseReLU: fuseReLU, vector: vector)
        }
    }

    /// Bytes `kernel` reads and writes in DRAM terms: each activation tensor
    /// once, the partial sums (slices x 2 x C doubles), per-channel vectors.
    public func batchNormKernelBytes(_ kernel: BatchNormKernel, _ t: BatchNormTensors, fuseReLU: Bool) -> Int {
        let (rows, channels) = (t.x.elementCount / t.scale.elementCount, t.scale.elementCount)
        let vector = usesVectorBatchNorm(t.x.dtype, channels: channels, t.x, t.y, t.dy, t.dx)
        let activation = t.x.byteCount, perChannel = channels * 4
        func partials(_ kind: BatchNormKernel) -> Int {
            batchNormPartialSlices(kind, rows: rows, channels: channels, vector: vector).count * 2 * channels * 8
        }
        switch kernel {
        case .statisticsPartials: return activation + partials(.statisticsPartials)
        case .statisticsFinalize: return partials(.statisticsPartials) + 6 * perChannel
        case .normalize: return 2 * activation + 4 * perChannel
        case .backwardPartials: return (fuseReLU ? 3 : 2) * activation + partials(.backwardPartials) + 2 * perChannel
        case .backwardFinalize: return partials(.backwardPartials) + 2 * perChannel
        case .inputGradient: return (fuseReLU ? 4 : 3) * activation + 5 * perChannel
        }
    }

    /// Whether `runBatchNormKernel` takes the vector kernels for `t`.
    public func usesVectorBatchNorm(_ t: BatchNormTensors) -> Bool {
        usesVectorBatchNorm(t.x.dtype, channels: t.scale.elementCount, t.x, t.y, t.dy, t.dx)
    }
}

/// A convolution's three directions.
public enum ConvolutionDirection: String, CaseIterable, Codable, Sendable {
    case forward
    case backwardData = "backward data"
    case backwardWeight = "backward weight"
}

/// What `cudnnFind*AlgorithmEx` reported for one direction of one geometry
/// (Note [Convolution algorithms]) and what the backend kept.
public struct ConvolutionAlgorithmReport: Codable, Sendable {
    public struct Candidate: Codable, Sendable {
        /// cuDNN's algorithm enum value for the direction (`cudnnConvolutionFwdAlgo_t`, ...).
        public var algorithm: Int
        /// 0 when it ran; otherwise the cuDNN status it failed with.
        public var status: Int
        public var milliseconds: Double
        public var workspaceBytes: Int
        /// 0 default, 1 tensor op, 2 tensor op allowing conversion, 3 FMA.
        public var mathType: Int
    }

    public var algorithm: Int
    public var mathType: Int
    public var workspaceBytes: Int
    /// No bf16 algorithm ran: the direction runs in float32 on widened copies (Note [bf16 convolutions]).
    public var widened: Bool
    /// Fastest first, as Find returned them.
    public var candidates: [Candidate]
}

/// The kernels of a training batch norm, in the order a step runs them.
public enum BatchNormKernel: String, CaseIterable, Codable, Sendable {
    case statisticsPartials = "statistics partials"
    case statisticsFinalize = "statistics finalize"
    case normalize = "normalise"
    case backwardPartials = "backward partials"
    case backwardFinalize = "backward finalize"
    case inputGradient = "backward dx"
}

/// The tensors of one batch norm, forward and backward: x, y, dy and dx
/// `[N, H, W, C]` in the activation dtype, the rest float32 `[C]`.
public struct BatchNormTensors {
    public var x, y, dy, dx: Tensor
    public var scale, shift, mean, invStd, runningMean, runningVar, dScale, dShift: Tensor

    public init(x: Tensor, y: Tensor, dy: Tensor, dx: Tensor, scale: Tensor, shift: Tensor, mean: Tensor, invStd: Tensor,
                runningMean: Tensor, runningVar: Tensor, dScale: Tensor, dShift: Tensor) {
        (self.x, self.y, self.dy, self.dx) = (x, y, dy, dx)
        (self.scale, self.shift, self.mean, self.invStd) = (scale, shift, mean, invStd)
        (self.runningMean, self.runningVar, self.dScale, self.dShift) = (runningMean, runningVar, dScale, dShift)
    }
}
