import Foundation

/// Writes images in CIFAR-10's official binary layout (see `CIFAR10Format`):
/// fixtures for tests, and a way to turn any 32x32 RGB set into files the
/// reader and other tools accept.
public enum CIFAR10Writer {
    /// Writes `dataset`'s images `range` as one batch file: per image, the
    /// label byte then the R, G and B planes (transposed from HWC).
    public static func writeBatch(_ dataset: ImageDataset, range: Range<Int>, to file: URL) throws {
        precondition(dataset.height == CIFAR10Format.height && dataset.width == CIFAR10Format.width
                     && dataset.channels == CIFAR10Format.channels, "CIFAR-10 files hold 32x32x3 images")
        precondition(range.lowerBound >= 0 && range.upperBound <= dataset.count)
        let recordBytes = CIFAR10Format.recordByteCount
        let planeBytes = CIFAR10Format.height * CIFAR10Format.width
        var data = Data(count: range.count * recordBytes)
        data.withUnsafeMutableBytes { (raw: UnsafeMutableRawBufferPointer) in
            let out = raw.bindMemory(to: UInt8.self)
            dataset.pixels.withUnsafeBufferPointer { pixels in
                for (record, image) in range.enumerated() {
                    let target = record * recordBytes
                    out[target] = dataset.labels[image]
                    let source = image * dataset.imageByteCount
                    for pixel in 0..<planeBytes {
                        for channel in 0..<3 {
                            out[target + 1 + channel * planeBytes + pixel] = pixels[source + 3 * pixel + channel]
                        }
                    }
                }
            }
        }
        try data.write(to: file)
    }

    /// Writes a complete `cifar-10-batches-bin` folder inside `directory`:
    /// `train` split over `data_batch_1.bin` ... `data_batch_5.bin` (its count
    /// must divide by 5), `test` as `test_batch.bin`, and `batches.meta.txt`
    /// with the class names. Returns the batches folder.
    @discardableResult
    public static func write(train: ImageDataset, test: ImageDataset, to directory: URL) throws -> URL {
        precondition(train.count % 5 == 0, "the training set is written as five equal files; \(train.count) images do not divide")
        let folder = directory.appendingPathComponent(CIFAR10Format.directoryName, isDirectory: true)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let perFile = train.count / 5
        for (index, name) in CIFAR10Split.train.fileNames.enumerated() {
            try writeBatch(train, range: index * perFile ..< (index + 1) * perFile, to: folder.appendingPathComponent(name))
        }
        try writeBatch(test, range: 0..<test.count, to: folder.appendingPathComponent(CIFAR10Split.test.fileNames[0]))
        let meta = CIFAR10Format.classNames.joined(separator: "\n") + "\n\n"
        try Data(meta.utf8).write(to: folder.appendingPathComponent("batches.meta.txt"))
        return folder
    }
}
