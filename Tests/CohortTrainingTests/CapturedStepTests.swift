import CohortData
import CohortKernels
import CohortNN
import CohortOptim
import CohortTensor
import CohortTraining
import Foundation
import XCTest

/// `CapturedStep` without a GPU: the eager fallback on the reference
/// backend, and replay semantics on `TapeBackend`, a reference backend whose
/// "graph" records the calls made during capture and replays only those
/// (no Swift code of the step runs in a replay, as on CUDA).
final class CapturedStepTests: XCTestCase {
    let learningRates: [Float] = [0.1, 0.05, 0.08, 0.02, 0.04, 0.01]

    /// A small model, its optimiser and loss, and a fixed batch, on `backend`.
    struct Setup {
        let model: SmallCNN
        let optimizer: Optimizer
        let criterion: SoftmaxCrossEntropy
        let images: Tensor
        let labels: Tensor

        init(_ backend: Backend) throws {
            model = try SmallCNN(backend: backend, classCount: 10, seed: 3)
            optimizer = try Optimizer(store: model.store, configuration: OptimizerConfiguration(
                momentum: 0.9, weightDecay: 5e-4, nesterov: true))
            criterion = try SoftmaxCrossEntropy(backend: backend, labelSmoothing: 0.1)
            var generator = SplitMix64(seed: 11)
            images = try backend.makeTensor(copying: Tensor((0..<(4 * 32 * 32 * 3)).map { _ in generator.nextNormal() },
                                                             shape: [4, 32, 32, 3]))
            labels = try backend.makeTensor(copying: Tensor.int32((0..<4).map { _ in Int32(generator.next() % 10) }))
        }

        func forwardBackward() {
            criterion(logits: model.forward(images, mode: .training), labels: labels)
            model.backward(criterion.backward())
        }
    }

    /// The plain loop every variant must match: eager steps, host learning rate.
    func plainLoop(_ learningRates: [Float]) throws -> Setup {
        let setup = try Setup(ReferenceBackend())
        for learningRate in learningRates {
            setup.forwardBackward()
            setup.optimizer.step(learningRate: learningRate)
        }
        return setup
    }

