import CohortTensor

extension ImageDataset {
    /// Uniformly random images and labels of CIFAR-10's shape, so the whole
    /// engine (and its throughput measurements) runs where no dataset is.
    ///
    /// Deterministic in `seed`. Named `synthetic` with `isSynthetic` set, so
    /// nobody mistakes its (chance-level) accuracy for a result.
    public static func synthetic(count: Int, seed: UInt64, height: Int = CIFAR10Format.height,
                                 width: Int = CIFAR10Format.width, channels: Int = CIFAR10Format.channels,
                                 classCount: Int = CIFAR10Format.classCount) -> ImageDataset {
        precondition(count >= 0 && classCount > 0 && classCount <= 256)
        var generator = Xoshiro256StarStar(seed: seed)
        let byteCount = count * height * width * channels
        let pixels = [UInt8](unsafeUninitializedCapacity: byteCount) { buffer, initialized in
            // Eight bytes per draw.
            var index = 0
            while index < byteCount {
                var word = generator.next()
                for _ in 0..<min(8, byteCount - index) {
                    buffer[index] = UInt8(truncatingIfNeeded: word)
                    word >>= 8
                    index += 1
                }
            }
            initialized = byteCount
        }
        let labels = (0..<count).map { _ in UInt8(generator.next(below: classCount)) }
        return ImageDataset(name: "synthetic", isSynthetic: true, height: height, width: width,
                            channels: channels, classCount: classCount, pixels: pixels, labels: labels)
    }
}
