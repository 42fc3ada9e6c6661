import CCUDA
import CohortTensor
import Foundation

/// Page-locked host memory (`cuMemHostAlloc` with PORTABLE, so any context
/// may copy from it), for staging batches: a copy from pinned memory is a
/// true asynchronous DMA, where a copy from pageable memory is staged through
/// a driver buffer by the CPU before the call returns.
///
/// The price of asynchrony: the host must not write a pinned buffer while an
/// upload from it is pending. Each block carries an event that `upload`
/// records after each copy from it; `waitForUploads(from:)` waits on it
/// (`BatchStager` keeps two staging slots, so that wait is normally over).
/// Pinning is slow (it maps pages in the driver): allocate staging tensors
/// once per batch shape.
final class PinnedHostAllocator: DeviceAllocator, @unchecked Sendable {
    let context: CUDAContext
    let device = Device.cpu
    private let lock = NSLock()
    /// The upload event of each live block, by its address.
    private var events: [UnsafeMutableRawPointer: CUevent] = [:]

    /// Nil where the driver lacks the calls.
    init?(context: CUDAContext) {
        let d = driver
        guard d.cuMemHostAlloc != nil, d.cuMemFreeHost != nil, d.cuEventCreate != nil, d.cuEventRecord != nil,
              d.cuEventSynchronize != nil, d.cuEventDestroy_v2 != nil else { return nil }
        self.context = context
    }

    func allocateRaw(byteCount: Int) throws -> UnsafeMutableRawPointer {
        let d = driver
        context.makeCurrent()
        var pointer: UnsafeMutableRawPointer?
        try checkCUDA(d.cuMemHostAlloc!(&pointer, max(byteCount, 64), UInt32(COHORT_CU_MEMHOSTALLOC_PORTABLE)),
                      "cuMemHostAlloc", "\(byteCount) pinned bytes")
        guard let pointer else {
            throw CUDAError(call: "cuMemHostAlloc", code: 0, name: "CUDA_SUCCESS", message: "returned a null pointer")
        }
        var event: CUevent?
        do {
            try checkCUDA(d.cuEventCreate!(&event, UInt32(COHORT_CU_EVENT_DISABLE_TIMING)), "cuEventCreate")
        } catch {
            _ = d.cuMemFreeHost!(pointer)
            throw error
        }
        lock.lock()
        events[pointer] = event!
        lock.unlock()
        return pointer
    }

    func release(address: UnsafeMutableRawPointer, byteCount: Int) {
        let d = driver
        context.makeCurrent()
        lock.lock()
        let event = events.removeValue(forKey: address)
        lock.unlock()
        guard let event else { preconditionFailure("PinnedHostAllocator: release of a block it did not allocate") }
        mustSucceed {
            // A pending DMA must finish before its source is unpinned and freed.
            try checkCUDA(d.cuEventSynchronize!(event), "cuEventSynchronize", "before freeing \(byteCount) pinned bytes")
            try checkCUDA(d.cuEventDestroy_v2!(event), "cuEventDestroy_v2")
            try checkCUDA(d.cuMemFreeHost!(address), "cuMemFreeHost", "\(byteCount) bytes")
        }
    }

    private func event(of storage: Storage) -> CUevent? {
        lock.lock()
        defer { lock.unlock() }
        return events[storage.address]
    }

    /// Whether `storage` is one of this allocator's blocks.
    func owns(_ storage: Storage) -> Bool { event(of: storage) != nil }

    /// After enqueueing a copy from `storage` on `stream`: marks the point the host must wait for.
    func recordUpload(from storage: Storage, on stream: CUDAStream) {
        guard let event = event(of: storage) else { return }
        mustSucceed { try checkCUDA(driver.cuEventRecord!(event, stream.stream), "cuEventRecord", "after a pinned upload") }
    }

    /// Returns once every copy recorded from `storage` has read it (at once for other memory).
    func waitForUploads(from storage: Storage) {
        guard let event = event(of: storage) else { return }
        context.makeCurrent()
        mustSucceed { try checkCUDA(driver.cuEventSynchronize!(event), "cuEventSynchronize", "before reusing a pinned buffer") }
    }
}
