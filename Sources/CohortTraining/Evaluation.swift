import CohortData
import CohortKernels
import CohortNN
import CohortTensor

/// Loss and accuracy of a model on a data set, in evaluation mode (running
/// batch-norm statistics, no augmentation beyond normalisation).
public struct EvaluationResult: Sendable {
    public var loss: Double
    public var accuracy: Double
    public var imageCount: Int
    /// `[imageCount, classes]` float32 logits, in test-set order, when asked for.
    public var logits: Tensor?
}

/// Scores `model` on the first `limit` images of `dataset` (all when nil),
/// in batches of `batchSize`. With `worldSize` > 1, only this rank's share
/// (images `rank`, `rank + worldSize`, ...; every image counted once over
/// all ranks); the trainer combines the shares.
public func evaluate(_ model: ImageClassifier, on dataset: ImageDataset, batchSize: Int,
                     limit: Int? = nil, rank: Int = 0, worldSize: Int = 1,
                     keepLogits: Bool = false) throws -> EvaluationResult {
    let backend = model.store.backend
    let count = min(limit ?? dataset.count, dataset.count)
    let subset = count == dataset.count ? dataset : dataset.prefix(count)
    let sampler = DistributedSampler(datasetCount: subset.count, worldSize: worldSize, rank: rank, shuffle: false,
                                     padToEqualLength: false)
    // A device augments raw bytes itself (`BatchStager`): a quarter of the upload.
    let loader = DataLoader(dataset: subset, sampler: sampler, batchSize: batchSize,
                            augmentation: .cifar10Evaluation, prefetchDepth: 2, emitsRawImages: !backend.device.isHost)
    let criterion = try SoftmaxCrossEntropy(backend: backend)
    let stager = BatchStager(backend: backend, dtype: model.store.precision.dtype, augmentation: .cifar10Evaluation)
    var lossSum = 0.0, correct = 0.0, seen = 0
    guard loader.sampler.samplesPerRank > 0 else { return EvaluationResult(loss: 0, accuracy: 0, imageCount: 0) }
    var allLogits: [Float] = []
    for batch in loader.batches(epoch: 0) {
        let (images, labels) = try stager.stage(batch)
        let logits = model.forward(images, mode: .evaluation)
        if keepLogits { allLogits += backend.download(logits).toArray() }
        criterion(logits: logits, labels: labels)
        lossSum += Double(backend.download(criterion.loss).toArray()[0]) * Double(batch.count)
        correct += Double(backend.download(criterion.correct).toArray()[0])
        seen += batch.count
    }
    return EvaluationResult(loss: lossSum / Double(max(seen, 1)), accuracy: correct / Double(max(seen, 1)),
                            imageCount: seen,
                            logits: keepLogits ? Tensor(allLogits, shape: [seen, model.classCount]) : nil)
}
