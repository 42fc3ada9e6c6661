import CohortCheckpoint
import CohortTensor
import Foundation
import XCTest

/// Files exchanged with the reference implementation (`pip install safetensors numpy`).
/// Skipped where python3 or those packages are missing. numpy has no bfloat16,
/// so BF16 is covered by the golden bytes in `SafeTensorsTests` instead.
final class SafeTensorsPythonTests: XCTestCase {
    /// Runs `python3 -c script arguments...`, returning stdout; skips the test if the packages are missing.
    private func python(_ script: String, _ arguments: [String] = []) throws -> String {
        let probe = try run(["-c", "import safetensors, numpy"])
        guard probe.status == 0 else { throw XCTSkip("python3 with safetensors and numpy is not available") }
        let result = try run(["-c", script] + arguments)
        XCTAssertEqual(result.status, 0, "python failed:\n\(result.output)")
        return result.output
    }

    private func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do { try process.run() } catch { throw XCTSkip("python3 cannot be started: \(error)") }
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    /// Python loads what Cohort wrote, checks the values, and saves the same
    /// tensors again: its file must be byte-identical to Cohort's.
    func testPythonReadsAndRewritesTheSameBytes() throws {
        let directory = try temporaryDirectory()
        let cohortURL = directory.appendingPathComponent("cohort.safetensors")
        let pythonURL = directory.appendingPathComponent("python.safetensors")
        let int64 = Tensor.zeros([3], dtype: .int64)
        let int64s = int64.rawPointer.assumingMemoryBound(to: Int64.self)
        (int64s[0], int64s[1], int64s[2]) = (-1, 1 << 40, 7)
        let uint8 = Tensor.zeros([2, 2], dtype: .uint8)
        for index in 0..<4 { uint8.rawPointer.storeBytes(of: UInt8(index * 80), toByteOffset: index, as: UInt8.self) }
        try SafeTensorsFile(tensors: [
            NamedTensor("fc.weight", Tensor([0.5, -1.25, 3, .infinity, -0.0, 1e-30], shape: [2, 3])),
            NamedTensor("bn.num_batches_tracked", int64),
            NamedTensor("labels", Tensor.int32([3, -9], shape: [2])),
            NamedTensor("scalar", Tensor.int32([42], shape: [])),
            NamedTensor("image", uint8),
            NamedTensor("empty", Tensor.zeros([0, 5])),
        ], metadata: ["format": "pt"]).write(to: cohortURL)

        let output = try python("""
            import sys, numpy as np
            from safetensors import safe_open
            from safetensors.numpy import load_file, save_file
            t = load_file(sys.argv[1])
            with safe_open(sys.argv[1], framework="np") as f:
                meta = f.metadata()
            assert meta == {"format": "pt"}, meta
            assert t["fc.weight"].dtype == np.float32 and t["fc.weight"].shape == (2, 3)
            assert t["fc.weight"].tolist()[0] == [0.5, -1.25, 3.0], t["fc.weight"]
            assert t["bn.num_batches_tracked"].tolist() == [-1, 1 << 40, 7]
            assert t["labels"].dtype == np.int32 and t["labels"].tolist() == [3, -9]
            assert t["scalar"].shape == () and int(t["scalar"]) == 42
            assert t["image"].dtype == np.uint8 and t["image"].tolist() == [[0, 80], [160, 240]]
            assert t["empty"].shape == (0, 5)
            save_file(t, sys.argv[2], metadata=meta)
            print("ok")
            """, [cohortURL.path, pythonURL.path])
        XCTAssertEqual(output.trimmingCharacters(in: .whitespacesAndNewlines), "ok")
        XCTAssertEqual(try Data(contentsOf: pythonURL), try Data(contentsOf: cohortURL))
    }

    /// Cohort reads a file the reference writer made.
    func testCohortReadsPythonFiles() throws {
        let url = try temporaryDirectory().appendingPathComponent("python.safetensors")
        _ = try python("""
            import sys, numpy as np
            from safetensors.numpy import save_file
            save_file({
                "conv1.weight": (np.arange(24, dtype=np.float32) * 0.5 - 3).reshape(2, 3, 2, 2),
                "steps": np.array([2**62, -5], dtype=np.int64),
                "label": np.array(-7, dtype=np.int32),
                "bytes": np.arange(250, 256, dtype=np.uint8),
                "none": np.zeros((3, 0), dtype=np.float32),
            }, sys.argv[1], metadata={"epoch": "12", "arch": "resnet18"})
            """, [url.path])
        let file = try SafeTensorsFile(contentsOf: url)
        XCTAssertEqual(file.metadata, ["epoch": "12", "arch": "resnet18"])
        XCTAssertEqual(Set(file.names), ["conv1.weight", "steps", "label", "bytes", "none"])
        let conv = try XCTUnwrap(file["conv1.weight"])
        XCTAssertEqual(conv.shape, [2, 3, 2, 2])
        XCTAssertEqual(conv.toArray(), (0..<24).map { Float($0) * 0.5 - 3 })
        let steps = try XCTUnwrap(file["steps"])
        XCTAssertEqual(steps.dtype, .int64)
        let int64s = steps.rawPointer.assumingMemoryBound(to: Int64.self)
        XCTAssertEqual([int64s[0], int64s[1]], [1 << 62, -5])
        XCTAssertEqual(file["label"]?.shape, [])
        XCTAssertEqual(file["label"]?.int32s.first, -7)
        XCTAssertEqual(file["bytes"]?.toArray(), [250, 251, 252, 253, 254, 255])
        XCTAssertEqual(file["none"]?.shape, [3, 0])
    }
}
