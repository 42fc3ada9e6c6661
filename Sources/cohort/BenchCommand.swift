import ArgumentParser
import CohortKernels
import CohortNN
import CohortTraining
import Foundation

/// `cohort bench` (training throughput, the default), `cohort bench allreduce` and `cohort bench convs`.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure training throughput, all-reduce bandwidth across ranks, or a GPU step's ops one by one.",
        subcommands: [BenchTraining.self, BenchAllReduce.self, BenchConvs.self],
        defaultSubcommand: BenchTraining.self)
}

struct BenchTraining: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "training",
        abstract: "Measure training throughput (images/s) on random data already on the device (the default).",
        discussion: """
            Each batch size runs full training steps (forward, loss, backward, SGD) after warm-up \
            steps, and reports the median step time, images per second and the time an epoch of \
            50,000 images would take. Compare with PyTorch's figures measured the same way \
            (docs/benchmarks.md).
            """)

    @OptionGroup var deviceOptions: DeviceOptions

    @Option(help: "Model to time: \(ModelArchitecture.allCases.map(\.rawValue).joined(separator: ", ")).")
    var model: ModelArchitecture = .resnet18

    @Option(help: "Compute precision: fp32, or bf16 with float32 master weights.")
    var precision: Precision = .float32

    @Option(name: .customLong("batch-sizes"), parsing: .upToNextOption, help: "Batch sizes to time.")
    var batchSizes: [Int] = [32, 128]

    @Option(help: "Untimed steps before measuring (algorithm selection, caches, page faults).")
    var warmup: Int = 2

    @Option(help: "Timed steps per batch size; the median is reported.")
    var steps: Int = 5

    @Flag(name: .customLong("no-graphs"),
          help: "Run every step eagerly instead of replaying a captured CUDA graph (to compare; CPU backends are always eager).")
    var noGraphs = false

    @Option(help: ArgumentHelp("Also write the results as JSON to this file.", valueName: "file"))
    var json: String?

    @Flag(name: .customLong("profile-ops"), help: """
        Time every op of the timed steps on its own (the device is synchronised around each, so steps run \
        eagerly and slower) and print where a step's time goes, by op and shape.
        """)
    var profileOps = false

    @Option(name: .customLong("profile-shapes"), help: ArgumentHelp(
        "With --profile-ops: how many of the costliest (op, shape) rows to print.", valueName: "count"))
    var profileShapes = 12

    func validate() throws {
        guard !batchSizes.isEmpty, batchSizes.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--batch-sizes takes positive integers, e.g. --batch-sizes 32 128")
        }
        guard warmup >= 0 else { throw ValidationError("--warmup must be 0 or more") }
        guard steps > 0 else { throw ValidationError("--steps must be at least 1") }
        guard profileShapes > 0 else { throw ValidationError("--profile-shapes must be at least 1") }
    }

    func run() throws {
        let (device, notes) = try makeBackend(device: deviceOptions.device, choice: deviceOptions.backend, allowsTF32: !deviceOptions.noTF32)
        let profiler = profileOps ? OpProfiler(device) : nil
        let backend: Backend = profiler ?? device
        notes.forEach { print("note: \($0)") }
        print("bench: \(model.rawValue) training steps in \(precision.rawValue) on \(backend.name) (\(backend.details))")
        print("batch  step (s)  images/s  epoch (s)  graphs")
        var results: [ThroughputBenchmark.Result] = []
        for batchSize in batchSizes {
            let result = try ThroughputBenchmark(architecture: model, precision: precision, batchSize: batchSize, warmupSteps: warmup,
                                                 timedSteps: steps, graphs: !noGraphs).run(on: backend)
            results.append(result)
            print(String(format: "%5d  %8.4f  %8.1f  %9.1f  ", batchSize, result.medianStepSeconds,
                         result.imagesPerSecond, result.epochSeconds) + (result.graphs ? "yes" : "no") + " (\(result.graphNote))")
            if let profiler {
                printProfile(profiler.report, steps: steps, batchSize: batchSize)
                profiler.reset()
            }
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(results).write(to: URL(fileURLWithPath: json))
        }
    }

    /// Where a step's time goes: op totals, then the costliest (op, shape) rows.
    private func printProfile(_ entries: [OpProfiler.Entry], steps: Int, batchSize: Int) {
        let total = entries.map(\.seconds).reduce(0, +)
        guard total > 0 else { return }
        let perStep = { (seconds: Double) in seconds / Double(steps) * 1000 }
        let pad = { (text: String) in text.padding(toLength: max(32, text.count), withPad: " ", startingAt: 0) }
        print("  profile of batch \(batchSize): \(String(format: "%.2f", perStep(total))) ms of op time per step (device synchronised around each op)")
        var byOp: [String: Double] = [:]
        for entry in entries { byOp[entry.op, default: 0] += entry.seconds }
        for (op, seconds) in byOp.sorted(by: { $0.value > $1.value }) {
            print("  " + pad(op) + String(format: " %8.3f ms  %5.1f%%", perStep(seconds), 100 * seconds / total))
        }
        print("  costliest shapes:")
        for entry in entries.prefix(profileShapes) {
            print("  " + pad(entry.op) + String(format: " %8.3f ms  %5.1f%%  x%d  ", perStep(entry.seconds),
                                                   100 * entry.seconds / total, entry.calls / max(steps, 1)) + entry.shape)
        }
    }
}
