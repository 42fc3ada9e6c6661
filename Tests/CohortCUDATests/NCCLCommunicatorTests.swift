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
}
