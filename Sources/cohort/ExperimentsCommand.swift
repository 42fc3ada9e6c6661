import ArgumentParser
import CohortExperiments
import CohortTraining
import Foundation

/// Which set of experiments to run.
enum ExperimentsProfile: String, CaseIterable, ExpressibleByArgument {
    /// gpu when --device names a GPU, else cpu.
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
            (re-render later with `cohort report results.json`). This version runs the CPU profile: Q1, \
            training throughput of ResNet-18 at batch 32 and 128 on random images (--quick: SmallCNN at \
            batch 8 and 16, one timed step, for CI); Q2/Q3, `cohort train` on synthetic data with 1 and 2 \
            MPI ranks (per-rank batch fixed), each run's metrics kept in --out. Sections not measured yet \
            say why in the report.
            """)

    @Option(help: ArgumentHelp("Folder for the results (created if missing); default runs/experiments-<time>.",
                               valueName: "dir"))
    var out: String?

    @Option(help: "Which experiments: auto (gpu when --device names a GPU, else cpu), cpu, gpu.")
    var profile: ExperimentsProfile = .auto

    @Flag(help: "A tiny setting that checks the whole pipeline in seconds (figures mean little).")
    var quick = false

    @OptionGroup var deviceOptions: DeviceOptions

    var resolvedProfile: ExperimentsProfile {
        profile == .auto ? (deviceOptions.device.isHost ? .cpu : .gpu) : profile
    }

    func validate() throws {
        if resolvedProfile == .gpu {
            throw ValidationError("the gpu profile is not implemented yet; run --profile cpu (with --device cpu)")
        }
        if !deviceOptions.device.isHost {
            throw ValidationError("the cpu profile runs on --device cpu, not \(deviceOptions.device)")
        }
    }

    func run() throws {
        let directory = URL(fileURLWithPath: out ?? "runs/experiments-\(MachineDescription.folderStamp())")
        let (backend, notes) = try makeBackend(device: deviceOptions.device, choice: deviceOptions.backend)
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
            timelines: .notRun("step timelines are not recorded by this version of `cohort experiments` yet"))
        let written = try ReportWriter(results: results).write(to: directory)
        progress("experiments: wrote \(written.count) files to \(directory.path)")
        for url in written { progress("  \(url.lastPathComponent)") }
        for section in ReportSections.all(results) where ["q1", "q2", "q3"].contains(section.id) {
            print("\n## \(section.title)\n")
            if let empty = section.emptyMessage { print(empty) }
            for table in section.tables { print(table.markdown) }
        }
    }

    /// Prints a line at once, so progress shows while the next configuration runs.
    private func progress(_ line: String) {
        print(line)
        fflush(nil)  // every stream: stdout without touching the global
    }
}
