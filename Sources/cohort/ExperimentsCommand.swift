import ArgumentParser
import CohortExperiments
import CohortNN
import CohortTraining
import Foundation

/// Which set of experiments to run.
enum ExperimentsProfile: String, CaseIterable, ExpressibleByArgument {
    /// gpu when --device names a GPU or nvidia-smi lists one, else cpu.
    case auto
    /// Scaled-down settings that run on CPU cores.
    case cpu
    /// The full study on GPUs.
    case gpu
}

struct Experiments: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the scaling study (Q1–Q4) and write its results folder.",
        discussion: """
            Writes results.json, one CSV per section, report.md, report.html and trace.json into --out \
            (re-render later with `cohort report results.json`).
            GPU profile (chosen when CUDA GPUs are found): Q1 `cohort bench` at --q1-batches; Q2 weak scaling, \
            `cohort train` on synthetic data for each GPU count x per-GPU batch x strategy (ddp: cohort launch, a \
            process per GPU; dp: one process, a thread per GPU), epoch time extrapolated from the median step rate; \
            Q3 the same configurations replayed from graphs and timed inside them (or, --no-q3-replayed-steps, run eagerly) \
            with device timings (compute, communication, exposed, overlap, \
            algbw/busbw) and step timelines; the all-reduce sweep; Q4 large-batch recipes and time to accuracy on \
            CIFAR-10 (--data or COHORT_CIFAR10_DIR); PyTorch's figures for Q1/Q2 from the same machine (--pytorch). \
            Each command's output and metrics stay in <out>/runs/<id>. The suite stops starting commands when \
            --time-limit is spent and reports what did not run. --dry-run prints the commands.
            CPU profile: Q1 at batch 32 and 128 and Q2/Q3 with 1 and 2 MPI ranks (--quick: SmallCNN, for CI).
            """)

    @Option(help: ArgumentHelp("Folder for the results (created if missing); default runs/experiments-<time>.",
                               valueName: "dir"))
    var out: String?

    @Option(help: "Which experiments: auto (gpu when --device names a GPU or CUDA GPUs are found, else cpu), cpu, gpu.")
    var profile: ExperimentsProfile = .auto

    @Flag(help: "A tiny setting that checks the whole pipeline quickly (figures mean little).")
    var quick = false

    @OptionGroup var deviceOptions: DeviceOptions

    @OptionGroup(title: "GPU profile") var gpu: GPUExperimentOptions

    func resolvedProfile(gpusFound: Int) -> ExperimentsProfile {
        guard profile == .auto else { return profile }
        return !deviceOptions.device.isHost || gpusFound > 0 ? .gpu : .cpu
    }

    func validate() throws {
        try gpu.validate()
        if profile == .cpu && !deviceOptions.device.isHost {
            throw ValidationError("the cpu profile runs on --device cpu, not \(deviceOptions.device)")
        }
    }

    func run() throws {
        let directory = URL(fileURLWithPath: out ?? "runs/experiments-\(MachineDescription.folderStamp())")
        let machine = GPUMachine.detect()
        switch resolvedProfile(gpusFound: machine.count) {
        case .gpu: try runGPU(machine: machine, directory: directory)
        case .cpu, .auto: try runCPU(directory: directory)
        }
    }

    func runCPU(directory: URL) throws {
        let (backend, notes) = try makeBackend(device: .cpu, choice: deviceOptions.backend)
        notes.forEach { progress("note: \($0)") }
        let plan = ExperimentsPlan.cpu(quick: quick)
        progress("experiments: cpu profile\(quick ? " (--quick)" : "") on \(backend.name) (\(backend.details)); results into \(directory.path)")
        let runner = ExperimentsRunner(plan: plan, backend: backend, quick: quick, backendChoice: deviceOptions.backend,
                                       log: progress)
        let q1 = try runner.runQ1()
        let (q2, q3) = try runner.runQ2Q3(into: directory)
        let results = ExperimentResults(
            metadata: runner.metadata(command: CommandLine.arguments.joined(separator: " ")),
            q1: q1,
            q2: q2,
            q3: q3,
            allReduceSweep: .notRun("the all-reduce sweep is not part of the CPU profile yet"),
            q4: .notRun("needs real CIFAR-10 training runs of many epochs; not part of the CPU profile"),
            timeToAccuracy: .notRun("needs real CIFAR-10 training runs of many epochs; not part of the CPU profile"),
            timelines: .notRun("step timelines are recorded by the GPU profile (device timings)"))
        try write(results, to: directory, sections: ["q1", "q2", "q3"])
    }

    func runGPU(machine: GPUMachine, directory: URL) throws {
        let executable = try ownExecutable()
        guard machine.count > 0 || gpu.dryRun else {
            throw ValidationError("""
                the gpu profile needs CUDA GPUs, and nvidia-smi lists none here; run --profile cpu, or --dry-run to see \
                the commands
                """)
        }
        let available = machine.count > 0 ? machine.count : gpu.gpuCounts?.max() ?? 4
        var settings = try gpu.settings(availableGPUs: available, quick: quick)
        if settings.python == nil && !gpu.noPytorch && !gpu.dryRun, GPUMachine.pytorch("python3") != nil {
            settings.python = findInPath("python3")
        }
        let plan = GPUSuitePlan(settings: settings, executable: executable, outputDirectory: directory.path)
        progress("experiments: gpu profile on \(machine.count > 0 ? "\(machine.count) × \(machine.cardDescription ?? "GPU")" : "no GPU (dry run)"); "
                 + "GPU counts \(settings.gpuCounts.map(String.init).joined(separator: ", ")), \(settings.precision.rawValue), "
                 + "parts \(settings.parts.sorted().map(\.rawValue).joined(separator: ",")), "
                 + "PyTorch \(settings.python ?? "not used"), CIFAR-10 \(settings.dataDirectory ?? "not found"); "
                 + "\(plan.runs.count) commands within \(Int(gpu.timeLimit)) s; results into \(directory.path)")
        for note in gpu.dataNotes(settings) { progress("note: \(note)") }
        if gpu.dryRun {
            for (index, run) in plan.runs.enumerated() {
                print("[\(index + 1)/\(plan.runs.count)] \(run.label)\(run.isBestOfQ4 ? " (rule chosen after (a)-(d); shown with linear)" : "")")
                print("    " + run.arguments.map(Self.shellQuoted).joined(separator: " "))
            }
            return
        }
        var runner = GPUExperimentsRunner(plan: plan, timeLimit: gpu.timeLimit, log: progress)
        runner.runAll()
        var assembly = GPUSuiteResults(plan: plan, executed: runner.executed)
        let libraries = GPUMachine.libraries(executable: executable, runFolders: runner.executed.map(\.run.directory))
        var notes = gpu.dataNotes(settings)
        let skipped = runner.executed.filter { if case .skipped = $0.outcome { return true } else { return false } }
        if !skipped.isEmpty {
            notes.append("\(skipped.count) of \(runner.executed.count) commands were not run (each named with its reason in its section)")
        }
        notes.append("Q4 and time to accuracy train on CIFAR-10; Q1–Q3 on random images")
        let metadata = RunMetadata(
            machine: MachineDescription.current(), card: machine.cardDescription, deviceCount: max(1, machine.count),
            driver: machine.driver, libraries: libraries, commit: MachineDescription.buildCommit(),
            date: MachineDescription.isoDate(), command: CommandLine.arguments.joined(separator: " "),
            environment: EnvironmentSettings.headerValue(), profile: .gpu,
            syntheticData: true, imagesPerEpoch: settings.imagesPerEpoch, notes: notes)
        let results = assembly.assemble(metadata: metadata)
        progress("experiments: \(runner.executed.filter(\.outcome.succeeded).count) of \(runner.executed.count) commands "
                 + "finished in \(GPUExperimentsRunner.duration(runner.elapsed))")
        try write(results, to: directory, sections: ["q1", "q2", "q3", "q4", "time-to-accuracy", "targets"])
    }

    func write(_ results: ExperimentResults, to directory: URL, sections: Set<String>) throws {
        let written = try ReportWriter(results: results).write(to: directory)
        progress("experiments: wrote \(written.count) files to \(directory.path)")
        for url in written { progress("  \(url.lastPathComponent)") }
        for section in ReportSections.all(results) where sections.contains(section.id) {
            print("\n## \(section.title)\n")
            if let empty = section.emptyMessage { print(empty) }
            for table in section.tables { print(table.markdown) }
        }
    }

    static func shellQuoted(_ argument: String) -> String {
        argument.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:,@+".contains($0) }) && !argument.isEmpty
            ? argument : "'" + argument.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// Prints a line at once, so progress shows while the next configuration runs.
    private func progress(_ line: String) {
        print(line)
        fflush(nil)  // every stream: stdout without touching the global
    }
}

