import CCUDA
import CohortTensor

/// Device memory straight from the driver (`cuMemAlloc_v2`/`cuMemFree_v2`),
/// always used behind a `CachingAllocator`: `cuMemAlloc` and `cuMemFree`
/// synchronise the device, so the steady state of training must not reach
/// them.
///
/// `Storage.address` holds the `CUdeviceptr` bit pattern; it is never
/// dereferenced on the host (see `devicePointer`).
///
/// Note [Stream-ordered reuse]: the caching allocator hands a released
/// block to the next request at once, while kernels enqueued earlier may
/// still be reading or writing it. That is safe because the backend has a
/// single stream: any work that uses the block for its new owner is enqueued
/// after the work of its old owner, and a stream runs its work in order. A
/// second stream (copies overlapping compute, NCCL) breaks this: a block
/// freed on one stream must then wait for an event before the other reuses
/// it, as PyTorch's `recordStream` does.
final class CUDADeviceAllocator: DeviceAllocator, @unchecked Sendable {
    let context: CUDAContext
    var device: Device { .cuda(context.deviceIndex) }

    /// Set during a graph capture: `cuMemAlloc`/`cuMemFree` would synchronise
    /// (cuDNN's algorithm search allocates here directly, past the cache).
    var isCapturing = false

    init(context: CUDAContext) { self.context = context }

    func allocateRaw(byteCount: Int) throws -> UnsafeMutableRawPointer {
        if isCapturing {
            throw CUDAError(call: "cuMemAlloc_v2", code: 900, name: "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED",
                            message: "\(byteCount) bytes requested during CUDA graph capture (a cuDNN algorithm search "
                                + "or a cache miss; run eager warm-up steps first, Note [Graph capture])")
        }
        context.makeCurrent()
        var pointer: CUdeviceptr = 0
        let result = driver.cuMemAlloc_v2(&pointer, max(byteCount, 1))
        if result != 0 {
            let memory = (try? context.memoryInfo()).map { ", \($0.free >> 20) MiB free of \($0.total >> 20) MiB" } ?? ""
            try checkCUDA(result, "cuMemAlloc_v2", "\(byteCount) bytes on \(device)\(memory)")
        }
        guard let address = UnsafeMutableRawPointer(bitPattern: UInt(pointer)) else {
            throw CUDAError(call: "cuMemAlloc_v2", code: 0, name: "CUDA_SUCCESS", message: "returned address 0")
        }
        return address
    }

    func release(address: UnsafeMutableRawPointer, byteCount: Int) {
        if isCapturing { fatalError("CUDABackend: cuMemFree_v2 of \(byteCount) bytes during CUDA graph capture") }
        context.makeCurrent()
        mustSucceed {
            try checkCUDA(driver.cuMemFree_v2(CUdeviceptr(UInt(bitPattern: address))), "cuMemFree_v2", "\(byteCount) bytes")
        }
    }
}

extension Tensor {
    /// The device address of a GPU tensor's first element (never dereference it on the host).
    var devicePointer: CUdeviceptr { CUdeviceptr(UInt(bitPattern: rawPointer)) }
}

/// One buffer per purpose (the cuDNN workspace, batch-norm partial sums, a
/// transposed weight) that grows to the largest size asked for and is then
/// reused by every call: growth happens only at the first use of a larger
/// shape, so the steady state allocates nothing (a CUDA graph capture needs
/// that). The old block goes back to the caching allocator, which is safe
/// by Note [Stream-ordered reuse].
final class ScratchBuffer {
    let purpose: String
    private let allocator: DeviceAllocator
    private(set) var storage: Storage?

    init(_ purpose: String, allocator: DeviceAllocator) {
        self.purpose = purpose
        self.allocator = allocator
    }

    var byteCount: Int { storage?.byteCount ?? 0 }

    /// At least `byteCount` bytes (and at least 256, so the address is never null).
    func pointer(byteCount: Int) -> CUdeviceptr {
        if byteCount > self.byteCount || storage == nil {
            storage = nil
            storage = mustSucceed { try allocator.allocate(byteCount: max(byteCount, 256)) }
        }
        return CUdeviceptr(UInt(bitPattern: storage!.address))
    }
}
