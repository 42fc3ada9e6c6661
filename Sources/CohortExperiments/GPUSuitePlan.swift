import Foundation

/// A part of the GPU suite, as `cohort experiments --only` names it.
public enum SuitePart: String, CaseIterable, Sendable, Comparable {
    /// One GPU, throughput by batch size (`cohort bench`, and `pytorch_resnet18.py`).
    case q1
    /// Weak scaling over GPU counts and strategies (graph runs, and `pytorch_ddp.py`).
    case q2
    /// Compute and communication per step (eager runs), with the step timelines.
    case q3
    /// `cohort bench allreduce`, 1 KB to 1 GB, and once at the gradients' size.
    case allreduce
    /// Large-batch accuracy per epoch on CIFAR-10.
    case q4
    /// Time to a test accuracy on 1 and N GPUs.
    case tta

    public static func < (a: SuitePart, b: SuitePart) -> Bool { allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)! }
}

/// Q4's documented recipe; every field is a `cohort experiments` flag.
/// The reference trains at `referenceBatch` on one GPU with
/// `baseLearningRate`; the large-batch runs train at `globalBatch` on
/// `ranks` GPUs (globalBatch / ranks each) with the rule's learning rate:
/// (a) same: the base LR; (b) linear: base x globalBatch / referenceBatch;
/// (c) sqrt: base x sqrt(globalBatch / referenceBatch); (b) and (c) warm up
/// linearly for `warmupEpochs`; (d) LARS at `larsLearningRate` (default the
/// linear rule's) with trust coefficient `larsEta`, warmed up the same;
/// (e) the best of (a)-(d) by final test accuracy, again with
/// `labelSmoothing`. All: SGD momentum 0.9 (Nesterov), weight decay 5e-4,
/// linear decay to 0 over `epochs`, no label smoothing except (e).
public struct Q4Recipe: Equatable, Sendable {
    public var epochs = 5
    public var referenceBatch = 128
    public var baseLearningRate = 0.1
    public var globalBatch = 8192
    /// GPUs of the large-batch runs (the suite uses min(4, GPUs on the machine)).
    public var ranks = 4
    public var warmupEpochs = 2
    /// `cohort train --schedule`.
    public var schedule = "linear"
    public var momentum = 0.9
    public var nesterov = true
    public var weightDecay = 5e-4
    /// Used by (e) only.
    public var labelSmoothing = 0.1
    public var larsEta = 0.001
    /// The large-batch runs start each residual block as the identity
    /// (`cohort train --zero-init-residual`; off by default: not measured yet).
    public var zeroInitResidual = false
    /// The large-batch runs recompute batch-norm statistics over this many
    /// batches before each evaluation (`cohort train --bn-recalibration-batches`); 0: off.
    /// On by default: it changes no weight, only the statistics evaluation
    /// uses, and it lifted LARS from 21.5% to 50.4% (Note [Large-batch remedies]).
    public var recalibrationBatches = 4
    /// nil: the linear rule's learning rate.
    public var larsLearningRate: Double?
    /// The reference and PyTorch's reference each run with seeds 0..<referenceSeeds
    /// (`cohort train --seed`, `pytorch_train_cifar.py --seed`): their baseline
    /// comparison is of means, not of two single runs (Note [Q4 reference seeds]).
    public var referenceSeeds = 3

    public init() {}

    public var perRankBatch: Int { globalBatch / ranks }

    public func learningRate(_ rule: LearningRateRule) -> Double {
        let ratio = Double(globalBatch) / Double(referenceBatch)
        switch rule {
        case .reference, .same: return baseLearningRate
        case .linear: return baseLearningRate * ratio
        case .sqrt: return baseLearningRate * ratio.squareRoot()
        case .lars: return larsLearningRate ?? baseLearningRate * ratio
        }
    }

    public func warmup(_ rule: LearningRateRule) -> Int { rule == .reference || rule == .same ? 0 : warmupEpochs }

