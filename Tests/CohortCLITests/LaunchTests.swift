import CohortTestSupport
import Foundation
import XCTest

/// `cohort launch` end to end on this machine: 2 CPU ranks through mpirun,
/// a rank killed mid-run, a restart from the checkpoint, a rendezvous that
/// never completes. Skipped where mpirun is not installed.
final class LaunchTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-launch-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    /// A tiny training command for the ranks.
    func train(steps: Int, epochs: Int = 1) -> [String] {
        ["cohort", "train", "--device", "cpu", "--dataset", "synthetic", "--model", "smallcnn", "--epochs", String(epochs),
         "--steps-per-epoch", String(steps), "--batch-size", "16", "--eval-limit", "32", "--log-every", "1",
         "--no-progress", "--run-dir", folder.path]
    }

    func testTwoRanksTrainAndEachWritesItsMetrics() throws {
        // Buckets held until the first convolution's gradient (Note [Bucket release points]).
        let job = try LaunchedJob(["launch", "--nproc-per-node", "2", "--master-port", String(LaunchedJob.freePort()), "--"]
            + train(steps: 3) + ["--bucket-release", "conv1.weight"])
        let (status, output) = job.finish(limit: 60)
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("held and started at --bucket-release conv1.weight in fp32 (--allreduce-dtype auto)"),
                      "float32 training over MPI all-reduces in fp32:\n\(output)")
        XCTAssertTrue(output.contains("global batch 32 = 2 ranks x 16"), output)
        XCTAssertTrue(output.contains("from torchrun variables"), "ranks should see RANK/WORLD_SIZE:\n\(output)")
        XCTAssertEqual(output.components(separatedBy: "cohort train: smallcnn").count, 2, "only rank 0 prints:\n\(output)")
        for rank in 0..<2 {
            let metrics = try String(contentsOf: folder.appendingPathComponent("metrics-rank\(rank).jsonl"), encoding: .utf8)
            XCTAssertTrue(metrics.contains("\"rank\":\"\(rank)\""), metrics)
            XCTAssertTrue(metrics.contains("\"communication_seconds\""), metrics)
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent("checkpoint.safetensors").path))
    }

    /// `cohort bench allreduce` on 2 CPU ranks: rank 0 prints one row per
    /// size with nccl-tests' busbw (= algbw for 2 ranks), and writes them as JSON.
    func testAllReduceSweepOnTwoRanks() throws {
        let json = folder.appendingPathComponent("sweep.json")
        let job = try LaunchedJob(["launch", "--nproc-per-node", "2", "--master-port", String(LaunchedJob.freePort()), "--",
                                   "cohort", "bench", "allreduce", "--device", "cpu", "--max-bytes", "65536",
                                   "--iterations", "3", "--json", json.path])
        let (status, output) = job.finish(limit: 60)
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("all-reduce (sum, float32) on 2 ranks through mpi"), output)
        struct Row: Decodable { var ranks: Int; var bytes: Int; var seconds: Double; var algbwGBps: Double; var busbwGBps: Double }
        let rows = try JSONDecoder().decode([Row].self, from: Data(contentsOf: json))
        XCTAssertEqual(rows.map(\.bytes), [1024, 4096, 16384, 65536])
        for row in rows {
            XCTAssertEqual(row.ranks, 2)
            XCTAssertGreaterThan(row.seconds, 0)
            XCTAssertEqual(row.algbwGBps, Double(row.bytes) / row.seconds / 1e9, accuracy: 1e-9 * row.algbwGBps)
            XCTAssertEqual(row.busbwGBps, row.algbwGBps, accuracy: 1e-12)   // 2 (n - 1) / n = 1 for n = 2
        }
    }

    /// SIGKILL to rank 1 mid-run: the job ends non-zero within 30 s and the
    /// launcher's report names rank 1 and the signal.
    func testARankKilledMidRunStopsTheJobAndIsNamed() throws {
        let job = try LaunchedJob(["launch", "--nproc-per-node", "2", "--master-port", String(LaunchedJob.freePort()), "--"]
            + train(steps: 100_000))
        let pid = try job.waitForRankPID(rank: 1, in: folder, stepRecords: 2)
        let killed = Date()
        kill(pid, SIGKILL)
        let (status, output) = job.finish(limit: 45)
        XCTAssertNotEqual(status, 0, output)
        XCTAssertLessThan(Date().timeIntervalSince(killed), 30, output)
        let report = output.split(separator: "\n").last { $0.hasPrefix("cohort launch: the job failed") }
        XCTAssertNotNil(report, output)
        XCTAssertTrue(report?.contains("rank 1 failed first: killed by signal 9") ?? false, output)
    }

    /// With --max-restarts 1, killing a rank after the first epoch's
    /// checkpoint restarts the job, which resumes at epoch 1 and finishes.
    func testARestartedJobResumesFromTheCheckpoint() throws {
        let job = try LaunchedJob(["launch", "--nproc-per-node", "2", "--max-restarts", "1",
                                   "--master-port", String(LaunchedJob.freePort()), "--"] + train(steps: 30, epochs: 3))
        let checkpoint = folder.appendingPathComponent("checkpoint.safetensors")
        let pid = try job.waitForRankPID(rank: 1, in: folder, stepRecords: 1)
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: checkpoint.path) && Date() < deadline { usleep(20_000) }
        kill(pid, SIGKILL)
        let (status, output) = job.finish(limit: 120)
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("restart 1 of 1"), output)
        XCTAssertTrue(output.contains("resuming from \(checkpoint.path) at epoch 1"), output)
        XCTAssertTrue(output.contains("done: 3 epochs, 90 steps"), output)
    }

    /// NCCL's, CUDA's and Cohort's own variables reach every rank (through
    /// mpirun's -x, so ranks on other nodes see them too), and the launcher
    /// names them.
    func testNCCLAndCohortVariablesReachEveryRank() throws {
        let job = try LaunchedJob(["launch", "--nproc-per-node", "2", "--master-port", String(LaunchedJob.freePort()), "--",
                                   "/bin/sh", "-c", "echo \"probe rank $RANK: $COHORT_PROBE_VARIABLE $NCCL_PROBE_SETTING\""],
                                  environment: ["COHORT_PROBE_VARIABLE": "forwarded-42", "NCCL_PROBE_SETTING": "7",
                                                "CUDA_VISIBLE_DEVICES": "0"])
        let (status, output) = job.finish(limit: 60)
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("probe rank 0: forwarded-42 7"), output)
        XCTAssertTrue(output.contains("probe rank 1: forwarded-42 7"), output)
        let named = output.split(separator: "\n").first { $0.contains("passed to every rank") } ?? ""
        XCTAssertTrue(named.contains("COHORT_PROBE_VARIABLE") && named.contains("NCCL_PROBE_SETTING"), output)
        // A fact of node 0's machine is not imposed on the others (local ranks still inherit it).
        XCTAssertFalse(named.contains("CUDA_VISIBLE_DEVICES"), output)
    }

    /// torchrun-style variables set by hand, without an MPI launcher: each
    /// process would be an MPI world of its own, so the rank refuses to start
    /// and says which launchers work.
    func testHandSetVariablesWithoutAnMPILauncherAreRefused() throws {
        let job = try LaunchedJob(Array(train(steps: 1).dropFirst()), environment: ["RANK": "1", "WORLD_SIZE": "2"])
        let (status, output) = job.finish(limit: 30)
        XCTAssertNotEqual(status, 0, output)
        XCTAssertTrue(output.contains("MPI says rank 0 of 1"), output)
        XCTAssertTrue(output.contains("cohort launch --nproc-per-node N"), output)
    }

    /// `--symmetric-windows on` asks for NCCL's windows; CPU ranks all-reduce
    /// through MPI, so the job stops at setup saying why, on every rank.
    func testSymmetricWindowsOnCPURanksAreRefused() throws {
        let job = try LaunchedJob(["launch", "--nproc-per-node", "2", "--master-port", String(LaunchedJob.freePort()), "--"]
            + train(steps: 1) + ["--symmetric-windows", "on"])
        let (status, output) = job.finish(limit: 60)
        XCTAssertNotEqual(status, 0, output)
        XCTAssertTrue(output.contains("--symmetric-windows on needs NCCL"), output)
        XCTAssertFalse(output.contains("epoch 1/1"), "no rank should train:\n\(output)")
    }

    /// `--allreduce-launch host` moves NCCL's captured all-reduces out of the
    /// graph; CPU ranks have neither, so the job stops at setup saying why.
    func testHostLaunchedAllReducesOnCPURanksAreRefused() throws {
        let job = try LaunchedJob(["launch", "--nproc-per-node", "2", "--master-port", String(LaunchedJob.freePort()), "--"]
            + train(steps: 1) + ["--allreduce-launch", "host"])
        let (status, output) = job.finish(limit: 60)
        XCTAssertNotEqual(status, 0, output)
        XCTAssertTrue(output.contains("--allreduce-launch host is for NCCL ranks"), output)
        XCTAssertFalse(output.contains("epoch 1/1"), "no rank should train:\n\(output)")
    }

    /// Node 0 of 2 waits for a node 1 that never comes: a clear error after --rdzv-timeout.
    func testARendezvousThatNeverCompletesTimesOut() throws {
        let job = try LaunchedJob(["launch", "--nnodes", "2", "--node-rank", "0", "--nproc-per-node", "1",
                                   "--master-port", String(LaunchedJob.freePort()), "--rdzv-timeout", "2", "--"] + train(steps: 1),
                                  needsMPI: false)
        let (status, output) = job.finish(limit: 30)
        XCTAssertNotEqual(status, 0, output)
        XCTAssertTrue(output.contains("did not meet"), output)
        XCTAssertTrue(output.contains("--rdzv-timeout 2 s"), output)
        XCTAssertFalse(output.contains("Fatal error"), output)
    }
}

