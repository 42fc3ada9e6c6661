import CohortTensor

extension Backend {
    /// The host implementation of `augmentImages`, shared by the CPU backends.
    public func augmentImages(output: Tensor, images: Tensor, crops: Tensor, normalization: Tensor, padding: Int) {
        hostAugmentImages(output: output, images: images, crops: crops, normalization: normalization, padding: padding)
    }
}

/// `Backend.augmentImages` on host tensors: the oracle for device kernels.
public func hostAugmentImages(output: Tensor, images: Tensor, crops: Tensor, normalization: Tensor, padding: Int) {
    let op = "augmentImages"
    precondition(images.device.isHost && output.device.isHost && crops.device.isHost && normalization.device.isHost,
                 "\(op): host tensors only")
    precondition(images.dtype == .uint8 && images.shape.rank == 4, "\(op): images must be uint8 [N,H,W,C], got \(images)")
    let (count, height, width, channels) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
    precondition(output.shape == images.shape && (output.dtype == .float32 || output.dtype == .bfloat16),
                 "\(op): output must be float32 or bfloat16 \(images.shape), got \(output)")
    precondition(crops.dtype == .int32 && crops.shape == [count, 3], "\(op): crops must be int32 [\(count), 3], got \(crops)")
    precondition(normalization.dtype == .float32 && normalization.shape == [channels * 256],
                 "\(op): normalization must be float32 [\(channels * 256)], got \(normalization)")
    let pixels = images.rawPointer.assumingMemoryBound(to: UInt8.self)
    let table = normalization.floats, crop = crops.int32s
    let values = UnsafeMutableBufferPointer<Float>.allocate(capacity: output.elementCount)
    defer { values.deallocate() }
    for n in 0..<count {
        let top = Int(crop[3 * n]) - padding, left = Int(crop[3 * n + 1]) - padding, flip = crop[3 * n + 2] != 0
        for y in 0..<height {
            for x in 0..<width {
                let sourceY = y + top, sourceX = (flip ? width - 1 - x : x) + left
                let inside = (0..<height).contains(sourceY) && (0..<width).contains(sourceX)
                for c in 0..<channels {
                    let byte = inside ? Int(pixels[((n * height + sourceY) * width + sourceX) * channels + c]) : 0
                    values[((n * height + y) * width + x) * channels + c] = table[c * 256 + byte]
                }
            }
        }
    }
    if output.dtype == .float32 {
        output.floats.baseAddress!.update(from: values.baseAddress!, count: values.count)
    } else {
        let target = output.rawPointer.assumingMemoryBound(to: UInt16.self)
        for index in values.indices { target[index] = BFloat16.fromFloat(values[index]) }
    }
}
