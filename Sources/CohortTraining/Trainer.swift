import CohortCheckpoint
import CohortData
import CohortDistributed
import CohortKernels
import CohortNN
import CohortOptim
import CohortTensor
import Foundation

/// What a finished run reports.
public struct TrainingSummary: Sendable {
    public var epochsCompleted: Int
    public var globalSteps: Int
    /// Test loss and accuracy after each epoch run by this call (empty without a test set).
    public var evaluations: [EvaluationResult]
    public var trainingSeconds: Double
    /// With `TrainingConfiguration.targetAccuracy`: the epoch (counted from 1)
    /// whose evaluation first reached it, and the seconds spent in training
    /// epochs (evaluation and checkpoints left out) up to its end; nil when
    /// not reached or not asked for.
    public var targetReached: (epoch: Int, trainingSeconds: Double)?
}

/// Trains one model on one device: the loop of data, forward, loss,
/// backward and optimiser step, with evaluation, metrics and checkpoints at
/// each epoch's end. With a communicator of several ranks, one replica of a
/// data-parallel run (`Note [Data-parallel training]`).
///
/// Note [Training step]: a step issues its calls to the backend and reads
/// nothing back, so a GPU backend can run ahead of the host; the loss is
/// downloaded only on logged steps (on a host backend, where reading is
/// free, every step, so the epoch's mean loss is exact).
///
/// Note [Data-parallel training]
/// Every rank runs this loop on its own shard of each epoch
/// (`DistributedSampler` with the rank and world size: disjoint, padded to
/// equal length), with `configuration.batchSize` images per step, so the
/// global batch is worldSize x batchSize. Rank 0's initial parameters and
/// statistics are broadcast first; a `GradientReducer` averages the
/// gradients during backward (`Note [Gradient bucketing]`); each rank then
/// takes the same optimiser step and the replicas stay identical. Any error
/// on any rank is fatal to the whole run: the caller aborts the
/// communicator (`Note [Distributed failures]`).
///
/// Note [Batch norm across ranks]
/// As PyTorch DDP without SyncBatchNorm: each rank normalises with its own
/// batch's statistics (per-rank batch statistics, no communication in
/// forward), and its running statistics drift apart from the others'. Before
/// each evaluation and checkpoint, rank 0's running statistics are broadcast
/// (DDP's `broadcast_buffers` does the same before every forward), so every
/// rank evaluates the model rank 0 checkpoints. Only rank 0 writes
/// checkpoints; every rank resumes from that file.
public final class Trainer {
    public let configuration: TrainingConfiguration
    public let backend: Backend
    public let model: ImageClassifier
    public let optimizer: Optimizer
    public let trainingSet: ImageDataset
    public let testSet: ImageDataset?
    public let loader: DataLoader
    public let schedule: LearningRateSchedule
    public let stepsPerEpoch: Int
    /// Where checkpoints go (`checkpoint.safetensors`); nil to write none.
    public let checkpointURL: URL?
    public let metrics: MetricsLog?
    public let display: ProgressDisplay
    /// The run's ranks; a single process by default.
    public let communicator: Communicator
    /// Averages gradients between ranks; nil in a run of one process.
    public let reducer: GradientReducer?
    public private(set) var progress: TrainingProgress
    private let criterion: SoftmaxCrossEntropy
    let stager: BatchStager
    /// The step as a replayable graph (device backends, one rank); nil: eager steps.
    private var capturedStep: CapturedStep?
    /// What the captured step reads: the staged batch of the step being run.
    private var stepImages: Tensor?
    private var stepLabels: Tensor?
    /// Device timestamps between a logged step's phases (Note [Device timing]); nil on host backends.
    private var phaseMarks: [DeviceTimestamp]?
    /// Stamps of each convolution's weight gradient (Note [Backward progress marks]).
    private var gradientMarks: GradientReadyMarks?
    /// The snapshot slots of replayed steps' late reads (Note [Deferred step reads]); nil on host backends.
    private var deferredReads: DeferredStepReads?

