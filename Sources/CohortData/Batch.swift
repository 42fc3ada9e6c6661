import CohortTensor

/// One batch as the training step consumes it: host tensors, images NHWC
/// float32 normalised (`[count, 32, 32, 3]`), labels int32 (`[count]`).
/// From a loader that `emitsRawImages`, `images` are the uint8 pixels
/// instead and `crops` (int32 `[count, 3]`: top, left, flip) says how to
/// augment each on the device (`Backend.augmentImages`).
///
/// The last batch of an epoch may be smaller than the loader's batch size
/// (unless it drops it); `count` and the tensors' first dimension say how big.
public struct Batch: Sendable {
    public let images: Tensor
    public let labels: Tensor
    public let count: Int
    /// The epoch this batch belongs to.
    public let epoch: Int
    /// Its position in the epoch, from 0 (what a checkpoint saves to resume).
    public let index: Int
    /// Each raw image's crop corner and flip; nil for normalised images.
    public let crops: Tensor?

    public init(images: Tensor, labels: Tensor, count: Int, epoch: Int, index: Int, crops: Tensor? = nil) {
        self.images = images
        self.labels = labels
        self.count = count
        self.epoch = epoch
        self.index = index
        self.crops = crops
    }
}
