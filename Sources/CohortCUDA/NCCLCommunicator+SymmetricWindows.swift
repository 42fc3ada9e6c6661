import CCUDA
import CohortDistributed
import CohortTensor
import Foundation

/// Note [Symmetric wire buffer]
/// - On by default where every rank is on one machine and gradients travel
///   in bf16 (`cohort train --symmetric-windows auto|on|off`,
///   `SymmetricWindowPolicy`; an experiment behind COHORT_NCCL_SYMMETRIC=1
///   until 2026-11-27's sixth session). Why: NCCL's ordinary all-reduce
///   kernels hold 24 SMs for about 0.5 ms of a 2.75 ms ResNet-18 step at
///   128 images per GPU, and backward slows by a third of that beside them
///   (docs/results/2026-11-27-4xh200-bf16-wire). NCCL 2.27 added kernels
///   for memory every rank registered as a symmetric window (ncclMemAlloc,
///   then ncclCommWindowRegister with NCCL_WIN_COLL_SYMMETRIC), built for
///   lower latency on NVLink within a node.
/// - Measured (device step against one GPU in the same call, twice each):
///   4 x H200, 95e5699: 92.4/92.5% against 91.4/91.1% at 128 per GPU,
///   97.0/96.3% against 96.1/95.5% at 512. 2 x H200, e913420: 93.0/93.2%
///   against 92.2/92.2% at 128, 97.1/96.7% against 96.4/96.1% at 512. Real
///   data, 2 GPUs, global batch 1024: the same losses as without (a sum of
///   two then a halving rounds as NCCL's average does); NCCL on sockets
///   (P2P and SHM off) trains with it as without.
/// - With it, the gradient reducer's bf16 wire buffer is such a window
///   (`makeWireBuffer`): every rank allocates and registers it at the same
///   point of its setup, and every bucket is the same range of it on every
///   rank, as the symmetric kernels require.
/// - The symmetric kernels take sums only (2.27's notes: "sum as the
///   reduction operator"), so averaging buckets are summed and the widening
///   kernel on the communication stream multiplies by 1 / ranks; they
///   accumulate in fp32.
/// - Not across machines by default: the symmetric kernels serve
///   communicators without a network transport, so `auto` leaves multi-node
///   runs on the ordinary path (`on` still registers).
/// - Windows are deregistered before the communicator is destroyed
///   (`shutdown`, which every rank calls); the memory goes back with
///   ncclMemFree when the last tensor using it is gone. NVLink multicast
///   stays off (NCCL_NVLS_ENABLE=0 on the device machines): the windows are
///   P2P registrations.
struct SymmetricWindow {
    let base: CUdeviceptr
    let byteCount: Int
    let handle: UnsafeMutableRawPointer
}

/// Device memory from ncclMemAlloc (cuMem-backed, as NCCL's windows need).
final class NCCLMemoryAllocator: DeviceAllocator, @unchecked Sendable {
    let device: Device
    init(device: Device) { self.device = device }

    func allocateRaw(byteCount: Int) throws -> UnsafeMutableRawPointer {
        guard let alloc = nccl.ncclMemAlloc else {
            throw NCCLError.invalidArgument("this NCCL has no ncclMemAlloc (2.19 or newer)")
        }
        var pointer: UnsafeMutableRawPointer?
        try checkNCCL(alloc(&pointer, byteCount), "ncclMemAlloc", comm: nil)
        guard let pointer else { throw NCCLError.invalidArgument("ncclMemAlloc returned no memory for \(byteCount) bytes") }
        return pointer
    }

    func release(address: UnsafeMutableRawPointer, byteCount: Int) {
        _ = nccl.ncclMemFree?(address)
    }
}

extension NCCLCommunicator {
    /// The NCCL library this process would use, for `cohort info`: its
    /// version and whether it has symmetric windows (2.27+), or the load error.
    public static func libraryDescription() throws -> String {
        try loadNCCL()
        var code: Int32 = 0
        try checkNCCL(nccl.ncclGetVersion(&code), "ncclGetVersion")
        let windows = nccl.ncclCommWindowRegister != nil && nccl.ncclMemAlloc != nil
        return "NCCL \(versionText(Int(code))) (symmetric windows \(windows ? "available" : "missing: NCCL 2.27 or newer"))"
    }

    /// Whether the loaded NCCL has symmetric windows (2.27+): what
    /// `SymmetricWindowPolicy.auto` asks.
    public static var hasSymmetricWindows: Bool {
        (try? loadNCCL()) != nil && nccl.ncclCommWindowRegister != nil && nccl.ncclCommWindowDeregister != nil
            && nccl.ncclMemAlloc != nil && nccl.ncclMemFree != nil
    }

    /// A symmetric bf16 window of `elementCount` values (Note [Symmetric wire
    /// buffer]) when `registersWireBuffer`; nil otherwise.
    public func makeWireBuffer(elementCount: Int) throws -> Tensor? {
        guard registersWireBuffer else { return nil }
        guard let register = nccl.ncclCommWindowRegister, nccl.ncclCommWindowDeregister != nil,
              nccl.ncclMemAlloc != nil, nccl.ncclMemFree != nil else {
            throw NCCLError.invalidArgument("symmetric windows need NCCL 2.27 or newer (ncclCommWindowRegister); this is \(versionText)")
        }
        lock.lock()
        defer { lock.unlock() }
        guard let comm else { throw NCCLError.invalidArgument("makeWireBuffer after shutdown() or abort") }
        backend.context.makeCurrent()
        let byteCount = elementCount * DType.bfloat16.byteSize
        let storage = try NCCLMemoryAllocator(device: backend.device).allocate(byteCount: byteCount)
        var handle: UnsafeMutableRawPointer?
        try checkNCCL(register(comm, storage.address, byteCount, &handle, Int32(COHORT_NCCL_WIN_COLL_SYMMETRIC)),
                      "ncclCommWindowRegister", comm: comm)
        guard let handle else { throw NCCLError.invalidArgument("ncclCommWindowRegister returned no window") }
        symmetricWindows.append(SymmetricWindow(base: CUdeviceptr(UInt(bitPattern: storage.address)),
                                                byteCount: byteCount, handle: handle))
        return Tensor(storage: storage, shape: [elementCount], dtype: .bfloat16)
    }

    /// Whether a wire buffer is registered as a symmetric window (for the run's header).
    public var usesSymmetricWindows: Bool {
        lock.lock()
        defer { lock.unlock() }
        return !symmetricWindows.isEmpty
    }

    /// Whether `tensor` lies inside a registered symmetric window.
    public func sumsOnly(through wire: Tensor) -> Bool { isInSymmetricWindow(wire) }

    func isInSymmetricWindow(_ tensor: Tensor) -> Bool {
        let start = tensor.devicePointer, end = start + CUdeviceptr(tensor.byteCount)
        return symmetricWindows.contains { start >= $0.base && end <= $0.base + CUdeviceptr($0.byteCount) }
    }

    /// Deregisters every window (collective: every rank's shutdown does it).
    func deregisterSymmetricWindows(_ comm: ncclComm_t) throws {
        guard let deregister = nccl.ncclCommWindowDeregister else { return }
        for window in symmetricWindows {
            try checkNCCL(deregister(comm, window.handle), "ncclCommWindowDeregister", comm: comm)
        }
        symmetricWindows = []
    }
}
