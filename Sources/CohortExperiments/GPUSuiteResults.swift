import Foundation

/// How one planned command ended.
public enum RunOutcome: Equatable, Sendable {
    /// Exit status 0 after `seconds`.
    case finished(seconds: Double)
    /// Non-zero exit, a time-out or a launch error: the reason, with the output's last line.
    case failed(reason: String)
    /// Not started: out of time, or a part it depends on is missing.
    case skipped(reason: String)

    public var succeeded: Bool { if case .finished = self { return true } else { return false } }

    /// Why the run gave nothing; nil when it finished.
    public var reason: String? {
        switch self {
        case .finished: return nil
        case .failed(let reason), .skipped(let reason): return reason
        }
    }
}

/// A planned command as it ran (Q4's (e) is planned before its rule is known).
public struct ExecutedRun: Equatable, Sendable {
    public var run: PlannedRun
    public var outcome: RunOutcome

    public init(run: PlannedRun, outcome: RunOutcome) {
        self.run = run
        self.outcome = outcome
    }
}

/// Builds the results of the GPU profile from the files its commands wrote
/// (each in its run folder), and says for every missing figure why: a
/// configuration that did not run, failed or wrote nothing readable is
/// named with its reason in its section's `notRunReason`. No figure is made
/// up: every number comes from a file a run wrote.
public struct GPUSuiteResults {
    public var plan: GPUSuitePlan
    public var executed: [ExecutedRun]
    /// Reasons collected while assembling, by section id.
    private var missing: [String: [String]] = [:]
    /// Library versions seen in the runs' files (PyTorch, NCCL).
    public private(set) var pytorchVersion: String?

    public init(plan: GPUSuitePlan, executed: [ExecutedRun]) {
        self.plan = plan
        self.executed = executed
    }

    var settings: GPUSuiteSettings { plan.settings }

    /// Every section, and the notes that explain how the figures were made.
    public mutating func assemble(metadata: RunMetadata) -> ExperimentResults {
        missing = [:]
        let q1 = q1Section()
        let sweep = sweepSection()
        let q2 = q2Section()
        let (q3, timelines) = q3Sections()
        let (q4, tta) = q4Sections()
        var metadata = metadata
        metadata.notes += notes()
        if metadata.libraries.pytorch == nil { metadata.libraries.pytorch = pytorchVersion }
        return ExperimentResults(metadata: metadata, q1: q1, q2: q2, q3: q3, allReduceSweep: sweep, q4: q4,
                                 timeToAccuracy: tta, timelines: timelines)
    }

    // MARK: Sections

    func runs(_ kinds: PlannedRun.Kind...) -> [ExecutedRun] { executed.filter { kinds.contains($0.run.kind) } }

    private mutating func note(_ section: String, _ run: ExecutedRun, _ reason: String) {
        missing[section, default: []].append("\(run.run.label): \(reason)")
    }

    /// The section's records with the reasons of whatever is missing, or `notRun` with them (or `absent`).
    private func section<R>(_ id: String, _ records: [R], absent: String) -> Section<R> {
        let reasons = missing[id] ?? []
        if records.isEmpty { return .notRun(reasons.isEmpty ? absent : reasons.joined(separator: "; ")) }
        return Section(records: records, notRunReason: reasons.isEmpty ? nil : reasons.joined(separator: "; "))
    }