    func assertSameState(_ actual: Setup, _ expected: Setup, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.model.store.parameters.toArray(), expected.model.store.parameters.toArray(),
                       "parameters", file: file, line: line)
        XCTAssertEqual(actual.model.store.statistics.toArray(), expected.model.store.statistics.toArray(),
                       "running statistics", file: file, line: line)
        XCTAssertEqual(actual.optimizer.momentumBuffer.toArray(), expected.optimizer.momentumBuffer.toArray(),
                       "momentum", file: file, line: line)
        XCTAssertEqual(actual.model.store.counters, expected.model.store.counters, "num_batches_tracked", file: file, line: line)
        XCTAssertEqual(actual.optimizer.stepCount, expected.optimizer.stepCount, "step count", file: file, line: line)
    }

    func testReferenceBackendFallsBackToEagerWithIdenticalResults() throws {
        let expected = try plainLoop(learningRates)
        let setup = try Setup(ReferenceBackend())
        let step = try CapturedStep(optimizer: setup.optimizer, warmUpSteps: 2, forwardBackward: setup.forwardBackward)
        for learningRate in learningRates { try step.run(learningRate: learningRate, inputs: [setup.images, setup.labels]) }
        assertSameState(setup, expected)
        XCTAssertEqual(step.eagerSteps, learningRates.count)
        XCTAssertEqual(step.replays, 0)
        XCTAssertFalse(step.usesGraphs)
        XCTAssertEqual(step.fallbackReason, "the reference backend has no graphs")
    }

    func testGraphsOffRunsEagerly() throws {
        let setup = try Setup(TapeBackend())
        let step = try CapturedStep(optimizer: setup.optimizer, graphs: false, forwardBackward: setup.forwardBackward)
        for learningRate in learningRates { try step.run(learningRate: learningRate) }
        assertSameState(setup, try plainLoop(learningRates))
        XCTAssertEqual(step.replays, 0)
        XCTAssertEqual(step.fallbackReason, "graphs turned off")
    }

    /// Replays reproduce the eager loop exactly, with a new learning rate at
    /// every step, and the host counters advance as if the Swift code had run.
    func testReplaysMatchThePlainLoopAndCountHostBookkeeping() throws {
        let backend = TapeBackend()
        let setup = try Setup(backend)
        let step = try CapturedStep(optimizer: setup.optimizer, warmUpSteps: 2, forwardBackward: setup.forwardBackward)
        for learningRate in learningRates { try step.run(learningRate: learningRate, inputs: [setup.images, setup.labels]) }
        assertSameState(setup, try plainLoop(learningRates))
        XCTAssertEqual(step.eagerSteps, 2)
        XCTAssertEqual(step.captures, 1)
        XCTAssertEqual(step.replays, learningRates.count - 2)
        XCTAssertTrue(step.lastStepReplayed)
        XCTAssertEqual(backend.captures, 1)
        XCTAssertGreaterThan(setup.model.store.counters.first ?? 0, 0)
    }

    /// Other input tensors, or an allocation after the capture, make the
    /// graph stale: the step warms up and captures again, results unchanged.
    func testStaleGraphIsCapturedAgain() throws {
        let backend = TapeBackend()
        let setup = try Setup(backend)
        let step = try CapturedStep(optimizer: setup.optimizer, warmUpSteps: 1, forwardBackward: setup.forwardBackward)
        for learningRate in learningRates.prefix(3) { try step.run(learningRate: learningRate, inputs: [setup.images]) }
        XCTAssertEqual([step.eagerSteps, step.captures, step.replays], [1, 1, 2])
        _ = try backend.makeTensor([16])  // e.g. an evaluation pass between epochs
        try step.run(learningRate: learningRates[3], inputs: [setup.images])
        XCTAssertEqual([step.eagerSteps, step.captures, step.replays], [2, 1, 2])
        try step.run(learningRate: learningRates[4], inputs: [setup.images])
        XCTAssertEqual([step.eagerSteps, step.captures, step.replays], [2, 2, 3])
        let other = try backend.makeTensor(copying: setup.images.reshaped([4, 32, 32, 3]))
        try step.run(learningRate: learningRates[5], inputs: [other])  // not read by the step, only compared
        XCTAssertEqual([step.eagerSteps, step.captures, step.replays], [3, 2, 3])
        assertSameState(setup, try plainLoop(learningRates))
    }

    func testProtocolDefaults() throws {
        let backend = ReferenceBackend()
        var ran = false
        XCTAssertNil(try backend.captureGraph { ran = true })
        XCTAssertFalse(ran, "a backend without graphs must not run the body")
        let staging = try backend.makeHostStagingTensor([3, 2], dtype: .int32)
        XCTAssertTrue(staging.device.isHost)
        XCTAssertEqual(staging.shape, [3, 2])
        backend.waitForUploads(from: staging)

        // optimizerStep with a device learning rate equals the host one.
        var generator = SplitMix64(seed: 5)
        func random(_ count: Int) -> Tensor { Tensor((0..<count).map { _ in generator.nextNormal() }, shape: [count]) }
        let w = random(40), g = random(40), m = random(40)
        let (w2, m2) = (Tensor(w.toArray(), shape: [40]), Tensor(m.toArray(), shape: [40]))
        let segments = [ParameterSegment(offset: 0, count: 30), ParameterSegment(offset: 30, count: 10, weightDecay: false)]
        let settings = OptimizerStepConfiguration(learningRate: 0.3, momentum: 0.9, weightDecay: 1e-3, larsTrustCoefficient: 0.01)
        backend.optimizerStep(parameters: w, gradients: g, momentumBuffer: m, segments: segments, configuration: settings)
        var ignored = settings
        ignored.learningRate = 99
        backend.optimizerStep(parameters: w2, gradients: g, momentumBuffer: m2, segments: segments, configuration: ignored,
                              learningRate: Tensor([0.3], shape: [1]))
        XCTAssertEqual(w.toArray(), w2.toArray())
        XCTAssertEqual(m.toArray(), m2.toArray())
    }

    func testAdvancingCounters() throws {
        let setup = try Setup(ReferenceBackend())
        let before = setup.model.store.counters
        setup.model.store.advanceCounters(by: before.map { _ in 3 })
        XCTAssertEqual(setup.model.store.counters, before.map { $0 + 3 })
        setup.forwardBackward()
        setup.optimizer.step(learningRate: 0.1)
        setup.optimizer.advanceStepCount(by: 4)
        XCTAssertEqual(setup.optimizer.stepCount, 5)
    }
}