/// A `cohort` process started by a test, its output collected in the background.
final class LaunchedJob: @unchecked Sendable {
    let process = Process()
    private let pipe = Pipe()
    private var collected = Data()
    private let done = DispatchGroup()

    init(_ arguments: [String], environment: [String: String] = [:], needsMPI: Bool = true,
         wrapper: [String] = []) throws {
        if needsMPI {
            let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
                .map { "\($0)/mpirun" }.first { FileManager.default.isExecutableFile(atPath: $0) }
            guard path != nil else { throw XCTSkip("mpirun not installed (apt-get install openmpi-bin libopenmpi-dev)") }
        }
        let cohort = try Self.cohort()
        if wrapper.isEmpty {
            process.executableURL = cohort
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: wrapper[0])
            process.arguments = Array(wrapper.dropFirst()) + [cohort.path] + arguments
        }
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        done.enter()
        DispatchQueue.global().async { [self] in
            collected = pipe.fileHandleForReading.readDataToEndOfFile()
            done.leave()
        }
    }

    /// Waits for the process (terminating it after `limit` seconds); returns its status and output.
    func finish(limit: TimeInterval) -> (status: Int32, output: String) {
        if done.wait(timeout: .now() + limit) == .timedOut {
            process.terminate()
            _ = done.wait(timeout: .now() + 10)
        }
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: collected, as: UTF8.self))
    }

    /// The pid rank `rank` wrote in its metrics header, once it has logged `stepRecords` steps.
    func waitForRankPID(rank: Int, in folder: URL, stepRecords: Int, limit: TimeInterval = 60) throws -> pid_t {
        let url = folder.appendingPathComponent("metrics-rank\(rank).jsonl")
        let deadline = Date().addingTimeInterval(limit)
        while Date() < deadline && process.isRunning {
            if let text = try? String(contentsOf: url, encoding: .utf8) {
                let lines = text.split(separator: "\n")
                if lines.filter({ $0.contains("\"event\":\"step\"") }).count >= stepRecords,
                   let header = lines.first, let match = header.firstMatch(of: /"pid":"(\d+)"/) {
                    return pid_t(match.1)!
                }
            }
            usleep(20_000)
        }
        process.terminate()
        let (_, output) = finish(limit: 10)
        throw XCTSkip("rank \(rank) never logged \(stepRecords) steps:\n\(output)")
    }

    static func cohort() throws -> URL { try BuiltExecutables.url(of: "cohort") }

    /// A port that was free a moment ago (and the next one, for the ranks).
    static func freePort() -> Int { Int.random(in: 20_000..<40_000) & ~1 }
}
