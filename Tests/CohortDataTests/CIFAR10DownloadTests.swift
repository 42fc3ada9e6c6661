import CohortData
import Foundation
import XCTest

/// No test touches the network: the official download is exercised by hand.
final class CIFAR10DownloadTests: XCTestCase {
    /// A refused connection (nothing listens on port 9) fails at once, with advice.
    func testOfflineFailsFastWithAdvice() throws {
        let directory = try makeTemporaryDirectory(self)
        let download = CIFAR10Download(url: URL(string: "http://127.0.0.1:9/cifar-10-binary.tar.gz")!, connectTimeout: 5)
        let start = Date()
        let message = errorDescription { try download.fetch(into: directory.path) }
        XCTAssertLessThan(Date().timeIntervalSince(start), 10)
        XCTAssertTrue(message.contains("could not download http://127.0.0.1:9/"), message)
        XCTAssertTrue(message.contains("--data") && message.contains("--dataset synthetic"), message)
    }

    /// A tarball of fixture files, checked and extracted as the downloaded archive is.
    func testVerifyAndExtract() throws {
        let directory = try makeTemporaryDirectory(self)
        let source = directory.appendingPathComponent("source")
        try CIFAR10Writer.write(train: .synthetic(count: 10, seed: 1), test: .synthetic(count: 2, seed: 2), to: source)
        let archive = directory.appendingPathComponent("cifar-10-binary.tar.gz")
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/bin/tar")
        tar.arguments = ["-czf", archive.path, "-C", source.path, "cifar-10-batches-bin"]
        try tar.run()
        tar.waitUntilExit()
        XCTAssertEqual(tar.terminationStatus, 0)
        let md5 = try MD5.hexDigest(ofFileAt: archive)

        let wrong = CIFAR10Download(expectedMD5: CIFAR10Download.officialMD5)
        XCTAssertThrowsError(try wrong.verifyAndExtract(archive: archive, into: directory)) { error in
            XCTAssertEqual(error as? CIFAR10Error, .checksumMismatch(file: archive.path, expected: CIFAR10Download.officialMD5, actual: md5))
        }
        let target = directory.appendingPathComponent("target")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        try CIFAR10Download(expectedMD5: md5).verifyAndExtract(archive: archive, into: target)
        let test = try CIFAR10Reader.load(.test, from: target.path, recordsPerFile: 2)
        XCTAssertEqual(test.pixels, ImageDataset.synthetic(count: 2, seed: 2).pixels)
    }

    func testCorruptArchiveReportsTarFailure() throws {
        let directory = try makeTemporaryDirectory(self)
        let archive = directory.appendingPathComponent("broken.tar.gz")
        try Data("not a tarball".utf8).write(to: archive)
        let message = errorDescription { try CIFAR10Download.extract(archive: archive, into: directory) }
        XCTAssertTrue(message.contains("/bin/tar could not extract") && message.contains("broken.tar.gz"), message)
    }
}
