import CohortCUDA
import CohortKernels
import CohortNN
import CohortOptim
import CohortTensor
import Foundation

/// Measures training throughput: full steps (forward, loss, backward,
/// optimiser) on random data already on the device, so the figure is the
/// engine's and not the data pipeline's. PyTorch's reference figures are
/// measured the same way (see docs/benchmarks.md). Steps go through
/// `CapturedStep`: on a backend with graphs the timed steps are replays of
/// one captured step (unless `graphs` is false), else eager.
public struct ThroughputBenchmark {
    public struct Result: Codable, Sendable {
        public var model: String
        public var backend: String
        public var precision: String
        public var batchSize: Int
        public var warmupSteps: Int
        public var timedSteps: Int
        /// Median seconds of one step over the timed steps.
        public var medianStepSeconds: Double
        public var imagesPerSecond: Double
        /// Seconds for an epoch of 50,000 images at the median step time.
        public var epochSeconds: Double
        /// Whether the timed steps replayed a captured graph.
        public var graphs: Bool
        /// Why they did not (graphs off, the backend has none), or the graph's size.
        public var graphNote: String
        /// The device caching allocator's high-water mark over this batch size's
        /// model, warm-up and timed steps (the CUDA backend; nil elsewhere).
        public var peakMemoryBytes: Int?
    }

    public var architecture: ModelArchitecture
    public var precision: Precision
    public var batchSize: Int
    public var warmupSteps: Int
    public var timedSteps: Int
    /// Captures the step in a graph where the backend can.
    public var graphs: Bool

    public init(architecture: ModelArchitecture, precision: Precision = .float32, batchSize: Int,
                warmupSteps: Int = 2, timedSteps: Int = 5, graphs: Bool = true) {
        precondition(batchSize > 0 && warmupSteps >= 0 && timedSteps > 0)
        self.architecture = architecture
        self.precision = precision
        self.batchSize = batchSize
        self.warmupSteps = warmupSteps
        self.timedSteps = timedSteps
        self.graphs = graphs
    }

    public func run(on backend: Backend) throws -> Result {
        guard precision == .float32 || backend.supportsBFloat16 else {
            throw BackendUnavailable(description: "the \(backend.name) backend computes in float32 only; use --precision fp32")
        }
        let deviceAllocator = (backend as? CUDABackend)?.allocator
        deviceAllocator?.resetPeakBytesInUse()
        let model = try architecture.build(backend: backend, seed: 0, precision: precision)
        let criterion = try SoftmaxCrossEntropy(backend: backend)
        let optimizer = try Optimizer(store: model.store, configuration: OptimizerConfiguration(momentum: 0.9, weightDecay: 5e-4))
        var generator = SplitMix64(seed: 1)
        let hostImages = try backend.makeTensor(copying: Tensor(
            (0..<(batchSize * 32 * 32 * 3)).map { _ in generator.nextNormal() }, shape: [batchSize, 32, 32, 3]))
        let images = try backend.makeTensor(hostImages.shape, dtype: precision.dtype)
        backend.copy(hostImages, to: images)
        let labels = try backend.makeTensor(copying: Tensor.int32((0..<batchSize).map { _ in Int32(generator.next() % 10) }))

        let captured = try CapturedStep(optimizer: optimizer, warmUpSteps: max(warmupSteps, 1), graphs: graphs) {
            criterion(logits: model.forward(images, mode: .training), labels: labels)
            model.backward(criterion.backward())
        }
        func step() throws { try captured.run(learningRate: 0.01, inputs: [images, labels]) }
        // The warm-up, then (with graphs) the step that captures, untimed.
        for _ in 0..<(captured.warmUpSteps + (captured.usesGraphs ? 1 : 0)) { try step() }
        backend.synchronize()
        (backend as? OpProfiler)?.isRecording = true
        defer { (backend as? OpProfiler)?.isRecording = false }
        var durations: [Double] = []
        for _ in 0..<timedSteps {
            let start = DispatchTime.now().uptimeNanoseconds
            try step()
            backend.synchronize()
            durations.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        let median = durations.sorted()[durations.count / 2]
        let replayed = captured.lastStepReplayed && captured.replays >= timedSteps
        let note = captured.fallbackReason ?? (replayed ? captured.graphSummary ?? "graph" : "graphs on but steps were eager")
        return Result(model: architecture.rawValue, backend: backend.name, precision: precision.rawValue, batchSize: batchSize,
                      warmupSteps: warmupSteps, timedSteps: timedSteps, medianStepSeconds: median,
                      imagesPerSecond: Double(batchSize) / median, epochSeconds: 50_000 / Double(batchSize) * median,
                      graphs: replayed, graphNote: note, peakMemoryBytes: deviceAllocator?.peakBytesInUse)
    }
}
