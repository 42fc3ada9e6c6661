#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A block of memory on one device, returned to its allocator when the last
/// tensor using it goes away.
///
/// For the CPU `address` is an ordinary host pointer. A GPU backend stores the
/// device address (`CUdeviceptr`) in the same field; such memory must never be
/// dereferenced on the host.
public final class Storage: @unchecked Sendable {
    public let device: Device
    public let byteCount: Int
    public let address: UnsafeMutableRawPointer
    private let allocator: DeviceAllocator

    init(device: Device, byteCount: Int, address: UnsafeMutableRawPointer, allocator: DeviceAllocator) {
        self.device = device
        self.byteCount = byteCount
        self.address = address
        self.allocator = allocator
    }

    deinit { allocator.release(address: address, byteCount: byteCount) }
}

/// Hands out device memory. Implementations: `HostAllocator` (the CPU) and,
/// in a GPU backend, one over `cuMemAlloc`; either can sit behind a
/// `CachingAllocator` so the steady state of training allocates nothing.
public protocol DeviceAllocator: AnyObject, Sendable {
    var device: Device { get }
    /// Memory for `byteCount` bytes, aligned to at least 64 bytes.
    func allocateRaw(byteCount: Int) throws -> UnsafeMutableRawPointer
    /// Gives back what `allocateRaw` returned.
    func release(address: UnsafeMutableRawPointer, byteCount: Int)
}

extension DeviceAllocator {
    public func allocate(byteCount: Int) throws -> Storage {
        let address = try allocateRaw(byteCount: byteCount)
        return Storage(device: device, byteCount: byteCount, address: address, allocator: self)
    }
}

public struct AllocationError: Error, CustomStringConvertible {
    public var device: Device
    public var byteCount: Int
    public var reason: String
    public var description: String { "could not allocate \(byteCount) bytes on \(device): \(reason)" }
}

/// 64-byte aligned host memory (a cache line, and what AVX-512 loads want).
public final class HostAllocator: DeviceAllocator, @unchecked Sendable {
    public static let shared = HostAllocator()
    public let device = Device.cpu

    public func allocateRaw(byteCount: Int) throws -> UnsafeMutableRawPointer {
        var pointer: UnsafeMutableRawPointer?
        let status = posix_memalign(&pointer, 64, max(byteCount, 64))
        guard status == 0, let pointer else {
            throw AllocationError(device: device, byteCount: byteCount, reason: "posix_memalign returned \(status)")
        }
        return pointer
    }

    public func release(address: UnsafeMutableRawPointer, byteCount: Int) { free(address) }
}
