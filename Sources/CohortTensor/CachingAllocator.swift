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

    public init(underlying: DeviceAllocator) { self.underlying = underlying }

    public static func roundedSize(_ byteCount: Int) -> Int {
        let small = 512, large = 2 << 20
        if byteCount <= (1 << 20) { return max(small, (byteCount + small - 1) / small * small) }
        return (byteCount + large - 1) / large * large
    }

    public func allocateRaw(byteCount: Int) throws -> UnsafeMutableRawPointer {
        let size = Self.roundedSize(byteCount)
        lock.lock()
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
        freeBlocks[size, default: []].append(address)
        bytesInUse -= size
        bytesCached += size
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
