import CohortKernels
import CohortTensor

/// The dtype a model computes in (`Note [Mixed precision]`): activations
/// and the weights convolutions and linear layers read. Master weights,
/// gradients, optimiser state and batch-norm statistics stay float32.
public enum Precision: String, CaseIterable, Sendable {
    case float32 = "fp32"
    case bfloat16 = "bf16"

    public var dtype: DType { self == .float32 ? .float32 : .bfloat16 }
}

/// Whether a forward pass trains (batch statistics, activations kept for
/// backward) or evaluates (running statistics).
public enum ForwardMode: Sendable {
    case training
    case evaluation
    /// Batch statistics as in training, each batch norm's running statistics
    /// updated with `momentum` (instead of its own), nothing kept for a
    /// backward and no batch counted: the passes of a statistics
    /// recalibration (Note [Batch-norm recalibration] in Trainer+Recalibration.swift).
    case recalibration(momentum: Float)
}

/// A tensor a layer reuses from step to step, reallocated only when the
/// batch shape changes: the steady state of training allocates nothing, and
/// the addresses a CUDA graph captures stay valid.
struct ReusableBuffer {
    private var tensor: Tensor?

    mutating func tensor(_ shape: Shape, _ dtype: DType, on backend: Backend) -> Tensor {
        if let tensor, tensor.shape == shape, tensor.dtype == dtype { return tensor }
        // Running out of device memory for an activation is not recoverable mid-step.
        let fresh = try! backend.makeTensor(shape, dtype: dtype)
        tensor = fresh
        return fresh
    }
}
