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
    /// Q2/Q3: `cohort train` on synthetic data with 1, 2, … MPI ranks, the per-rank batch fixed (weak scaling).
    var q2Model: ModelArchitecture
    var q2PerRankBatch: Int
    var q2RankCounts: [Int]
    /// Training steps per run; the first `q2WarmupSteps` are left out of the medians.
    var q2Steps: Int
    var q2WarmupSteps: Int

    static func cpu(quick: Bool) -> ExperimentsPlan {
        quick
            ? ExperimentsPlan(q1Model: .smallcnn, q1BatchSizes: [8, 16], warmupSteps: 1, timedSteps: 1, imagesPerEpoch: 512,
                              q2Model: .smallcnn, q2PerRankBatch: 8, q2RankCounts: [1, 2], q2Steps: 4, q2WarmupSteps: 1)
            : ExperimentsPlan(q1Model: .resnet18, q1BatchSizes: [32, 128], warmupSteps: 2, timedSteps: 5,
                              imagesPerEpoch: 50_000,
                              q2Model: .resnet18, q2PerRankBatch: 32, q2RankCounts: [1, 2], q2Steps: 8, q2WarmupSteps: 2)
    }
}

/// Runs the CPU profile of the scaling study and collects `ExperimentResults`.
struct ExperimentsRunner {
    var plan: ExperimentsPlan
    var backend: Backend
    var quick: Bool
    /// The --backend the training runs of Q2/Q3 are given.
    var backendChoice: BackendChoice
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

    /// What one `cohort train` run of `ranks` ranks measured (rank 0's step records, medians after warm-up).
    struct RankRun {
        var ranks: Int
        /// forward + backward + optimizer seconds of one step (communication waits included, data wait not).
        var stepSeconds: Double
        /// All-reduce seconds of one step (busy time, hidden or not); 0 with one rank.
        var communicationSeconds: Double
        var bytesPerStep: Int
    }

    /// Q2 and Q3: one `cohort train` per rank count, through mpirun for more than one rank.
    func runQ2Q3(into directory: URL) throws -> (q2: Section<Q2Record>, q3: Section<Q3Record>) {
        let counts = plan.q2RankCounts
        guard let mpirun = findInPath("mpirun") else {
            let reason = "mpirun not found: CPU ranks need Open MPI (apt-get install openmpi-bin libopenmpi-dev)"
            return (.notRun(reason), .notRun(reason))
        }
        var runs: [RankRun] = []
        for (index, ranks) in counts.enumerated() {
            log("[Q2 \(index + 1)/\(counts.count)] \(ranks) rank\(ranks == 1 ? "" : "s") × \(plan.q2Model.rawValue) batch "
                + "\(plan.q2PerRankBatch), \(plan.q2Steps) steps (cohort train\(ranks > 1 ? " under mpirun" : ""))")
            let run = try trainingRun(ranks: ranks, mpirun: mpirun,
                                      directory: directory.appendingPathComponent("q2-\(ranks)-rank\(ranks == 1 ? "" : "s")"))
            log(String(format: "[Q2 %d/%d] %d rank%@: %.4f s/step, all-reduce %.4f s/step (%d bytes)", index + 1, counts.count,
                       ranks, ranks == 1 ? "" : "s", run.stepSeconds, run.communicationSeconds, run.bytesPerStep))
            runs.append(run)
        }
        let q2 = runs.map { run in
            Q2Record(framework: .cohort, strategy: .ddp, precision: .fp32, gpus: run.ranks, perDeviceBatch: plan.q2PerRankBatch,
                     epochSeconds: Double(plan.imagesPerEpoch) / Double(run.ranks * plan.q2PerRankBatch) * run.stepSeconds)
        }.withDerivedScaling()
        let single = runs.first { $0.ranks == 1 }
        let q3 = runs.filter { $0.ranks > 1 }.compactMap { run -> Q3Record? in
            guard let single else { return nil }
            return Q3Record(strategy: .ddp, precision: .fp32, gpus: run.ranks, perDeviceBatch: plan.q2PerRankBatch,
                            stepSeconds: run.stepSeconds, stepSecondsWithoutCommunication: single.stepSeconds,
                            computeSeconds: single.stepSeconds, communicationBusySeconds: run.communicationSeconds,
                            bytesPerStep: run.bytesPerStep)
        }
        return (Section(records: q2), q3.isEmpty ? .notRun("needs a 1-rank and a multi-rank run") : Section(records: q3))
    }