    /// "(b) linear + warmup" and so on; "reference" for the small-batch run.
    public static func label(_ rule: LearningRateRule) -> String {
        switch rule {
        case .reference: return "reference"
        case .same: return "(a) same LR"
        case .linear: return "(b) linear + warmup"
        case .sqrt: return "(c) sqrt + warmup"
        case .lars: return "(d) LARS"
        }
    }
}

/// The time-to-accuracy runs' recipe: by default the one that reached
/// 90.35% in 30 epochs on one H200 at batch 512 (docs/benchmarks.md,
/// "Accuracy parity"), at the same global batch on N GPUs.
public struct TimeToAccuracyRecipe: Equatable, Sendable {
    public var targetAccuracy = 0.90
    public var epochs = 30
    /// 4 x 256 on four GPUs: as accurate as 4 x 128 at LR 0.4 in the same
    /// 30 epochs (90.4% both) and 22% faster (Note [Time to accuracy]).
    public var globalBatch = 1024
    public var learningRate = 0.8
    public var warmupEpochs = 2
    public var schedule = "linear"
    public var labelSmoothing = 0.1
    public var weightDecay = 5e-4

    public init() {}
}

/// What the GPU profile runs, before anything runs: `GPUSuitePlan` turns it into commands.
public struct GPUSuiteSettings: Equatable, Sendable {
    /// GPU counts of Q2/Q3, each at most the machine's (1 is the weak-scaling baseline).
    public var gpuCounts: [Int] = [1, 2, 4]
    public var parts: Set<SuitePart> = Set(SuitePart.allCases)
    public var precision: Precision = .bf16
    public var q1Batches = [32, 128, 512, 2048]
    public var q2Batches = [32, 128, 512, 1024]
    public var strategies: [Strategy] = [.ddp, .dp]
    /// Q1: `cohort bench` / `pytorch_resnet18.py` warm-up and timed steps per batch.
    public var q1WarmupSteps = 5
    public var q1TimedSteps = 20
    /// Q2 graph runs: steps left out, steps timed, and the logging window (a rate per window).
    public var warmupSteps = 15
    public var timedSteps = 45
    public var logEvery = 5
    /// Q3 eager runs: every step logged with device timings.
    public var eagerWarmupSteps = 5
    public var eagerTimedSteps = 10
    /// Q3 (and the timelines) from replayed steps timed inside their graph
    /// (`cohort train --time-graph-phases`, Note [Timing inside graphs]), the
    /// step Q2 times, rather than eager ones, whose kernels the host issues
    /// one by one (three times slower at 4 x 128). First run in suite call 4
    /// (4 x H200, 79cadb6); the timing nodes cost a one-GPU replay 0.23 ms at
    /// 128 per GPU and 0.01 ms at 512, in the runs with and without
    /// communication alike.
    public var q3ReplayedSteps = true
    /// Steps per configuration and rank in the timelines.
    public var timelineSteps = 3
    public var allReduceMinBytes = 1 << 10
    public var allReduceMaxBytes = 1 << 30
    public var q4 = Q4Recipe()
    public var timeToAccuracy = TimeToAccuracyRecipe()
    /// CIFAR-10 for Q4 and time to accuracy; nil: those are not run.
    public var dataDirectory: String?
    /// The Python with PyTorch for the reference rows; nil: none.
    public var python: String?
    /// Where pytorch_resnet18.py and pytorch_ddp.py are.
    public var benchmarksDirectory = "benchmarks"
    /// Images in one epoch of Q1–Q3 (epoch times are extrapolated from step times).
    public var imagesPerEpoch = 50_000

    public init() {}
}

