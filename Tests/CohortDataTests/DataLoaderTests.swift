import CohortData
import CohortTensor
import Foundation
import XCTest

final class DataLoaderTests: XCTestCase {
    private let dataset = ImageDataset.synthetic(count: 203, seed: 17)

    private func makeLoader(rank: Int = 0, worldSize: Int = 2, seed: UInt64 = 5, batchSize: Int = 16,
                            dropLastBatch: Bool = false, prefetchDepth: Int = 2) -> DataLoader {
        DataLoader(dataset: dataset,
                   sampler: DistributedSampler(datasetCount: dataset.count, worldSize: worldSize, rank: rank,
                                               shuffle: true, seed: seed),
                   batchSize: batchSize, augmentation: .cifar10Training, dropLastBatch: dropLastBatch,
                   prefetchDepth: prefetchDepth)
    }

    private struct Snapshot: Equatable {
        var images: [Float]
        var labels: [Float]
        var count: Int
        var index: Int
        init(_ batch: Batch) {
            images = batch.images.toArray()
            labels = batch.labels.toArray()
            count = batch.count
            index = batch.index
        }
    }

    private func synchronous(_ loader: DataLoader, epoch: Int) throws -> [Snapshot] {
        try (0..<loader.batchesPerEpoch).map { Snapshot(try loader.batch(epoch: epoch, index: $0)) }
    }

    func testBatchShapesAndContents() throws {
        let loader = makeLoader()
        // 203 samples over 2 ranks: 102 each, 6 full batches and one of 6.
        XCTAssertEqual(loader.batchesPerEpoch, 7)
        let last = try loader.batch(epoch: 0, index: 6)
        XCTAssertEqual(last.count, 6)
        XCTAssertEqual(last.images.shape, [6, 32, 32, 3])
        XCTAssertEqual(last.images.dtype, .float32)
        XCTAssertEqual(last.labels.shape, [6])
        XCTAssertEqual(last.labels.dtype, .int32)
        XCTAssertEqual(makeLoader(dropLastBatch: true).batchesPerEpoch, 6)

        // Labels follow the sampler; images are the augmented samples.
        let first = try loader.batch(epoch: 3, index: 1)
        let indices = loader.sampler.indices(epoch: 3)
        XCTAssertEqual(first.labels.int32s.map { $0 }, (16..<32).map { Int32(dataset.labels[indices[$0]]) })
        let sample = indices[16]
        var generator = Augmentation.generator(seed: 5, epoch: 3, sampleIndex: sample)
        let parameters = Augmentation.cifar10Training.parameters(using: &generator)
        var expected = [Float](repeating: 0, count: 3072)
        dataset.pixels.withUnsafeBufferPointer { pixels in
            expected.withUnsafeMutableBufferPointer {
                Augmentation.cifar10Training.apply(image: pixels.baseAddress! + sample * 3072, height: 32, width: 32,
                                                   parameters: parameters, into: $0.baseAddress!)
            }
        }
        XCTAssertEqual(Array(first.images.floats[0..<3072]), expected)
    }

    func testFillWritesTheSameBatchIntoCallerMemory() throws {
        let loader = makeLoader()
        var images = [Float](repeating: .nan, count: 16 * 3072)
        var labels = [Int32](repeating: -1, count: 16)
        let written = images.withUnsafeMutableBufferPointer { imageBuffer in
            labels.withUnsafeMutableBufferPointer { loader.fill(epoch: 1, index: 2, images: imageBuffer.baseAddress!, labels: $0.baseAddress!) }
        }
        XCTAssertEqual(written, 16)
        let batch = try loader.batch(epoch: 1, index: 2)
        XCTAssertEqual(images, batch.images.toArray())
        XCTAssertEqual(labels, Array(batch.labels.int32s))
    }

    func testDeterministicAndReshuffledPerEpoch() throws {
        let first = try synchronous(makeLoader(), epoch: 2)
        XCTAssertEqual(first, try synchronous(makeLoader(), epoch: 2))
        XCTAssertNotEqual(first, try synchronous(makeLoader(), epoch: 3))
        XCTAssertNotEqual(first, try synchronous(makeLoader(seed: 6), epoch: 2))
        XCTAssertNotEqual(first, try synchronous(makeLoader(rank: 1), epoch: 2))
    }

