import CohortKernels
import CohortOneDNN
import CohortTensor
import XCTest

/// Loading, the description, and the memory ops.
final class BackendTests: OneDNNComparisonTestCase {
    func testDescribesItself() {
        XCTAssertEqual(onednn.name, "onednn")
        XCTAssertEqual(onednn.device, .cpu)
        XCTAssertTrue(onednn.details.hasPrefix("oneDNN 2."), onednn.details)
        XCTAssertTrue(onednn.details.contains("ISA"), onednn.details)
    }

    func testMemoryOps() throws {
        let host = randomTensor([3, 5])
        let device = try onednn.makeTensor(copying: host)
        assertClose(onednn.download(device), host, tolerance: 0, "upload then download")

        let bf16 = try onednn.makeTensor([3, 5], dtype: .bfloat16), back = try onednn.makeTensor([3, 5])
        onednn.copy(device, to: bf16)
        onednn.copy(bf16, to: back)
        let expectedBF16 = try reference.makeTensor([3, 5], dtype: .bfloat16), expectedBack = try reference.makeTensor([3, 5])
        reference.copy(host, to: expectedBF16)
        reference.copy(expectedBF16, to: expectedBack)
        assertClose(onednn.download(back), expectedBack, tolerance: 0, "float32 -> bfloat16 -> float32")

        onednn.fill(device, value: 2.5)
        XCTAssertEqual(onednn.download(device).toArray(), Array(repeating: 2.5, count: 15))
        onednn.fill(bf16, value: -1)
        XCTAssertEqual(onednn.download(bf16).toArray(), Array(repeating: -1, count: 15))
    }
}

/// Runs without oneDNN too: the message a machine without it shows.
final class OneDNNErrorTests: XCTestCase {
    func testMissingLibraryErrorSaysHowToInstall() {
        let message = OneDNNError.libraryMissing(reason: "libdnnl.so.2: cannot open shared object file").description
        XCTAssertTrue(message.contains("libdnnl.so.2"), message)
        XCTAssertTrue(message.contains("apt-get install libdnnl2"), message)
    }
}
