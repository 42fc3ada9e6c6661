import Foundation

/// Keeps released blocks and hands them out again for requests of the same
/// rounded size, so a training loop whose shapes repeat every step stops
/// calling the underlying allocator after its first step (on a GPU,
/// `cuMemAlloc` synchronises the device; on the CPU, large `malloc`s fault in
/// fresh pages).
///
/// Note [Caching allocator]: sizes are rounded up to a multiple of 512 bytes
/// below 1 MiB and of 2 MiB above it, PyTorch's small and large pools, so
/// slightly different requests share blocks. Blocks are never split; memory is
/// returned to the device only by `emptyCache()`.
public final class CachingAllocator: DeviceAllocator, @unchecked Sendable {
    public let underlying: DeviceAllocator
    public var device: Device { underlying.device }

    private let lock = NSLock()
    private var freeBlocks: [Int: [UnsafeMutableRawPointer]] = [:]
    private var sizeOfBlock: [UnsafeMutableRawPointer: Int] = [:]
    public private(set) var bytesInUse = 0
    public private(set) var bytesCached = 0
    public private(set) var peakBytesInUse = 0
    /// Calls that reached the underlying allocator.
    public private(set) var underlyingAllocations = 0
    /// Allocations and releases so far, cache hits included: a captured graph
    /// is stale once this moves (see `Note [Graph capture]` in docs/design.md).
    public private(set) var events = 0
    /// While set (during a graph capture), allocating throws and releases are recorded.
    private var frozenFor: String?
    private var releasesWhileFrozen: [Int] = []

    public init(underlying: DeviceAllocator) { self.underlying = underlying }

    /// Starts a new high-water mark from what is in use now (to measure one workload's peak).
    public func resetPeakBytesInUse() {
        lock.lock()
        defer { lock.unlock() }
        peakBytesInUse = bytesInUse
    }

    public static func roundedSize(_ byteCount: Int) -> Int {
        let small = 512, large = 2 << 20
        if byteCount <= (1 << 20) { return max(small, (byteCount + small - 1) / small * small) }
        return (byteCount + large - 1) / large * large
    }

    public func allocateRaw(byteCount: Int) throws -> UnsafeMutableRawPointer {
        let size = Self.roundedSize(byteCount)
        lock.lock()
        if let frozenFor {
            lock.unlock()
            throw AllocationError(device: device, byteCount: byteCount, reason:
                "allocation during \(frozenFor): a captured step must allocate nothing (run more eager warm-up "
                + "steps, or find the buffer that is not reused; see Note [Graph capture] in docs/design.md)")
        }
        events += 1
        if var blocks = freeBlocks[size], let block = blocks.popLast() {
            freeBlocks[size] = blocks
            bytesCached -= size
            bytesInUse += size
            peakBytesInUse = max(peakBytesInUse, bytesInUse)
            lock.unlock()
            return block
        }
        lock.unlock()
        let block = try underlying.allocateRaw(byteCount: size)
        lock.lock()
        sizeOfBlock[block] = size
        underlyingAllocations += 1
        bytesInUse += size
        peakBytesInUse = max(peakBytesInUse, bytesInUse)
        lock.unlock()
        return block
    }

    public func release(address: UnsafeMutableRawPointer, byteCount: Int) {
        lock.lock()
        defer { lock.unlock() }
        guard let size = sizeOfBlock[address] else {
            preconditionFailure("CachingAllocator: release of a block it did not allocate")
        }
        if frozenFor != nil { releasesWhileFrozen.append(size) }
        events += 1
        freeBlocks[size, default: []].append(address)
        bytesInUse -= size
        bytesCached += size
    }

    /// Makes every allocation throw, naming `purpose`, and records releases,
    /// until `thaw()`: a graph capture must neither take nor give back memory.
    public func freeze(for purpose: String) {
        lock.lock()
        defer { lock.unlock() }
        precondition(frozenFor == nil, "CachingAllocator.freeze(for: \(purpose)) while frozen for \(frozenFor!)")
        frozenFor = purpose
        releasesWhileFrozen = []
    }

    /// Ends `freeze`, returning the (rounded) sizes of blocks released meanwhile.
    public func thaw() -> [Int] {
        lock.lock()
        defer { lock.unlock() }
        frozenFor = nil
        defer { releasesWhileFrozen = [] }
        return releasesWhileFrozen
    }

    /// Returns every cached block to the underlying allocator.
    public func emptyCache() {
        lock.lock()
        defer { lock.unlock() }
        for (size, blocks) in freeBlocks {
            for block in blocks {
                underlying.release(address: block, byteCount: size)
                sizeOfBlock[block] = nil
            }
        }
        freeBlocks = [:]
        bytesCached = 0
    }
}