    func testPrefetchingYieldsTheSynchronousBatches() throws {
        for depth in [0, 1, 3] {
            let loader = makeLoader(prefetchDepth: depth)
            let expected = try synchronous(loader, epoch: 4)
            let batches = loader.batches(epoch: 4)
            var seen: [Snapshot] = []
            for batch in batches {
                seen.append(Snapshot(batch))
                if batch.index % 2 == 0 { usleep(500) } // let the producer run ahead
            }
            XCTAssertEqual(seen, expected, "prefetch depth \(depth)")
            XCTAssertNil(batches.next())
            XCTAssertEqual(batches.position, loader.batchesPerEpoch)
            XCTAssertGreaterThanOrEqual(batches.dataWaitSeconds, 0)
        }
    }

    func testResumesMidEpoch() throws {
        let loader = makeLoader()
        let expected = try synchronous(loader, epoch: 1)
        let resumed = loader.batches(epoch: 1, startingAt: 4)
        XCTAssertEqual(resumed.position, 4)
        XCTAssertEqual(resumed.map(Snapshot.init), Array(expected[4...]))
        XCTAssertNil(loader.batches(epoch: 1, startingAt: loader.batchesPerEpoch).next())
    }

    /// The data wait is what the consumer spent blocked: building on its own
    /// thread, all of it; prefetching with a slow consumer, almost none.
    func testDataWaitIsMeasured() throws {
        let synchronousBatches = makeLoader(batchSize: 64, prefetchDepth: 0).batches(epoch: 0)
        while synchronousBatches.next() != nil {}
        XCTAssertGreaterThan(synchronousBatches.dataWaitSeconds, 0)

        let prefetched = makeLoader(batchSize: 8, prefetchDepth: 2).batches(epoch: 0)
        var batches = 0
        let start = Date()
        while prefetched.next() != nil {
            usleep(2000) // a "training step"
            batches += 1
        }
        XCTAssertEqual(batches, 13)
        XCTAssertLessThan(prefetched.dataWaitSeconds, Date().timeIntervalSince(start) / 2)
    }

    func testCancelStopsMidEpochWithoutLeakingThreads() throws {
        let big = ImageDataset.synthetic(count: 4096, seed: 1)
        let loader = DataLoader(dataset: big, sampler: DistributedSampler(datasetCount: big.count, shuffle: true),
                                batchSize: 32, augmentation: .cifar10Training, prefetchDepth: 2)
        let threadsBefore = liveThreadCount()
        for round in 0..<30 {
            let batches = loader.batches(epoch: round)
            if round % 3 != 0 { XCTAssertNotNil(batches.next()) }
            if round % 2 == 0 {
                batches.cancel()
                batches.cancel() // idempotent
                XCTAssertNil(batches.next())
            }
            // Odd rounds: dropped while the producer is blocked on a full queue.
        }
        guard let threadsBefore else { return }
        // A cancelled producer has signalled its exit; give the OS a moment to reap it.
        var threadsAfter = liveThreadCount() ?? 0
        for _ in 0..<100 where threadsAfter > threadsBefore {
            usleep(10_000)
            threadsAfter = liveThreadCount() ?? 0
        }
        XCTAssertLessThanOrEqual(threadsAfter, threadsBefore)
    }

    func testEvaluationLoaderIsUnshuffledAndUnaugmented() throws {
        let loader = DataLoader(dataset: dataset,
                                sampler: DistributedSampler(datasetCount: dataset.count, shuffle: false),
                                batchSize: 100, augmentation: .cifar10Evaluation)
        let batch = try loader.batch(epoch: 7, index: 0)
        XCTAssertEqual(Array(batch.labels.int32s), dataset.labels[0..<100].map(Int32.init))
        XCTAssertEqual(batch.images.floats[5], Augmentation.cifar10Evaluation.normalized(dataset.pixels[5], channel: 2))
        XCTAssertEqual(batch.images.toArray(), try loader.batch(epoch: 8, index: 0).images.toArray())
    }

    func testSyntheticDataset() {
        let synthetic = ImageDataset.synthetic(count: 1000, seed: 4)
        XCTAssertTrue(synthetic.isSynthetic)
        XCTAssertEqual(synthetic.name, "synthetic")
        XCTAssertEqual(synthetic.count, 1000)
        XCTAssertEqual(synthetic.pixels.count, 1000 * 32 * 32 * 3)
        XCTAssertEqual([synthetic.height, synthetic.width, synthetic.channels, synthetic.classCount], [32, 32, 3, 10])
        XCTAssertTrue(synthetic.classCounts().allSatisfy { $0 > 50 })
        XCTAssertEqual(synthetic.pixels, ImageDataset.synthetic(count: 1000, seed: 4).pixels)
        XCTAssertNotEqual(synthetic.labels, ImageDataset.synthetic(count: 1000, seed: 5).labels)
        XCTAssertEqual(synthetic.image(at: 999).count, 3072)
    }
}
