import CohortKernels
import CohortTensor

/// Mean softmax cross-entropy with label smoothing,
/// `torch.nn.CrossEntropyLoss(label_smoothing: s)`.
///
/// The loss and the count of correct predictions stay on the device as
/// one-element tensors: reading them is the caller's choice (and a
/// synchronisation), made only when a step is logged.
public final class SoftmaxCrossEntropy {
    public let labelSmoothing: Float
    private let backend: Backend
    /// `[1]`: the mean loss of the last forward.
    public let loss: Tensor
    /// `[1]`: how many rows of the last forward were classified correctly.
    public let correct: Tensor
    private var labels: Tensor?
    private var lastProbabilities: Tensor?
    private var lastLogitsDType: DType?
    private var probabilities = ReusableBuffer()
    private var dLogits = ReusableBuffer()

    public init(backend: Backend, labelSmoothing: Float = 0) throws {
        precondition((0..<1).contains(labelSmoothing), "label smoothing must be in [0, 1)")
        self.backend = backend
        self.labelSmoothing = labelSmoothing
        loss = try backend.makeTensor([1])
        correct = try backend.makeTensor([1])
    }

    /// logits `[N,K]`, labels `[N]` int32 on the backend's device.
    public func callAsFunction(logits: Tensor, labels: Tensor) {
        precondition(logits.shape.rank == 2 && labels.shape == Shape([logits.shape[0]]) && labels.dtype == .int32,
                     "cross-entropy expects logits [N,K] and int32 labels [N], got \(logits.shape), \(labels.shape) \(labels.dtype)")
        let p = probabilities.tensor(logits.shape, .float32, on: backend)
        backend.softmaxCrossEntropyForward(loss: loss, probabilities: p, correct: correct, logits: logits,
                                           labels: labels, labelSmoothing: labelSmoothing)
        self.labels = labels
        lastProbabilities = p
        lastLogitsDType = logits.dtype
    }

    /// The gradient of the mean loss with respect to the logits.
    public func backward() -> Tensor {
        guard let labels, let p = lastProbabilities, let dtype = lastLogitsDType else {
            preconditionFailure("SoftmaxCrossEntropy.backward before forward")
        }
        let dx = dLogits.tensor(p.shape, dtype, on: backend)
        backend.softmaxCrossEntropyBackward(dLogits: dx, probabilities: p, labels: labels, labelSmoothing: labelSmoothing)
        return dx
    }
}