extension TapeBackend {
    /// Trains `configuration` on 10 batches of synthetic data with steps
    /// captured (the backend must pose as a GPU) and returns every record of
    /// the run's metrics log, in order.
    func trainedMetrics(_ configuration: TrainingConfiguration, dataSeed: UInt64) throws -> [[String: Any]] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-tape-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("metrics.jsonl")
        let trainer = try Trainer(configuration: configuration, backend: self,
                                  trainingSet: ImageDataset.synthetic(count: configuration.batchSize * 10, seed: dataSeed),
                                  testSet: nil, checkpointURL: nil, metrics: try MetricsLog(url: url),
                                  display: ProgressDisplay(enabled: false))
        XCTAssertTrue(trainer.capturesSteps)
        _ = try trainer.run()
        return try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
            .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }
}

/// The reference backend with a recording "graph": during `captureGraph`
/// every call is recorded instead of run (a host wait, an upload or a
/// download fails, as on CUDA), and `launch` runs the recording. The graph is
/// stale after any `makeTensor`, as a CUDA graph is after any allocation.
final class TapeBackend: Backend {
    let base = ReferenceBackend()
    private var tape: [() -> Void]?
    private(set) var allocations = 0
    private(set) var captures = 0
    /// `splitGraphCapture` calls during captures, with the ops recorded before each.
    private(set) var splitPoints: [Int] = []
    /// Poses as a GPU (the trainer captures steps only off the host); the memory stays the host's.
    let posesAsGPU: Bool
    /// Timestamps on a logical clock that ticks once per op run, recorded
    /// into a capture as a step of their own when `recordsTimestampsInsideGraphs`
    /// (CUDA's event-record nodes), skipped there otherwise (CUDA's default).
    let recordsTimestampsInsideGraphs: Bool
    private var clock = 0

    init(posesAsGPU: Bool = false, timestampsInsideGraphs: Bool = false) {
        self.posesAsGPU = posesAsGPU
        recordsTimestampsInsideGraphs = timestampsInsideGraphs
    }

    final class Stamp: DeviceTimestamp {
        var tick: Int?
    }
    func makeTimestamp() -> DeviceTimestamp? { posesAsGPU ? Stamp() : nil }
    func record(_ timestamp: DeviceTimestamp) {
        let stamp = timestamp as! Stamp
        if tape != nil {
            stamp.tick = nil
            guard recordsTimestampsInsideGraphs else { return }
            tape!.append { stamp.tick = self.clock }
        } else {
            stamp.tick = clock
        }
    }
    /// One microsecond per op between the two stamps.
    func seconds(from start: DeviceTimestamp, to end: DeviceTimestamp) -> Double? {
        guard let a = (start as! Stamp).tick, let b = (end as! Stamp).tick else { return nil }
        return Double(b - a) * 1e-6
    }

    var name: String { "tape" }
    var device: Device { posesAsGPU ? .cuda(0) : base.device }
    var details: String { "the reference backend with recorded graphs" }

    final class Graph: BackendGraph {
        let calls: [() -> Void]
        let backend: TapeBackend
        let allocations: Int
        init(calls: [() -> Void], backend: TapeBackend) {
            (self.calls, self.backend, allocations) = (calls, backend, backend.allocations)
        }
        func launch() throws { calls.forEach { $0() } }
        var isValid: Bool { backend.allocations == allocations }
        var summary: String { "\(calls.count) recorded calls" }
    }

