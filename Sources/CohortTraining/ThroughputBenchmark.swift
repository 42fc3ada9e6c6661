import CohortKernels
import CohortNN
import CohortOptim
import CohortTensor
import Foundation

/// Measures training throughput: full steps (forward, loss, backward,
/// optimiser) on random data already on the device, so the figure is the
/// engine's and not the data pipeline's. PyTorch's reference figures are
/// measured the same way (see docs/benchmarks.md).
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
    }

    public var architecture: ModelArchitecture
    public var precision: Precision
    public var batchSize: Int
    public var warmupSteps: Int
    public var timedSteps: Int

    public init(architecture: ModelArchitecture, precision: Precision = .float32, batchSize: Int,
                warmupSteps: Int = 2, timedSteps: Int = 5) {
        precondition(batchSize > 0 && warmupSteps >= 0 && timedSteps > 0)
        self.architecture = architecture
        self.precision = precision
        self.batchSize = batchSize
        self.warmupSteps = warmupSteps
        self.timedSteps = timedSteps
    }

    public func run(on backend: Backend) throws -> Result {
        guard precision == .float32 || backend.supportsBFloat16 else {
            throw BackendUnavailable(description: "the \(backend.name) backend computes in float32 only; use --precision fp32")
        }
        let model = try architecture.build(backend: backend, seed: 0, precision: precision)
        let criterion = try SoftmaxCrossEntropy(backend: backend)
        let optimizer = try Optimizer(store: model.store, configuration: OptimizerConfiguration(momentum: 0.9, weightDecay: 5e-4))
        var generator = SplitMix64(seed: 1)
        let hostImages = try backend.makeTensor(copying: Tensor(
            (0..<(batchSize * 32 * 32 * 3)).map { _ in generator.nextNormal() }, shape: [batchSize, 32, 32, 3]))
        let images = try backend.makeTensor(hostImages.shape, dtype: precision.dtype)
        backend.copy(hostImages, to: images)
        let labels = try backend.makeTensor(copying: Tensor.int32((0..<batchSize).map { _ in Int32(generator.next() % 10) }))

        func step() {
            criterion(logits: model.forward(images, mode: .training), labels: labels)
            model.backward(criterion.backward())
            optimizer.step(learningRate: 0.01)
        }
        for _ in 0..<warmupSteps { step() }
        backend.synchronize()
        var durations: [Double] = []
        for _ in 0..<timedSteps {
            let start = DispatchTime.now().uptimeNanoseconds
            step()
            backend.synchronize()
            durations.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        let median = durations.sorted()[durations.count / 2]
        return Result(model: architecture.rawValue, backend: backend.name, precision: precision.rawValue, batchSize: batchSize,
                      warmupSteps: warmupSteps, timedSteps: timedSteps, medianStepSeconds: median,
                      imagesPerSecond: Double(batchSize) / median, epochSeconds: 50_000 / Double(batchSize) * median)
    }
}
