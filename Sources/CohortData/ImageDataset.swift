/// Labelled images held compactly in memory: `UInt8` pixels, HWC per image,
/// images back to back (`[count, height, width, channels]`), and one label
/// byte per image.
///
/// 50,000 CIFAR-10 images are 147 MiB this way, a quarter of their float32
/// size; augmentation converts a batch to normalised float32 as it is
/// assembled (`Augmentation.apply`).
public struct ImageDataset: Sendable {
    /// What the data is (`cifar10-train`, `synthetic`), for logs and metrics.
    public let name: String
    /// True for generated data: accuracy on it means nothing, and reports should say so.
    public let isSynthetic: Bool
    public let height: Int
    public let width: Int
    public let channels: Int
    public let classCount: Int
    /// `count * height * width * channels` bytes, image `i` at `i * imageByteCount`.
    public let pixels: [UInt8]
    /// One class index in `0..<classCount` per image.
    public let labels: [UInt8]

    public init(name: String, isSynthetic: Bool = false, height: Int = CIFAR10Format.height,
                width: Int = CIFAR10Format.width, channels: Int = CIFAR10Format.channels,
                classCount: Int = CIFAR10Format.classCount, pixels: [UInt8], labels: [UInt8]) {
        precondition(pixels.count == labels.count * height * width * channels,
                     "\(pixels.count) pixel bytes for \(labels.count) images of \(height)x\(width)x\(channels)")
        precondition(labels.allSatisfy { Int($0) < classCount }, "a label is outside 0..<\(classCount)")
        self.name = name
        self.isSynthetic = isSynthetic
        self.height = height
        self.width = width
        self.channels = channels
        self.classCount = classCount
        self.pixels = pixels
        self.labels = labels
    }

    public var count: Int { labels.count }
    public var imageByteCount: Int { height * width * channels }

    /// Image `index` as HWC bytes.
    public func image(at index: Int) -> ArraySlice<UInt8> {
        pixels[index * imageByteCount ..< (index + 1) * imageByteCount]
    }

    /// How many images each class has.
    public func classCounts() -> [Int] {
        var counts = [Int](repeating: 0, count: classCount)
        for label in labels { counts[Int(label)] += 1 }
        return counts
    }

    /// The first `count` images (a quick evaluation on part of a test set).
    public func prefix(_ count: Int) -> ImageDataset {
        precondition((1...self.count).contains(count), "prefix of \(count) images from \(self.count)")
        return ImageDataset(name: name, isSynthetic: isSynthetic, height: height, width: width, channels: channels,
                            classCount: classCount, pixels: Array(pixels[0..<(count * imageByteCount)]),
                            labels: Array(labels[0..<count]))
    }
}
