import CohortTestSupport
import Foundation
import XCTest

/// The `cohort` executable as a user meets it: bad input gives a clear
/// message and a non-zero exit; help reads; a short synthetic run works.
final class CommandLineTests: XCTestCase {
    var executable: URL { get throws { try BuiltExecutables.url(of: "cohort") } }

    func assertRejected(_ arguments: [String], mentions text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (status, output) = try cohort(arguments)
        XCTAssertNotEqual(status, 0, "\(arguments) should fail", file: file, line: line)
        XCTAssertTrue(output.contains(text), "\(arguments): expected '\(text)' in:\n\(output)", file: file, line: line)
        XCTAssertFalse(output.contains("Fatal error"), "\(arguments) crashed:\n\(output)", file: file, line: line)
    }

    func testBadValuesAreRejectedWithAReason() throws {
        try assertRejected(["train", "--dataset", "synthetic", "--epochs", "0"], mentions: "--epochs must be a positive integer")
        try assertRejected(["train", "--dataset", "synthetic", "--batch-size", "-3"], mentions: "--batch-size")
        try assertRejected(["train", "--dataset", "synthetic", "--lr", "abc"], mentions: "--lr")
        try assertRejected(["train", "--dataset", "synthetic", "--label-smoothing", "1.5"], mentions: "--label-smoothing must be in [0, 1)")
        try assertRejected(["train", "--dataset", "synthetic", "--warmup-epochs", "9", "--epochs", "2"], mentions: "--warmup-epochs")
        try assertRejected(["train", "--dataset", "synthetic", "--model", "vgg"], mentions: "resnet18")
        try assertRejected(["train", "--dataset", "synthetic", "--device", "tpu"], mentions: "--device")
        try assertRejected(["train", "--dataset", "synthetic", "--momentum", "0", "--nesterov"], mentions: "--nesterov")
        try assertRejected(["train", "--dataset", "synthetic", "--resume", "/nonexistent/checkpoint.safetensors"],
                           mentions: "no checkpoint at /nonexistent")
        try assertRejected(["train"], mentions: "--dataset synthetic")
        try assertRejected(["train", "--data", "/nonexistent-cifar"], mentions: "cifar-10-batches-bin")
        try assertRejected(["eval", "/nonexistent.safetensors", "--dataset", "synthetic"], mentions: "no checkpoint")
        try assertRejected(["bench", "--batch-sizes", "0"], mentions: "--batch-sizes")
        try assertRejected(["bench", "--profile-ops", "--profile-shapes", "0"], mentions: "--profile-shapes")
        try assertRejected(["frobnicate"], mentions: "Unexpected argument")
        try assertRejected(["bench", "allreduce"], mentions: "an all-reduce needs several ranks")
        try assertRejected(["bench", "allreduce", "--factor", "1"], mentions: "--factor")
        try assertRejected(["bench", "convs", "--device", "cpu"], mentions: "it needs an NVIDIA GPU")
        try assertRejected(["bench", "convs", "--batch", "0"], mentions: "--batch")
        try assertRejected(["bench", "convs", "--conv-path", "gemm"], mentions: "--conv-path")
        try assertRejected(["train", "--dataset", "synthetic", "--backend", "onednn", "--precision", "bf16"],
                           mentions: "float32 only")
        try assertRejected(["train", "--dataset", "synthetic", "--precision", "fp16"], mentions: "--precision")
        try assertRejected(["train", "--dataset", "synthetic", "--allreduce-dtype", "fp16"], mentions: "--allreduce-dtype")
        try assertRejected(["train", "--dataset", "synthetic", "--symmetric-windows", "maybe"], mentions: "--symmetric-windows")
        try assertRejected(["train", "--dataset", "synthetic", "--allreduce-launch", "later"], mentions: "--allreduce-launch")
        try assertRejected(["train", "--dataset", "synthetic", "--model", "smallcnn", "--epochs", "1", "--steps-per-epoch", "1",
                            "--no-progress", "--run-dir", NSTemporaryDirectory() + "cohort-wire-\(UUID().uuidString)",
                            "--wire-conversions-on-compute-stream"], mentions: "no all-reduce")
        try assertRejected(["train", "--dataset", "synthetic", "--bucket-release", "fc.weight*0"],
                           mentions: "the count after '*' must be a positive whole number")
        try assertRejected(["train", "--dataset", "synthetic", "--bucket-release", "fc.weight,"], mentions: "--bucket-release")
        try assertRejected(["launch", "--nproc-per-node", "2"], mentions: "give the command each rank runs after --")
        try assertRejected(["launch", "--nnodes", "2", "--node-rank", "2", "--", "cohort", "train"], mentions: "--node-rank must be in 0..<2")
        try assertRejected(["launch", "--nproc-per-node", "0", "--", "cohort", "train"], mentions: "--nproc-per-node")
    }

    /// `cohort info` names every backend and communication library with what
    /// it found, available or missing (with the reason), and succeeds either way.
    func testInfoNamesEveryBackendAndLibrary() throws {
        let (status, output) = try cohort(["info"])
        XCTAssertEqual(status, 0, output)
        let lines = output.split(separator: "\n")
        for name in ["reference", "onednn", "cuda", "nccl", "mpi"] {
            let line = lines.first { $0.hasPrefix(name + " ") }
            XCTAssertNotNil(line, "no \(name) line in:\n\(output)")
            XCTAssertTrue(line.map { $0.contains(" available ") || $0.contains(" missing ") } ?? false, output)
        }
        if let nccl = lines.first(where: { $0.hasPrefix("nccl ") }), nccl.contains(" available ") {
            XCTAssertTrue(nccl.contains("symmetric windows"), output)
        }
    }

