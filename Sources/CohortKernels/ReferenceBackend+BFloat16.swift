import CohortTensor

/// bfloat16 arguments for the reference backend (`Note [Mixed precision]`):
/// every op converts its bfloat16 inputs to float32, computes in float32 as
/// usual, and rounds its outputs back to bfloat16 (round to nearest even).
/// That is the oracle for a GPU's bf16 kernels, which also compute in float32
/// and round once on output; float32 arguments pass through untouched, with
/// the same aliasing rules as before.
extension ReferenceBackend {
    /// `tensor` itself when it is float32, else a float32 copy of its values.
    func float32(_ tensor: Tensor) -> Tensor {
        guard tensor.dtype == .bfloat16 else { return tensor }
        let copy = try! makeTensor(tensor.shape, dtype: .float32)
        self.copy(tensor, to: copy)
        return copy
    }

    /// A float32 stand-in for an output: the output itself when it is
    /// float32; for a bfloat16 output a scratch tensor that `commit()`
    /// rounds into it (ops overwrite their outputs, so the scratch starts empty).
    final class Float32Output {
        let original: Tensor
        let tensor: Tensor
        private let backend: ReferenceBackend

        init(_ original: Tensor, _ backend: ReferenceBackend) {
            self.original = original
            self.backend = backend
            tensor = original.dtype == .bfloat16 ? try! backend.makeTensor(original.shape, dtype: .float32) : original
        }

        func commit() {
            if tensor !== original { backend.copy(tensor, to: original) }
        }
    }

    func float32Output(_ tensor: Tensor) -> Float32Output { Float32Output(tensor, self) }
}
