import CohortExperiments
import Foundation

/// Runs the GPU profile's commands one after another (`GPUSuitePlan`),
/// each in its own run folder with its output in `output.txt` there,
/// under a time limit for the whole suite: a command gets at most what is
/// left (and its own limit), and one that would not fit in what is left by
/// its estimate is skipped and reported with that reason. Progress lines
/// name the configuration, its place in the plan, the time spent and an
/// estimate of the time left (planned guesses, replaced by the measured
/// mean of each kind of command as they finish).
struct GPUExperimentsRunner {
    var plan: GPUSuitePlan
    /// Seconds for the whole suite, from `start`.
    var timeLimit: Double
    var log: (String) -> Void
    let start = Date()
    private(set) var executed: [ExecutedRun] = []
    private var measured: [PlannedRun.Kind: [Double]] = [:]

    init(plan: GPUSuitePlan, timeLimit: Double, log: @escaping (String) -> Void) {
        self.plan = plan
        self.timeLimit = timeLimit
        self.log = log
    }

    var elapsed: Double { Date().timeIntervalSince(start) }

    /// A run's expected seconds: the mean of its kind measured so far, else the plan's guess.
    func estimate(_ run: PlannedRun) -> Double {
        guard let times = measured[run.kind], !times.isEmpty else { return run.estimatedSeconds }
        return times.reduce(0, +) / Double(times.count)
    }

    mutating func runAll() {
        let runs = plan.runs
        for (index, planned) in runs.enumerated() {
            var run = planned
            if run.isBestOfQ4 { run = bestOfQ4(run) }
            let left = timeLimit - elapsed
            let remaining = runs[index...].map(estimate).reduce(0, +)
            let place = "[\(index + 1)/\(runs.count)] \(run.label)"
            if let blocker = dependencyFailure(run) {
                record(run, .skipped(reason: blocker), place: place)
                continue
            }
            guard left >= min(estimate(run), 30) else {
                record(run, .skipped(reason: "out of time: the suite's --time-limit of \(Int(timeLimit)) s was spent"),
                       place: place)
                continue
            }
            log("\(place): starting; \(Self.duration(elapsed)) elapsed, about \(Self.duration(remaining)) of runs left"
                + " (limit \(Self.duration(max(0, left))))")
            let outcome = Self.execute(run, limit: min(run.timeLimitSeconds, left))
            if case .finished(let seconds) = outcome { measured[run.kind, default: []].append(seconds) }
            record(run, outcome, place: place)
        }
    }

    private mutating func record(_ run: PlannedRun, _ outcome: RunOutcome, place: String) {
        executed.append(ExecutedRun(run: run, outcome: outcome))
        switch outcome {
        case .finished(let seconds):
            log("\(place): done in \(String(format: "%.1f", seconds)) s\(Self.summary(of: run).map { ": \($0)" } ?? "")")
        case .failed(let reason): log("\(place): FAILED: \(reason)")
        case .skipped(let reason): log("\(place): not run: \(reason)")
        }
    }

    /// Q3's multi-GPU eager runs are still useful without their 1-GPU baseline,
    /// and Q4's (e) needs at least one of (a)-(d): the only dependency.
    func dependencyFailure(_ run: PlannedRun) -> String? {
        guard run.isBestOfQ4 else { return nil }
        let candidates = executed.filter { $0.run.kind == .q4 && $0.run.lrRule != .reference && !$0.run.isBestOfQ4 }
        return candidates.contains { $0.outcome.succeeded } ? nil : "none of (a)-(d) finished, so there is no best to refine"
    }

    /// Q4 (e): the rule of (a)-(d) with the best final test accuracy, rebuilt with label smoothing.
    func bestOfQ4(_ placeholder: PlannedRun) -> PlannedRun {
        var best: (rule: LearningRateRule, accuracy: Double)?
        for candidate in executed where candidate.run.kind == .q4 && candidate.outcome.succeeded {
            guard let rule = candidate.run.lrRule, rule != .reference, !candidate.run.isBestOfQ4 else { continue }
            let url = URL(fileURLWithPath: candidate.run.directory + "/"
                          + GPUSuiteResults.metricsFile(gpus: candidate.run.gpus))
            guard let accuracy = (try? TrainingLog(contentsOf: url))?.q4Epochs.last?.testAccuracy else { continue }
            if accuracy > best?.accuracy ?? -1 { best = (rule, accuracy) }
        }
        guard let best else { return placeholder }
        let port = Int(placeholder.arguments.firstIndex(of: "--master-port").map { placeholder.arguments[$0 + 1] } ?? "") ?? 29_590
        var run = plan.q4Run(rule: best.rule, labelSmoothing: plan.settings.q4.labelSmoothing, port: port)
        run.isBestOfQ4 = true
        log("Q4 (e): the best of (a)-(d) is \(Q4Recipe.label(best.rule)) at \(Format.percent(best.accuracy, decimals: 2)); "
            + "running it again with label smoothing \(Format.compact(plan.settings.q4.labelSmoothing))")
        return run
    }

