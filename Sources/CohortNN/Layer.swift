import CohortKernels
import CohortTensor

/// Whether a forward pass trains (batch statistics, activations kept for
/// backward) or evaluates (running statistics).
public enum ForwardMode: Sendable {
    case training
    case evaluation
}

/// A tensor a layer reuses from step to step, reallocated only when the
/// batch shape changes: the steady state of training allocates nothing, and
/// the addresses a CUDA graph captures stay valid.
struct ReusableBuffer {
    private var tensor: Tensor?

    mutating func tensor(_ shape: Shape, on backend: Backend) -> Tensor {
        if let tensor, tensor.shape == shape { return tensor }
        // Running out of device memory for an activation is not recoverable mid-step.
        let fresh = try! backend.makeTensor(shape, dtype: .float32)
        tensor = fresh
        return fresh
    }
}