    func captureGraph(_ body: () throws -> Void) throws -> BackendGraph? {
        precondition(tape == nil, "nested capture")
        tape = []
        defer { tape = nil }
        try body()
        captures += 1
        return Graph(calls: tape!, backend: self)
    }

    /// A recording has no parts to end; the point is noted, to check where the trainer splits.
    func splitGraphCapture() throws {
        if let tape { splitPoints.append(tape.count) }
    }

    /// Runs `call` now, or records it during a capture; either way the clock ticks when it runs.
    private func run(_ call: @escaping () -> Void) {
        let ticking = { call(); self.clock += 1 }
        if tape != nil { tape!.append(ticking) } else { ticking() }
    }

    private func forbidDuringCapture(_ what: String) {
        precondition(tape == nil, "\(what) during capture")
    }

    func makeTensor(_ shape: Shape, dtype: DType) throws -> Tensor {
        forbidDuringCapture("makeTensor")
        allocations += 1
        return try base.makeTensor(shape, dtype: dtype)
    }
    func upload(_ source: Tensor, to destination: Tensor) {
        forbidDuringCapture("upload")
        base.upload(source, to: destination)
    }
    /// Downloads that wait for everything queued, and those that wait for a timestamp alone.
    private(set) var downloads = 0
    private(set) var downloadsAfterTimestamp = 0
    func download(_ source: Tensor) -> Tensor {
        forbidDuringCapture("download")
        downloads += 1
        return base.download(source)
    }
    func download(_ source: Tensor, after timestamp: DeviceTimestamp) -> Tensor {
        forbidDuringCapture("download")
        precondition((timestamp as! Stamp).tick != nil, "a download after a timestamp never recorded")
        downloadsAfterTimestamp += 1
        return base.download(source)
    }
    func fill(_ tensor: Tensor, value: Float) { run { self.base.fill(tensor, value: value) } }
    func copy(_ source: Tensor, to destination: Tensor) { run { self.base.copy(source, to: destination) } }
    func synchronize() { forbidDuringCapture("synchronize") }

