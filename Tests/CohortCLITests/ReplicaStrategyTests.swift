import CohortTestSupport
import Foundation
import XCTest

/// `cohort train --strategy dp` as a user meets it: the header states the
/// strategy, replicas, global batch, learning-rate scaling and sharding;
/// every replica writes its metrics; a failed replica is named; bad
/// combinations are refused with a reason.
final class ReplicaStrategyTests: XCTestCase {
    let quickRun = ["train", "--dataset", "synthetic", "--model", "smallcnn", "--epochs", "1", "--steps-per-epoch", "2",
                    "--batch-size", "4", "--eval-limit", "8", "--log-every", "1", "--no-progress"]

    func testTwoCPUReplicasStateTheirSetupAndEachWritesItsMetrics() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-dp-cli-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let (status, output) = try cohort(quickRun + ["--strategy", "dp", "--device", "cpu", "--replicas", "2",
                                                      "--lr-scaling", "linear", "--run-dir", folder.path])
        XCTAssertEqual(status, 0, output)
        for text in ["strategy dp: 2 replicas as threads of one process, all on the CPU",
                     "global batch 8 = 2 replicas x 4",
                     "split into 2 disjoint shards of 25000 (replica r takes positions r, r+2, ...)",
                     "lr 0.00625 (linear scaling of 0.1 from batch 128 to the global batch 8)",
                     "batch norm: per-replica batch statistics"] {
            XCTAssertTrue(output.contains(text), "missing '\(text)' in:\n\(output)")
        }
        XCTAssertEqual(output.components(separatedBy: "cohort train:").count, 2, "only replica 0 prints:\n\(output)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent("checkpoint.safetensors").path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("metrics.jsonl").path))
        for rank in 0..<2 {
            let records = try String(contentsOf: folder.appendingPathComponent("metrics-rank\(rank).jsonl"), encoding: .utf8)
                .split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
            let run = records.first { $0["event"] as? String == "run" }
            XCTAssertEqual(run?["strategy"] as? String, "dp")
            XCTAssertEqual(run?["world_size"] as? String, "2")
            XCTAssertEqual(run?["rank"] as? String, String(rank))
            XCTAssertEqual(run?["global_batch_size"] as? String, "8")
            XCTAssertEqual(records.filter { $0["event"] as? String == "step" }.count, 2, "replica \(rank)")
            XCTAssertNotNil(records.last { $0["event"] as? String == "step" }?["communication_seconds"] as? Double)
            XCTAssertEqual(records.filter { $0["event"] as? String == "eval" }.count, 1, "replica \(rank)")
        }
    }

    /// --no-communication: the replicas train on their own (the step with
    /// communication off, for timing): no all-reduce is recorded, and
    /// the header says it is not data-parallel training.
    func testNoCommunicationTrainsEachReplicaOnItsOwn() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-dp-nocomm-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let (status, output) = try cohort(quickRun + ["--strategy", "dp", "--device", "cpu", "--replicas", "2",
                                                      "--no-communication", "--run-dir", folder.path])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("gradients NOT averaged (--no-communication)"), output)
        for rank in 0..<2 {
            let records = try String(contentsOf: folder.appendingPathComponent("metrics-rank\(rank).jsonl"), encoding: .utf8)
                .split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
            XCTAssertEqual(records.first { $0["event"] as? String == "run" }?["communication"] as? String, "off")
            let steps = records.filter { $0["event"] as? String == "step" }
            XCTAssertEqual(steps.count, 2)
            XCTAssertTrue(steps.allSatisfy { $0["communication_seconds"] == nil }, "replica \(rank): no all-reduce")
        }
    }

    /// A replica that throws ends the run with its name and error, promptly:
    /// the learning rate makes the loss infinite at step 2 on every replica.
    func testAFailingReplicaEndsTheRunAndIsNamed() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-dp-fail-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let started = Date()
        let (status, output) = try cohort(quickRun + ["--strategy", "dp", "--device", "cpu", "--replicas", "2",
                                                      "--lr", "1e30", "--run-dir", folder.path])
        XCTAssertNotEqual(status, 0, output)
        XCTAssertNotNil(output.range(of: #"replica [01] of 2 failed: the loss is not finite"#, options: .regularExpression), output)
        XCTAssertFalse(output.contains("Fatal error"), output)
        XCTAssertLessThan(Date().timeIntervalSince(started), 25, "the run waited for a time-out")
    }

    func testBadCombinationsAreRejectedWithAReason() throws {
        try assertRejected(quickRun + ["--strategy", "dp", "--device", "cpu"], mentions: "needs --replicas N")
        try assertRejected(quickRun + ["--replicas", "2"], mentions: "--replicas is for --strategy dp")
        try assertRejected(quickRun + ["--strategy", "dp", "--replicas", "0"], mentions: "--replicas must be a positive integer")
        try assertRejected(quickRun + ["--strategy", "ring"], mentions: "--strategy")
        // More replicas than GPUs: here the driver is missing, on a GPU machine there are too few.
        try assertRejected(quickRun + ["--strategy", "dp", "--device", "cuda", "--replicas", "64"],
                           mentions: cudaMissingHere ? "CUDA backend unavailable" : "needs one GPU per replica")
        // dp inside a multi-rank job (as under cohort launch): each process would run every replica.
        try assertRejected(quickRun + ["--strategy", "dp", "--device", "cpu", "--replicas", "2"],
                           environment: ["RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"],
                           mentions: "runs every replica inside this one process, but this process is rank 1 of 2")
    }

    // MARK: Helpers


    func assertRejected(_ arguments: [String], environment: [String: String] = [:], mentions text: String,
                        file: StaticString = #filePath, line: UInt = #line) throws {
        let (status, output) = try cohort(arguments, environment: environment)
        XCTAssertNotEqual(status, 0, "\(arguments) should fail", file: file, line: line)
        XCTAssertTrue(output.contains(text), "\(arguments): expected '\(text)' in:\n\(output)", file: file, line: line)
        XCTAssertFalse(output.contains("Fatal error"), "\(arguments) crashed:\n\(output)", file: file, line: line)
    }

    /// No NVIDIA driver on this machine.
    var cudaMissingHere: Bool {
        !["/usr/lib/x86_64-linux-gnu/libcuda.so.1", "/usr/lib64/libcuda.so.1", "/usr/lib/libcuda.so.1"]
            .contains { FileManager.default.fileExists(atPath: $0) }
    }
}
