import CohortExperiments
import CohortTestSupport
import Foundation
import XCTest

/// `cohort experiments --quick` end to end: every report file written, the
/// results file reads back, and the report shows what was measured.
final class ExperimentsCommandTests: XCTestCase {
    func testQuickRunWritesEveryReportFile() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-experiments-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let (status, output) = try cohort(["experiments", "--quick", "--out", folder.path])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("[Q1 1/2]") && output.contains("[Q1 2/2]"), "progress lines:\n\(output)")

        let results = try ResultsFile.load(from: folder.appendingPathComponent(ReportWriter.resultsFileName))
        // Every file the writer produces for these results is on disk.
        for file in try ReportWriter(results: results).files() {
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent(file.name).path),
                          "missing \(file.name)")
        }
        for name in ["results.json", "q1.csv", "report.md", "report.html", "trace.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent(name).path), "missing \(name)")
        }

        XCTAssertEqual(results.metadata.profile, .cpuScaledDown)
        XCTAssertTrue(results.metadata.syntheticData)
        XCTAssertTrue(results.metadata.command.contains("experiments --quick"), results.metadata.command)
        XCTAssertFalse(results.metadata.machine.isEmpty)
        XCTAssertFalse(results.metadata.commit.isEmpty)
        XCTAssertEqual(results.q1.records.map(\.batchSize), [8, 16])
        for record in results.q1.records {
            XCTAssertEqual(record.framework, .cohort)
            XCTAssertEqual(record.device, "cpu")
            XCTAssertEqual(record.precision, .fp32)
            XCTAssertGreaterThan(record.epochSeconds, 0)
            XCTAssertGreaterThan(record.imagesPerSecond, 0)
        }
        for reason in [results.q4.notRunReason, results.timeToAccuracy.notRunReason, results.allReduceSweep.notRunReason] {
            XCTAssertNotNil(reason)
        }

        // Q2/Q3: 1 and 2 MPI ranks of `cohort train`, weak scaling at a fixed per-rank batch.
        if (try? BuiltExecutables.mpirun()) != nil {
            XCTAssertTrue(output.contains("[Q2 2/2] 2 ranks"), output)
            XCTAssertEqual(results.q2.records.map(\.gpus), [1, 2])
            for record in results.q2.records {
                XCTAssertEqual(record.strategy, .ddp)
                XCTAssertEqual(record.perDeviceBatch, 8)
                XCTAssertGreaterThan(record.epochSeconds, 0)
                XCTAssertGreaterThan(record.speedup ?? 0, 0, "speedup derived for \(record.gpus) ranks")
                XCTAssertGreaterThan(record.efficiency ?? 0, 0)
            }
            XCTAssertEqual(results.q2.records.first?.speedup ?? 0, 1, accuracy: 1e-9)
            XCTAssertEqual(results.q3.records.count, 1)
            if let q3 = results.q3.records.first {
                XCTAssertEqual(q3.gpus, 2)
                XCTAssertGreaterThan(q3.stepSeconds, 0)
                XCTAssertGreaterThan(q3.bytesPerStep, 0, "gradients were all-reduced")
                XCTAssertGreaterThan(q3.communicationBusySeconds, 0)
                XCTAssertGreaterThan(q3.algbwGBps, 0)
                XCTAssertEqual(q3.busbwGBps, q3.algbwGBps, accuracy: 1e-12, "2 ranks: busbw = algbw × 2·1/2")
            }
            for file in ["q2-1-rank/metrics.jsonl", "q2-2-ranks/metrics-rank0.jsonl", "q2-2-ranks/metrics-rank1.jsonl"] {
                XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent(file).path), "missing \(file)")
            }
        } else {
            XCTAssertTrue(results.q2.notRunReason?.contains("mpirun") ?? false)
        }

        let markdown = try String(contentsOf: folder.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(markdown.contains("Q1"), markdown)
        if !results.q2.records.isEmpty { XCTAssertTrue(markdown.contains("DDP 2 ranks × 8"), markdown) }
        for record in results.q1.records {
            XCTAssertTrue(markdown.contains(Format.significant(record.epochSeconds))
                          && markdown.contains(Format.count(record.imagesPerSecond)),
                          "batch \(record.batchSize)'s figures in report.md:\n\(markdown)")
        }
        XCTAssertTrue(output.contains("Q1"), "the Q1 table is printed:\n\(output)")
    }

    /// Without a GPU the gpu profile stops with the reason (nvidia-smi lists none) and what to run instead.
    func testGPUProfileWithoutGPUsSaysWhy() throws {
        if let smi = ["/usr/bin/nvidia-smi", "/usr/local/bin/nvidia-smi"].first(where: FileManager.default.fileExists) {
            throw XCTSkip("\(smi) is here: this machine may have GPUs")
        }
        let (status, output) = try cohort(["experiments", "--profile", "gpu"])
        XCTAssertNotEqual(status, 0, output)
        XCTAssertTrue(output.contains("gpu profile needs CUDA GPUs") && output.contains("--profile cpu"), output)
    }

    /// A folder that passes for CIFAR-10 (an empty test batch): enough for a dry run's Q4 commands.
    func emptyCIFARFolder() throws -> URL {
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-dry-cifar-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: data.appendingPathComponent("cifar-10-batches-bin"),
                                                withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: data.appendingPathComponent("cifar-10-batches-bin/test_batch.bin").path,
                                       contents: Data())
        return data
    }

    /// --dry-run prints the GPU profile's commands for the counts asked, without running any.
    func testGPUDryRunPrintsTheCommandsForOneTwoAndFourGPUs() throws {
        let data = try emptyCIFARFolder()
        defer { try? FileManager.default.removeItem(at: data) }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-dry-\(UUID().uuidString)")
        let (status, output) = try cohort(["experiments", "--profile", "gpu", "--dry-run", "--gpus", "1,2,4",
                                           "--data", data.path, "--pytorch", "python3", "--out", out.path])
        XCTAssertEqual(status, 0, output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "a dry run writes nothing")
        for expected in ["cohort bench --device cuda --precision bf16 --batch-sizes 32 128 512 2048",
                         "launch --nproc-per-node 4 --master-port", "train --strategy dp --replicas 2",
                         "bench allreduce --device cuda --min-bytes 1024 --max-bytes 1073741824",
                         "python3 -m torch.distributed.run --standalone --nproc-per-node 4 benchmarks/pytorch_ddp.py",
                         "--batch-size 2048 --lr 6.4", "--target-accuracy 0.9", "[1/82] Q1 Cohort bf16", "(graphs, communication off)", "benchmarks/pytorch_allreduce.py --min-bytes 44695848",
                         "benchmarks/pytorch_train_cifar.py --data"] {
            XCTAssertTrue(output.contains(expected), "missing \(expected) in:\n\(output)")
        }
        let (bad, message) = try cohort(["experiments", "--profile", "gpu", "--dry-run", "--only", "q9"])
        XCTAssertNotEqual(bad, 0)
        XCTAssertTrue(message.contains("unknown part q9"), message)
    }

    /// --q4-reference-seeds: the references' repeats in the dry run's commands (last, with their seeds), and N ≥ 1.
    func testQ4ReferenceSeedsReachTheCommandsAndMustBePositive() throws {
        let data = try emptyCIFARFolder()
        defer { try? FileManager.default.removeItem(at: data) }
        let arguments = ["experiments", "--profile", "gpu", "--dry-run", "--gpus", "1", "--only", "q4",
                         "--data", data.path, "--pytorch", "python3", "--out", "/tmp/cohort-dry-unused"]
        let (status, output) = try cohort(arguments + ["--q4-reference-seeds", "2"])
        XCTAssertEqual(status, 0, output)
        let lines = output.split(separator: "\n").map(String.init)
        // reference, (a)-(d), (e), PyTorch's reference, then seed 1 of each.
        XCTAssertTrue(lines.contains { $0.hasPrefix("[8/9] Q4 reference seed 1, 1 GPU × 128") }, output)
        XCTAssertTrue(lines.contains { $0.hasPrefix("[9/9] Q4 PyTorch reference seed 1, 1 GPU × 128") }, output)
        XCTAssertTrue(output.contains("--seed 1 --log-every 50 --no-progress --run-dir /tmp/cohort-dry-unused/runs/q4-reference-seed1"), output)
        XCTAssertTrue(output.contains("--seed 1 --json /tmp/cohort-dry-unused/runs/q4-pytorch-reference-seed1/pytorch.json"), output)
        XCTAssertTrue(output.contains("--seed 0 --json /tmp/cohort-dry-unused/runs/q4-pytorch-reference/pytorch.json"), output)

        let (one, single) = try cohort(arguments + ["--q4-reference-seeds", "1"])
        XCTAssertEqual(one, 0, single)
        XCTAssertFalse(single.contains("seed1"), single)

        let (bad, message) = try cohort(arguments + ["--q4-reference-seeds", "0"])
        XCTAssertNotEqual(bad, 0)
        XCTAssertTrue(message.contains("--q4-reference-seeds must be at least 1"), message)
    }

    /// The list options take positive integers and say so, with an example that fits the option.
    func testListOptionsRejectWhatIsNotAPositiveInteger() throws {
        let (gpus, gpusMessage) = try cohort(["experiments", "--profile", "gpu", "--dry-run", "--gpus", "2,x"])
        XCTAssertNotEqual(gpus, 0)
        XCTAssertTrue(gpusMessage.contains("--gpus takes positive integers separated by commas, e.g. 1,2,4, not 2,x"), gpusMessage)
        let (batches, batchesMessage) = try cohort(["experiments", "--profile", "gpu", "--dry-run", "--batches", "128,0"])
        XCTAssertNotEqual(batches, 0)
        XCTAssertTrue(batchesMessage.contains("--batches takes positive integers separated by commas, e.g. 32,128, not 128,0"),
                      batchesMessage)
    }

    /// Merging several results files needs a folder of its own for the merged one.
    func testMergingResultsFilesNeedsAnOutputFolder() throws {
        let (status, output) = try cohort(["report", "a/results.json", "b/results.json"])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(output.contains("needs --out"), output)
    }
}