    func conv2dForward(output: Tensor, input: Tensor, weight: Tensor, geometry: Conv2dGeometry) {
        run { self.base.conv2dForward(output: output, input: input, weight: weight, geometry: geometry) }
    }
    func conv2dBackwardData(dInput: Tensor, dOutput: Tensor, weight: Tensor, geometry: Conv2dGeometry) {
        run { self.base.conv2dBackwardData(dInput: dInput, dOutput: dOutput, weight: weight, geometry: geometry) }
    }
    /// The `weightAsInForward` of every data gradient asked for, in order (captured or not).
    private(set) var weightAsInForwardHints: [Bool] = []
    func conv2dBackwardData(dInput: Tensor, dOutput: Tensor, weight: Tensor, geometry: Conv2dGeometry,
                            weightAsInForward: Bool) {
        weightAsInForwardHints.append(weightAsInForward)
        conv2dBackwardData(dInput: dInput, dOutput: dOutput, weight: weight, geometry: geometry)
    }
    func conv2dBackwardWeight(dWeight: Tensor, input: Tensor, dOutput: Tensor, geometry: Conv2dGeometry) {
        run { self.base.conv2dBackwardWeight(dWeight: dWeight, input: input, dOutput: dOutput, geometry: geometry) }
    }
    func batchNormForwardTraining(output: Tensor, input: Tensor, scale: Tensor, shift: Tensor,
                                  runningMean: Tensor, runningVar: Tensor, savedMean: Tensor, savedInvStd: Tensor,
                                  momentum: Float, epsilon: Float, fuseReLU: Bool) {
        run {
            self.base.batchNormForwardTraining(output: output, input: input, scale: scale, shift: shift,
                                               runningMean: runningMean, runningVar: runningVar, savedMean: savedMean,
                                               savedInvStd: savedInvStd, momentum: momentum, epsilon: epsilon,
                                               fuseReLU: fuseReLU)
        }
    }
    func batchNormForwardInference(output: Tensor, input: Tensor, scale: Tensor, shift: Tensor,
                                   runningMean: Tensor, runningVar: Tensor, epsilon: Float, fuseReLU: Bool) {
        run {
            self.base.batchNormForwardInference(output: output, input: input, scale: scale, shift: shift,
                                                runningMean: runningMean, runningVar: runningVar, epsilon: epsilon,
                                                fuseReLU: fuseReLU)
        }
    }
    func batchNormBackward(dInput: Tensor, dScale: Tensor, dShift: Tensor, dOutput: Tensor, input: Tensor, output: Tensor,
                           scale: Tensor, savedMean: Tensor, savedInvStd: Tensor, fuseReLU: Bool) {
        run {
            self.base.batchNormBackward(dInput: dInput, dScale: dScale, dShift: dShift, dOutput: dOutput, input: input,
                                        output: output, scale: scale, savedMean: savedMean, savedInvStd: savedInvStd,
                                        fuseReLU: fuseReLU)
        }
    }
    func reluForward(output: Tensor, input: Tensor) { run { self.base.reluForward(output: output, input: input) } }
    func reluBackward(dInput: Tensor, dOutput: Tensor, output: Tensor) {
        run { self.base.reluBackward(dInput: dInput, dOutput: dOutput, output: output) }
    }
    func add(output: Tensor, _ a: Tensor, _ b: Tensor, fuseReLU: Bool) {
        run { self.base.add(output: output, a, b, fuseReLU: fuseReLU) }
    }
    func globalAveragePoolForward(output: Tensor, input: Tensor) {
        run { self.base.globalAveragePoolForward(output: output, input: input) }
    }
    func globalAveragePoolBackward(dInput: Tensor, dOutput: Tensor) {
        run { self.base.globalAveragePoolBackward(dInput: dInput, dOutput: dOutput) }
    }
    func linearForward(output: Tensor, input: Tensor, weight: Tensor, bias: Tensor) {
        run { self.base.linearForward(output: output, input: input, weight: weight, bias: bias) }
    }
    func linearBackward(dInput: Tensor?, dWeight: Tensor, dBias: Tensor, dOutput: Tensor, input: Tensor, weight: Tensor) {
        run { self.base.linearBackward(dInput: dInput, dWeight: dWeight, dBias: dBias, dOutput: dOutput, input: input, weight: weight) }
    }
    func softmaxCrossEntropyForward(loss: Tensor, probabilities: Tensor, correct: Tensor, logits: Tensor, labels: Tensor,
                                    labelSmoothing: Float) {
        run {
            self.base.softmaxCrossEntropyForward(loss: loss, probabilities: probabilities, correct: correct, logits: logits,
                                                 labels: labels, labelSmoothing: labelSmoothing)
        }
    }
    func softmaxCrossEntropyBackward(dLogits: Tensor, probabilities: Tensor, labels: Tensor, labelSmoothing: Float) {
        run {
            self.base.softmaxCrossEntropyBackward(dLogits: dLogits, probabilities: probabilities, labels: labels,
                                                  labelSmoothing: labelSmoothing)
        }
    }
    func optimizerStep(parameters: Tensor, gradients: Tensor, momentumBuffer: Tensor, segments: [ParameterSegment],
                       configuration: OptimizerStepConfiguration) {
        forbidDuringCapture("optimizerStep with a host learning rate")
        base.optimizerStep(parameters: parameters, gradients: gradients, momentumBuffer: momentumBuffer,
                           segments: segments, configuration: configuration)
    }
    /// Reads the learning rate when the (recorded) step runs, as the CUDA kernel does.
    func optimizerStep(parameters: Tensor, gradients: Tensor, momentumBuffer: Tensor, segments: [ParameterSegment],
                       configuration: OptimizerStepConfiguration, learningRate: Tensor) {
        run {
            var settings = configuration
            settings.learningRate = learningRate.floats[0]
            self.base.optimizerStep(parameters: parameters, gradients: gradients, momentumBuffer: momentumBuffer,
                                    segments: segments, configuration: settings)
        }
    }
}
