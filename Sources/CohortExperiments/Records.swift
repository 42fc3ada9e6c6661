/// Q1: one device, one batch size, one framework. An epoch is
/// `RunMetadata.imagesPerEpoch` images of training steps (forward, loss,
/// backward, SGD), timed after warm-up.
public struct Q1Record: Codable, Equatable, Sendable {
    public var framework: Framework
    /// e.g. "cuda:0", "cpu".
    public var device: String
    public var precision: Precision
    public var batchSize: Int
    public var epochSeconds: Double
    public var imagesPerSecond: Double
    /// The device allocator's high-water mark; nil where the framework did not report it.
    public var peakMemoryBytes: Int?

    public init(framework: Framework, device: String, precision: Precision, batchSize: Int, epochSeconds: Double,
                imagesPerSecond: Double, peakMemoryBytes: Int? = nil) {
        self.framework = framework
        self.device = device
        self.precision = precision
        self.batchSize = batchSize
        self.epochSeconds = epochSeconds
        self.imagesPerSecond = imagesPerSecond
        self.peakMemoryBytes = peakMemoryBytes
    }
}

/// Q2: weak scaling. The per-GPU batch is fixed and the global batch grows
/// with the GPU count; an epoch is the same number of images, so
/// speedup = T(1 GPU) / T(n GPUs) and efficiency = speedup / n
/// (`ScalingFigures`, `[Q2Record].withDerivedScaling()`).
public struct Q2Record: Codable, Equatable, Sendable {
    public var framework: Framework
    public var strategy: Strategy
    public var precision: Precision
    /// GPUs, which are also ranks under DDP.
    public var gpus: Int
    public var perDeviceBatch: Int
    public var epochSeconds: Double
    /// Against the 1-GPU figure of the same framework, strategy, precision and per-GPU batch; nil without one.
    public var speedup: Double?
    /// speedup / gpus.
    public var efficiency: Double?

    public init(framework: Framework, strategy: Strategy, precision: Precision, gpus: Int, perDeviceBatch: Int,
                epochSeconds: Double, speedup: Double? = nil, efficiency: Double? = nil) {
        self.framework = framework
        self.strategy = strategy
        self.precision = precision
        self.gpus = gpus
        self.perDeviceBatch = perDeviceBatch
        self.epochSeconds = epochSeconds
        self.speedup = speedup
        self.efficiency = efficiency
    }

    public var globalBatch: Int { gpus * perDeviceBatch }
}

/// Q3: one Q2 configuration's step, taken apart. Times are per training step
/// (median over the timed steps), on rank 0.
public struct Q3Record: Codable, Equatable, Sendable {
    public var strategy: Strategy
    public var precision: Precision
    public var gpus: Int
    public var perDeviceBatch: Int
    /// The whole step, communication on.
    public var stepSeconds: Double
    /// The same step with communication switched off.
    public var stepSecondsWithoutCommunication: Double
    /// Time the compute stream was busy (kernels of forward, backward, optimiser).
    public var computeSeconds: Double
    /// Time the communication stream was busy (all-reduces), hidden or not.
    public var communicationBusySeconds: Double
    /// What communication adds to the step: on the CPU profile stepSeconds −
    /// stepSecondsWithoutCommunication; on GPUs measured directly, the compute
    /// stream's wait for the all-reduces (`GPUMeasurements.q3`).
    public var exposedCommunicationSeconds: Double
    /// 1 − exposed / busy, in [0, 1]: the share of communication hidden behind compute.
    public var overlapFraction: Double
    /// Bytes all-reduced per step (the gradients, in the all-reduce's dtype).
    public var bytesPerStep: Int
    /// bytesPerStep / communicationBusySeconds, in GB/s (nccl-tests' algbw).
    public var algbwGBps: Double
    /// algbw × 2(n−1)/n (nccl-tests' busbw for all-reduce).
    public var busbwGBps: Double

    public init(strategy: Strategy, precision: Precision, gpus: Int, perDeviceBatch: Int, stepSeconds: Double,
                stepSecondsWithoutCommunication: Double, computeSeconds: Double, communicationBusySeconds: Double,
                exposedCommunicationSeconds: Double, overlapFraction: Double, bytesPerStep: Int, algbwGBps: Double,
                busbwGBps: Double) {
        self.strategy = strategy
        self.precision = precision
        self.gpus = gpus
        self.perDeviceBatch = perDeviceBatch
        self.stepSeconds = stepSeconds
        self.stepSecondsWithoutCommunication = stepSecondsWithoutCommunication
        self.computeSeconds = computeSeconds
        self.communicationBusySeconds = communicationBusySeconds
        self.exposedCommunicationSeconds = exposedCommunicationSeconds
        self.overlapFraction = overlapFraction
        self.bytesPerStep = bytesPerStep
        self.algbwGBps = algbwGBps
        self.busbwGBps = busbwGBps
    }

