import CohortData
import CohortKernels
import CohortTensor

/// Puts host batches where the model runs, in the model's dtype.
///
/// - On a host backend in float32 the batch's own tensors are used as they are.
/// - Otherwise the batch goes into device tensors allocated once per batch
///   shape and reused (the steady state allocates nothing, and a captured
///   step sees the same addresses).
/// - Raw batches (uint8 images with their crops, from a loader that
///   `emitsRawImages`) are augmented on the device by
///   `Backend.augmentImages`, straight into the model's dtype: a quarter of
///   the bytes cross the bus, and the floats equal the CPU path's.
/// - Normalised float32 batches are uploaded and, for bf16, converted on the device.
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
    private let augmentation: Augmentation
    private var normalization: Tensor?
    /// Device tensors, by role, for the current batch shape.
    private var device: [String: Tensor] = [:]
    private var images: Tensor?
    private var slots: [[String: Tensor]] = []
    private var nextSlot = 0
    private var stagedShape: Shape?

    /// `augmentation` says how raw batches are cropped and normalised (the
    /// loader's); `staging: false` uploads straight from the batch's tensors.
    init(backend: Backend, dtype: DType, augmentation: Augmentation = .cifar10Training, staging: Bool = true) {
        self.backend = backend
        self.dtype = dtype
        self.augmentation = augmentation
        usesStaging = staging && !backend.device.isHost
    }

    func stage(_ batch: Batch) throws -> (images: Tensor, labels: Tensor) {
        if backend.device.isHost && dtype == .float32 && batch.crops == nil { return (batch.images, batch.labels) }
        var host = ["images": batch.images, "labels": batch.labels]
        if let crops = batch.crops { host["crops"] = crops }
        if stagedShape != batch.images.shape {
            try allocate(for: host, outputShape: batch.images.shape)
            stagedShape = batch.images.shape
        }
        if usesStaging {
            let slot = slots[nextSlot]
            nextSlot = (nextSlot + 1) % slots.count
            for (role, tensor) in host {
                backend.waitForUploads(from: slot[role]!)
                slot[role]!.rawPointer.copyMemory(from: tensor.rawPointer, byteCount: tensor.byteCount)
            }
            host = slot
        }
        for (role, tensor) in host {
            if let target = device[role] { backend.upload(tensor, to: target) }
        }
        let source = device["images"] ?? host["images"]!
        if let crops = batch.crops {
            backend.augmentImages(output: images!, images: source, crops: device["crops"] ?? crops,
                                  normalization: normalization!, padding: augmentation.cropPadding)
        } else if images !== source {
            backend.copy(source, to: images!)
        }
        return (images!, device["labels"] ?? host["labels"]!)
    }

    /// Device tensors (and staging slots) for a batch of this shape.
    private func allocate(for host: [String: Tensor], outputShape: Shape) throws {
        device = [:]
        if !backend.device.isHost {
            for (role, tensor) in host { device[role] = try backend.makeTensor(tensor.shape, dtype: tensor.dtype) }
        }
        let source = device["images"] ?? host["images"]!
        images = source.dtype == dtype ? source : try backend.makeTensor(outputShape, dtype: dtype)
        if host["crops"] != nil, normalization == nil {
            normalization = try backend.makeTensor(copying: Tensor(augmentation.normalizationTable,
                                                                   shape: [augmentation.normalizationTable.count]))
        }
        slots = usesStaging ? try (0..<2).map { _ in
            try host.mapValues { try backend.makeHostStagingTensor($0.shape, dtype: $0.dtype) }
        } : []
    }
}
