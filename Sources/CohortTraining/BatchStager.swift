import CohortData
import CohortKernels
import CohortTensor

/// Puts host batches where the model runs, in the model's dtype: on a host
/// backend in float32 the batch's own tensors are used as they are;
/// otherwise into tensors allocated once per batch shape and reused (the
/// steady state allocates nothing, and a captured step sees the same
/// addresses), converting float32 images to bf16 on the device.
final class BatchStager {
    private let backend: Backend
    private let dtype: DType
    private var uploadedImages: Tensor?
    private var images: Tensor?
    private var labels: Tensor?

    init(backend: Backend, dtype: DType) {
        self.backend = backend
        self.dtype = dtype
    }

    func stage(_ batch: Batch) throws -> (images: Tensor, labels: Tensor) {
        if backend.device.isHost && dtype == .float32 { return (batch.images, batch.labels) }
        let shape = batch.images.shape
        if uploadedImages?.shape != shape {
            uploadedImages = backend.device.isHost ? nil : try backend.makeTensor(shape, dtype: .float32)
            images = dtype == .float32 ? uploadedImages : try backend.makeTensor(shape, dtype: dtype)
            labels = try backend.makeTensor(batch.labels.shape, dtype: .int32)
        }
        let source: Tensor
        if let uploadedImages {
            backend.upload(batch.images, to: uploadedImages)
            source = uploadedImages
        } else {
            source = batch.images
        }
        if images !== source { backend.copy(source, to: images!) }
        backend.upload(batch.labels, to: labels!)
        return (images!, labels!)
    }
}
