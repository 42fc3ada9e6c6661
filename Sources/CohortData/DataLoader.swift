import CohortTensor

/// Cuts one rank's share of an epoch into batches and assembles them:
/// indices from a `DistributedSampler`, images through an `Augmentation`.
///
/// `batch(epoch:index:)` and `fill(...)` build one batch on the caller's
/// thread; `batches(epoch:startingAt:)` returns a `PrefetchingBatches` that
/// builds them ahead on a background thread. Both give the same batches.
///
/// Note [Augmentation randomness]: each sample's crop and flip come from its
/// own generator seeded from (sampler seed, epoch, dataset index), never from
/// a generator shared between batches or threads. A batch is then a pure
/// function of (seed, epoch, batch index): prefetching, thread timing and
/// resuming at batch k give the same bytes, and an image gets the same
/// augmentation whichever rank or batch size draws it, so runs at different
/// world sizes see the same augmented data.
public final class DataLoader: Sendable {
    public let dataset: ImageDataset
    public let sampler: DistributedSampler
    public let batchSize: Int
    public let augmentation: Augmentation
    /// Drop the epoch's last batch when it is incomplete. Off by default, as
    /// in PyTorch's `DataLoader`; training with batch norm may turn it on to
    /// avoid a tiny last batch.
    public let dropLastBatch: Bool
    /// Batches built ahead of the consumer; 0 builds each on the consumer's thread.
    public let prefetchDepth: Int
    /// Where batch tensors come from: a `CachingAllocator` over the host
    /// allocator recycles their memory from step to step.
    public let allocator: DeviceAllocator
    /// Hand out the raw uint8 images with each one's crop and flip
    /// (`Batch.crops`) instead of normalised floats, for a device that
    /// augments them itself (`Backend.augmentImages`): a quarter of the bytes
    /// to upload, and the same floats in the end.
    public let emitsRawImages: Bool

    public init(dataset: ImageDataset, sampler: DistributedSampler, batchSize: Int, augmentation: Augmentation,
                dropLastBatch: Bool = false, prefetchDepth: Int = 2,
                allocator: DeviceAllocator = HostAllocator.shared, emitsRawImages: Bool = false) {
        precondition(batchSize > 0, "batch size must be positive")
        precondition(prefetchDepth >= 0)
        precondition(sampler.datasetCount == dataset.count,
                     "sampler over \(sampler.datasetCount) samples for a dataset of \(dataset.count)")
        precondition(augmentation.mean.count == dataset.channels)
        self.dataset = dataset
        self.sampler = sampler
        self.batchSize = batchSize
        self.augmentation = augmentation
        self.dropLastBatch = dropLastBatch
        self.prefetchDepth = prefetchDepth
        self.allocator = allocator
        self.emitsRawImages = emitsRawImages
    }

    /// Batches this rank sees per epoch.
    public var batchesPerEpoch: Int {
        let samples = sampler.samplesPerRank
        return dropLastBatch ? samples / batchSize : (samples + batchSize - 1) / batchSize
    }

    /// Samples in batch `index` (the last may be short).
    public func batchCount(index: Int) -> Int {
        precondition((0..<batchesPerEpoch).contains(index), "batch \(index) of \(batchesPerEpoch)")
        return min(batchSize, sampler.samplesPerRank - index * batchSize)
    }

    /// Builds batch `index` of `epoch` on the calling thread.
    public func batch(epoch: Int, index: Int) throws -> Batch {
        try batch(epoch: epoch, index: index, indices: sampler.indices(epoch: epoch))
    }

    /// Writes batch `index` of `epoch` into caller-provided memory: `images`
    /// holds `batchSize * height * width * channels` floats (NHWC), `labels`
    /// `batchSize` int32s. Returns how many samples it wrote.
    @discardableResult
    public func fill(epoch: Int, index: Int, images: UnsafeMutablePointer<Float>,
                     labels: UnsafeMutablePointer<Int32>) -> Int {
        fill(epoch: epoch, index: index, indices: sampler.indices(epoch: epoch), images: images, labels: labels)
    }

    /// Iterates the epoch from batch `startingAt` (a resumed checkpoint's
    /// position), building batches `prefetchDepth` ahead on a background thread.
    public func batches(epoch: Int, startingAt start: Int = 0) -> PrefetchingBatches {
        PrefetchingBatches(loader: self, epoch: epoch, start: start)
    }

    func batch(epoch: Int, index: Int, indices: [Int]) throws -> Batch {
        if emitsRawImages { return try rawBatch(epoch: epoch, index: index, indices: indices) }
        let count = batchCount(index: index)
        let images = try Tensor(shape: [count, dataset.height, dataset.width, dataset.channels],
                                dtype: .float32, allocator: allocator)
        let labels = try Tensor(shape: [count], dtype: .int32, allocator: allocator)
        _ = fill(epoch: epoch, index: index, indices: indices,
             images: images.floats.baseAddress!, labels: labels.int32s.baseAddress!)
        return Batch(images: images, labels: labels, count: count, epoch: epoch, index: index)
    }

    /// Batch `index` as raw bytes plus crops: the same choices `fill` makes.
    func rawBatch(epoch: Int, index: Int, indices: [Int]) throws -> Batch {
        let count = batchCount(index: index)
        let images = try Tensor(shape: [count, dataset.height, dataset.width, dataset.channels],
                                dtype: .uint8, allocator: allocator)
        let crops = try Tensor(shape: [count, 3], dtype: .int32, allocator: allocator)
        let labels = try Tensor(shape: [count], dtype: .int32, allocator: allocator)
        let imageBytes = dataset.imageByteCount
        let target = images.rawPointer.assumingMemoryBound(to: UInt8.self)
        let crop = crops.int32s, label = labels.int32s
        dataset.pixels.withUnsafeBufferPointer { pixels in
            for slot in 0..<count {
                let sample = indices[index * batchSize + slot]
                let parameters = parameters(epoch: epoch, sample: sample)
                (target + slot * imageBytes).update(from: pixels.baseAddress! + sample * imageBytes, count: imageBytes)
                crop[3 * slot] = Int32(parameters.top)
                crop[3 * slot + 1] = Int32(parameters.left)
                crop[3 * slot + 2] = parameters.flip ? 1 : 0
                label[slot] = Int32(dataset.labels[sample])
            }
        }
        return Batch(images: images, labels: labels, count: count, epoch: epoch, index: index, crops: crops)
    }

    /// One sample's crop and flip in `epoch` (`Note [Augmentation randomness]`).
    func parameters(epoch: Int, sample: Int) -> Augmentation.Parameters {
        guard augmentation.isRandom else { return augmentation.identity }
        var generator = Augmentation.generator(seed: sampler.seed, epoch: epoch, sampleIndex: sample)
        return augmentation.parameters(using: &generator)
    }

    func fill(epoch: Int, index: Int, indices: [Int], images: UnsafeMutablePointer<Float>,
              labels: UnsafeMutablePointer<Int32>) -> Int {
        let count = batchCount(index: index)
        let imageBytes = dataset.imageByteCount
        dataset.pixels.withUnsafeBufferPointer { pixels in
            for slot in 0..<count {
                let sample = indices[index * batchSize + slot]
                let parameters = parameters(epoch: epoch, sample: sample)
                augmentation.apply(image: pixels.baseAddress! + sample * imageBytes, height: dataset.height,
                                   width: dataset.width, parameters: parameters,
                                   into: images + slot * imageBytes)
                labels[slot] = Int32(dataset.labels[sample])
            }
        }
        return count
    }
}