    /// Runs `cohort train` with `ranks` ranks into `directory` and reads rank 0's step records.
    func trainingRun(ranks: Int, mpirun: String, directory: URL) throws -> RankRun {
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let me = try ownExecutable()
        let train = [me, "train", "--dataset", "synthetic", "--model", plan.q2Model.rawValue,
                     "--batch-size", String(plan.q2PerRankBatch), "--steps-per-epoch", String(plan.q2Steps),
                     "--epochs", "1", "--log-every", "1", "--eval-limit", String(plan.q2PerRankBatch),
                     "--backend", backendChoice.rawValue, "--no-progress", "--run-dir", directory.path]
        var arguments = train
        if ranks > 1 {
            arguments = [mpirun, "-np", String(ranks), "--oversubscribe", "--bind-to", "none"]
                + (getuid() == 0 ? ["--allow-run-as-root"] : []) + ["-x", "OMP_NUM_THREADS", me, "_rank", "--"] + train
        }
        var environment = ProcessInfo.processInfo.environment
        // As `cohort launch`: ranks sharing the machine split its cores.
        environment["OMP_NUM_THREADS"] = String(max(1, ProcessInfo.processInfo.activeProcessorCount / ranks))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        process.environment = environment
        let outputURL = directory.appendingPathComponent("output.txt")
        _ = FileManager.default.createFile(atPath: outputURL.path, contents: nil)  // FileHandle below says why if it failed
        let output = try FileHandle(forWritingTo: outputURL)
        defer { try? output.close() }
        process.standardOutput = output
        process.standardError = output
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let text = (try? String(contentsOf: outputURL, encoding: .utf8)) ?? ""
            throw LaunchError(message: "the \(ranks)-rank training run failed (status \(process.terminationStatus)); "
                              + "its output (\(outputURL.path)) ends:\n" + text.split(separator: "\n").suffix(15).joined(separator: "\n"))
        }
        let metrics = directory.appendingPathComponent(ranks > 1 ? "metrics-rank0.jsonl" : "metrics.jsonl")
        return try Self.readSteps(metrics, ranks: ranks, warmupSteps: plan.q2WarmupSteps)
    }

    /// Medians over the step records after the first `warmupSteps`.
    static func readSteps(_ url: URL, ranks: Int, warmupSteps: Int) throws -> RankRun {
        let text = try String(contentsOf: url, encoding: .utf8)
        let steps = text.split(separator: "\n").compactMap { line -> [String: Any]? in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  object["event"] as? String == "step" else { return nil }
            return object
        }
        let timed = steps.count > warmupSteps ? Array(steps.dropFirst(warmupSteps)) : steps
        guard !timed.isEmpty else { throw LaunchError(message: "\(url.path) has no step records") }
        func number(_ record: [String: Any], _ key: String) -> Double { (record[key] as? NSNumber)?.doubleValue ?? 0 }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        let stepSeconds = median(timed.map {
            number($0, "forward_seconds") + number($0, "backward_seconds") + number($0, "optimizer_seconds")
        })
        let bytes = (timed.last?["allreduce_bytes"] as? [NSNumber])?.reduce(0) { $0 + $1.intValue } ?? 0
        return RankRun(ranks: ranks, stepSeconds: stepSeconds,
                       communicationSeconds: median(timed.map { number($0, "communication_seconds") }), bytesPerStep: bytes)
    }

    func metadata(command: String) -> RunMetadata {
        var notes = [
            "Q1 runs \(plan.q1Model.rawValue) on random images already in memory; epoch seconds = images per epoch / "
                + "images per second, from the median of \(plan.timedSteps) timed step\(plan.timedSteps == 1 ? "" : "s") "
                + "after \(plan.warmupSteps) warm-up step\(plan.warmupSteps == 1 ? "" : "s")",
            "backend: \(backend.name) (\(backend.details))",
        ]
        notes.append("Q2/Q3 run `cohort train --dataset synthetic --model \(plan.q2Model.rawValue) --batch-size "
            + "\(plan.q2PerRankBatch)` for \(plan.q2Steps) steps with \(plan.q2RankCounts.map(String.init).joined(separator: ", ")) "
            + "MPI ranks on this machine's cores (\"gpus\" = ranks; OMP threads split between ranks); step times are "
            + "rank 0's medians of forward + backward + optimizer after \(plan.q2WarmupSteps) warm-up step"
            + "\(plan.q2WarmupSteps == 1 ? "" : "s"); Q3's step without communication and its compute time are the 1-rank step "
            + "at the same per-rank batch")
        if quick { notes.append("--quick: a tiny setting that checks the pipeline; its figures mean little") }
        return RunMetadata(machine: MachineDescription.current(), card: nil, deviceCount: 1, driver: nil,
                           libraries: LibraryVersions(onednn: MachineDescription.oneDNNVersion(details: backend.details)),
                           commit: MachineDescription.commit(), date: MachineDescription.isoDate(), command: command,
                           environment: EnvironmentSettings.headerValue(), profile: .cpuScaledDown,
                           syntheticData: true, imagesPerEpoch: plan.imagesPerEpoch, notes: notes)
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

    /// The commit the binary was built from when the build says so
    /// (COHORT_BUILD_COMMIT, set by scripts/gpu-experiments.sh from
    /// .gpu/build-info.txt: the GPU machine's copy has no .git), else `commit()`.
    static func buildCommit() -> String {
        let stamped = ProcessInfo.processInfo.environment["COHORT_BUILD_COMMIT"]?.trimmingCharacters(in: .whitespaces)
        return stamped.flatMap { $0.isEmpty ? nil : $0 } ?? commit()
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