    /// Reads a run's file, noting the reason when the run did not finish or the file does not read.
    private mutating func read<T>(_ section: String, _ run: ExecutedRun, _ file: String,
                                  _ parse: (Data) throws -> T) -> T? {
        if let reason = run.outcome.reason {
            note(section, run, reason)
            return nil
        }
        let path = run.run.directory + "/" + file
        do {
            return try parse(try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            note(section, run, "\(file) does not read (\(error))")
            return nil
        }
    }

    /// Rank 0's metrics file of a training run (metrics.jsonl for one process of one rank).
    public static func metricsFile(gpus: Int, rank: Int = 0) -> String {
        gpus > 1 ? "metrics-rank\(rank).jsonl" : "metrics.jsonl"
    }

    /// `cohort bench --json`'s rows (ThroughputBenchmark.Result), the fields Q1 needs.
    struct BenchRow: Decodable {
        var batchSize: Int
        var imagesPerSecond: Double
        var precision: String
        var peakMemoryBytes: Int?
    }

    mutating func q1Section() -> Section<Q1Record> {
        var records: [Q1Record] = []
        for run in runs(.q1Cohort) {
            let rows = read("q1", run, "bench.json") { try JSONDecoder().decode([BenchRow].self, from: $0) } ?? []
            for row in rows where row.imagesPerSecond > 0 {
                records.append(Q1Record(framework: .cohort, device: "cuda:0",
                                        precision: Precision(rawValue: row.precision) ?? settings.precision,
                                        batchSize: row.batchSize,
                                        epochSeconds: Double(settings.imagesPerEpoch) / row.imagesPerSecond,
                                        imagesPerSecond: row.imagesPerSecond, peakMemoryBytes: row.peakMemoryBytes))
            }
        }
        let imagesPerEpoch = settings.imagesPerEpoch
        for run in runs(.q1PyTorch) {
            if let parsed = read("q1", run, "pytorch.json", { try PyTorchResults.q1(from: $0, imagesPerEpoch: imagesPerEpoch) }) {
                records += parsed.records
                pytorchVersion = pytorchVersion ?? parsed.version
            }
        }
        return section("q1", records, absent: "not requested (--only)")
    }

    mutating func sweepSection() -> Section<AllReduceSweepRecord> {
        var records: [AllReduceSweepRecord] = []
        for run in runs(.allReduceSweep, .allReduceAtGradientSize, .allReducePyTorch) {
            records += read("allreduce", run, "allreduce.json") {
                try JSONDecoder().decode([AllReduceSweepRecord].self, from: $0)
            } ?? []
        }
        let absent = plan.multiGPUCounts.isEmpty ? "one GPU: an all-reduce needs two or more" : "not requested (--only)"
        return section("allreduce", records, absent: absent)
    }

    mutating func q2Section() -> Section<Q2Record> {
        var records: [Q2Record] = []
        for run in runs(.q2Cohort) {
            guard let log = read("q2", run, Self.metricsFile(gpus: run.run.gpus), { TrainingLog(text: String(decoding: $0, as: UTF8.self)) }) else { continue }
            guard let seconds = GPUMeasurements.epochSeconds(log, gpus: run.run.gpus, warmupSteps: settings.warmupSteps,
                                                             imagesPerEpoch: settings.imagesPerEpoch) else {
                note("q2", run, "no step record after \(settings.warmupSteps) warm-up steps")
                continue
            }
            if log.timedSteps(afterWarmup: settings.warmupSteps).allSatisfy({ $0.graphReplayedSteps == 0 }) {
                note("q2", run, "measured, but its timed steps ran eagerly (no CUDA graph replay; see its output.txt)")
            }
            records.append(Q2Record(framework: .cohort, strategy: run.run.strategy ?? .ddp, precision: settings.precision,
                                    gpus: run.run.gpus, perDeviceBatch: run.run.perDeviceBatch ?? 0, epochSeconds: seconds))
        }
        for run in runs(.q2PyTorch) {
            if let parsed = read("q2", run, "pytorch.json", { try PyTorchResults.q2(from: $0) }) {
                records += parsed.records
                pytorchVersion = pytorchVersion ?? parsed.version
            }
        }
        return section("q2", records.withDerivedScaling(), absent: "not requested (--only)")
    }

    /// The 1-GPU eager step at each per-GPU batch: Q3's step without communication.
    mutating func singleGPUEagerSteps() -> [Int: Double] {
        var steps: [Int: Double] = [:]
        for run in runs(.q3Cohort) where run.run.gpus == 1 {
            guard let batch = run.run.perDeviceBatch,
                  let log = read("q3", run, Self.metricsFile(gpus: 1), { TrainingLog(text: String(decoding: $0, as: UTF8.self)) })
            else { continue }
            steps[batch] = GPUMeasurements.deviceStepSeconds(log, warmupSteps: settings.eagerWarmupSteps)
        }
        return steps
    }

    /// Median eager device step of each configuration run with `--no-communication`, by (strategy, GPUs, batch).
    mutating func stepsWithoutCommunication() -> [String: Double] {
        var steps: [String: Double] = [:]
        for run in runs(.q3NoCommunication) {
            guard let batch = run.run.perDeviceBatch,
                  let log = read("q3", run, Self.metricsFile(gpus: run.run.gpus), { TrainingLog(text: String(decoding: $0, as: UTF8.self)) })
            else { continue }
            steps["\(run.run.strategy ?? .ddp) \(run.run.gpus) \(batch)"] =
                GPUMeasurements.deviceStepSeconds(log, warmupSteps: settings.eagerWarmupSteps)
        }
        return steps
    }

    mutating func q3Sections() -> (Section<Q3Record>, Section<StepTimeline>) {
        let baselines = singleGPUEagerSteps()
        let withoutCommunication = stepsWithoutCommunication()
        var records: [Q3Record] = []
        var timelines: [StepTimeline] = []
        for run in runs(.q3Cohort) where run.run.gpus > 1 {
            let gpus = run.run.gpus, batch = run.run.perDeviceBatch ?? 0
            guard let log = read("q3", run, Self.metricsFile(gpus: gpus), { TrainingLog(text: String(decoding: $0, as: UTF8.self)) })
            else {
                missing["timelines", default: []].append("\(run.run.label): \(run.outcome.reason ?? "no metrics")")
                continue
            }
            // The same configuration with communication off; else the 1-GPU eager step at this batch.
            let sameWithoutCommunication = withoutCommunication["\(run.run.strategy ?? .ddp) \(gpus) \(batch)"]
            if sameWithoutCommunication == nil {
                note("q3", run, baselines[batch] == nil
                     ? "no run without communication and no 1-GPU eager step at \(batch) per GPU: the step without communication is this run's own compute time"
                     : "no run without communication: the 1-GPU eager step at \(batch) per GPU stands in for it")
            }
            if let record = GPUMeasurements.q3(log, strategy: run.run.strategy ?? .ddp, precision: settings.precision,
                                               gpus: gpus, perDeviceBatch: batch, warmupSteps: settings.eagerWarmupSteps,
                                               withoutCommunication: sameWithoutCommunication ?? baselines[batch]) {
                records.append(record)
            } else {
                note("q3", run, "its step records have no per-phase device timing")
            }
            var logs: [Int: TrainingLog] = [0: log]
            for rank in 1..<gpus {
                let url = URL(fileURLWithPath: run.run.directory + "/" + Self.metricsFile(gpus: gpus, rank: rank))
                if let other = try? TrainingLog(contentsOf: url) { logs[rank] = other }
            }
            let label = "\(run.run.strategy?.rawValue.uppercased() ?? "DDP") \(gpus) GPUs × \(batch)"
            if let timeline = GPUMeasurements.timeline(configuration: label, logs: logs,
                                                       warmupSteps: settings.eagerWarmupSteps,
                                                       steps: settings.timelineSteps) {
                timelines.append(timeline)
            }
        }
        let absent = plan.multiGPUCounts.isEmpty ? "one GPU: nothing is communicated" : "not requested (--only)"
        return (section("q3", records, absent: absent), section("timelines", timelines, absent: absent))
    }

    mutating func q4Sections() -> (Section<Q4Record>, Section<TimeToAccuracyRecord>) {
        let noData = "needs CIFAR-10: pass --data <folder with cifar-10-batches-bin> or set COHORT_CIFAR10_DIR "
            + "(cohort download --into <folder> fetches it; on the GPU machine scripts/gpu-experiments.sh converts the carried JPEGs)"
        var records: [Q4Record] = []
        let r = settings.q4
        for run in runs(.q4) {
            guard let rule = run.run.lrRule else { continue }
            let smoothing = run.run.isBestOfQ4 ? r.labelSmoothing : 0
            // A failed run (a diverged recipe) keeps the epochs it finished.
            let url = URL(fileURLWithPath: run.run.directory + "/" + Self.metricsFile(gpus: run.run.gpus))
            let epochs = (try? TrainingLog(contentsOf: url))?.q4Epochs ?? []
            if let reason = run.outcome.reason {
                note("q4", run, epochs.isEmpty ? reason : "stopped after epoch \(epochs.count): \(reason)")
            }
            guard !epochs.isEmpty else { continue }
            let label = run.run.isBestOfQ4 ? "(e) \(Q4Recipe.label(rule)) + label smoothing"
                : rule == .reference ? Q4Record.referenceLabel(.cohort, seed: run.run.seed) : Q4Recipe.label(rule)
            records.append(Q4Record(label: label, recipe: plan.q4Recipe(rule: rule, labelSmoothing: smoothing),
                                    lrRule: rule, ranks: run.run.gpus,
                                    globalBatch: run.run.gpus * (run.run.perDeviceBatch ?? 0),
                                    peakLearningRate: r.learningRate(rule), warmupEpochs: Double(r.warmup(rule)),
                                    labelSmoothing: smoothing, epochs: epochs, seed: run.run.seed))
        }
        let referenceRecipe = plan.q4Recipe(rule: .reference, labelSmoothing: 0)
        for run in runs(.q4PyTorch) {
            if let record = read("q4", run, "pytorch.json", {
                try PyTorchResults.q4Reference(from: $0, recipe: referenceRecipe, batch: r.referenceBatch,
                                               learningRate: r.baseLearningRate, seed: run.run.seed)
            }) {
                records.append(record)
            }
        }
        var tta: [TimeToAccuracyRecord] = []
        let t = settings.timeToAccuracy
        for run in runs(.timeToAccuracy) {
            guard let log = read("time-to-accuracy", run, Self.metricsFile(gpus: run.run.gpus), {
                TrainingLog(text: String(decoding: $0, as: UTF8.self))
            }) else { continue }
            let reached = log.timeTo(accuracy: t.targetAccuracy)
            let best = log.evaluations.compactMap(\.testAccuracy).max() ?? 0
            tta.append(TimeToAccuracyRecord(
                label: "\(run.run.gpus) GPU\(run.run.gpus == 1 ? "" : "s") × \(run.run.perDeviceBatch ?? 0)",
                ranks: run.run.gpus, globalBatch: run.run.gpus * (run.run.perDeviceBatch ?? 0),
                targetAccuracy: t.targetAccuracy,
                secondsToTarget: log.evaluations.compactMap(\.trainingSecondsToTarget).first ?? reached?.seconds,
                epochsToTarget: reached?.epoch, bestTestAccuracy: best,
                totalSeconds: log.epochs.map(\.seconds).reduce(0, +)))
        }
        let absentQ4 = settings.dataDirectory == nil ? noData : "not requested (--only)"
        return (section("q4", records, absent: absentQ4), section("time-to-accuracy", tta, absent: absentQ4))
    }

    // MARK: Notes

    /// How the figures were made, for the report's stamp.
    func notes() -> [String] {
        let s = settings
        var notes: [String] = []
        if runs(.q1Cohort).contains(where: \.outcome.succeeded) {
            notes.append("Q1: `cohort bench --device cuda --precision \(s.precision.rawValue)` (random images already on the GPU, "
                + "steps replayed from a CUDA graph), median of \(s.q1TimedSteps) steps after \(s.q1WarmupSteps) warm-up; "
                + "epoch = \(s.imagesPerEpoch) images / images per second; peak memory is the caching allocator's high-water mark"
                + (s.python != nil ? "; PyTorch: benchmarks/pytorch_resnet18.py, eager\(s.precision == .bf16 ? ", bf16 autocast + channels_last" : ""), "
                    + "torch.cuda.max_memory_allocated" : ""))
        }
        if runs(.q2Cohort).contains(where: \.outcome.succeeded) {
            notes.append("Q2: `cohort train --dataset synthetic` for \(s.warmupSteps + s.timedSteps) steps per configuration "
                + "(the data loader and device augmentation included; steps replayed from CUDA graphs after warm-up); rank 0's "
                + "images per second over each \(s.logEvery)-step window after the first \(s.warmupSteps) steps, host wall clock; "
                + "epoch seconds EXTRAPOLATED: \(s.imagesPerEpoch) images / (GPUs × the median window rate). The 1-GPU run is one "
                + "process for both strategies and the baseline of each. ddp = `cohort launch --nproc-per-node N -- cohort train`, "
                + "dp = `cohort train --strategy dp --replicas N`"
                + (s.python != nil ? "; PyTorch: benchmarks/pytorch_ddp.py (random data on the GPU, no loader), median of "
                    + "\(s.timedSteps) steps after \(s.warmupSteps), DDP under torchrun with default buckets, DataParallel in one process (a third of those steps)" : ""))
        }
        if runs(.q3Cohort).contains(where: \.outcome.succeeded) {
            notes.append("Q3 and the timelines: "
                + (s.q3ReplayedSteps ? "replayed steps timed inside their graph (`--time-graph-phases --log-every 2`, "
                                     : "eager runs (`--no-graphs --log-every 1`, ")
                + "\(s.eagerWarmupSteps) warm-up + "
                + "\(s.eagerTimedSteps) timed steps), medians of rank 0's device timings: compute = forward + backward + optimizer "
                + "on the compute stream; communication busy = the bucket all-reduces' time on NCCL's stream; exposed = the compute "
                + "stream's measured wait for the last all-reduce; step without communication = the same configuration run with "
                + "`--no-communication` (the 1-GPU step at the same batch where that run is missing); algbw = bytes / busy time (waits for slower peers included)"
                + (s.q3ReplayedSteps ? "; each timed step is the second of a pair after the host read the first's loss, so it starts queued behind its predecessor, with the ranks in step, as Q2's replays do"
                   : ". Eager steps issue kernels one by one, so at small batches their compute time includes waiting for the host; Q2's graph steps do not"))
        }
        if runs(.allReduceSweep).contains(where: \.outcome.succeeded) {
            notes.append("All-reduce sweep: `cohort launch -- cohort bench allreduce --device cuda` (float32 sum, median of 20), "
                + "and once at ResNet-18's gradient size (\(GPUSuitePlan.resnet18GradientBytes) bytes, median of 50)")
        }
        if runs(.q4).contains(where: \.outcome.succeeded) {
            let r = s.q4
            notes.append("Q4: `cohort train` on CIFAR-10, \(r.epochs) epochs each: reference 1 GPU × \(r.referenceBatch) at LR "
                + "\(Format.compact(r.baseLearningRate)); large batch \(r.globalBatch) = \(r.ranks) GPUs × \(r.perRankBatch)"
                + (r.ranks < 4 ? " (fewer than 4 GPUs here: the same global batch on \(r.ranks))" : "")
                + "; (e) is the best of (a)-(d) by final test accuracy, with label smoothing \(Format.compact(r.labelSmoothing))"
                + (r.referenceSeeds > 1
                   ? "; the reference\(s.python != nil ? " and PyTorch's" : "") ran with seeds 0-\(r.referenceSeeds - 1) "
                     + "(`--seed`; the repeats last in the suite), the per-epoch tables show seed 0, and the baseline "
                     + "target compares means over the seeds that finished (Note [Q4 reference seeds])"
                   : ""))
        }
        if runs(.timeToAccuracy).contains(where: \.outcome.succeeded) {
            let t = s.timeToAccuracy
            notes.append("Time to accuracy: `cohort train --target-accuracy \(Format.compact(t.targetAccuracy))` on CIFAR-10, "
                + "global batch \(t.globalBatch), LR \(Format.compact(t.learningRate)) Nesterov, \(t.warmupEpochs) warm-up epochs, "
                + "\(t.schedule) decay over \(t.epochs) epochs, label smoothing \(Format.compact(t.labelSmoothing)); seconds = "
                + "training epochs up to the first evaluation at or above the target (evaluations not counted)")
        }
        return notes
    }
}