/// One command of the suite, with what it measures.
public struct PlannedRun: Equatable, Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case q1Cohort, q1PyTorch, allReduceSweep, allReduceAtGradientSize, allReducePyTorch, q4PyTorch, q3NoCommunication, q2Cohort, q3Cohort, q2PyTorch, q4,
             timeToAccuracy
    }

    public var kind: Kind
    /// Unique; the run's folder under `<out>/runs/`.
    public var id: String
    /// For progress lines and reasons, e.g. "Q2 DDP 2 GPUs × 128 (graphs)".
    public var label: String
    /// argv; the first is the program.
    public var arguments: [String]
    /// The folder the command writes into.
    public var directory: String
    public var gpus: Int
    public var strategy: Strategy?
    public var perDeviceBatch: Int?
    public var lrRule: LearningRateRule?
    /// Q4 (e): its rule is (a)-(d)'s best, known only after they ran; `arguments` hold a placeholder choice.
    public var isBestOfQ4 = false
    /// Q4's references (Cohort's and PyTorch's): the seed they train with; nil for every other run.
    public var seed: Int?
    /// A first guess of the run's wall time, for the time-left estimate (replaced by measured means as runs finish).
    public var estimatedSeconds: Double
    /// The most the run may take before it is stopped.
    public var timeLimitSeconds: Double
}

/// The GPU profile's commands, in the order they run: Q1; the all-reduce
/// sweep; Q2/Q3 on one GPU, then with ddp per GPU count, the graph run (Q2)
/// and the eager run (Q3) of each per-GPU batch; PyTorch's one-GPU and DDP
/// Q2; Q4; time to accuracy; then the dp runs (Cohort's Q2/Q3, PyTorch's
/// DataParallel); last Q4's reference repeats with seeds 1, 2, ... The
/// runner stops starting commands once the time limit is spent, so a suite
/// cut short loses the end of this list first: the seed repeats, then dp.
/// Built without running anything, so tests check it.
public struct GPUSuitePlan: Sendable {
    public var settings: GPUSuiteSettings
    /// The cohort binary the commands run.
    public var executable: String
    /// The results folder; runs write under `<outputDirectory>/runs/<id>`.
    public var outputDirectory: String
    public private(set) var runs: [PlannedRun] = []

    /// ResNet-18's trainable parameters (11,173,962) as float32: the bytes a
    /// step all-reduces, the sweep's extra size.
    public static let resnet18GradientBytes = 11_173_962 * 4

    public init(settings: GPUSuiteSettings, executable: String, outputDirectory: String) {
        self.settings = settings
        self.executable = executable
        self.outputDirectory = outputDirectory
        runs = makeRuns()
    }

    /// The multi-GPU counts of Q2/Q3 (and the sweep).
    public var multiGPUCounts: [Int] { settings.gpuCounts.filter { $0 > 1 } }

    func directory(_ id: String) -> String { outputDirectory + "/runs/" + id }

    /// PyTorch as fast as its eager mode goes: cuDNN algorithms chosen by
    /// timing (as Cohort's), and timed in blocks of 5 steps per
    /// synchronisation, so its host queues kernels ahead as a training loop
    /// does (a sync per step would charge it the ~300 launches of each step
    /// that a replayed graph spares Cohort).
    static let pytorchAtItsBest = ["--cudnn-benchmark", "--steps-per-sync", "5"]

    /// Note [Strategy commands]: the one place a strategy becomes a command.
    /// ddp: one process per GPU, `cohort launch --nproc-per-node N -- cohort train ...`
    /// (rank r takes cuda:r); dp: one process, a thread per GPU,
    /// `cohort train --strategy dp --replicas N ...` (branch dp's flags); one
    /// GPU: `cohort train` alone, whatever the strategy.
    public func trainCommand(strategy: Strategy, gpus: Int, masterPort: Int, _ train: [String]) -> [String] {
        guard gpus > 1 else { return [executable, "train"] + train }
        switch strategy {
        case .ddp:
            return [executable, "launch", "--nproc-per-node", String(gpus), "--master-port", String(masterPort), "--",
                    executable, "train"] + train
        case .dp:
            return [executable, "train", "--strategy", "dp", "--replicas", String(gpus)] + train
        }
    }

    /// Each `cohort launch` gets its own rendezvous port, so a run never meets a closing store of the one before.
    private func port(_ index: Int) -> Int { 29_600 + 2 * index }

