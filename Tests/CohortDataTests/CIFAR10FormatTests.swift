import CohortData
import Foundation
import XCTest

final class CIFAR10FormatTests: XCTestCase {
    /// 5 train files of 3 records and a test file of 4, from a seeded synthetic set.
    private func writeFixture(in directory: URL) throws -> (train: ImageDataset, test: ImageDataset, folder: URL) {
        let train = ImageDataset.synthetic(count: 15, seed: 1)
        let test = ImageDataset.synthetic(count: 4, seed: 2)
        let folder = try CIFAR10Writer.write(train: train, test: test, to: directory)
        return (train, test, folder)
    }

    func testRoundTripIsExact() throws {
        let directory = try makeTemporaryDirectory(self)
        let (train, test, folder) = try writeFixture(in: directory)
        XCTAssertEqual(folder.lastPathComponent, "cifar-10-batches-bin")
        let size = try FileManager.default.attributesOfItem(atPath: folder.appendingPathComponent("data_batch_1.bin").path)[.size] as? NSNumber
        XCTAssertEqual(size?.intValue, 3 * 3073)

        // Either the parent or the batches folder itself.
        for path in [directory.path, folder.path] {
            let readTrain = try CIFAR10Reader.load(.train, from: path, recordsPerFile: 3)
            XCTAssertEqual(readTrain.pixels, train.pixels)
            XCTAssertEqual(readTrain.labels, train.labels)
            XCTAssertEqual(readTrain.name, "cifar10-train")
            XCTAssertFalse(readTrain.isSynthetic)
            let readTest = try CIFAR10Reader.load(.test, from: path, recordsPerFile: 4)
            XCTAssertEqual(readTest.pixels, test.pixels)
            XCTAssertEqual(readTest.labels, test.labels)
        }
    }

    /// The file is CHW planes; memory is HWC.
    func testRecordLayoutIsLabelThenRGBPlanes() throws {
        let directory = try makeTemporaryDirectory(self)
        var pixels = [UInt8](repeating: 0, count: 3072)
        for pixel in 0..<1024 {
            pixels[3 * pixel] = UInt8(pixel % 251)
            pixels[3 * pixel + 1] = 1
            pixels[3 * pixel + 2] = 2
        }
        let dataset = ImageDataset(name: "one", pixels: pixels, labels: [7])
        let file = directory.appendingPathComponent("one.bin")
        try CIFAR10Writer.writeBatch(dataset, range: 0..<1, to: file)
        let bytes = [UInt8](try Data(contentsOf: file))
        XCTAssertEqual(bytes.count, 3073)
        XCTAssertEqual(bytes[0], 7)
        XCTAssertEqual(Array(bytes[1...1024]), (0..<1024).map { UInt8($0 % 251) })
        XCTAssertEqual(Set(bytes[1025...2048]), [1])
        XCTAssertEqual(Set(bytes[2049...3072]), [2])
    }

    func testMissingDirectorySaysHowToFix() {
        let message = errorDescription { _ = try CIFAR10Reader.load(.train, from: "/nonexistent/cifar") }
        XCTAssertTrue(message.contains("/nonexistent/cifar"), message)
        XCTAssertTrue(message.contains("--data"), message)
        XCTAssertTrue(message.contains("--download"), message)
        XCTAssertTrue(message.contains("--dataset synthetic"), message)
    }

    func testDirectoryWithoutBatches() throws {
        let directory = try makeTemporaryDirectory(self)
        XCTAssertThrowsError(try CIFAR10Reader.load(.test, from: directory.path)) { error in
            XCTAssertEqual(error as? CIFAR10Error, .batchesNotFound(path: directory.path))
            XCTAssertTrue(String(describing: error).contains("cifar-10-batches-bin"))
        }
    }

    func testMissingFileIsNamed() throws {
        let directory = try makeTemporaryDirectory(self)
        let (_, _, folder) = try writeFixture(in: directory)
        let missing = folder.appendingPathComponent("data_batch_4.bin")
        try FileManager.default.removeItem(at: missing)
        XCTAssertThrowsError(try CIFAR10Reader.load(.train, from: directory.path, recordsPerFile: 3)) { error in
            XCTAssertEqual(error as? CIFAR10Error, .fileMissing(file: missing.path))
        }
        XCTAssertNoThrow(try CIFAR10Reader.load(.test, from: directory.path, recordsPerFile: 4))
    }

    func testTruncatedFile() throws {
        let directory = try makeTemporaryDirectory(self)
        let (_, _, folder) = try writeFixture(in: directory)
        let file = folder.appendingPathComponent("test_batch.bin")
        let data = try Data(contentsOf: file)
        try data.prefix(data.count - 100).write(to: file)
        XCTAssertThrowsError(try CIFAR10Reader.load(.test, from: directory.path, recordsPerFile: 4)) { error in
            XCTAssertEqual(error as? CIFAR10Error, .sizeNotMultipleOfRecord(file: file.path, byteCount: 4 * 3073 - 100))
            let message = String(describing: error)
            XCTAssertTrue(message.contains("test_batch.bin") && message.contains("3073"), message)
        }
    }

    func testWrongRecordCount() throws {
        let directory = try makeTemporaryDirectory(self)
        let (_, _, folder) = try writeFixture(in: directory)
        // The real dataset wants 10,000 records per file.
        XCTAssertThrowsError(try CIFAR10Reader.load(.test, from: directory.path)) { error in
            XCTAssertEqual(error as? CIFAR10Error,
                           .wrongRecordCount(file: folder.appendingPathComponent("test_batch.bin").path,
                                             records: 4, expected: 10_000))
        }
    }

    func testLabelOutOfRange() throws {
        let directory = try makeTemporaryDirectory(self)
        let (_, _, folder) = try writeFixture(in: directory)
        let file = folder.appendingPathComponent("data_batch_2.bin")
        var bytes = [UInt8](try Data(contentsOf: file))
        bytes[2 * 3073] = 10
        try Data(bytes).write(to: file)
        XCTAssertThrowsError(try CIFAR10Reader.load(.train, from: directory.path, recordsPerFile: 3)) { error in
            XCTAssertEqual(error as? CIFAR10Error, .labelOutOfRange(file: file.path, record: 2, label: 10))
            XCTAssertTrue(String(describing: error).contains("record 2 has label 10"))
        }
    }
}
