import CohortCheckpoint
import CohortData
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
}

/// Trains one model on one device: the loop of data, forward, loss,
/// backward and optimiser step, with evaluation, metrics and checkpoints at
/// each epoch's end.
///
/// Note [Training step]: a step issues its calls to the backend and reads
/// nothing back, so a GPU backend can run ahead of the host; the loss is
/// downloaded only on logged steps (on a host backend, where reading is
/// free, every step, so the epoch's mean loss is exact).
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
    public private(set) var progress: TrainingProgress
    private let criterion: SoftmaxCrossEntropy
    private let stager: BatchStager

    public init(configuration: TrainingConfiguration, backend: Backend, trainingSet: ImageDataset,
                testSet: ImageDataset?, checkpointURL: URL?, metrics: MetricsLog?, display: ProgressDisplay) throws {
        self.configuration = configuration
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
        if configuration.noDecayOnNormAndBias {
            model.store.setWeightDecay(false) { $0.shape.rank == 1 }
        }
        optimizer = try Optimizer(store: model.store, configuration: configuration.optimizer)
        criterion = try SoftmaxCrossEntropy(backend: backend, labelSmoothing: configuration.labelSmoothing)
        stager = BatchStager(backend: backend, dtype: configuration.precision.dtype)
        let sampler = DistributedSampler(datasetCount: trainingSet.count, shuffle: true, seed: configuration.seed)
        loader = DataLoader(dataset: trainingSet, sampler: sampler, batchSize: configuration.batchSize,
                            augmentation: .cifar10Training, prefetchDepth: 3,
                            allocator: CachingAllocator(underlying: HostAllocator.shared))
        stepsPerEpoch = min(loader.batchesPerEpoch, configuration.stepsPerEpochLimit ?? Int.max)
        schedule = try LearningRateSchedule(baseLR: configuration.learningRate, decay: configuration.decay,
                                            epochs: configuration.epochs, stepsPerEpoch: stepsPerEpoch,
                                            warmupEpochs: configuration.warmupEpochs)
        progress = TrainingProgress(epoch: 0, globalStep: 0, seed: configuration.seed)
    }

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
        let runStart = Date()
        while progress.epoch < min(configuration.epochs, stopEpoch ?? Int.max) {
            try trainEpoch(progress.epoch)
            progress.epoch += 1
            var record: [String: Any] = ["epoch": progress.epoch, "global_step": progress.globalStep]
            if let testSet {
                let result = try evaluate(model, on: testSet, batchSize: configuration.evaluationBatchSize,
                                          limit: configuration.evaluationLimit)
                evaluations.append(result)
                record["test_loss"] = result.loss
                record["test_accuracy"] = result.accuracy
                record["test_images"] = result.imageCount
                display.log(String(format: "epoch %d/%d: test loss %.4f, test accuracy %.2f%% (%d images)%@",
                                   progress.epoch, configuration.epochs, result.loss, 100 * result.accuracy,
                                   result.imageCount, testSet.isSynthetic ? " [synthetic data]" : ""))
            }
            metrics?.record("eval", record)
            if let checkpointURL {
                try TrainingCheckpoint.save(model: model, optimizer: optimizer, progress: progress,
                                            configuration: configuration.summary, to: checkpointURL)
            }
        }
        return TrainingSummary(epochsCompleted: progress.epoch, globalSteps: progress.globalStep,
                               evaluations: evaluations, trainingSeconds: Date().timeIntervalSince(runStart))
    }

    private func trainEpoch(_ epoch: Int) throws {
        let batches = loader.batches(epoch: epoch)
        defer { batches.cancel() }
        let readEveryStep = backend.device.isHost
        let epochStart = Date()
        var windowStart = epochStart, windowImages = 0
        var lossSum = 0.0, lossReads = 0, correct = 0.0, imagesSeen = 0, imagesRead = 0
        var lastLoss: Double?
        var imagesPerSecond = 0.0
        for step in 0..<stepsPerEpoch {
            guard let batch = batches.next() else { break }
            let (images, labels) = try stager.stage(batch)
            let learningRate = schedule.learningRate(atStep: progress.globalStep)

            criterion(logits: model.forward(images, mode: .training), labels: labels)
            model.backward(criterion.backward())
            optimizer.step(learningRate: learningRate)

            progress.globalStep += 1
            imagesSeen += batch.count
            windowImages += batch.count
            let logged = (step + 1) % configuration.logEvery == 0 || step + 1 == stepsPerEpoch
            if readEveryStep || logged {
                let loss = Double(backend.download(criterion.loss).toArray()[0])
                guard loss.isFinite else {
                    throw TrainingError.diverged(epoch: epoch + 1, step: step + 1, learningRate: learningRate)
                }
                lastLoss = loss
                lossSum += loss
                lossReads += 1
                correct += Double(backend.download(criterion.correct).toArray()[0])
                imagesRead += batch.count
            }
            if logged {
                let now = Date()
                imagesPerSecond = Double(windowImages) / max(now.timeIntervalSince(windowStart), 1e-9)
                windowStart = now
                windowImages = 0
                metrics?.record("step", [
                    "epoch": epoch + 1, "step": step + 1, "global_step": progress.globalStep,
                    "loss": lastLoss ?? .nan, "lr": Double(learningRate), "images_per_second": imagesPerSecond,
                    "data_wait_seconds": batches.dataWaitSeconds,
                ])
            }
            let elapsed = Date().timeIntervalSince(epochStart)
            let stepsLeft = Double(stepsPerEpoch * (configuration.epochs - epoch) - step - 1)
            display.update(ProgressDisplay.Status(
                epoch: epoch + 1, epochs: configuration.epochs, step: step + 1, stepsPerEpoch: stepsPerEpoch,
                imagesPerSecond: imagesPerSecond > 0 ? imagesPerSecond : Double(imagesSeen) / max(elapsed, 1e-9),
                loss: lastLoss, learningRate: Double(learningRate),
                secondsLeft: elapsed / Double(step + 1) * stepsLeft))
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