    private func makeRuns() -> [PlannedRun] {
        var runs: [PlannedRun] = []
        let s = settings
        let precision = s.precision.rawValue
        func add(_ kind: PlannedRun.Kind, _ id: String, _ label: String, gpus: Int, strategy: Strategy? = nil,
                 batch: Int? = nil, rule: LearningRateRule? = nil, estimate: Double, limit: Double,
                 _ arguments: (String) -> [String]) {
            let folder = directory(id)
            runs.append(PlannedRun(kind: kind, id: id, label: label, arguments: arguments(folder), directory: folder,
                                   gpus: gpus, strategy: strategy, perDeviceBatch: batch, lrRule: rule,
                                   estimatedSeconds: estimate, timeLimitSeconds: limit))
        }
        let batches = { (values: [Int]) in values.map(String.init) }

        if s.parts.contains(.q1) {
            add(.q1Cohort, "q1-cohort", "Q1 Cohort \(precision), batch \(batches(s.q1Batches).joined(separator: "/"))",
                gpus: 1, estimate: 25, limit: 150) { folder in
                [executable, "bench", "--device", "cuda", "--precision", precision, "--batch-sizes"] + batches(s.q1Batches)
                    + ["--warmup", String(s.q1WarmupSteps), "--steps", String(s.q1TimedSteps), "--json", folder + "/bench.json"]
            }
            if let python = s.python {
                add(.q1PyTorch, "q1-pytorch", "Q1 PyTorch \(precision)", gpus: 1, estimate: 25, limit: 150) { folder in
                    [python, s.benchmarksDirectory + "/pytorch_resnet18.py", "--device", "cuda", "--precision", precision]
                        + (s.precision == .bf16 ? ["--channels-last"] : []) + ["--batch-sizes"] + batches(s.q1Batches)
                        + ["--warmup", String(s.q1WarmupSteps), "--steps", String(s.q1TimedSteps),
                           "--json", folder + "/pytorch.json"] + Self.pytorchAtItsBest
                }
            }
        }

        var launches = 0
        func nextPort() -> Int { launches += 1; return port(launches) }
        if s.parts.contains(.allreduce) {
            for gpus in multiGPUCounts {
                let sweepPort = nextPort()
                add(.allReduceSweep, "allreduce-\(gpus)gpus", "all-reduce sweep, \(gpus) GPUs", gpus: gpus,
                    estimate: 20, limit: 120) { folder in
                    [executable, "launch", "--nproc-per-node", String(gpus), "--master-port", String(sweepPort), "--",
                     executable, "bench", "allreduce", "--device", "cuda", "--min-bytes", String(s.allReduceMinBytes),
                     "--max-bytes", String(s.allReduceMaxBytes), "--json", folder + "/allreduce.json"]
                }
                let sizePort = nextPort()
                let bytes = Self.resnet18GradientBytes
                add(.allReduceAtGradientSize, "allreduce-\(gpus)gpus-gradients",
                    "all-reduce of ResNet-18's gradients (\(bytes) bytes), \(gpus) GPUs", gpus: gpus, estimate: 8,
                    limit: 60) { folder in
                    [executable, "launch", "--nproc-per-node", String(gpus), "--master-port", String(sizePort), "--",
                     executable, "bench", "allreduce", "--device", "cuda", "--min-bytes", String(bytes),
                     "--max-bytes", String(bytes), "--iterations", "50", "--json", folder + "/allreduce.json"]
                }
                // NCCL alone at the same size, through PyTorch (the issue's reference: Cohort's
                // all-reduce must reach 90% of it).
                if let python = s.python {
                    let torchPort = nextPort()
                    add(.allReducePyTorch, "allreduce-\(gpus)gpus-gradients-pytorch",
                        "PyTorch's NCCL all-reduce of ResNet-18's gradients, \(gpus) GPUs", gpus: gpus, estimate: 15,
                        limit: 90) { folder in
                        [python, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", String(gpus),
                         "--master-port", String(torchPort), s.benchmarksDirectory + "/pytorch_allreduce.py",
                         "--min-bytes", String(bytes), "--max-bytes", String(bytes), "--iterations", "50",
                         "--json", folder + "/allreduce.json"]
                    }
                }
            }
        }

        // Q2 (graph runs) and Q3 (eager runs), by GPU count, strategy and per-GPU batch.
        let wantsQ2 = s.parts.contains(.q2), wantsQ3 = s.parts.contains(.q3)
        func training(batch: Int, gpus: Int, eager: Bool, folder: String) -> [String] {
            // Replayed Q3 steps are logged every second step (the logged one queued behind its
            // predecessor, not started from a drained queue after a loss read), so twice as many
            // run, rounded up to even.
            let replayedQ3 = eager && s.q3ReplayedSteps
            let q3Steps = replayedQ3 ? (s.eagerWarmupSteps + 2 * s.eagerTimedSteps + 1) / 2 * 2 : s.eagerWarmupSteps + s.eagerTimedSteps
            let steps = eager ? q3Steps : s.warmupSteps + s.timedSteps
            // Enough synthetic images that every rank has `steps` batches in its one epoch.
            let images = max(50_000, steps * batch * gpus)
            // Q3's steps: eager, or replayed and timed inside the graph (`q3ReplayedSteps`).
            let q3Flags = s.q3ReplayedSteps ? ["--time-graph-phases"] : ["--no-graphs"]
            return ["--device", "cuda", "--dataset", "synthetic", "--synthetic-images", String(images),
                    "--model", "resnet18", "--precision", precision,
                    "--batch-size", String(batch), "--epochs", "1", "--steps-per-epoch", String(steps),
                    "--log-every", replayedQ3 ? "2" : eager ? "1" : String(s.logEvery),
                    // One evaluation batch per rank at the training batch: its convolutions reuse the training plans.
                    "--eval-batch-size", String(batch), "--eval-limit", String(batch * gpus), "--no-progress"]
                + (eager ? q3Flags : []) + ["--run-dir", folder]
        }
        let q3Kind = s.q3ReplayedSteps ? "graphs, device-timed inside" : "eager, device-timed"
        func configurations(gpus: Int, strategy: Strategy) {
            let name = gpus == 1 ? "1 GPU" : "\(strategy.rawValue.uppercased()) \(gpus) GPUs"
            let prefix = gpus == 1 ? "1gpu" : "\(strategy.rawValue)-\(gpus)gpus"
            for batch in s.q2Batches {
                for eager in [false, true] where eager ? wantsQ3 : wantsQ2 {
                    let runPort = nextPort()
                    add(eager ? .q3Cohort : .q2Cohort, "\(eager ? "q3" : "q2")-\(prefix)-b\(batch)",
                        "\(eager ? "Q3" : "Q2") \(name) × \(batch) (\(eager ? q3Kind : "graphs"))",
                        gpus: gpus, strategy: gpus == 1 ? nil : strategy, batch: batch, estimate: eager ? 8 : 10,
                        limit: 120) { folder in
                        trainCommand(strategy: strategy, gpus: gpus, masterPort: runPort,
                                     training(batch: batch, gpus: gpus, eager: eager, folder: folder))
                    }
                }
                // Q3's "the same step with communication off": this configuration's eager run
                // again with `--no-communication` (every rank on its own, no all-reduce).
                if wantsQ3 && gpus > 1 {
                    let runPort = nextPort()
                    add(.q3NoCommunication, "q3-\(prefix)-b\(batch)-nocomm",
                        "Q3 \(name) × \(batch) (\(s.q3ReplayedSteps ? "graphs" : "eager"), communication off)", gpus: gpus, strategy: strategy, batch: batch,
                        estimate: 8, limit: 120) { folder in
                        trainCommand(strategy: strategy, gpus: gpus, masterPort: runPort,
                                     training(batch: batch, gpus: gpus, eager: true, folder: folder) + ["--no-communication"])
                    }
                }
            }
        }
        let singleProcessStrategies = s.strategies.filter { $0 != .ddp }
        if wantsQ2 || wantsQ3 {
            configurations(gpus: 1, strategy: .ddp)
            if s.strategies.contains(.ddp) {
                for gpus in multiGPUCounts { configurations(gpus: gpus, strategy: .ddp) }
            }
        }
        let script = s.benchmarksDirectory + "/pytorch_ddp.py"
        func common(warmup: Int, steps: Int) -> [String] {
            ["--precision", precision] + (s.precision == .bf16 ? ["--channels-last"] : [])
                + ["--batch-sizes"] + batches(s.q2Batches) + ["--warmup", String(warmup), "--steps", String(steps)]
                + Self.pytorchAtItsBest
        }
        // DataParallel replicates the model onto every GPU each step and runs cuDNN's benchmark mode
        // in four threads at once: a third of the steps (it has not finished the full count within
        // the 90 s a 4 x H200 suite had left for it).
        let (dpWarmup, dpSteps) = (max(1, s.warmupSteps / 3), max(1, s.timedSteps / 3))
        func pytorchScaling(gpus: Int, strategy: Strategy) {
            guard wantsQ2, let python = s.python else { return }
            let mode = gpus == 1 ? "1 GPU" : strategy == .ddp ? "DDP \(gpus) GPUs" : "DataParallel \(gpus) GPUs"
            let id = gpus == 1 ? "q2-pytorch-1gpu" : "q2-pytorch-\(strategy.rawValue)-\(gpus)gpus"
            add(.q2PyTorch, id, "Q2 PyTorch \(mode)", gpus: gpus, strategy: gpus == 1 ? nil : strategy,
                estimate: gpus == 1 ? 25 : 30, limit: 240) { folder in
                let json = ["--json", folder + "/pytorch.json"]
                switch (gpus, strategy) {
                case (1, _): return [python, script, "--gpus", "1"] + common(warmup: s.warmupSteps, steps: s.timedSteps) + json
                case (_, .ddp):
                    return [python, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", String(gpus),
                            script, "--gpus", String(gpus)] + common(warmup: s.warmupSteps, steps: s.timedSteps) + json
                case (_, .dp):
                    return [python, script, "--dataparallel", "--gpus", String(gpus)]
                        + common(warmup: dpWarmup, steps: dpSteps) + json
                }
            }
        }
        pytorchScaling(gpus: 1, strategy: .ddp)
        if s.strategies.contains(.ddp) {
            for gpus in multiGPUCounts { pytorchScaling(gpus: gpus, strategy: .ddp) }
        }

        if s.dataDirectory != nil {
            if s.parts.contains(.q4) {
                for rule in LearningRateRule.allCases {
                    runs.append(q4Run(rule: rule, seed: rule == .reference ? 0 : nil, port: nextPort()))
                }
                var best = q4Run(rule: .linear, labelSmoothing: s.q4.labelSmoothing, port: nextPort())
                best.isBestOfQ4 = true
                runs.append(best)
                // PyTorch's reference recipe on the same copy: the baseline must at least match it.
                if let run = q4PyTorchReference(seed: 0) { runs.append(run) }
            }
            if s.parts.contains(.tta) {
                for gpus in Set([1, s.gpuCounts.max() ?? 1]).sorted() {
                    runs.append(timeToAccuracyRun(gpus: gpus, port: nextPort()))
                }
            }
        }

        // Single-process strategies last: where the time limit cuts, it cuts these first.
        for strategy in singleProcessStrategies {
            if wantsQ2 || wantsQ3 {
                for gpus in multiGPUCounts { configurations(gpus: gpus, strategy: strategy) }
            }
            for gpus in multiGPUCounts { pytorchScaling(gpus: gpus, strategy: strategy) }
        }

        // Q4's reference repeats, seeds 1..<N, Cohort's and PyTorch's in turn (so a cut
        // leaves both sides with about as many seeds). Last of all, after the dp runs:
        // the runner skips whatever no longer fits once the time limit is spent, and a
        // run started late is stopped at the limit, so only the end of the plan is at
        // risk; the repeats refine one row's verdict, whereas every other run is a row
        // of its own, so they are what a short suite gives up first (their targets row
        // then compares the seeds that did finish, down to today's single runs).
        if s.dataDirectory != nil && s.parts.contains(.q4) && s.q4.referenceSeeds > 1 {
            for seed in 1..<s.q4.referenceSeeds {
                runs.append(q4Run(rule: .reference, seed: seed, port: nextPort()))
                if let run = q4PyTorchReference(seed: seed) { runs.append(run) }
            }
        }
        return runs
    }