    /// - Parameters:
    ///   - communicator: the ranks of a data-parallel run; each builds its own Trainer.
    ///   - overlapCommunication: all-reduce each gradient bucket as soon as
    ///     backward produced it (false: once after backward, `--no-overlap`).
    ///   - gradientDType: the dtype gradients are all-reduced in (float32,
    ///     or bfloat16 with NCCL: `--allreduce-dtype bf16`).
    ///   - bucketCap: the gradient reducer's bucket size in bytes (`--bucket-cap-mb`).
    ///   - averagesGradients: false (`--no-communication`) trains every rank on
    ///     its own, no all-reduce at all: not data-parallel training, but the
    ///     same step with communication off, which Q3's exposed communication
    ///     is defined against (and a way to tell communication from the rest
    ///     when a multi-rank step is slow).
    ///   - mergesSmallBuckets: small buckets take the next tensor over the
    ///     cap (on by default in `cohort train`, off here as in
    ///     `GradientReducer`: Note [Small buckets]).
    ///   - overlapOptimizer: update the parameters outside the last gradient
    ///     bucket while that bucket is all-reduced (`--overlap-optimizer`,
    ///     an experiment that measured no gain: Note [Optimizer beside the last all-reduce]).
    ///   - widensInOptimizer: where gradients travel in bf16 through a
    ///     communicator that converts them (NCCL), the optimizer reads the
    ///     all-reduce's bf16 result itself instead of a widened float32 copy
    ///     (Note [Widening in the optimizer]; `--no-widen-in-optimizer` for A/B runs).
    public init(configuration: TrainingConfiguration, backend: Backend, trainingSet: ImageDataset,
                testSet: ImageDataset?, checkpointURL: URL?, metrics: MetricsLog?, display: ProgressDisplay,
                communicator: Communicator = SingleProcessCommunicator(), overlapCommunication: Bool = true,
                gradientDType: DType = .float32, bucketCap: Int = GradientReducer.defaultBucketCap,
                averagesGradients: Bool = true, overlapOptimizer: Bool = false,
                mergesSmallBuckets: Bool = false, widensInOptimizer: Bool = true) throws {
        self.configuration = configuration
        self.communicator = communicator
        self.backend = backend
        self.trainingSet = trainingSet
        self.testSet = testSet
        self.checkpointURL = checkpointURL
        self.metrics = metrics
        self.display = display
        guard configuration.precision == .float32 || backend.supportsBFloat16 else {
            throw BackendUnavailable(description: "the \(backend.name) backend computes in float32 only; use --precision fp32")
        }
        model = try configuration.architecture.build(backend: backend, classCount: trainingSet.classCount,
                                                     seed: configuration.seed, precision: configuration.precision)
        if configuration.zeroInitResidual {
            try model.store.zeroInitializeResidualScales()
        }
        if configuration.noDecayOnNormAndBias {
            model.store.setWeightDecay(false) { $0.shape.rank == 1 }
        }
        optimizer = try Optimizer(store: model.store, configuration: configuration.optimizer)
        criterion = try SoftmaxCrossEntropy(backend: backend, labelSmoothing: configuration.labelSmoothing)
        stager = BatchStager(backend: backend, dtype: configuration.precision.dtype, augmentation: .cifar10Training)
        let sampler = DistributedSampler(datasetCount: trainingSet.count, worldSize: communicator.worldSize,
                                         rank: communicator.rank, shuffle: true, seed: configuration.seed)
        loader = DataLoader(dataset: trainingSet, sampler: sampler, batchSize: configuration.batchSize,
                            augmentation: .cifar10Training, prefetchDepth: 3,
                            allocator: CachingAllocator(underlying: HostAllocator.shared),
                            emitsRawImages: configuration.augmentOnBackend ?? !backend.device.isHost)
        stepsPerEpoch = min(loader.batchesPerEpoch, configuration.stepsPerEpochLimit ?? Int.max)
        schedule = try LearningRateSchedule(baseLR: configuration.learningRate, decay: configuration.decay,
                                            epochs: configuration.epochs, stepsPerEpoch: stepsPerEpoch,
                                            warmupEpochs: configuration.warmupEpochs)
        progress = TrainingProgress(epoch: 0, globalStep: 0, seed: configuration.seed)
        reducer = communicator.worldSize > 1 && averagesGradients
            ? try GradientReducer(store: model.store, communicator: communicator, overlap: overlapCommunication,
                                  bucketCap: bucketCap, communicationDType: gradientDType,
                                  mergesSmallBuckets: mergesSmallBuckets) : nil
        reducer?.defersLastBucket = overlapOptimizer
        if let reducer {
            reducer.widensInOptimizer = widensInOptimizer
            optimizer.gradientSource = { reducer.reducedGradients }
        }
        // After the reducer, whose gradient-ready handler the marks wrap (Note [Backward progress marks]).
        gradientMarks = configuration.gradientMarks ? GradientReadyMarks(store: model.store, backend: backend) : nil
        // A data-parallel step is captured whole where its collectives can be (NCCL; Note [Communication stream]).
        if configuration.graphs && !backend.device.isHost && reducer?.isCapturable ?? true {
            let (model, criterion, reducer) = (model, criterion, reducer)
            let update: ((Tensor) throws -> Void)? = overlapOptimizer && reducer != nil
                ? { [unowned self] learningRate in try self.updateParameters(learningRate: learningRate) } : nil
            capturedStep = try CapturedStep(optimizer: optimizer, update: update) { [unowned self] in
                // Phase marks inside the step only where a replay stamps them (Note [Timing inside graphs]).
                let marks = backend.recordsTimestampsInsideGraphs ? phaseMarks : nil
                // The replay's first node: how long after the step's start mark the graph began.
                if let marks { backend.record(marks[5]) }
                criterion(logits: model.forward(stepImages!, mode: .training), labels: stepLabels!)
                if let marks { backend.record(marks[1]) }
                if configuration.splitsGraphAfterForward { try backend.splitGraphCapture() }
                reducer?.prepareForBackward(timed: marks != nil)
                model.backward(criterion.backward())
                if let marks { backend.record(marks[2]) }
                try reducer?.finishBackward()
                if let marks { backend.record(marks[3]) }
            }
        }
        if let first = backend.makeTimestamp() {
            // Step start, forward end, backward end, wait end, step end; and a replay's first node.
            phaseMarks = [first] + (1..<6).compactMap { _ in backend.makeTimestamp() }
        }
        if capturedStep != nil {
            deferredReads = try DeferredStepReads(backend: backend, loss: criterion.loss, correct: criterion.correct)
        }
    }

