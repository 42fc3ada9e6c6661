import CohortTensor

/// Turns `UInt8` HWC images into normalised float32 NHWC, with torchvision's
/// CIFAR-10 training transforms:
///
///     RandomCrop(32, padding=4), RandomHorizontalFlip(), ToTensor(),
///     Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
///
/// The crop pads with zeros *before* normalising (torchvision pads the PIL
/// image with 0), so a padded pixel becomes `(0 - mean) / std`, not 0.
/// `cifar10Evaluation` only normalises.
///
/// Each output value is one table lookup (`(v / 255 - mean) / std` for the
/// 256 byte values of each channel), so an image takes a few microseconds.
public struct Augmentation: Sendable {
    /// Zero padding on each side before the random crop back to the image's
    /// size; 0 disables cropping.
    public let cropPadding: Int
    /// Mirror left-right with probability 1/2.
    public let horizontalFlip: Bool
    public let mean: [Float]
    public let std: [Float]
    /// `table[channel * 256 + byte]` is the normalised value.
    private let table: [Float]

    public init(cropPadding: Int, horizontalFlip: Bool, mean: [Float], std: [Float]) {
        precondition(cropPadding >= 0 && mean.count == std.count && !mean.isEmpty)
        self.cropPadding = cropPadding
        self.horizontalFlip = horizontalFlip
        self.mean = mean
        self.std = std
        table = mean.indices.flatMap { channel in
            (0..<256).map { (Float($0) / 255 - mean[channel]) / std[channel] }
        }
    }

    /// CIFAR-10's per-channel mean and standard deviation over the training set (RGB).
    public static let cifar10Mean: [Float] = [0.4914, 0.4822, 0.4465]
    public static let cifar10Std: [Float] = [0.2470, 0.2435, 0.2616]

    public static let cifar10Training = Augmentation(cropPadding: 4, horizontalFlip: true,
                                                     mean: cifar10Mean, std: cifar10Std)
    public static let cifar10Evaluation = Augmentation(cropPadding: 0, horizontalFlip: false,
                                                       mean: cifar10Mean, std: cifar10Std)

    /// Whether `parameters` draws anything (false for evaluation).
    public var isRandom: Bool { cropPadding > 0 || horizontalFlip }

    /// `normalizationTable[channel * 256 + byte]`: the normalised value of every
    /// byte, the table `Backend.augmentImages` takes so a device gives the
    /// same floats as this CPU path.
    public var normalizationTable: [Float] { table }

    /// The normalised value of byte `value` in `channel`.
    public func normalized(_ value: UInt8, channel: Int) -> Float { table[channel * 256 + Int(value)] }

    /// One image's random choices. `top` and `left` are the crop's corner in
    /// the padded image (`0...2 * cropPadding`, torchvision's `i` and `j`); the
    /// flip applies after the crop.
    public struct Parameters: Hashable, Sendable {
        public var top: Int
        public var left: Int
        public var flip: Bool

        public init(top: Int, left: Int, flip: Bool) {
            self.top = top
            self.left = left
            self.flip = flip
        }
    }

    /// The identity: centre crop of the padded image, no flip.
    public var identity: Parameters { Parameters(top: cropPadding, left: cropPadding, flip: false) }

    /// Draws crop corner (row, then column) and flip, in torchvision's order.
    public func parameters<G: RandomNumberGenerator>(using generator: inout G) -> Parameters {
        var result = identity
        if cropPadding > 0 {
            result.top = generator.next(below: 2 * cropPadding + 1)
            result.left = generator.next(below: 2 * cropPadding + 1)
        }
        if horizontalFlip { result.flip = generator.next() >> 63 == 1 }
        return result
    }

    /// The generator for one sample's choices: its own stream from
    /// (seed, epoch, dataset index). See `Note [Augmentation randomness]` in
    /// `DataLoader`.
    public static func generator(seed: UInt64, epoch: Int, sampleIndex: Int) -> SplitMix64 {
        SplitMix64(seed: SplitMix64.mix(SplitMix64.mix(seed ^ 0x5851_F42D_4C95_7F2D ^ UInt64(truncatingIfNeeded: epoch))
                                       ^ UInt64(truncatingIfNeeded: sampleIndex)))
    }

    /// Writes one augmented, normalised image.
    ///
    /// - Parameters:
    ///   - image: `height * width * channels` bytes, HWC.
    ///   - output: `height * width * channels` floats, HWC.
    public func apply(image: UnsafePointer<UInt8>, height: Int, width: Int, parameters: Parameters,
                      into output: UnsafeMutablePointer<Float>) {
        let channels = mean.count
        let rowOffset = parameters.top - cropPadding, columnOffset = parameters.left - cropPadding
        table.withUnsafeBufferPointer { table in
            let lookup = table.baseAddress!
            for y in 0..<height {
                let sourceY = y + rowOffset
                var target = output + y * width * channels
                if sourceY < 0 || sourceY >= height {
                    for _ in 0..<width {
                        for channel in 0..<channels { target[channel] = lookup[channel * 256] }
                        target += channels
                    }
                    continue
                }
                let sourceRow = image + sourceY * width * channels
                for x in 0..<width {
                    let sourceX = (parameters.flip ? width - 1 - x : x) + columnOffset
                    if sourceX < 0 || sourceX >= width {
                        for channel in 0..<channels { target[channel] = lookup[channel * 256] }
                    } else {
                        let source = sourceRow + sourceX * channels
                        for channel in 0..<channels { target[channel] = lookup[channel * 256 + Int(source[channel])] }
                    }
                    target += channels
                }
            }
        }
    }
}
