import CCUDA
import CohortKernels
import CohortTensor

/// Softmax cross-entropy with label smoothing (Kernels+Loss.swift). Labels
/// are int32 tensors on the device (uploaded with the batch). In bf16 mode
/// the logits and dLogits are bfloat16; probabilities, the loss and the
/// count stay float32 (the forward widens each logit once and computes in
/// float32; the backward rounds each gradient once).
extension CUDABackend {
    public func softmaxCrossEntropyForward(loss: Tensor, probabilities: Tensor, correct: Tensor,
                                           logits: Tensor, labels: Tensor, labelSmoothing: Float) {
        let op = "softmaxCrossEntropyForward"
        let (batch, classes) = checkClassifier(op, logits: logits, labels: labels)
        let dtype = activationDType(op, [("logits", logits)])
        expect(op, probabilities, logits.shape)
        expect(op, loss, [1])
        expect(op, correct, [1])
        context.makeCurrent()
        let rows = lossScratch.pointer(byteCount: 2 * batch * 4)
        let rowCorrect = rows + CUdeviceptr(batch * 4)
        // One warp per row, 8 rows per 256-thread block.
        kernels.launch(.loss, kernelName("softmax_xent_rows", dtype), grid: ((batch + 7) / 8, 1, 1), block: (256, 1, 1),
                       [.tensor(probabilities), .pointer(rows), .pointer(rowCorrect), .tensor(logits), .tensor(labels),
                        .int(batch), .int(classes), .float(labelSmoothing)])
        // One block: a fixed summation order, so the loss is bitwise reproducible.
        kernels.launch(.loss, "softmax_xent_reduce", grid: (1, 1, 1), block: (1024, 1, 1),
                       [.tensor(loss), .tensor(correct), .pointer(rows), .pointer(rowCorrect), .int(batch)])
    }

    public func softmaxCrossEntropyBackward(dLogits: Tensor, probabilities: Tensor, labels: Tensor, labelSmoothing: Float) {
        let op = "softmaxCrossEntropyBackward"
        let (batch, classes) = checkClassifier(op, logits: probabilities, labels: labels)
        require(probabilities.dtype == .float32,
                "\(op): unsupported dtype combination (probabilities \(probabilities.dtype), dLogits \(dLogits.dtype)); "
                    + "probabilities are float32 in every precision")
        let dtype = activationDType(op, [("dLogits", dLogits)])
        expect(op, dLogits, probabilities.shape, dtype)
        context.makeCurrent()
        // The same float arithmetic as the reference for the targets.
        let offTarget = labelSmoothing / Float(classes)
        let onTarget = 1 - labelSmoothing + offTarget
        kernels.elementwise(.loss, kernelName("softmax_xent_backward", dtype), count: dLogits.elementCount,
                            [.tensor(dLogits), .tensor(probabilities), .tensor(labels), .count(dLogits.elementCount),
                             .int(classes), .float(onTarget), .float(offTarget), .float(1 / Float(batch))])
    }

    /// Checks float32 or bfloat16 `[N,K]` scores against int32 labels `[N]` on this device; returns (N, K).
    private func checkClassifier(_ op: String, logits: Tensor, labels: Tensor) -> (batch: Int, classes: Int) {
        require(logits.shape.rank == 2 && logits.shape[1] > 0 && logits.shape[0] > 0,
                "\(op): expected [N, K] logits, got \(logits.shape)")
        expect(op, logits, logits.shape, logits.dtype == .bfloat16 ? .bfloat16 : .float32)
        expect(op, labels, [logits.shape[0]], .int32)
        return (logits.shape[0], logits.shape[1])
    }
}