    /// The optimizer step of a captured step, in two parts where the reducer
    /// left its last bucket pending (Note [Optimizer beside the last all-reduce]).
    private func updateParameters(learningRate: Tensor) throws {
        if let reducer, let later = reducer.deferredRange {
            try optimizer.step(learningRate: learningRate, deferring: later) { try reducer.finishDeferredBucket() }
        } else {
            optimizer.step(learningRate: learningRate)
        }
    }

    /// Whether steps are (after warm-up) replayed from a captured graph.
    public var capturesSteps: Bool { capturedStep?.usesGraphs ?? false }

    /// Images per step over all ranks.
    public var globalBatchSize: Int { configuration.batchSize * communicator.worldSize }

    /// Continues from a checkpoint written by a run with the same model.
    public func resume(from url: URL) throws {
        let contents = try TrainingCheckpoint.read(from: url)
        guard contents.progress.seed == configuration.seed else {
            throw CheckpointError(file: url.path, problem: "was written by a run with seed \(contents.progress.seed); pass --seed \(contents.progress.seed) to continue it")
        }
        try TrainingCheckpoint.restore(contents, into: model, optimizer: optimizer)
        progress = contents.progress
    }

    /// Runs the remaining epochs, or those up to epoch `stopEpoch` (counted
    /// from 1) when given: the schedule still spans `configuration.epochs`,
    /// so a run stopped early and resumed follows the same trajectory.
    public func run(stoppingAfterEpoch stopEpoch: Int? = nil) throws -> TrainingSummary {
        var evaluations: [EvaluationResult] = []
        var epochSeconds = 0.0
        var targetReached: (epoch: Int, trainingSeconds: Double)?
        let runStart = Date()
        try reducer?.broadcastInitialState()
        while progress.epoch < min(configuration.epochs, stopEpoch ?? Int.max) && targetReached == nil {
            epochSeconds += try trainEpoch(progress.epoch)
            progress.epoch += 1
            var record: [String: Any] = ["epoch": progress.epoch, "global_step": progress.globalStep]
            if configuration.recalibrationBatches > 0 { try recalibrateBatchNorm() }
            try reducer?.broadcastStatistics()
            if let testSet {
                let result = try evaluateOnEveryRank(testSet)
                evaluations.append(result)
                record["test_loss"] = result.loss
                record["test_accuracy"] = result.accuracy
                record["test_images"] = result.imageCount
                display.log(String(format: "epoch %d/%d: test loss %.4f, test accuracy %.2f%% (%d images)%@",
                                   progress.epoch, configuration.epochs, result.loss, 100 * result.accuracy,
                                   result.imageCount, testSet.isSynthetic ? " [synthetic data]" : ""))
                // Every rank sees the same all-reduced accuracy, so every rank stops here.
                if let target = configuration.targetAccuracy, result.accuracy >= target {
                    targetReached = (progress.epoch, epochSeconds)
                    record["target_accuracy"] = target
                    record["training_seconds_to_target"] = epochSeconds
                    display.log(String(format: "target accuracy %.2f%% reached after epoch %d: %.2f s of training epochs",
                                       100 * target, progress.epoch, epochSeconds))
                }
            }
            metrics?.record("eval", record)
            if let checkpointURL, communicator.isRoot {
                try TrainingCheckpoint.save(model: model, optimizer: optimizer, progress: progress,
                                            configuration: configuration.summary, to: checkpointURL)
            }
        }
        return TrainingSummary(epochsCompleted: progress.epoch, globalSteps: progress.globalStep,
                               evaluations: evaluations, trainingSeconds: Date().timeIntervalSince(runStart),
                               targetReached: targetReached)
    }