/// The GPU profile's flags: which parts, GPU counts, batches and strategies,
/// steps, precision, Q4's recipe, PyTorch, the time limit.
struct GPUExperimentOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Parts to run, comma-separated: \(SuitePart.allCases.map(\.rawValue).joined(separator: ",")) (default all).", valueName: "parts"))
    var only: String?

    @Option(name: .customLong("gpus"), help: ArgumentHelp("GPU counts for Q2/Q3, comma-separated (default 1,2,4 limited to the GPUs found).", valueName: "counts"))
    var gpuCountList: String?

    @Option(name: .customLong("q1-batches"), help: ArgumentHelp("Q1 batch sizes, comma-separated.", valueName: "sizes"))
    var q1Batches = "32,128,512,2048"

    @Option(name: .customLong("batches"), help: ArgumentHelp("Q2/Q3 per-GPU batch sizes, comma-separated.", valueName: "sizes"))
    var batches = "32,128,512,1024"

    @Option(help: ArgumentHelp("Q2/Q3 strategies, comma-separated: ddp (a process per GPU), dp (one process, a thread per GPU).", valueName: "list"))
    var strategies = "ddp,dp"

    @Option(name: .customLong("precision"), help: "Compute precision of every run: bf16 (float32 master weights) or fp32.")
    var precision: CohortNN.Precision = .bfloat16

    @Option(help: "Q2: timed steps per configuration after --warmup-steps (epoch time is extrapolated from them).")
    var steps = 45

    @Option(name: .customLong("warmup-steps"), help: "Q2: steps left out first (graph capture, cuDNN's search, NCCL's set-up).")
    var warmupSteps = 15

    @Option(name: .customLong("eager-steps"), help: "Q3: timed eager steps per configuration (after 5 warm-up steps).")
    var eagerSteps = 10

    @Flag(name: .customLong("q3-replayed-steps"), inversion: .prefixedNo,
          help: "Q3 and the timelines from steps replayed from CUDA graphs and timed inside them (cohort train --time-graph-phases; the default), or (--no-q3-replayed-steps) from eager steps.")
    var q3ReplayedSteps = true

    @Option(name: .customLong("data"), help: ArgumentHelp("CIFAR-10 for Q4 (default $COHORT_CIFAR10_DIR).", valueName: "dir"))
    var dataDirectory: String?

    @Option(help: ArgumentHelp("Python with PyTorch for the reference rows (default python3 when it imports torch).", valueName: "python"))
    var pytorch: String?

    @Flag(name: .customLong("no-pytorch"), help: "Leave out PyTorch's reference rows.")
    var noPytorch = false

    @Option(name: .customLong("benchmarks"), help: ArgumentHelp("Folder of pytorch_resnet18.py and pytorch_ddp.py.", valueName: "dir"))
    var benchmarksDirectory = "benchmarks"

    @Option(name: .customLong("time-limit"), help: "Seconds for the whole suite: later commands are not started once it is spent (reported as not run).")
    var timeLimit: Double = 510

    @Flag(name: .customLong("dry-run"), help: "Print the commands the GPU profile would run, and stop.")
    var dryRun = false

    @Option(name: .customLong("q4-epochs"), help: "Q4: epochs of each recipe.") var q4Epochs = 5
    @Option(name: .customLong("q4-base-lr"), help: "Q4: the reference's learning rate.") var q4BaseLR = 0.1
    @Option(name: .customLong("q4-reference-batch"), help: "Q4: the reference's batch on one GPU.") var q4ReferenceBatch = 128
    @Option(name: .customLong("q4-global-batch"), help: "Q4: the large global batch (split over min(4, GPUs)).") var q4GlobalBatch = 8192
    @Option(name: .customLong("q4-warmup-epochs"), help: "Q4: warm-up epochs of (b), (c), (d).") var q4WarmupEpochs = 2
    @Option(name: .customLong("q4-schedule"), help: "Q4: decay after warm-up (constant, step, cosine, linear).") var q4Schedule = "linear"
    @Option(name: .customLong("q4-label-smoothing"), help: "Q4: label smoothing of (e).") var q4LabelSmoothing = 0.1
    @Option(name: .customLong("q4-lars-eta"), help: "Q4: LARS trust coefficient of (d).") var q4LarsEta = 0.001
    @Flag(name: .customLong("q4-zero-init-residual"), help: "Q4: the large-batch runs start each residual block as the identity (cohort train --zero-init-residual).")
    var q4ZeroInitResidual = false
    @Option(name: .customLong("q4-bn-recalibration"), help: "Q4: the large-batch runs recompute batch-norm statistics over this many batches before each evaluation (0: off).")
    var q4BNRecalibration = 4
    @Option(name: .customLong("q4-lars-lr"), help: "Q4: (d)'s peak learning rate (default: the linear rule's).") var q4LarsLR: Double?
    @Option(name: .customLong("q4-reference-seeds"), help: "Q4: the reference and PyTorch's reference each run with seeds 0..N-1; the baseline target compares their means (repeats run last, so a time limit cuts them first).")
    var q4ReferenceSeeds = 3
    @Option(name: .customLong("tta-target"), help: "Time to accuracy: the test accuracy to reach (fraction).") var ttaTarget = 0.90
    @Option(name: .customLong("tta-epochs"), help: "Time to accuracy: most epochs (the schedule spans them).") var ttaEpochs = 30
    @Option(name: .customLong("tta-batch"), help: "Time to accuracy: global batch, on 1 GPU and split over the most GPUs.") var ttaBatch = 1024
    @Option(name: .customLong("tta-lr"), help: "Time to accuracy: peak learning rate.") var ttaLR = 0.8

    static func integers(_ text: String, _ flag: String) throws -> [Int] {
        let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else {
            let example = flag == "--gpus" ? "1,2,4" : "32,128"
            throw ValidationError("\(flag) takes positive integers separated by commas, e.g. \(example), not \(text)")
        }
        return values.map { $0! }
    }

    var gpuCounts: [Int]? { gpuCountList.flatMap { try? Self.integers($0, "--gpus") } }

    var parts: Set<SuitePart> {
        get throws {
            guard let only else { return Set(SuitePart.allCases) }
            return Set(try only.split(separator: ",").map { name in
                guard let part = SuitePart(rawValue: name.trimmingCharacters(in: .whitespaces).lowercased()) else {
                    throw ValidationError("--only: unknown part \(name); the parts are \(SuitePart.allCases.map(\.rawValue).joined(separator: ","))")
                }
                return part
            })
        }
    }

    var strategyList: [Strategy] {
        get throws {
            try strategies.split(separator: ",").map { name in
                guard let strategy = Strategy(rawValue: name.trimmingCharacters(in: .whitespaces).lowercased()) else {
                    throw ValidationError("--strategies: unknown strategy \(name) (ddp, dp)")
                }
                return strategy
            }
        }
    }

    func validate() throws {
        _ = try parts
        _ = try strategyList
        _ = try Self.integers(q1Batches, "--q1-batches")
        _ = try Self.integers(batches, "--batches")
        if let gpuCountList { _ = try Self.integers(gpuCountList, "--gpus") }
        for (value, flag) in [(steps, "--steps"), (warmupSteps, "--warmup-steps"), (eagerSteps, "--eager-steps"),
                              (q4Epochs, "--q4-epochs"), (q4ReferenceBatch, "--q4-reference-batch"),
                              (q4GlobalBatch, "--q4-global-batch"), (ttaEpochs, "--tta-epochs"), (ttaBatch, "--tta-batch")]
        where value <= 0 {
            throw ValidationError("\(flag) must be positive, not \(value)")
        }
        guard ttaTarget > 0 && ttaTarget <= 1 else { throw ValidationError("--tta-target is a fraction in (0, 1], not \(ttaTarget)") }
        guard timeLimit > 0 else { throw ValidationError("--time-limit must be positive") }
        guard q4WarmupEpochs >= 0 && q4WarmupEpochs <= q4Epochs else {
            throw ValidationError("--q4-warmup-epochs must be between 0 and --q4-epochs")
        }
        guard ["constant", "step", "cosine", "linear"].contains(q4Schedule) else {
            throw ValidationError("--q4-schedule is constant, step, cosine or linear, not \(q4Schedule)")
        }
        guard (0..<1).contains(q4LabelSmoothing) else { throw ValidationError("--q4-label-smoothing must be in [0, 1)") }
        guard q4ReferenceSeeds >= 1 else {
            throw ValidationError("--q4-reference-seeds must be at least 1 (the runs with seed 0), not \(q4ReferenceSeeds)")
        }
    }

    /// CIFAR-10's folder when it holds the binary batches (or is that folder).
    var resolvedDataDirectory: String? {
        let path = dataDirectory ?? ProcessInfo.processInfo.environment["COHORT_CIFAR10_DIR"]
        guard let path, !path.isEmpty else { return nil }
        for candidate in [path + "/cifar-10-batches-bin/test_batch.bin", path + "/test_batch.bin"]
        where FileManager.default.fileExists(atPath: candidate) {
            return path
        }
        return nil
    }

    /// What a reader must know about the data Q4 did (not) get.
    func dataNotes(_ settings: GPUSuiteSettings) -> [String] {
        guard settings.dataDirectory == nil, settings.parts.contains(.q4) || settings.parts.contains(.tta) else { return [] }
        let asked = dataDirectory ?? ProcessInfo.processInfo.environment["COHORT_CIFAR10_DIR"]
        return ["Q4 and time to accuracy not run: " + (asked.map { "no CIFAR-10 binary batches at \($0)" } ?? "no CIFAR-10 given")
                + " (pass --data <folder with cifar-10-batches-bin> or set COHORT_CIFAR10_DIR; `cohort download --into "
                + "<folder>` fetches it; scripts/gpu-experiments.sh converts the JPEGs it carries)"]
    }

    /// The suite's settings for a machine with `availableGPUs`.
    func settings(availableGPUs: Int, quick: Bool) throws -> GPUSuiteSettings {
        var s = GPUSuiteSettings()
        let counts = gpuCounts ?? [1, 2, 4]
        s.gpuCounts = Array(Set(counts.filter { $0 <= availableGPUs } + [1])).sorted()
        s.parts = try parts
        s.precision = CohortExperiments.Precision(rawValue: precision.rawValue) ?? .bf16
        s.q1Batches = try Self.integers(q1Batches, "--q1-batches")
        s.q2Batches = try Self.integers(batches, "--batches")
        s.strategies = try strategyList
        s.timedSteps = steps
        s.warmupSteps = warmupSteps
        s.eagerTimedSteps = eagerSteps
        s.q3ReplayedSteps = q3ReplayedSteps
        s.dataDirectory = resolvedDataDirectory
        if !noPytorch { s.python = pytorch }
        s.benchmarksDirectory = benchmarksDirectory
        s.q4.epochs = q4Epochs
        s.q4.baseLearningRate = q4BaseLR
        s.q4.referenceBatch = q4ReferenceBatch
        s.q4.globalBatch = q4GlobalBatch
        s.q4.ranks = min(4, availableGPUs)
        s.q4.warmupEpochs = q4WarmupEpochs
        s.q4.schedule = q4Schedule
        s.q4.labelSmoothing = q4LabelSmoothing
        s.q4.larsEta = q4LarsEta
        s.q4.zeroInitResidual = q4ZeroInitResidual
        s.q4.recalibrationBatches = q4BNRecalibration
        s.q4.larsLearningRate = q4LarsLR
        s.q4.referenceSeeds = q4ReferenceSeeds
        guard q4GlobalBatch % s.q4.ranks == 0 else {
            throw ValidationError("--q4-global-batch \(q4GlobalBatch) does not split evenly over \(s.q4.ranks) GPUs")
        }
        s.timeToAccuracy.targetAccuracy = ttaTarget
        s.timeToAccuracy.epochs = ttaEpochs
        s.timeToAccuracy.globalBatch = ttaBatch
        s.timeToAccuracy.learningRate = ttaLR
        s.timeToAccuracy.warmupEpochs = min(s.timeToAccuracy.warmupEpochs, ttaEpochs)
        guard ttaBatch % (s.gpuCounts.max() ?? 1) == 0 else {
            throw ValidationError("--tta-batch \(ttaBatch) does not split evenly over \(s.gpuCounts.max() ?? 1) GPUs")
        }
        if quick {
            // A smoke run of every part: a few steps and one epoch each.
            (s.q1WarmupSteps, s.q1TimedSteps) = (2, 3)
            (s.warmupSteps, s.timedSteps, s.logEvery) = (4, 6, 2)
            (s.eagerWarmupSteps, s.eagerTimedSteps) = (2, 3)
            s.q4.epochs = 1
            s.q4.warmupEpochs = 0
            s.timeToAccuracy.epochs = 1
            s.timeToAccuracy.warmupEpochs = 0
            s.allReduceMaxBytes = 1 << 24
        }
        return s
    }
}
