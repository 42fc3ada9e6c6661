import CohortData
import XCTest

final class DistributedSamplerTests: XCTestCase {
    /// PyTorch's DistributedSampler(shuffle=False) on 10 samples and 3 ranks.
    func testUnshuffledMatchesPyTorch() {
        let expected = [[0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1]]
        for rank in 0..<3 {
            let sampler = DistributedSampler(datasetCount: 10, worldSize: 3, rank: rank, shuffle: false)
            XCTAssertEqual(sampler.totalSize, 12)
            XCTAssertEqual(sampler.samplesPerRank, 4)
            XCTAssertEqual(sampler.indices(epoch: 0), expected[rank])
            XCTAssertEqual(sampler.indices(epoch: 5), expected[rank])
        }
    }

    func testRanksPartitionTheEpoch() {
        for (count, world) in [(100, 4), (101, 4), (7, 8), (50_000, 3), (3, 7)] {
            let samplers = (0..<world).map {
                DistributedSampler(datasetCount: count, worldSize: world, rank: $0, shuffle: true, seed: 11)
            }
            let perRank = samplers.map { $0.indices(epoch: 2) }
            XCTAssertTrue(perRank.allSatisfy { $0.count == (count + world - 1) / world })
            // Interleaving the ranks gives back the padded epoch order, the same on every rank.
            let order = samplers[0].epochOrder(epoch: 2)
            XCTAssertEqual(order, samplers[world - 1].epochOrder(epoch: 2))
            for rank in 0..<world {
                XCTAssertEqual(perRank[rank], stride(from: rank, to: order.count, by: world).map { order[$0] })
            }
            // Union covers the dataset; duplicates are exactly the padding, the order's first indices.
            let all = perRank.flatMap { $0 }
            XCTAssertEqual(Set(all), Set(0..<count))
            let padding = order.count - count
            XCTAssertEqual(Array(order[count...]), (0..<padding).map { order[$0 % count] })
            XCTAssertEqual(all.count - Set(all).count, padding)
            if count % world == 0 { XCTAssertEqual(padding, 0) }
        }
    }

    func testReshufflesPerEpochAndIsDeterministic() {
        let sampler = DistributedSampler(datasetCount: 1000, worldSize: 2, rank: 1, shuffle: true, seed: 3)
        XCTAssertEqual(sampler.indices(epoch: 4), DistributedSampler(datasetCount: 1000, worldSize: 2, rank: 1,
                                                                      shuffle: true, seed: 3).indices(epoch: 4))
        XCTAssertNotEqual(sampler.indices(epoch: 4), sampler.indices(epoch: 5))
        XCTAssertNotEqual(sampler.epochOrder(epoch: 0), Array(0..<1000))
        XCTAssertEqual(sampler.epochOrder(epoch: 0).sorted(), Array(0..<1000))
        // seed + epoch, as PyTorch seeds it: (seed 3, epoch 4) is (seed 4, epoch 3).
        XCTAssertEqual(sampler.epochOrder(epoch: 4),
                       DistributedSampler(datasetCount: 1000, shuffle: true, seed: 4).epochOrder(epoch: 3))
    }

    func testWithoutPaddingEveryIndexOnce() {
        let samplers = (0..<3).map { DistributedSampler(datasetCount: 10, worldSize: 3, rank: $0, shuffle: false, padToEqualLength: false) }
        XCTAssertEqual(samplers.map(\.samplesPerRank), [4, 3, 3])
        XCTAssertEqual(samplers.map { $0.indices(epoch: 0) }, [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]])
    }
}