    /// Each rank scores its share of the test set; the sums are all-reduced.
    private func evaluateOnEveryRank(_ testSet: ImageDataset) throws -> EvaluationResult {
        let local = try evaluate(model, on: testSet, batchSize: configuration.evaluationBatchSize,
                                 limit: configuration.evaluationLimit, rank: communicator.rank,
                                 worldSize: communicator.worldSize)
        guard communicator.worldSize > 1 else { return local }
        let count = Float(local.imageCount)
        let sums = Tensor([Float(local.loss) * count, Float(local.accuracy) * count, count], shape: [3])
        try communicator.allReduce(sums, op: .sum)
        let total = sums.toArray()
        let images = Double(total[2])
        return EvaluationResult(loss: Double(total[0]) / max(images, 1), accuracy: Double(total[1]) / max(images, 1),
                                imageCount: Int(images.rounded()))
    }

    /// Runs one epoch and returns its wall seconds (the epoch record's `seconds`).
    private func trainEpoch(_ epoch: Int) throws -> Double {
        let batches = loader.batches(epoch: epoch)
        defer { batches.cancel() }
        let readEveryStep = backend.device.isHost
        // Replayed steps read their figures one window late (Note [Deferred step reads]);
        // eager steps and phases timed inside the graph read at once.
        let deferred = capturedStep != nil && !backend.recordsTimestampsInsideGraphs ? deferredReads : nil
        let epochStart = Date()
        var windowStart = epochStart, windowImages = 0
        var lossSum = 0.0, lossReads = 0, correct = 0.0, imagesSeen = 0, imagesRead = 0
        var lastLoss: Double?
        var imagesPerSecond = 0.0
        var timing = StepTiming()
        /// Takes in a logged step's figures: the running sums, the divergence check, its record.
        func account(_ read: DeferredStepReads.Read) throws {
            guard read.loss.isFinite else {
                throw TrainingError.diverged(epoch: read.epoch + 1, step: read.step + 1, learningRate: read.learningRate)
            }
            lastLoss = read.loss
            lossSum += read.loss
            lossReads += 1
            correct += read.correct
            imagesRead += read.images
            guard !read.record.isEmpty else { return }
            var record = read.record
            record["loss"] = read.loss
            if let seconds = read.deviceStepSeconds { record["device_step_seconds"] = seconds }
            metrics?.record("step", record)
        }
        for step in 0..<stepsPerEpoch {
            let waitBefore = batches.dataWaitSeconds
            guard let batch = batches.next() else { break }
            timing.dataWait += batches.dataWaitSeconds - waitBefore
            let (images, labels) = try stager.stage(batch)
            let learningRate = schedule.learningRate(atStep: progress.globalStep)

            let logged = (step + 1) % configuration.logEvery == 0 || step + 1 == stepsPerEpoch
            // Device timing on the logged steps only: reading it waits for the device (Note [Device timing]).
            let marks = logged && deferred == nil ? phaseMarks : nil
            var mark = ContinuousClock.now
            if let marks { backend.record(marks[0]) }
            if logged, let deferred { backend.record(deferred.startMark) }
            if let capturedStep {
                // The whole step is one replay (after warm-up): no per-phase split on the host.
                (stepImages, stepLabels) = (images, labels)
                try capturedStep.run(learningRate: learningRate, inputs: [images, labels])
                timing.graphSteps += capturedStep.lastStepReplayed ? 1 : 0
                timing.optimizer += Self.lap(&mark)
                timing.steps += 1
                if let marks { backend.record(marks[4]) }
            } else {
                criterion(logits: model.forward(images, mode: .training), labels: labels)
                timing.forward += Self.lap(&mark)
                if let marks { backend.record(marks[1]) }
                reducer?.prepareForBackward(timed: marks != nil)
                model.backward(criterion.backward())
                if let marks { backend.record(marks[2]) }
                try reducer?.finishBackward()
                if let marks { backend.record(marks[3]) }
                timing.backward += Self.lap(&mark)
                if let reducer, let later = reducer.deferredRange {
                    try optimizer.step(learningRate: learningRate, deferring: later) { try reducer.finishDeferredBucket() }
                } else {
                    optimizer.step(learningRate: learningRate)
                }
                timing.optimizer += Self.lap(&mark)
                timing.steps += 1
                if let reducer { timing.add(reducer.lastStep) }
                if let marks { backend.record(marks[4]) }
            }
            if reducer != nil { communicator.watchProgress() }

            progress.globalStep += 1
            imagesSeen += batch.count
            windowImages += batch.count
            var record: [String: Any] = [:]
            if logged {
                let now = Date()
                imagesPerSecond = Double(windowImages) / max(now.timeIntervalSince(windowStart), 1e-9)
                windowStart = now
                windowImages = 0
                record = [
                    "epoch": epoch + 1, "step": step + 1, "global_step": progress.globalStep,
                    "lr": Double(learningRate), "images_per_second": imagesPerSecond,
                    "data_wait_seconds": batches.dataWaitSeconds,
                ]
                timing.record(into: &record, distributed: reducer != nil)
                if timing.graphSteps > 0, let summary = capturedStep?.graphSummary { record["graph"] = summary }
                timing = StepTiming()
            }
            if let deferred, logged {
                deferred.finish(loss: criterion.loss, correct: criterion.correct, record: record, epoch: epoch,
                                step: step, learningRate: learningRate, images: batch.count)
                for read in deferred.takeReady(keepingLatest: true) { try account(read) }
            } else if readEveryStep || logged {
                let loss = Double(backend.download(criterion.loss).toArray()[0])
                if let marks, logged {
                    let phased = capturedStep?.lastStepReplayed != true || backend.recordsTimestampsInsideGraphs
                    recordDeviceTiming(marks, phases: phased, into: &record)
                }
                try account(DeferredStepReads.Read(
                    record: record, epoch: epoch, step: step, learningRate: learningRate, images: batch.count,
                    loss: loss, correct: Double(backend.download(criterion.correct).toArray()[0]), deviceStepSeconds: nil))
            }
            let elapsed = Date().timeIntervalSince(epochStart)
            let stepsLeft = Double(stepsPerEpoch * (configuration.epochs - epoch) - step - 1)
            display.update(ProgressDisplay.Status(
                epoch: epoch + 1, epochs: configuration.epochs, step: step + 1, stepsPerEpoch: stepsPerEpoch,
                imagesPerSecond: imagesPerSecond > 0 ? imagesPerSecond : Double(imagesSeen) / max(elapsed, 1e-9),
                loss: lastLoss, learningRate: Double(learningRate),
                secondsLeft: elapsed / Double(step + 1) * stepsLeft))
        }
        if let deferred {
            for read in deferred.takeReady(keepingLatest: false) { try account(read) }
        }
        let seconds = Date().timeIntervalSince(epochStart)
        let trainLoss = lossSum / Double(max(lossReads, 1))
        let trainAccuracy = correct / Double(max(imagesRead, 1))
        metrics?.record("epoch", [
            "epoch": epoch + 1, "global_step": progress.globalStep, "train_loss": trainLoss,
            "train_accuracy": trainAccuracy, "seconds": seconds, "images": imagesSeen,
            "images_per_second": Double(imagesSeen) / seconds, "data_wait_seconds": batches.dataWaitSeconds,
        ])
        display.log(String(format: "epoch %d/%d: train loss %.4f, train accuracy %.2f%%, %.1f s (%.1f images/s, data wait %.2f s)",
                           epoch + 1, configuration.epochs, trainLoss, 100 * trainAccuracy, seconds,
                           Double(imagesSeen) / seconds, batches.dataWaitSeconds))
        return seconds
    }
}