    /// "-seed2" for a Q4 reference's repeat; nothing for seed 0 (the ids results folders already use).
    static func seedSuffix(_ seed: Int?) -> String { (seed ?? 0) == 0 ? "" : "-seed\(seed!)" }

    /// PyTorch's Q4 reference (`benchmarks/pytorch_train_cifar.py`) with `seed`; nil without a Python.
    public func q4PyTorchReference(seed: Int) -> PlannedRun? {
        let s = settings, r = settings.q4
        guard let python = s.python else { return nil }
        let id = "q4-pytorch-reference" + Self.seedSuffix(seed)
        let folder = directory(id)
        let arguments = [python, s.benchmarksDirectory + "/pytorch_train_cifar.py", "--data", s.dataDirectory ?? "",
                         "--epochs", String(r.epochs), "--batch-size", String(r.referenceBatch),
                         "--lr", Format.compact(r.baseLearningRate), "--momentum", Format.compact(r.momentum)]
            + (r.nesterov ? ["--nesterov"] : [])
            + ["--weight-decay", Format.compact(r.weightDecay), "--warmup-epochs", "0",
               "--schedule", r.schedule, "--label-smoothing", "0", "--precision", s.precision.rawValue,
               "--seed", String(seed), "--json", folder + "/pytorch.json"]
        return PlannedRun(kind: .q4PyTorch, id: id,
                          label: "Q4 PyTorch reference\(seed == 0 ? "" : " seed \(seed)"), 1 GPU × \(r.referenceBatch)",
                          arguments: arguments, directory: folder, gpus: 1, strategy: nil,
                          perDeviceBatch: r.referenceBatch, lrRule: .reference, seed: seed,
                          estimatedSeconds: 30, timeLimitSeconds: 150)
    }

