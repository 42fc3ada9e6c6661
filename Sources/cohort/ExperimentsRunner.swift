import CohortExperiments
import CohortKernels
import CohortNN
import CohortTraining
import Foundation

/// What one `cohort experiments` run measures: the CPU profile's settings,
/// full or `--quick` (a tiny setting that finishes in seconds, for CI).
struct ExperimentsPlan {
    var q1Model: ModelArchitecture
    var q1BatchSizes: [Int]
    var warmupSteps: Int
    var timedSteps: Int
    /// Images in one epoch; epoch times are extrapolated from the median step time.
    var imagesPerEpoch: Int

    static func cpu(quick: Bool) -> ExperimentsPlan {
        quick
            ? ExperimentsPlan(q1Model: .smallcnn, q1BatchSizes: [8, 16], warmupSteps: 1, timedSteps: 1, imagesPerEpoch: 512)
            : ExperimentsPlan(q1Model: .resnet18, q1BatchSizes: [32, 128], warmupSteps: 2, timedSteps: 5,
                              imagesPerEpoch: 50_000)
    }
}

/// Runs the CPU profile of the scaling study and collects `ExperimentResults`.
struct ExperimentsRunner {
    var plan: ExperimentsPlan
    var backend: Backend
    var quick: Bool
    /// Progress lines ("which configuration, how far").
    var log: (String) -> Void

    func runQ1() throws -> Section<Q1Record> {
        var records: [Q1Record] = []
        for (index, batchSize) in plan.q1BatchSizes.enumerated() {
            log("[Q1 \(index + 1)/\(plan.q1BatchSizes.count)] \(plan.q1Model.rawValue) fp32, batch \(batchSize): "
                + "\(plan.warmupSteps) warm-up + \(plan.timedSteps) timed steps on \(backend.name)")
            let result = try ThroughputBenchmark(architecture: plan.q1Model, precision: .float32, batchSize: batchSize,
                                                 warmupSteps: plan.warmupSteps, timedSteps: plan.timedSteps)
                .run(on: backend)
            let epochSeconds = Double(plan.imagesPerEpoch) / result.imagesPerSecond
            log(String(format: "[Q1 %d/%d] batch %d: %.4f s/step, %.1f images/s, epoch %.1f s", index + 1,
                       plan.q1BatchSizes.count, batchSize, result.medianStepSeconds, result.imagesPerSecond, epochSeconds))
            records.append(Q1Record(framework: .cohort, device: "cpu", precision: .fp32, batchSize: batchSize,
                                    epochSeconds: epochSeconds, imagesPerSecond: result.imagesPerSecond))
        }
        return Section(records: records)
    }

    func metadata(command: String) -> RunMetadata {
        var notes = [
            "Q1 runs \(plan.q1Model.rawValue) on random images already in memory; epoch seconds = images per epoch / "
                + "images per second, from the median of \(plan.timedSteps) timed step\(plan.timedSteps == 1 ? "" : "s") "
                + "after \(plan.warmupSteps) warm-up step\(plan.warmupSteps == 1 ? "" : "s")",
            "backend: \(backend.name) (\(backend.details))",
        ]
        if quick { notes.append("--quick: a tiny setting that checks the pipeline; its figures mean little") }
        return RunMetadata(machine: MachineDescription.current(), card: nil, deviceCount: 1, driver: nil,
                           libraries: LibraryVersions(onednn: MachineDescription.oneDNNVersion(details: backend.details)),
                           commit: MachineDescription.commit(), date: MachineDescription.isoDate(), command: command,
                           profile: .cpuScaledDown, syntheticData: true, imagesPerEpoch: plan.imagesPerEpoch, notes: notes)
    }
}

/// The facts a results stamp records about the machine and the build.
enum MachineDescription {
    /// "host, CPU model, N cores".
    static func current() -> String {
        let host = ProcessInfo.processInfo.hostName
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let model = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))
            .flatMap { text in
                text.split(separator: "\n").first { $0.hasPrefix("model name") }
                    .flatMap { $0.split(separator: ":", maxSplits: 1).last }
                    .map { $0.trimmingCharacters(in: .whitespaces) }
            } ?? "unknown CPU"
        return "\(host), \(model), \(cores) core\(cores == 1 ? "" : "s")"
    }

    /// "3.4.1" out of the oneDNN backend's details ("oneDNN 3.4.1, ISA ..."); nil for other backends.
    static func oneDNNVersion(details: String) -> String? {
        guard let range = details.range(of: "oneDNN ") else { return nil }
        let version = details[range.upperBound...].prefix { $0.isNumber || $0 == "." }
        return version.isEmpty ? nil : String(version)
    }

    /// `git rev-parse --short HEAD` of the working directory, or "unknown".
    static func commit() -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git", "rev-parse", "--short", "HEAD"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return "unknown" }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return process.terminationStatus == 0 && !text.isEmpty ? text : "unknown"
    }

    static func isoDate(_ date: Date = Date()) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    /// "20261127-142500" (UTC), for default folder names.
    static func folderStamp(_ date: Date = Date()) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        return formatter.string(from: date)
    }
}