    /// Fills the derived fields (exposed, overlap, algbw, busbw) from the measured ones.
    public init(strategy: Strategy, precision: Precision, gpus: Int, perDeviceBatch: Int, stepSeconds: Double,
                stepSecondsWithoutCommunication: Double, computeSeconds: Double, communicationBusySeconds: Double,
                bytesPerStep: Int) {
        let exposed = ScalingFigures.exposedCommunication(stepSeconds: stepSeconds,
                                                          withoutCommunication: stepSecondsWithoutCommunication)
        let algbw = ScalingFigures.algbw(bytes: bytesPerStep, seconds: communicationBusySeconds)
        self.init(strategy: strategy, precision: precision, gpus: gpus, perDeviceBatch: perDeviceBatch,
                  stepSeconds: stepSeconds, stepSecondsWithoutCommunication: stepSecondsWithoutCommunication,
                  computeSeconds: computeSeconds, communicationBusySeconds: communicationBusySeconds,
                  exposedCommunicationSeconds: exposed,
                  overlapFraction: ScalingFigures.overlapFraction(busySeconds: communicationBusySeconds,
                                                                  exposedSeconds: exposed),
                  bytesPerStep: bytesPerStep, algbwGBps: algbw,
                  busbwGBps: ScalingFigures.allReduceBusbw(algbw: algbw, ranks: gpus))
    }

    /// e.g. "DDP 4 GPUs × 128".
    public var label: String { label(replica: "GPU") }

    /// e.g. "DDP 2 ranks × 8" on the CPU profile (`Profile.replicaNoun`).
    public func label(replica: String) -> String {
        "\(strategy.rawValue.uppercased()) \(gpus) \(replica)\(gpus == 1 ? "" : "s") × \(perDeviceBatch)"
    }
}

/// One message size of `cohort bench allreduce` (median over repeats).
public struct AllReduceSweepRecord: Codable, Equatable, Sendable {
    /// The communicator that ran it: "nccl", "mpi", "single-process".
    public var communicator: String
    public var ranks: Int
    public var bytes: Int
    public var seconds: Double
    /// bytes / seconds, in GB/s.
    public var algbwGBps: Double
    /// algbw × 2(n−1)/n, in GB/s.
    public var busbwGBps: Double

    public init(communicator: String, ranks: Int, bytes: Int, seconds: Double, algbwGBps: Double, busbwGBps: Double) {
        self.communicator = communicator
        self.ranks = ranks
        self.bytes = bytes
        self.seconds = seconds
        self.algbwGBps = algbwGBps
        self.busbwGBps = busbwGBps
    }

    /// Derives algbw and busbw from the measured time.
    public init(communicator: String, ranks: Int, bytes: Int, seconds: Double) {
        let algbw = ScalingFigures.algbw(bytes: bytes, seconds: seconds)
        self.init(communicator: communicator, ranks: ranks, bytes: bytes, seconds: seconds, algbwGBps: algbw,
                  busbwGBps: ScalingFigures.allReduceBusbw(algbw: algbw, ranks: ranks))
    }
}

/// How a Q4 run sets its learning rate from the reference run's.
public enum LearningRateRule: String, Codable, Sendable, CaseIterable {
    /// The reference: small batch on one device.
    case reference
    /// (a) the reference LR unchanged at the large batch.
    case same
    /// (b) LR × (large batch / reference batch), with warm-up.
    case linear
    /// (c) LR × sqrt(large batch / reference batch), with warm-up.
    case sqrt
    /// (d) layer-wise adaptive rate scaling.
    case lars
}

/// One epoch of a Q4 run, evaluated on the test set after the epoch.
public struct Q4Epoch: Codable, Equatable, Sendable {
    /// 1-based.
    public var epoch: Int
    /// Fraction in [0, 1].
    public var testAccuracy: Double
    public var testLoss: Double
    public var trainLoss: Double
    /// Wall time of the epoch's training (not the evaluation).
    public var seconds: Double

    public init(epoch: Int, testAccuracy: Double, testLoss: Double, trainLoss: Double, seconds: Double) {
        self.epoch = epoch
        self.testAccuracy = testAccuracy
        self.testLoss = testLoss
        self.trainLoss = trainLoss
        self.seconds = seconds
    }
}