    /// One line of what a finished run measured, for the progress log.
    static func summary(of run: PlannedRun) -> String? {
        let folder = URL(fileURLWithPath: run.directory)
        switch run.kind {
        case .q2Cohort, .q3Cohort, .q4, .timeToAccuracy:
            guard let log = try? TrainingLog(contentsOf: folder.appendingPathComponent(GPUSuiteResults.metricsFile(gpus: run.gpus)))
            else { return nil }
            if run.kind == .q4 || run.kind == .timeToAccuracy {
                guard let last = log.evaluations.last, let accuracy = last.testAccuracy else { return nil }
                return "epoch \(last.epoch): test accuracy \(Format.percent(accuracy, decimals: 2))"
            }
            let rate = GPUMeasurements.median(log.steps.suffix(4).compactMap(\.imagesPerSecond)) ?? 0
            let device = GPUMeasurements.median(log.steps.suffix(4).compactMap(\.deviceStepSeconds))
            return String(format: "rank 0 %.0f images/s", rate) + (device.map { String(format: ", device step %.2f ms", $0 * 1000) } ?? "")
        default:
            return nil
        }
    }

    /// Runs the command under `timeout` (which signals the command's whole
    /// process group, so mpirun's ranks go too), its output into the run
    /// folder's output.txt.
    static func execute(_ run: PlannedRun, limit: Double) -> RunOutcome {
        let folder = URL(fileURLWithPath: run.directory)
        try? FileManager.default.removeItem(at: folder)
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            return .failed(reason: "cannot create \(folder.path): \(error)")
        }
        let outputURL = folder.appendingPathComponent("output.txt")
        _ = FileManager.default.createFile(atPath: outputURL.path, contents: Data((run.arguments.joined(separator: " ") + "\n").utf8))
        guard let output = try? FileHandle(forWritingTo: outputURL) else { return .failed(reason: "cannot write \(outputURL.path)") }
        defer { try? output.close() }
        output.seekToEndOfFile()
        let seconds = max(1, Int(limit.rounded(.down)))
        var arguments = run.arguments
        if let timeout = findInPath("timeout") {
            arguments = [timeout, "--kill-after=10", String(seconds)] + arguments
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0].contains("/") ? arguments[0] : findInPath(arguments[0]) ?? arguments[0])
        process.arguments = Array(arguments.dropFirst())
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        let started = Date()
        do {
            try process.run()
        } catch {
            return .failed(reason: "could not start \(arguments[0]): \(error)")
        }
        process.waitUntilExit()
        let took = Date().timeIntervalSince(started)
        // Training runs leave a checkpoint (90 MB for ResNet-18): not a result, and too big to bring back.
        try? FileManager.default.removeItem(at: folder.appendingPathComponent("checkpoint.safetensors"))
        let status = process.terminationStatus
        guard status != 0 else { return .finished(seconds: took) }
        if status == 124 || status == 137 {
            return .failed(reason: "stopped after its time limit of \(seconds) s (output: \(run.directory)/output.txt)")
        }
        let text = (try? String(contentsOf: outputURL, encoding: .utf8)) ?? ""
        let line = errorLine(text).map { ": " + $0.prefix(240) } ?? ""
        return .failed(reason: "exit status \(status)\(line) (output: \(run.directory)/output.txt)")
    }

    /// The output line that says what went wrong: the last naming an error, else the last one.
    static func errorLine(_ text: String) -> String? {
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return (lines.last { $0.contains("Error") || $0.contains("error:") || $0.contains("failed") } ?? lines.last)
    }

    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        return total >= 60 ? "\(total / 60)m\(String(format: "%02d", total % 60))s" : "\(total)s"
    }
}
