/// An n-dimensional array: a shape and a dtype over a range of one `Storage`.
///
/// Tensors are views: several may share a storage (the flat parameter buffer
/// is one storage, each layer's weight a view into it). A tensor owns no
/// autograd state; layers pair each forward with an explicit backward (see
/// `Note [Explicit backward]` in docs/design.md).
///
/// Host access (`floats`, `toArray`, `copy(from:)`) is for CPU tensors only;
/// a GPU backend moves data with its own upload and download calls.
public final class Tensor: @unchecked Sendable, CustomStringConvertible {
    public let storage: Storage
    public let byteOffset: Int
    public let shape: Shape
    public let dtype: DType

    public init(storage: Storage, byteOffset: Int = 0, shape: Shape, dtype: DType) {
        precondition(byteOffset >= 0 && byteOffset + shape.elementCount * dtype.byteSize <= storage.byteCount,
                     "tensor \(shape) \(dtype) at byte \(byteOffset) does not fit a storage of \(storage.byteCount) bytes")
        self.storage = storage
        self.byteOffset = byteOffset
        self.shape = shape
        self.dtype = dtype
    }

    /// A new, uninitialised tensor from `allocator`.
    public convenience init(shape: Shape, dtype: DType = .float32, allocator: DeviceAllocator) throws {
        let storage = try allocator.allocate(byteCount: shape.elementCount * dtype.byteSize)
        self.init(storage: storage, shape: shape, dtype: dtype)
    }

    /// A host tensor holding `values` (float32).
    public convenience init(_ values: [Float], shape: Shape) {
        precondition(values.count == shape.elementCount, "\(values.count) values for shape \(shape)")
        // Host allocation failing is out of memory: a programmer-visible crash, as for Array.
        try! self.init(shape: shape, dtype: .float32, allocator: HostAllocator.shared)
        copy(from: values)
    }

    /// A zero-filled host tensor.
    public static func zeros(_ shape: Shape, dtype: DType = .float32) -> Tensor {
        let tensor = try! Tensor(shape: shape, dtype: dtype, allocator: HostAllocator.shared)
        tensor.rawPointer.initializeMemory(as: UInt8.self, repeating: 0, count: tensor.byteCount)
        return tensor
    }

    /// A host int32 tensor (labels).
    public static func int32(_ values: [Int32], shape: Shape? = nil) -> Tensor {
        let tensor = try! Tensor(shape: shape ?? Shape([values.count]), dtype: .int32, allocator: HostAllocator.shared)
        precondition(values.count == tensor.elementCount)
        values.withUnsafeBytes { tensor.rawPointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return tensor
    }

    public var device: Device { storage.device }
    public var elementCount: Int { shape.elementCount }
    public var byteCount: Int { elementCount * dtype.byteSize }
    public var rawPointer: UnsafeMutableRawPointer { storage.address + byteOffset }

    /// The elements of a CPU float32 tensor.
    public var floats: UnsafeMutableBufferPointer<Float> {
        precondition(device.isHost && dtype == .float32, "floats of a \(dtype) tensor on \(device)")
        return UnsafeMutableBufferPointer(start: rawPointer.assumingMemoryBound(to: Float.self), count: elementCount)
    }

    /// The elements of a CPU int32 tensor.
    public var int32s: UnsafeMutableBufferPointer<Int32> {
        precondition(device.isHost && dtype == .int32, "int32s of a \(dtype) tensor on \(device)")
        return UnsafeMutableBufferPointer(start: rawPointer.assumingMemoryBound(to: Int32.self), count: elementCount)
    }

    /// A view of `shape.elementCount` elements starting `elementOffset` elements in.
    public func view(elementOffset: Int, shape: Shape) -> Tensor {
        Tensor(storage: storage, byteOffset: byteOffset + elementOffset * dtype.byteSize, shape: shape, dtype: dtype)
    }

    /// The same elements under another shape of equal size.
    public func reshaped(_ newShape: Shape) -> Tensor {
        precondition(newShape.elementCount == elementCount, "cannot reshape \(shape) to \(newShape)")
        return Tensor(storage: storage, byteOffset: byteOffset, shape: newShape, dtype: dtype)
    }

    /// The values of a CPU tensor as float32 (bfloat16 and integers are converted).
    public func toArray() -> [Float] {
        precondition(device.isHost, "toArray of a tensor on \(device): download it through its backend")
        switch dtype {
        case .float32: return Array(floats)
        case .bfloat16:
            let source = rawPointer.assumingMemoryBound(to: UInt16.self)
            return (0..<elementCount).map { BFloat16.toFloat(source[$0]) }
        case .int32: return Array(int32s).map(Float.init)
        case .int64:
            let source = rawPointer.assumingMemoryBound(to: Int64.self)
            return (0..<elementCount).map { Float(source[$0]) }
        case .uint8:
            let source = rawPointer.assumingMemoryBound(to: UInt8.self)
            return (0..<elementCount).map { Float(source[$0]) }
        }
    }

    /// Overwrites a CPU float32 or bfloat16 tensor with `values`.
    public func copy(from values: [Float]) {
        precondition(device.isHost, "copy(from:) into a tensor on \(device)")
        precondition(values.count == elementCount, "\(values.count) values for \(shape)")
        switch dtype {
        case .float32:
            values.withUnsafeBufferPointer { floats.baseAddress!.update(from: $0.baseAddress!, count: values.count) }
        case .bfloat16:
            let target = rawPointer.assumingMemoryBound(to: UInt16.self)
            for index in values.indices { target[index] = BFloat16.fromFloat(values[index]) }
        default:
            preconditionFailure("copy(from: [Float]) into a \(dtype) tensor")
        }
    }

    public var description: String { "Tensor(\(shape), \(dtype), \(device))" }
}