extension Trainer {
    /// The device time of the logged step's phases (Note [Device timing]),
    /// read after its loss (so the device has finished it): `device_step_seconds`
    /// always; for an eager step (or a replayed one whose graph holds the
    /// marks, Note [Timing inside graphs]) also forward, backward (its kernels), the
    /// exposed communication (the compute stream's wait for the last
    /// all-reduce) and the optimizer, and each all-reduce's busy time on the
    /// communication stream and its start after the step's start.
    private func recordDeviceTiming(_ marks: [DeviceTimestamp], phases: Bool, into record: inout [String: Any]) {
        guard let step = backend.seconds(from: marks[0], to: marks[4]) else { return }
        record["device_step_seconds"] = step
        guard phases, let forward = backend.seconds(from: marks[0], to: marks[1]),
              let backward = backend.seconds(from: marks[1], to: marks[2]),
              let exposed = backend.seconds(from: marks[2], to: marks[3]),
              let optimizer = backend.seconds(from: marks[3], to: marks[4]) else { return }
        record["device_forward_seconds"] = forward
        record["device_backward_seconds"] = backward
        record["device_optimizer_seconds"] = optimizer
        // Forward includes the time from the step's start mark (before the learning-rate fill and
        // the graph launch) to the replay's first node: the device waiting for the host's launch.
        if capturedStep?.lastStepReplayed == true, let start = backend.seconds(from: marks[0], to: marks[5]) {
            record["device_replay_start_seconds"] = start
        }
        if let gradientMarks, let seconds = gradientMarks.seconds(since: marks[0]) {
            record["device_gradient_ready_seconds"] = seconds
            record["device_gradient_ready_names"] = gradientMarks.names
        }
        guard let reducer else { return }
        record["device_exposed_communication_seconds"] = exposed
        if let busy = reducer.deviceSeconds() {
            record["device_allreduce_seconds"] = busy
            record["device_communication_busy_seconds"] = busy.reduce(0, +)
            if let starts = reducer.deviceStartSeconds(since: marks[0]) {
                record["device_allreduce_start_seconds"] = starts
            }
        }
    }

