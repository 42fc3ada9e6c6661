import CCUDA
import CohortKernels
import CohortTensor

/// Softmax cross-entropy with label smoothing (Kernels+Loss.swift). Labels
/// are int32 tensors on the device (uploaded with the batch).
extension CUDABackend {
    public func softmaxCrossEntropyForward(loss: Tensor, probabilities: Tensor, correct: Tensor,
                                           logits: Tensor, labels: Tensor, labelSmoothing: Float) {
        let op = "softmaxCrossEntropyForward"
        let (batch, classes) = checkClassifier(op, logits: logits, labels: labels)
        expect(op, probabilities, logits.shape)
        expect(op, loss, [1])
        expect(op, correct, [1])
        context.makeCurrent()
        let rows = lossScratch.pointer(byteCount: 2 * batch * 4)
        let rowCorrect = rows + CUdeviceptr(batch * 4)
        // One warp per row, 8 rows per 256-thread block.
        kernels.launch(.loss, "softmax_xent_rows", grid: ((batch + 7) / 8, 1, 1), block: (256, 1, 1),
                       [.tensor(probabilities), .pointer(rows), .pointer(rowCorrect), .tensor(logits), .tensor(labels),
                        .int(batch), .int(classes), .float(labelSmoothing)])
        // One block: a fixed summation order, so the loss is bitwise reproducible.
        kernels.launch(.loss, "softmax_xent_reduce", grid: (1, 1, 1), block: (1024, 1, 1),
                       [.tensor(loss), .tensor(correct), .pointer(rows), .pointer(rowCorrect), .int(batch)])
    }

    public func softmaxCrossEntropyBackward(dLogits: Tensor, probabilities: Tensor, labels: Tensor, labelSmoothing: Float) {
        let op = "softmaxCrossEntropyBackward"
        let (batch, classes) = checkClassifier(op, logits: probabilities, labels: labels)
        expect(op, dLogits, probabilities.shape)
        context.makeCurrent()
        // The same float arithmetic as the reference for the targets.
        let offTarget = labelSmoothing / Float(classes)
        let onTarget = 1 - labelSmoothing + offTarget
        kernels.elementwise(.loss, "softmax_xent_backward", count: dLogits.elementCount,
                            [.tensor(dLogits), .tensor(probabilities), .tensor(labels), .count(dLogits.elementCount),
                             .int(classes), .float(onTarget), .float(offTarget), .float(1 / Float(batch))])
    }

    /// Checks float32 `[N,K]` scores against int32 labels `[N]` on this device; returns (N, K).
    private func checkClassifier(_ op: String, logits: Tensor, labels: Tensor) -> (batch: Int, classes: Int) {
        require(logits.shape.rank == 2 && logits.shape[1] > 0 && logits.shape[0] > 0,
                "\(op): expected [N, K] logits, got \(logits.shape)")
        expect(op, logits, logits.shape)
        expect(op, labels, [logits.shape[0]], .int32)
        return (logits.shape[0], logits.shape[1])
    }
}
