import CohortData
import CohortKernels
import CohortTensor

/// The GPU input pipeline: random crop, flip and normalisation of raw uint8
/// images must give exactly the floats the CPU path gives (both read the
/// same normalisation table), in float32 and, where supported, bfloat16.
extension BackendSelfTest {
    func augmentationChecks() -> [SelfTestCheck] {
        let shape: Shape = [options.batch * 4, 32, 32, 3]
        let padding = 4
        return [DType.float32, .bfloat16].filter { $0 == .float32 || runsBFloat16Ops }.map { dtype in
            SelfTestCheck(name: "augmentImages \(dtype == .float32 ? "fp32" : "bf16")", shape: "\(shape) padding \(padding)") { c in
                let count = shape[0]
                let images = Tensor.zeros(shape, dtype: .uint8)
                let bytes = images.rawPointer.assumingMemoryBound(to: UInt8.self)
                for index in 0..<images.elementCount { bytes[index] = UInt8(truncatingIfNeeded: c.random.next()) }
                // Every crop corner and both flips, including the extremes.
                let crops = Tensor.int32((0..<count).flatMap { n -> [Int32] in
                    [Int32(c.random.next(below: 2 * padding + 1)), Int32(c.random.next(below: 2 * padding + 1)),
                     Int32(n % 2)]
                }, shape: [count, 3])
                let table = Tensor(Augmentation.cifar10Training.normalizationTable, shape: [3 * 256])
                let x = c.pair(images), crop = c.pair(crops), lookup = c.pair(table), y = c.output(shape, dtype: dtype)
                c.run { backend, side in
                    backend.augmentImages(output: side(y), images: side(x), crops: side(crop),
                                          normalization: side(lookup), padding: padding)
                }
                c.compare(nil, y, .exact)
            }
        }
    }
}
