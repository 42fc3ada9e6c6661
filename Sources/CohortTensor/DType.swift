/// Element types a tensor can hold.
///
/// Training computes in `float32` on the CPU. `bfloat16` is the storage type of
/// the GPU's mixed-precision mode (activations and compute copies of weights;
/// master weights, batch-norm statistics and the optimiser stay `float32`).
/// `int32` holds labels, `uint8` raw images before augmentation, `int64` the
/// `num_batches_tracked` counters that PyTorch keeps in a state dict.
public enum DType: String, Sendable, CaseIterable, Codable {
    case float32
    case bfloat16
    case int32
    case int64
    case uint8

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .float32, .int32: return 4
        case .bfloat16: return 2
        case .int64: return 8
        case .uint8: return 1
        }
    }

    /// The dtype name safetensors uses (`F32`, `BF16`, ...).
    public var safetensorsName: String {
        switch self {
        case .float32: return "F32"
        case .bfloat16: return "BF16"
        case .int32: return "I32"
        case .int64: return "I64"
        case .uint8: return "U8"
        }
    }

    public init?(safetensorsName: String) {
        guard let match = DType.allCases.first(where: { $0.safetensorsName == safetensorsName }) else { return nil }
        self = match
    }
}

/// bfloat16 <-> float32 conversion with round-to-nearest-even, as PyTorch and
/// CUDA's `__float2bfloat16` do. NaN stays NaN.
public enum BFloat16 {
    @inlinable
    public static func fromFloat(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: (bits >> 16) | 0x40) }
        let roundingBias: UInt32 = 0x7FFF + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ roundingBias) >> 16)
    }

    @inlinable
    public static func toFloat(_ value: UInt16) -> Float {
        Float(bitPattern: UInt32(value) << 16)
    }
}
