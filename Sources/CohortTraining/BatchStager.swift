import CohortData
import CohortKernels
import CohortTensor

/// Puts host batches where the model runs: on a host backend the batch's
/// own tensors are used as they are; on a device, into device tensors that
/// are allocated once per batch shape and reused, so the steady state
/// allocates nothing and a captured step sees the same addresses.
final class BatchStager {
    private let backend: Backend
    private var images: Tensor?
    private var labels: Tensor?

    init(backend: Backend) { self.backend = backend }

    func stage(_ batch: Batch) throws -> (images: Tensor, labels: Tensor) {
        guard !backend.device.isHost else { return (batch.images, batch.labels) }
        if images?.shape != batch.images.shape { images = try backend.makeTensor(batch.images.shape, dtype: batch.images.dtype) }
        if labels?.shape != batch.labels.shape { labels = try backend.makeTensor(batch.labels.shape, dtype: batch.labels.dtype) }
        backend.upload(batch.images, to: images!)
        backend.upload(batch.labels, to: labels!)
        return (images!, labels!)
    }
}