    /// `cohort selftest --filter` takes the name of any check a GPU runs, the
    /// data-parallel rows included (a failure's rerun line names them), and
    /// refuses text no check has; off CUDA it says where those rows run.
    func testSelfTestFiltersKnowTheDataParallelRows() throws {
        let (status, output) = try cohort(["selftest", "--device", "cpu", "--filter", "data-parallel step"])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("the data-parallel step checks run on CUDA only"), output)
        try assertRejected(["selftest", "--device", "cpu", "--filter", "no-such-check"],
                           mentions: "no check's name or shape contains it")
    }

    /// Without a GPU (this machine, CI) `cohort bench convs` says it needs
    /// one, names what is missing, and exits non-zero without a crash.
    func testConvolutionBenchSaysItNeedsAGPU() throws {
        let (status, output) = try cohort(["bench", "convs"])
        if status == 0 { throw XCTSkip("a GPU is here: cohort bench convs ran") }
        XCTAssertTrue(output.contains("cohort bench convs needs an NVIDIA GPU"), output)
        XCTAssertFalse(output.contains("Fatal error"), output)
    }

    /// Several ranks on `--device cuda` take the NCCL path (no "not built"
    /// refusal): here, without a GPU, the CUDA backend says what is missing;
    /// on a GPU machine the hand-set rank lacks MASTER_ADDR for the id exchange.
    func testGPURanksTakeTheNCCLPath() throws {
        let process = Process()
        process.executableURL = try executable
        process.arguments = ["train", "--device", "cuda", "--dataset", "synthetic", "--run-dir",
                             FileManager.default.temporaryDirectory.appendingPathComponent("cohort-nccl-\(getpid())").path]
        var environment = ProcessInfo.processInfo.environment
        for name in ["MASTER_ADDR", "MASTER_PORT", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"] { environment[name] = nil }
        environment["RANK"] = "1"
        environment["WORLD_SIZE"] = "2"
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertNotEqual(process.terminationStatus, 0, output)
        XCTAssertFalse(output.contains("not built yet"), output)
        XCTAssertFalse(output.contains("Fatal error"), output)
        if cudaMissingHere {
            XCTAssertTrue(output.contains("CUDA backend unavailable"), output)
        }
    }

    /// No NVIDIA driver on this machine.
    var cudaMissingHere: Bool {
        !["/usr/lib/x86_64-linux-gnu/libcuda.so.1", "/usr/lib64/libcuda.so.1", "/usr/lib/libcuda.so.1"]
            .contains { FileManager.default.fileExists(atPath: $0) }
    }

    /// `bench --profile-ops` says where a step's time goes, op by op.
    func testBenchProfilesOps() throws {
        let (status, output) = try cohort(["bench", "--model", "smallcnn", "--batch-sizes", "4", "--steps", "1",
                                           "--warmup", "1", "--profile-ops", "--profile-shapes", "3"])
        XCTAssertEqual(status, 0, output)
        for text in ["profile of batch 4", "conv2dForward", "conv2dBackwardWeight", "batchNormBackward", "optimizerStep"] {
            XCTAssertTrue(output.contains(text), "missing \(text) in:\n\(output)")
        }
        let shapes = output.components(separatedBy: "costliest shapes:\n").last ?? ""
        XCTAssertEqual(shapes.split(separator: "\n").filter { $0.contains(" x") && $0.contains(" ms ") }.count, 3, output)
    }

    func testHelpListsTheCommands() throws {
        let (status, output) = try cohort(["--help"])
        XCTAssertEqual(status, 0)
        for command in ["train", "launch", "eval", "bench", "info"] { XCTAssertTrue(output.contains(command), output) }
        XCTAssertFalse(output.contains("_rank"), "the rank shim is hidden:\n\(output)")
        let (launchStatus, launchHelp) = try cohort(["launch", "--help"])
        XCTAssertEqual(launchStatus, 0)
        for flag in ["--nproc-per-node", "--nnodes", "--node-rank", "--master-addr", "--master-port", "--max-restarts"] {
            XCTAssertTrue(launchHelp.contains(flag), launchHelp)
        }
        let (trainStatus, trainHelp) = try cohort(["train", "--help"])
        XCTAssertEqual(trainStatus, 0)
        for flag in ["--batch-size", "--lr-scaling", "--warmup-epochs", "--resume", "--label-smoothing"] {
            XCTAssertTrue(trainHelp.contains(flag), trainHelp)
        }
    }

    /// A tiny synthetic run end to end: header labelled synthetic, metrics
    /// and checkpoint written, and eval reads the checkpoint back.
    func testSyntheticRunWritesMetricsAndACheckpointThatEvalReads() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-cli-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let (status, output) = try cohort(["train", "--dataset", "synthetic", "--model", "smallcnn", "--epochs", "1",
                                           "--steps-per-epoch", "3", "--batch-size", "16", "--eval-limit", "64",
                                           "--run-dir", folder.path])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("SYNTHETIC"), output)
        let checkpoint = folder.appendingPathComponent("checkpoint.safetensors")
        XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoint.path))
        let metrics = try String(contentsOf: folder.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        XCTAssertEqual(metrics.split(separator: "\n").count, 4, metrics) // run, step, epoch, eval

        let (evalStatus, evalOutput) = try cohort(["eval", checkpoint.path, "--dataset", "synthetic", "--limit", "64"])
        XCTAssertEqual(evalStatus, 0, evalOutput)
        XCTAssertTrue(evalOutput.contains("after 1 epochs (3 steps)"), evalOutput)
    }
}