    /// One Q4 run: the reference on one GPU, or the large batch on `q4.ranks` GPUs under `rule`.
    /// (e) is this with the best rule and label smoothing. `seed` (the references'):
    /// `cohort train --seed`, and a "-seed<s>" suffix on the id for seeds other than 0.
    public func q4Run(rule: LearningRateRule, labelSmoothing: Double = 0, seed: Int? = nil, port: Int) -> PlannedRun {
        let r = settings.q4
        let reference = rule == .reference
        let gpus = reference ? 1 : r.ranks
        let batch = reference ? r.referenceBatch : r.perRankBatch
        let smoothing = labelSmoothing > 0
        let id = "q4-\(smoothing ? "e-" : "")\(rule.rawValue)" + Self.seedSuffix(seed)
        let label = (smoothing ? "(e) best: \(Q4Recipe.label(rule)) + label smoothing \(Format.compact(labelSmoothing))"
                               : Q4Recipe.label(rule)) + ((seed ?? 0) == 0 ? "" : " seed \(seed!)")
        let folder = directory(id)
        var train = ["--device", "cuda", "--data", settings.dataDirectory ?? "", "--precision", settings.precision.rawValue,
                     "--epochs", String(r.epochs), "--batch-size", String(batch),
                     "--lr", Format.compact(r.learningRate(rule)), "--momentum", Format.compact(r.momentum)]
        if r.nesterov { train.append("--nesterov") }
        train += ["--weight-decay", Format.compact(r.weightDecay), "--warmup-epochs", String(r.warmup(rule)),
                  "--schedule", r.schedule, "--label-smoothing", Format.compact(labelSmoothing)]
        if rule == .lars { train += ["--optimizer", "lars", "--lars-eta", Format.compact(r.larsEta)] }
        if let seed { train += ["--seed", String(seed)] }
        if r.zeroInitResidual && rule != .reference { train.append("--zero-init-residual") }
        if r.recalibrationBatches > 0 && rule != .reference {
            train += ["--bn-recalibration-batches", String(r.recalibrationBatches)]
        }
        train += ["--log-every", "50", "--no-progress", "--run-dir", folder]
        return PlannedRun(kind: .q4, id: id, label: "Q4 \(label), \(gpus) GPU\(gpus == 1 ? "" : "s") × \(batch)",
                          arguments: trainCommand(strategy: .ddp, gpus: gpus, masterPort: port, train),
                          directory: folder, gpus: gpus, strategy: .ddp, perDeviceBatch: batch, lrRule: rule, seed: seed,
                          estimatedSeconds: reference ? 25 : 15, timeLimitSeconds: reference ? 150 : 120)
    }

