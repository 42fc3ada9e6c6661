import Foundation
import CohortTensor

/// Softmax cross-entropy with label smoothing, as
/// `torch.nn.CrossEntropyLoss(label_smoothing: s)` with mean reduction.
/// Over K classes the target of a row with label t is
/// `(1 - s) * onehot(t) + s / K`, so a row's loss is
///     -(1 - s) * log p[t] - (s / K) * sum over k of log p[k].
extension ReferenceBackend {
    public func softmaxCrossEntropyForward(loss: Tensor, probabilities: Tensor, correct: Tensor,
                                           logits: Tensor, labels: Tensor, labelSmoothing: Float) {
        let logits = float32(logits)
        let probabilitiesStage = float32Output(probabilities)
        defer { probabilitiesStage.commit() }
        let probabilities = probabilitiesStage.tensor
        let op = "softmaxCrossEntropyForward"
        let (batch, classes) = checkClassifier(op, logits: logits, labels: labels)
        checkShape(op, probabilities, logits.shape)
        checkShape(op, loss, [1])
        checkShape(op, correct, [1])
        let z = logits.floats, p = probabilities.floats, label = labels.int32s
        let smoothing = Double(labelSmoothing)
        var lossSum = 0.0
        var correctCount = 0
        for n in 0..<batch {
            let row = n * classes
            let target = Int(label[n])
            precondition(target >= 0 && target < classes, "\(op): label \(target) of row \(n) is outside 0..<\(classes)")
            // Arg-max, ties to the lowest index; subtracting the max keeps exp from overflowing.
            var largest = 0
            for k in 1..<classes where z[row + k] > z[row + largest] { largest = k }
            if largest == target { correctCount += 1 }
            let maximum = Double(z[row + largest])
            var expSum = 0.0
            for k in 0..<classes { expSum += exp(Double(z[row + k]) - maximum) }
            let logNormaliser = maximum + log(expSum)
            var logProbabilitySum = 0.0
            for k in 0..<classes {
                let logProbability = Double(z[row + k]) - logNormaliser
                logProbabilitySum += logProbability
                p[row + k] = Float(exp(logProbability))
            }
            let targetLogProbability = Double(z[row + target]) - logNormaliser
            lossSum -= (1 - smoothing) * targetLogProbability + smoothing / Double(classes) * logProbabilitySum
        }
        loss.floats[0] = Float(lossSum / Double(batch))
        correct.floats[0] = Float(correctCount)
    }

    /// dLogits = (probabilities - targets) / N.
    public func softmaxCrossEntropyBackward(dLogits: Tensor, probabilities: Tensor, labels: Tensor, labelSmoothing: Float) {
        let probabilities = float32(probabilities)
        let dLogitsStage = float32Output(dLogits)
        defer { dLogitsStage.commit() }
        let dLogits = dLogitsStage.tensor
        let op = "softmaxCrossEntropyBackward"
        let (batch, classes) = checkClassifier(op, logits: probabilities, labels: labels)
        checkShape(op, dLogits, probabilities.shape)
        let p = probabilities.floats, label = labels.int32s, dz = dLogits.floats
        let offTarget = labelSmoothing / Float(classes)
        let onTarget = 1 - labelSmoothing + offTarget
        let inverseBatch = 1 / Float(batch)
        for n in 0..<batch {
            let target = Int(label[n])
            precondition(target >= 0 && target < classes, "\(op): label \(target) of row \(n) is outside 0..<\(classes)")
            for k in 0..<classes {
                let index = n * classes + k
                dz[index] = (p[index] - (k == target ? onTarget : offTarget)) * inverseBatch
            }
        }
    }

    /// Checks float32 `[N,K]` scores against int32 labels `[N]`; returns (N, K).
    private func checkClassifier(_ op: String, logits: Tensor, labels: Tensor) -> (batch: Int, classes: Int) {
        precondition(logits.shape.rank == 2 && logits.shape[1] > 0, "\(op): expected [N, K] logits, got \(logits.shape)")
        checkShape(op, logits, logits.shape)
        let batch = logits.shape[0]
        precondition(labels.device.isHost && labels.dtype == .int32 && labels.shape == [batch],
                     "\(op): expected int32 labels of shape [\(batch)], got \(labels)")
        return (batch, logits.shape[1])
    }
}