    /// Seconds since `mark`, moving `mark` to now.
    fileprivate static func lap(_ mark: inout ContinuousClock.Instant) -> Double {
        let now = ContinuousClock.now
        let elapsed = now - mark
        mark = now
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    }
}

/// Where the steps since the last step record spent their time; recorded
/// as means per step. Host-side wall clock: exact on the CPU, where every
/// call finishes before it returns; on an asynchronous (GPU) backend, the
/// time to issue the work. With overlapped communication on the CPU,
/// backward's time includes the all-reduces (they run inside it).
private struct StepTiming {
    var steps = 0
    /// Steps replayed from a captured graph.
    var graphSteps = 0
    var dataWait = 0.0, forward = 0.0, backward = 0.0, optimizer = 0.0, communication = 0.0
    /// Bytes of each all-reduce in a step (the same every step).
    var bucketBytes: [Int] = []
    /// Seconds of each all-reduce, summed over the steps.
    var bucketSeconds: [Double] = []

    mutating func add(_ reduction: GradientReducer.StepStatistics) {
        communication += reduction.communicationSeconds
        bucketBytes = reduction.callBytes
        if bucketSeconds.count < reduction.callSeconds.count {
            bucketSeconds += Array(repeating: 0, count: reduction.callSeconds.count - bucketSeconds.count)
        }
        for (index, seconds) in reduction.callSeconds.enumerated() { bucketSeconds[index] += seconds }
    }

    func record(into record: inout [String: Any], distributed: Bool) {
        let count = Double(max(steps, 1))
        record["steps_timed"] = steps
        record["step_data_wait_seconds"] = dataWait / count
        record["forward_seconds"] = forward / count
        record["backward_seconds"] = backward / count
        record["optimizer_seconds"] = optimizer / count
        // Steps replayed from a graph time as one whole under optimizer_seconds (host enqueue time).
        if graphSteps > 0 { record["graph_replayed_steps"] = graphSteps }
        guard distributed else { return }
        record["communication_seconds"] = communication / count
        record["allreduce_bytes"] = bucketBytes
        record["allreduce_seconds"] = bucketSeconds.map { $0 / count }
    }
}

public enum TrainingError: Error, CustomStringConvertible {
    case diverged(epoch: Int, step: Int, learningRate: Float)

    public var description: String {
        switch self {
        case .diverged(let epoch, let step, let learningRate):
            return "the loss is not finite at epoch \(epoch), step \(step) (learning rate \(learningRate)): training diverged; lower --lr or add --warmup-epochs"
        }
    }
}