    /// The recipe of Q4 run `rule` in words, for the report.
    public func q4Recipe(rule: LearningRateRule, labelSmoothing: Double) -> String {
        let r = settings.q4
        let optimizer = rule == .lars ? "LARS (eta \(Format.compact(r.larsEta)))" : "SGD"
        let warmup = r.warmup(rule)
        return "\(optimizer), momentum \(Format.compact(r.momentum))\(r.nesterov ? " Nesterov" : ""), weight decay "
            + "\(Format.compact(r.weightDecay)), LR \(Format.compact(r.learningRate(rule)))"
            + (warmup > 0 ? " after \(warmup) warm-up epoch\(warmup == 1 ? "" : "s")" : "")
            + ", \(r.schedule) decay over \(r.epochs) epochs"
            + (labelSmoothing > 0 ? ", label smoothing \(Format.compact(labelSmoothing))" : "")
            + (r.zeroInitResidual && rule != .reference ? ", zero-init residual" : "")
            + (r.recalibrationBatches > 0 && rule != .reference
               ? ", batch-norm statistics recomputed over \(r.recalibrationBatches) batches before evaluating" : "")
            + ", \(settings.precision.rawValue)"
    }

    /// A time-to-accuracy run on `gpus` GPUs at the recipe's global batch.
    public func timeToAccuracyRun(gpus: Int, port: Int) -> PlannedRun {
        let r = settings.timeToAccuracy
        let batch = r.globalBatch / gpus
        let id = "tta-\(gpus)gpu\(gpus == 1 ? "" : "s")"
        let folder = directory(id)
        let train = ["--device", "cuda", "--data", settings.dataDirectory ?? "", "--precision", settings.precision.rawValue,
                     "--epochs", String(r.epochs), "--batch-size", String(batch), "--lr", Format.compact(r.learningRate),
                     "--nesterov", "--warmup-epochs", String(r.warmupEpochs), "--schedule", r.schedule,
                     "--label-smoothing", Format.compact(r.labelSmoothing), "--weight-decay", Format.compact(r.weightDecay),
                     "--target-accuracy", Format.compact(r.targetAccuracy), "--log-every", "50", "--no-progress",
                     "--run-dir", folder]
        return PlannedRun(kind: .timeToAccuracy, id: id,
                          label: "time to \(Format.percent(r.targetAccuracy, decimals: 0)), \(gpus) GPU\(gpus == 1 ? "" : "s") × \(batch)",
                          arguments: trainCommand(strategy: .ddp, gpus: gpus, masterPort: port, train), directory: folder,
                          gpus: gpus, strategy: .ddp, perDeviceBatch: batch, estimatedSeconds: 45, timeLimitSeconds: 240)
    }
}
