import CohortData
import CohortKernels
import CohortTensor
import XCTest

/// `Backend.augmentImages` (the device-side input pipeline) gives exactly
/// the floats the CPU data loader writes for the same crops and flips.
final class ImageAugmentationTests: XCTestCase {
    func testMatchesTheDataLoadersAugmentation() throws {
        let augmentation = Augmentation.cifar10Training
        let dataset = ImageDataset.synthetic(count: 16, seed: 3)
        var generator = SplitMix64(seed: 9)
        var crops: [Int32] = []
        var expected: [Float] = []
        for n in 0..<dataset.count {
            let parameters = augmentation.parameters(using: &generator)
            crops += [Int32(parameters.top), Int32(parameters.left), parameters.flip ? 1 : 0]
            var image = [Float](repeating: 0, count: dataset.imageByteCount)
            Array(dataset.image(at: n)).withUnsafeBufferPointer { bytes in
                augmentation.apply(image: bytes.baseAddress!, height: 32, width: 32, parameters: parameters, into: &image)
            }
            expected += image
        }
        let images = Tensor.zeros([dataset.count, 32, 32, 3], dtype: .uint8)
        dataset.pixels.withUnsafeBytes { images.rawPointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let output = Tensor.zeros(images.shape)
        ReferenceBackend().augmentImages(output: output, images: images, crops: Tensor.int32(crops, shape: [dataset.count, 3]),
                                         normalization: Tensor(augmentation.normalizationTable, shape: [768]), padding: 4)
        XCTAssertEqual(output.toArray(), expected)
        XCTAssertTrue(crops.enumerated().contains { $0.offset % 3 == 2 && $0.element == 1 }, "some image was flipped")
    }

    /// A loader that emits raw images and crops, augmented by a backend,
    /// gives the batches the float loader gives: same samples, same floats.
    func testRawBatchesAugmentToTheSameBatches() throws {
        let dataset = ImageDataset.synthetic(count: 50, seed: 4)
        func loader(raw: Bool) -> DataLoader {
            DataLoader(dataset: dataset, sampler: DistributedSampler(datasetCount: 50, shuffle: true, seed: 7),
                       batchSize: 16, augmentation: .cifar10Training, prefetchDepth: raw ? 2 : 0, emitsRawImages: raw)
        }
        let floats = Array(loader(raw: false).batches(epoch: 3)), raw = Array(loader(raw: true).batches(epoch: 3))
        XCTAssertEqual(floats.count, 4)
        XCTAssertEqual(raw.count, 4)
        let table = Tensor(Augmentation.cifar10Training.normalizationTable, shape: [768])
        for (expected, batch) in zip(floats, raw) {
            let crops = try XCTUnwrap(batch.crops)
            XCTAssertEqual(batch.images.dtype, .uint8)
            let output = Tensor.zeros(batch.images.shape)
            ReferenceBackend().augmentImages(output: output, images: batch.images, crops: crops, normalization: table, padding: 4)
            XCTAssertEqual(output.toArray(), expected.images.toArray())
            XCTAssertEqual(batch.labels.toArray(), expected.labels.toArray())
        }
    }
}