/// Q4: one training recipe on real CIFAR-10.
public struct Q4Record: Codable, Equatable, Sendable {
    /// Short name for tables and legends, e.g. "(b) linear + warmup".
    public var label: String
    /// The recipe in words, e.g. "SGD momentum 0.9, LR 3.2 (0.1 × 32), 2 warm-up epochs, cosine decay".
    public var recipe: String
    public var lrRule: LearningRateRule
    public var ranks: Int
    public var globalBatch: Int
    /// Peak learning rate after warm-up.
    public var peakLearningRate: Double
    public var warmupEpochs: Double
    public var labelSmoothing: Double
    public var epochs: [Q4Epoch]
    /// Who trained it: Cohort, or PyTorch's reference script on the same data (results files
    /// written before this field existed hold Cohort's runs only).
    public var framework: Framework
    /// The references' seed (`cohort train --seed`, `pytorch_train_cifar.py --seed`); nil for
    /// the large-batch runs and in files written before the references were repeated (seed 0
    /// both: the default of either). Repeats' labels name their seed, so labels stay unique.
    public var seed: Int?

    public init(label: String, recipe: String, lrRule: LearningRateRule, ranks: Int, globalBatch: Int,
                peakLearningRate: Double, warmupEpochs: Double, labelSmoothing: Double, epochs: [Q4Epoch],
                framework: Framework = .cohort, seed: Int? = nil) {
        self.framework = framework
        self.seed = seed
        self.label = label
        self.recipe = recipe
        self.lrRule = lrRule
        self.ranks = ranks
        self.globalBatch = globalBatch
        self.peakLearningRate = peakLearningRate
        self.warmupEpochs = warmupEpochs
        self.labelSmoothing = labelSmoothing
        self.epochs = epochs
    }

    public var finalTestAccuracy: Double? { epochs.last?.testAccuracy }
    public var totalSeconds: Double { epochs.reduce(0) { $0 + $1.seconds } }
    /// The seed-0 run of its recipe: the one the per-epoch tables and charts show.
    public var isFirstSeed: Bool { (seed ?? 0) == 0 }

    /// A reference's label: "reference" (Cohort's) or "PyTorch reference", with " seed <s>" for seeds other than 0.
    public static func referenceLabel(_ framework: Framework, seed: Int?) -> String {
        (framework == .pytorch ? "PyTorch reference" : Q4Recipe.label(.reference))
            + ((seed ?? 0) == 0 ? "" : " seed \(seed!)")
    }

    enum CodingKeys: String, CodingKey {
        case label, recipe, lrRule, ranks, globalBatch, peakLearningRate, warmupEpochs, labelSmoothing, epochs, framework,
             seed
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(label: c.decode(String.self, forKey: .label), recipe: c.decode(String.self, forKey: .recipe),
                      lrRule: c.decode(LearningRateRule.self, forKey: .lrRule), ranks: c.decode(Int.self, forKey: .ranks),
                      globalBatch: c.decode(Int.self, forKey: .globalBatch),
                      peakLearningRate: c.decode(Double.self, forKey: .peakLearningRate),
                      warmupEpochs: c.decode(Double.self, forKey: .warmupEpochs),
                      labelSmoothing: c.decode(Double.self, forKey: .labelSmoothing),
                      epochs: c.decode([Q4Epoch].self, forKey: .epochs),
                      framework: c.decodeIfPresent(Framework.self, forKey: .framework) ?? .cohort,
                      seed: c.decodeIfPresent(Int.self, forKey: .seed))
    }
}

/// Q4: time until the test accuracy first reaches a target.
public struct TimeToAccuracyRecord: Codable, Equatable, Sendable {
    public var label: String
    public var ranks: Int
    public var globalBatch: Int
    /// Fraction in [0, 1].
    public var targetAccuracy: Double
    /// Training wall time until the first evaluation at or above the target; nil if never reached.
    public var secondsToTarget: Double?
    /// The epoch of that evaluation; nil if never reached.
    public var epochsToTarget: Int?
    /// The best test accuracy the run reached.
    public var bestTestAccuracy: Double
    /// The whole run's training wall time.
    public var totalSeconds: Double

    public init(label: String, ranks: Int, globalBatch: Int, targetAccuracy: Double, secondsToTarget: Double?,
                epochsToTarget: Int?, bestTestAccuracy: Double, totalSeconds: Double) {
        self.label = label
        self.ranks = ranks
        self.globalBatch = globalBatch
        self.targetAccuracy = targetAccuracy
        self.secondsToTarget = secondsToTarget
        self.epochsToTarget = epochsToTarget
        self.bestTestAccuracy = bestTestAccuracy
        self.totalSeconds = totalSeconds
    }
}
