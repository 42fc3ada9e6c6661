import CohortData
import CohortKernels
import CohortTensor

/// Puts host batches where the model runs, in the model's dtype: on a host
/// backend in float32 the batch's own tensors are used as they are;
/// otherwise into tensors allocated once per batch shape and reused (the
/// steady state allocates nothing, and a captured step sees the same
/// addresses), converting float32 images to bf16 on the device.
///
/// On a device backend each batch is first copied into one of two host
/// staging slots (`Backend.makeHostStagingTensor`: pinned memory on CUDA),
/// from which the upload is a true asynchronous copy; a slot is written again
/// only after `waitForUploads(from:)`, two batches later, when its copy is
/// long done.
final class BatchStager {
    private let backend: Backend
    private let dtype: DType
    private let usesStaging: Bool
    private var uploadedImages: Tensor?
    private var images: Tensor?
    private var labels: Tensor?
    private var slots: [(images: Tensor, labels: Tensor)] = []
    private var nextSlot = 0

    /// `staging: false` uploads straight from the batch's tensors (pageable memory on a GPU).
    init(backend: Backend, dtype: DType, staging: Bool = true) {
        self.backend = backend
        self.dtype = dtype
        usesStaging = staging && !backend.device.isHost
    }

    func stage(_ batch: Batch) throws -> (images: Tensor, labels: Tensor) {
        if backend.device.isHost && dtype == .float32 { return (batch.images, batch.labels) }
        let shape = batch.images.shape
        if uploadedImages?.shape != shape {
            uploadedImages = backend.device.isHost ? nil : try backend.makeTensor(shape, dtype: .float32)
            images = dtype == .float32 ? uploadedImages : try backend.makeTensor(shape, dtype: dtype)
            labels = try backend.makeTensor(batch.labels.shape, dtype: .int32)
            slots = []
        }
        var hostImages = batch.images, hostLabels = batch.labels
        if usesStaging {
            if slots.isEmpty {
                slots = try (0..<2).map { _ in
                    (try backend.makeHostStagingTensor(shape, dtype: .float32),
                     try backend.makeHostStagingTensor(batch.labels.shape, dtype: .int32))
                }
            }
            let slot = slots[nextSlot]
            nextSlot = (nextSlot + 1) % slots.count
            backend.waitForUploads(from: slot.images)
            backend.waitForUploads(from: slot.labels)
            slot.images.rawPointer.copyMemory(from: batch.images.rawPointer, byteCount: batch.images.byteCount)
            slot.labels.rawPointer.copyMemory(from: batch.labels.rawPointer, byteCount: batch.labels.byteCount)
            (hostImages, hostLabels) = (slot.images, slot.labels)
        }
        let source: Tensor
        if let uploadedImages {
            backend.upload(hostImages, to: uploadedImages)
            source = uploadedImages
        } else {
            source = hostImages
        }
        if images !== source { backend.copy(source, to: images!) }
        backend.upload(hostLabels, to: labels!)
        return (images!, labels!)
    }
}
