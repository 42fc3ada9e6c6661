import Foundation

/// A `cohort train` metrics file (`metrics.jsonl`, `metrics-rank<N>.jsonl`)
/// read back: the run header, step records, epoch records and evaluations.
/// The experiments derive every Q2–Q4 figure from these records, so the
/// keys read here are the ones `Trainer` writes (README, "Using it").
public struct TrainingLog: Equatable, Sendable {
    /// The `"event": "run"` record's settings (all strings, as written).
    public var header: [String: String]
    public var steps: [StepRecord]
    public var epochs: [EpochRecord]
    public var evaluations: [EvaluationRecord]

    public init(header: [String: String] = [:], steps: [StepRecord] = [], epochs: [EpochRecord] = [],
                evaluations: [EvaluationRecord] = []) {
        self.header = header
        self.steps = steps
        self.epochs = epochs
        self.evaluations = evaluations
    }

    /// Parses the lines of a metrics file; lines that are not JSON objects are skipped
    /// (a run killed mid-write leaves a torn last line).
    public init(text: String) {
        self.init()
        for line in text.split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
            let record = Fields(object)
            switch object["event"] as? String {
            case "run":
                header = object.compactMapValues { value in
                    (value as? String) ?? (value as? NSNumber)?.stringValue
                }
            case "step": steps.append(StepRecord(record))
            case "epoch": epochs.append(EpochRecord(record))
            case "eval": evaluations.append(EvaluationRecord(record))
            default: continue
            }
        }
    }

    public init(contentsOf url: URL) throws {
        self.init(text: try String(contentsOf: url, encoding: .utf8))
    }

    /// Step records that cover only steps after the first `warmupSteps` global steps.
    /// A record stands for the steps since the previous one (`stepsTimed` of them),
    /// so it counts as warm-up while any of its steps is.
    public func timedSteps(afterWarmup warmupSteps: Int) -> [StepRecord] {
        steps.filter { $0.globalStep - max($0.stepsTimed, 1) >= warmupSteps }
    }

    /// Test accuracy and loss after each epoch, with that epoch's training loss and seconds.
    public var q4Epochs: [Q4Epoch] {
        evaluations.compactMap { evaluation in
            guard let accuracy = evaluation.testAccuracy, let loss = evaluation.testLoss,
                  let epoch = epochs.first(where: { $0.epoch == evaluation.epoch }), epoch.trainLoss.isFinite
            else { return nil }
            return Q4Epoch(epoch: evaluation.epoch, testAccuracy: accuracy, testLoss: loss, trainLoss: epoch.trainLoss,
                           seconds: epoch.seconds)
        }
    }

    /// The first epoch whose test accuracy reached `target`, and the seconds of
    /// training epochs up to its end (evaluations left out); nil if none did.
    public func timeTo(accuracy target: Double) -> (epoch: Int, seconds: Double)? {
        var seconds = 0.0
        for epoch in epochs.sorted(by: { $0.epoch < $1.epoch }) {
            seconds += epoch.seconds
            if let evaluation = evaluations.first(where: { $0.epoch == epoch.epoch }),
               let accuracy = evaluation.testAccuracy, accuracy >= target {
                return (epoch.epoch, seconds)
            }
        }
        return nil
    }
}

/// One `"event": "step"` record: means over the steps since the previous
/// record (host clocks), and on GPUs the device timings of the logged step
/// itself (`Note [Device timing]` in the sources).
public struct StepRecord: Equatable, Sendable {
    public var epoch: Int
    public var globalStep: Int
    /// Steps the record's means cover.
    public var stepsTimed: Int
    /// Of those, steps replayed from a CUDA graph.
    public var graphReplayedSteps: Int
    /// This rank's images per second over those steps, host wall clock.
    public var imagesPerSecond: Double?
    public var loss: Double?
    /// Host seconds per step (exact on the CPU; on a GPU, the time to issue the work).
    public var hostForwardSeconds: Double?
    public var hostBackwardSeconds: Double?
    public var hostOptimizerSeconds: Double?
    public var hostCommunicationSeconds: Double?
    /// Bytes of each gradient all-reduce of a step.
    public var allReduceBytes: [Int]
    /// Device seconds of the logged step, start to end on the compute stream.
    public var deviceStepSeconds: Double?
    /// Eager steps only: the phases on the compute stream.
    public var deviceForwardSeconds: Double?
    public var deviceBackwardSeconds: Double?
    public var deviceOptimizerSeconds: Double?
    /// Eager multi-rank steps: the compute stream's wait for the last all-reduce.
    public var deviceExposedCommunicationSeconds: Double?
    /// Eager multi-rank steps: each all-reduce's busy time on the communication stream, and their sum.
    public var deviceAllReduceSeconds: [Double]?
    public var deviceCommunicationBusySeconds: Double?
    /// Eager multi-rank steps: each all-reduce's start after the step's start.
    public var deviceAllReduceStartSeconds: [Double]?

