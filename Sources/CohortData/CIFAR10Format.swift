/// CIFAR-10's official binary layout, the `cifar-10-binary.tar.gz` release
/// (https://www.cs.toronto.edu/~kriz/cifar.html).
///
/// Each file is 10,000 records of 3,073 bytes: one label byte (0-9), then the
/// 1,024 red, 1,024 green and 1,024 blue bytes of a 32x32 image, each plane
/// row-major. Training is `data_batch_1.bin` ... `data_batch_5.bin` (50,000
/// images), testing `test_batch.bin` (10,000); they sit in a folder named
/// `cifar-10-batches-bin`.
///
/// In memory the images are kept HWC (`[32, 32, 3]` bytes per image, see
/// `Note [Layout]`), transposed once at load, so a batch is written NHWC
/// with no further shuffling of channels.
public enum CIFAR10Format {
    public static let height = 32
    public static let width = 32
    public static let channels = 3
    public static let classCount = 10
    public static let imageByteCount = height * width * channels
    /// One label byte and the image's three planes.
    public static let recordByteCount = 1 + imageByteCount
    public static let recordsPerFile = 10_000
    /// The folder the official archive extracts to.
    public static let directoryName = "cifar-10-batches-bin"
    public static let classNames = [
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    ]
}

/// Which half of CIFAR-10, and the files holding it.
public enum CIFAR10Split: String, Sendable, CaseIterable {
    case train
    case test

    public var fileNames: [String] {
        switch self {
        case .train: return (1...5).map { "data_batch_\($0).bin" }
        case .test: return ["test_batch.bin"]
        }
    }
}
