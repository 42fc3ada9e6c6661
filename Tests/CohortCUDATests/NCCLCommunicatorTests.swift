import CohortCUDA
import CohortDistributed
import CohortTensor
import XCTest

/// What of the NCCL communicator runs without a GPU: the loader's message,
/// argument checks and the enum values NCCL expects.
final class NCCLCommunicatorTests: XCTestCase {
    /// Without libnccl.so.2 the error names the library and how to install it.
    func testMissingLibraryNamesItAndTheFix() throws {
        let error: NCCLError
        do {
            let id = try NCCLCommunicator.makeUniqueId()
            XCTAssertEqual(id.count, NCCLCommunicator.uniqueIdByteCount)
            throw XCTSkip("libnccl.so.2 is installed here: made a \(id.count)-byte unique id")
        } catch let caught as NCCLError {
            error = caught
        }
        guard case .unavailable(let reason) = error else { return XCTFail("expected .unavailable, got \(error)") }
        XCTAssertTrue(reason.contains("libnccl.so.2"), reason)
        let text = error.description
        for part in ["NCCL unavailable", "libnccl.so.2", "libnccl2", "LD_LIBRARY_PATH"] {
            XCTAssertTrue(text.contains(part), "expected '\(part)' in: \(text)")
        }
    }

    func testArgumentsAreCheckedBeforeNCCLIsLoaded() throws {
        let id = [UInt8](repeating: 7, count: 128)
        XCTAssertNoThrow(try NCCLCommunicator.validate(rank: 1, worldSize: 2, uniqueId: id))
        func rejects(_ rank: Int, _ worldSize: Int, _ id: [UInt8], _ text: String, line: UInt = #line) {
            do {
                try NCCLCommunicator.validate(rank: rank, worldSize: worldSize, uniqueId: id)
                XCTFail("accepted rank \(rank) of \(worldSize)", line: line)
            } catch {
                guard case .invalidArgument = error else { return XCTFail("\(error)", line: line) }
                XCTAssertTrue(error.description.contains(text), "\(error)", line: line)
            }
        }
        rejects(2, 2, id, "rank 2 is not in 0..<2")
        rejects(-1, 2, id, "rank -1")
        rejects(0, 0, id, "world size 0")
        rejects(0, 2, Array(id.prefix(64)), "64 bytes")
        rejects(0, 2, [UInt8](repeating: 0, count: 128), "all zeros")
    }

    func testDataTypesAndReductionsAreNCCLs() throws {
        XCTAssertEqual(try NCCLCommunicator.dataType(.float32), 7)
        XCTAssertEqual(try NCCLCommunicator.dataType(.bfloat16), 9)
        XCTAssertThrowsError(try NCCLCommunicator.dataType(.int32))
        XCTAssertEqual(NCCLCommunicator.reduction(.sum), 0)
        XCTAssertEqual(NCCLCommunicator.reduction(.average), 4)
        XCTAssertEqual(NCCLCommunicator.versionText(22809), "2.28.9")
        XCTAssertEqual(NCCLCommunicator.versionText(2708), "2.7.8")
        XCTAssertEqual(NCCLError.call("ncclAllReduce", code: 3, message: "internal error", detail: "peer gone").description,
                       "NCCL ncclAllReduce failed with 3 (internal error): peer gone")
    }

    /// The host communicators keep the default: wait for the device first.
    func testOnlyDeviceStreamCommunicatorsSkipTheHostWait() {
        XCTAssertFalse(SingleProcessCommunicator().runsOnDeviceStream)
    }

    /// On a GPU with NCCL (skipped elsewhere): a world of one rank runs every
    /// collective on device and host tensors, float32 and bf16; each is an
    /// identity (average of one), so the results are the inputs.
    func testOneRankCollectivesOnAGPU() throws {
        let backend: CUDABackend
        do {
            backend = try CUDABackend()
        } catch let error as CUDAUnavailable {
            throw XCTSkip("\(error)")
        }
        guard let id = try? NCCLCommunicator.makeUniqueId() else {
            throw XCTSkip(NCCLCommunicator.loadFailure()?.description ?? "ncclGetUniqueId failed")
        }
        let nccl = try NCCLCommunicator(backend: backend, rank: 0, worldSize: 1, uniqueId: id)
        XCTAssertTrue(nccl.runsOnDeviceStream)
        XCTAssertGreaterThan(nccl.version, 21000, nccl.versionText)
        let values: [Float] = (0..<1000).map { Float($0 % 37) - 18 }
        let host = Tensor(values, shape: [1000])
        let device = try backend.makeTensor(copying: host)
        try nccl.allReduce(device, op: .average)
        try nccl.allReduce(device.view(elementOffset: 10, shape: [100]), op: .sum)
        try nccl.broadcast(device, root: 0)
        XCTAssertEqual(backend.download(device).toArray(), values)
        let gathered = try backend.makeTensor([1000], dtype: .float32)
        try nccl.allGather(device, into: gathered)
        XCTAssertEqual(backend.download(gathered).toArray(), values)
        let bf16 = try backend.makeTensor([1000], dtype: .bfloat16)
        backend.copy(device, to: bf16)
        try nccl.allReduce(bf16, op: .average)
        let back = try backend.makeTensor([1000], dtype: .float32)
        backend.copy(bf16, to: back)
        XCTAssertEqual(backend.download(back).toArray(), values)  // small integers are exact in bf16
        // Host tensors (the evaluation's sums) are staged through the device.
        let sums = Tensor([Float]([1, 2, 3]), shape: [3])
        try nccl.allReduce(sums, op: .sum)
        XCTAssertEqual(sums.toArray(), [1, 2, 3])
        try nccl.barrier()
        XCTAssertThrowsError(try nccl.broadcast(device, root: 1))
        try nccl.shutdown()
        try nccl.shutdown()  // twice is fine
        XCTAssertThrowsError(try nccl.allReduce(device, op: .sum))
    }
}