    public init(epoch: Int = 1, globalStep: Int, stepsTimed: Int = 1, graphReplayedSteps: Int = 0,
                imagesPerSecond: Double? = nil, loss: Double? = nil, hostForwardSeconds: Double? = nil,
                hostBackwardSeconds: Double? = nil, hostOptimizerSeconds: Double? = nil,
                hostCommunicationSeconds: Double? = nil, allReduceBytes: [Int] = [], deviceStepSeconds: Double? = nil,
                deviceForwardSeconds: Double? = nil, deviceBackwardSeconds: Double? = nil,
                deviceOptimizerSeconds: Double? = nil, deviceExposedCommunicationSeconds: Double? = nil,
                deviceAllReduceSeconds: [Double]? = nil, deviceCommunicationBusySeconds: Double? = nil,
                deviceAllReduceStartSeconds: [Double]? = nil) {
        self.epoch = epoch
        self.globalStep = globalStep
        self.stepsTimed = stepsTimed
        self.graphReplayedSteps = graphReplayedSteps
        self.imagesPerSecond = imagesPerSecond
        self.loss = loss
        self.hostForwardSeconds = hostForwardSeconds
        self.hostBackwardSeconds = hostBackwardSeconds
        self.hostOptimizerSeconds = hostOptimizerSeconds
        self.hostCommunicationSeconds = hostCommunicationSeconds
        self.allReduceBytes = allReduceBytes
        self.deviceStepSeconds = deviceStepSeconds
        self.deviceForwardSeconds = deviceForwardSeconds
        self.deviceBackwardSeconds = deviceBackwardSeconds
        self.deviceOptimizerSeconds = deviceOptimizerSeconds
        self.deviceExposedCommunicationSeconds = deviceExposedCommunicationSeconds
        self.deviceAllReduceSeconds = deviceAllReduceSeconds
        self.deviceCommunicationBusySeconds = deviceCommunicationBusySeconds
        self.deviceAllReduceStartSeconds = deviceAllReduceStartSeconds
    }

    init(_ f: Fields) {
        self.init(epoch: f.int("epoch") ?? 1, globalStep: f.int("global_step") ?? 0, stepsTimed: f.int("steps_timed") ?? 1,
                  graphReplayedSteps: f.int("graph_replayed_steps") ?? 0, imagesPerSecond: f.double("images_per_second"),
                  loss: f.double("loss"), hostForwardSeconds: f.double("forward_seconds"),
                  hostBackwardSeconds: f.double("backward_seconds"), hostOptimizerSeconds: f.double("optimizer_seconds"),
                  hostCommunicationSeconds: f.double("communication_seconds"),
                  allReduceBytes: f.doubles("allreduce_bytes")?.map { Int($0) } ?? [],
                  deviceStepSeconds: f.double("device_step_seconds"),
                  deviceForwardSeconds: f.double("device_forward_seconds"),
                  deviceBackwardSeconds: f.double("device_backward_seconds"),
                  deviceOptimizerSeconds: f.double("device_optimizer_seconds"),
                  deviceExposedCommunicationSeconds: f.double("device_exposed_communication_seconds"),
                  deviceAllReduceSeconds: f.doubles("device_allreduce_seconds"),
                  deviceCommunicationBusySeconds: f.double("device_communication_busy_seconds"),
                  deviceAllReduceStartSeconds: f.doubles("device_allreduce_start_seconds"))
    }

    /// Forward + backward + optimizer on the compute stream (eager steps); nil when not device-timed.
    public var deviceComputeSeconds: Double? {
        guard let forward = deviceForwardSeconds, let backward = deviceBackwardSeconds,
              let optimizer = deviceOptimizerSeconds else { return nil }
        return forward + backward + optimizer
    }
}

/// One `"event": "epoch"` record.
public struct EpochRecord: Equatable, Sendable {
    public var epoch: Int
    public var trainLoss: Double
    public var trainAccuracy: Double
    /// Wall seconds of the epoch's training steps (evaluation not included).
    public var seconds: Double

    public init(epoch: Int, trainLoss: Double, trainAccuracy: Double, seconds: Double) {
        self.epoch = epoch
        self.trainLoss = trainLoss
        self.trainAccuracy = trainAccuracy
        self.seconds = seconds
    }

    init(_ f: Fields) {
        self.init(epoch: f.int("epoch") ?? 0, trainLoss: f.double("train_loss") ?? .nan,
                  trainAccuracy: f.double("train_accuracy") ?? .nan, seconds: f.double("seconds") ?? 0)
    }
}

/// One `"event": "eval"` record, written after each epoch.
public struct EvaluationRecord: Equatable, Sendable {
    public var epoch: Int
    /// nil without a test set.
    public var testLoss: Double?
    public var testAccuracy: Double?
    /// Set on the evaluation that first reached `cohort train --target-accuracy`.
    public var trainingSecondsToTarget: Double?

    public init(epoch: Int, testLoss: Double?, testAccuracy: Double?, trainingSecondsToTarget: Double? = nil) {
        self.epoch = epoch
        self.testLoss = testLoss
        self.testAccuracy = testAccuracy
        self.trainingSecondsToTarget = trainingSecondsToTarget
    }

    init(_ f: Fields) {
        self.init(epoch: f.int("epoch") ?? 0, testLoss: f.double("test_loss"), testAccuracy: f.double("test_accuracy"),
                  trainingSecondsToTarget: f.double("training_seconds_to_target"))
    }
}

/// Typed reads of one JSON object's values.
struct Fields {
    var object: [String: Any]
    init(_ object: [String: Any]) { self.object = object }

    func double(_ key: String) -> Double? {
        guard let number = object[key] as? NSNumber else { return nil }
        let value = number.doubleValue
        return value.isFinite ? value : nil
    }

    func int(_ key: String) -> Int? { (object[key] as? NSNumber)?.intValue }

    func doubles(_ key: String) -> [Double]? {
        (object[key] as? [Any])?.compactMap { ($0 as? NSNumber)?.doubleValue }
    }
}
