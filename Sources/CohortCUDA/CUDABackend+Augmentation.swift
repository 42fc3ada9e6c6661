import CohortKernels
import CohortTensor

/// `augmentImages` on the GPU (Kernels+Augmentation.swift).
extension CUDABackend {
    public func augmentImages(output: Tensor, images: Tensor, crops: Tensor, normalization: Tensor, padding: Int) {
        let op = "augmentImages"
        require(images.shape.rank == 4, "\(op): images must be [N,H,W,C], got \(images.shape)")
        expect(op, images, images.shape, .uint8)
        let (count, height, width, channels) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        require(output.dtype == .float32 || output.dtype == .bfloat16, "\(op): output must be float32 or bfloat16, got \(output)")
        expect(op, output, images.shape, output.dtype)
        expect(op, crops, [count, 3], .int32)
        expect(op, normalization, [channels * 256])
        context.makeCurrent()
        kernels.elementwise(.augmentation, output.dtype == .float32 ? "augment_f32" : "augment_bf16",
                            count: output.elementCount, sharedBytes: channels * 256 * 4,
                            [.tensor(output), .tensor(images), .tensor(crops), .tensor(normalization),
                             .count(output.elementCount), .int(height), .int(width), .int(channels), .int(padding)])
    }
}
