import CohortTensor

/// Which dataset indices each rank visits in an epoch, with the semantics of
/// PyTorch's `DistributedSampler` (drop_last=False):
///
/// 1. the epoch's order is a permutation drawn from a generator seeded with
///    `seed + epoch`, the same on every rank (`shuffle: false`: 0, 1, 2, ...);
/// 2. it is padded by repeating its first indices until its length divides
///    by `worldSize`;
/// 3. rank `r` takes positions `r, r + W, r + 2W, ...`.
///
/// Every rank then has `samplesPerRank` indices, disjoint except for the
/// padding, together covering the dataset. The permutation is not torch's
/// (`torch.randperm` uses its own generator): the same seed gives a different
/// but equally uniform order.
///
/// `padToEqualLength: false` skips step 2 (rank `r` takes `r, r + W, ...`
/// below `datasetCount`): ranks may differ by one sample, but evaluation then
/// counts every test image exactly once.
public struct DistributedSampler: Hashable, Sendable {
    public let datasetCount: Int
    public let worldSize: Int
    public let rank: Int
    public let shuffle: Bool
    public let seed: UInt64
    public let padToEqualLength: Bool

    public init(datasetCount: Int, worldSize: Int = 1, rank: Int = 0, shuffle: Bool, seed: UInt64 = 0,
                padToEqualLength: Bool = true) {
        precondition(datasetCount > 0, "an empty dataset")
        precondition(worldSize > 0 && (0..<worldSize).contains(rank), "rank \(rank) outside a world of \(worldSize)")
        self.datasetCount = datasetCount
        self.worldSize = worldSize
        self.rank = rank
        self.shuffle = shuffle
        self.seed = seed
        self.padToEqualLength = padToEqualLength
    }

    /// The padded epoch length, a multiple of `worldSize` (the dataset's size when not padding).
    public var totalSize: Int {
        padToEqualLength ? (datasetCount + worldSize - 1) / worldSize * worldSize : datasetCount
    }

    /// How many indices this rank gets per epoch.
    public var samplesPerRank: Int {
        padToEqualLength ? totalSize / worldSize : (datasetCount - rank + worldSize - 1) / worldSize
    }

    /// The whole epoch's order before it is split between ranks (identical on every rank).
    public func epochOrder(epoch: Int) -> [Int] {
        var order = Array(0..<datasetCount)
        if shuffle {
            var generator = Xoshiro256StarStar(seed: seed &+ UInt64(truncatingIfNeeded: epoch))
            generator.shuffle(&order)
        }
        guard padToEqualLength else { return order }
        var padded = order
        padded.reserveCapacity(totalSize)
        while padded.count < totalSize { padded.append(order[(padded.count - datasetCount) % datasetCount]) }
        return padded
    }

    /// This rank's indices for `epoch`, in visiting order.
    public func indices(epoch: Int) -> [Int] {
        let order = epochOrder(epoch: epoch)
        return Array(stride(from: rank, to: order.count, by: worldSize).map { order[$0] })
    }
}
