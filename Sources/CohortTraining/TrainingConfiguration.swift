import CohortNN
import CohortOptim
import Foundation

/// Everything that defines a training run besides its data and backend:
/// what the run header prints and the checkpoint records.
public struct TrainingConfiguration: Sendable {
    public var architecture: ModelArchitecture
    /// float32, or bf16 with float32 master weights (`Note [Mixed precision]`).
    public var precision: Precision
    public var epochs: Int
    /// Images per step on this rank.
    public var batchSize: Int
    /// The schedule's peak learning rate, after any scaling rule.
    public var learningRate: Float
    public var decay: LearningRateSchedule.Decay
    public var warmupEpochs: Int
    public var optimizer: OptimizerConfiguration
    /// Exempt batch-norm parameters and biases from weight decay.
    public var noDecayOnNormAndBias: Bool
    public var labelSmoothing: Float
    public var seed: UInt64
    /// Stop each epoch after this many steps (quick runs and smoke tests).
    public var stepsPerEpochLimit: Int?
    /// Evaluate on at most this many test images (quick runs).
    public var evaluationLimit: Int?
    public var evaluationBatchSize: Int
    /// Log a step record (and read the loss back) every this many steps.
    public var logEvery: Int
    /// Crop, flip and normalise on the backend (`Backend.augmentImages`)
    /// from raw uint8 batches, instead of on the loader's thread; nil: on
    /// for device backends, off on the host. Both give the same floats.
    public var augmentOnBackend: Bool?
    /// Replay each step from a captured graph where the backend can
    /// (`CapturedStep`; single-rank runs, where no host code runs inside a step).
    public var graphs: Bool
    /// Stop after the first epoch whose test accuracy (a fraction) is at
    /// least this, for time-to-accuracy runs; nil: run every epoch. The
    /// schedule still spans `epochs`, so the trajectory up to the stop is
    /// the full run's.
    public var targetAccuracy: Double?
    /// Start every residual block's last batch-norm scale at 0, so each block
    /// begins as the identity (torchvision's `zero_init_residual`, Goyal et
    /// al.'s remedy for large batches); ResNet only.
    public var zeroInitResidual = false
    /// Before each evaluation, recompute the batch-norm running statistics
    /// over this many training batches (Note [Batch-norm recalibration]); 0: off.
    public var recalibrationBatches = 0
    /// Stamp each convolution's weight gradient on the device (Note
    /// [Backward progress marks]); logged steps with phase timing report them.
    public var gradientMarks = false
    /// Capture a step as two graphs, forward and the rest, launched one
    /// after the other (Note [Split step graphs] in CUDABackend+Graph.swift).
    public var splitsGraphAfterForward = false

    public init(architecture: ModelArchitecture = .resnet18, precision: Precision = .float32, epochs: Int, batchSize: Int, learningRate: Float,
                decay: LearningRateSchedule.Decay = .constant, warmupEpochs: Int = 0,
                optimizer: OptimizerConfiguration = OptimizerConfiguration(), noDecayOnNormAndBias: Bool = false,
                labelSmoothing: Float = 0, seed: UInt64 = 0, stepsPerEpochLimit: Int? = nil,
                evaluationLimit: Int? = nil, evaluationBatchSize: Int = 500, logEvery: Int = 10) {
        self.architecture = architecture
        self.precision = precision
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.decay = decay
        self.warmupEpochs = warmupEpochs
        self.optimizer = optimizer
        self.noDecayOnNormAndBias = noDecayOnNormAndBias
        self.labelSmoothing = labelSmoothing
        self.seed = seed
        self.stepsPerEpochLimit = stepsPerEpochLimit
        self.evaluationLimit = evaluationLimit
        self.evaluationBatchSize = evaluationBatchSize
        self.logEvery = logEvery
        augmentOnBackend = nil
        graphs = true
    }

    /// The settings as strings, stored in checkpoints and the metrics log.
    public var summary: [String: String] {
        var fields = [
            "model": architecture.rawValue, "precision": precision.rawValue, "epochs": String(epochs), "batch_size": String(batchSize),
            "lr": String(learningRate), "schedule": decay.name.rawValue, "warmup_epochs": String(warmupEpochs),
            "optimizer": optimizer.kind.rawValue, "momentum": String(optimizer.momentum),
            "nesterov": String(optimizer.nesterov), "weight_decay": String(optimizer.weightDecay),
            "no_decay_on_norm_and_bias": String(noDecayOnNormAndBias),
            "label_smoothing": String(labelSmoothing), "seed": String(seed),
        ]
        if optimizer.kind == .lars { fields["lars_trust_coefficient"] = String(optimizer.larsTrustCoefficient) }
        if let stepsPerEpochLimit { fields["steps_per_epoch_limit"] = String(stepsPerEpochLimit) }
        if let targetAccuracy { fields["target_accuracy"] = String(targetAccuracy) }
        if zeroInitResidual { fields["zero_init_residual"] = "true" }
        if recalibrationBatches > 0 { fields["bn_recalibration_batches"] = String(recalibrationBatches) }
        return fields
    }
}
