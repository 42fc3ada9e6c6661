import CCUDA
import CohortTensor

/// bfloat16 mixed precision on the GPU (`Note [Mixed precision]` in
/// docs/design.md): which dtype combinations each op accepts, and how a
/// kernel is picked for them.
///
/// Note [CUDA bf16 dtypes]: in bf16 mode the layers pass activations, their
/// gradients and conv/linear weights (the store's compute copy) as bfloat16,
/// and everything else as float32: batch-norm scale, shift and statistics,
/// probabilities, the loss, weight and bias gradients (the flat float32
/// gradient buffer), optimiser state. Every op checks that split and stops
/// with the op's name and the dtypes it was given for any other mix, so a
/// layer passing the wrong dtype fails loudly instead of reading bf16 bits as
/// float32. Kernels compute in float32 (sums in double where the float32
/// path does) and round each bf16 output once, to nearest even, as the
/// reference does (ReferenceBackend+BFloat16.swift).
extension CUDABackend {
    public var supportsBFloat16: Bool { true }

    /// The activation dtype of an op: every tensor in `tensors` has it, and it
    /// is float32 or bfloat16; anything else stops with the op, the names and the dtypes.
    func activationDType(_ op: String, _ tensors: [(name: String, tensor: Tensor)]) -> DType {
        let dtype = tensors[0].tensor.dtype
        let consistent = tensors.allSatisfy { $0.tensor.dtype == dtype } && (dtype == .float32 || dtype == .bfloat16)
        if !consistent {
            let given = tensors.map { "\($0.name) \($0.tensor.dtype)" }.joined(separator: ", ")
            fatalError("CUDABackend.\(op): unsupported dtype combination (\(given)); expected all float32 or all "
                       + "bfloat16 (see Note [CUDA bf16 dtypes])")
        }
        return dtype
    }

    /// `base` for float32, `base_bf16` for bfloat16 (the kernels' naming, see Kernels+Elementwise.swift).
    func kernelName(_ base: String, _ dtype: DType) -> String {
        dtype == .bfloat16 ? base + "_bf16" : base
    }

    /// Whether bf16 kernels may take eight elements per 16-byte access
    /// (Note [Vector bf16 access]): a count that is a multiple of 8 and
    /// every pointer 16-byte aligned.
    func vectorizable(count: Int, _ tensors: Tensor...) -> Bool {
        count % 8 == 0 && tensors.allSatisfy { $0.devicePointer % 16 == 0 }
    }

    /// Launches elementwise kernel `base` over `count` elements for the
    /// activation dtype: the float32 kernel, `base_bf16x8` over count / 8
    /// units when `vectorizable` (one wave, four units per thread per pass:
    /// `Kernels.vectorElementwise`), else `base_bf16`. `arguments(n)` gives
    /// the kernel's arguments for the element (or unit) count n.
    func elementwise(_ module: KernelSource, _ base: String, dtype: DType, count: Int, vectorizable: Bool,
                     _ arguments: (Int) -> [KernelArgument]) {
        switch dtype {
        case .float32:
            kernels.elementwise(module, base, count: count, arguments(count))
        case .bfloat16 where vectorizable:
            kernels.vectorElementwise(module, base + "_bf16x8", units: count / 8, arguments(count / 8))
        default:
            kernels.elementwise(module, base + "_bf16", count: count, arguments(count))
        }
    }
}
