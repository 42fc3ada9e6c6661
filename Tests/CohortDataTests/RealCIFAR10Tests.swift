import CohortData
import Foundation
import XCTest

/// Reads the real CIFAR-10 when a converted copy is available: the folder in
/// `COHORT_CIFAR10_DIR` (the CI script converts the JPEG copy in
/// shared/datasets/cifar10 and exports it), else a converted copy beside
/// the converter in `../shared/datasets/cifar10` next to the package root.
final class RealCIFAR10Tests: XCTestCase {
    private func dataDirectory() throws -> String {
        if let path = ProcessInfo.processInfo.environment["COHORT_CIFAR10_DIR"], !path.isEmpty { return path }
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let shared = packageRoot.appendingPathComponent("../shared/datasets/cifar10").standardizedFileURL
        if FileManager.default.fileExists(atPath: shared.appendingPathComponent(CIFAR10Format.directoryName).path) {
            return shared.path
        }
        throw XCTSkip("""
            no converted CIFAR-10: run python3 \(shared.path)/jpeg_to_cifar_binary.py \
            \(shared.path)/cifar-10-jpeg.tar.xz /tmp/cifar and set COHORT_CIFAR10_DIR=/tmp/cifar
            """)
    }

    func testTrainAndTestSets() throws {
        let directory = try dataDirectory()
        let start = Date()
        let train = try CIFAR10Reader.load(.train, from: directory)
        let test = try CIFAR10Reader.load(.test, from: directory)
        print("loaded CIFAR-10 (60,000 images) in \(String(format: "%.3f", Date().timeIntervalSince(start))) s")
        XCTAssertEqual(train.count, 50_000)
        XCTAssertEqual(test.count, 10_000)
        XCTAssertEqual(train.classCounts(), [Int](repeating: 5000, count: 10))
        XCTAssertEqual(test.classCounts(), [Int](repeating: 1000, count: 10))
        XCTAssertFalse(train.isSynthetic)

        // Channel means near CIFAR-10's published statistics (this copy went through JPEG).
        var sums = [Double](repeating: 0, count: 3)
        for (index, byte) in train.pixels.enumerated() { sums[index % 3] += Double(byte) }
        for channel in 0..<3 {
            XCTAssertEqual(sums[channel] / Double(train.count * 1024) / 255, Double(Augmentation.cifar10Mean[channel]), accuracy: 0.01)
        }

        // A full training epoch through the prefetching loader.
        let loader = DataLoader(dataset: train, sampler: DistributedSampler(datasetCount: train.count, shuffle: true, seed: 0),
                                batchSize: 128, augmentation: .cifar10Training)
        let epochStart = Date()
        var samples = 0
        let batches = loader.batches(epoch: 0)
        for batch in batches { samples += batch.count }
        XCTAssertEqual(samples, 50_000)
        print("one augmented epoch in \(String(format: "%.3f", Date().timeIntervalSince(epochStart))) s, "
              + "data wait \(String(format: "%.3f", batches.dataWaitSeconds)) s")
    }
}
