import CohortKernels
import CohortTensor
import Foundation

/// cuDNN's algorithm choices kept on disk between runs.
///
/// Note [Convolution algorithm cache]: choosing an algorithm runs every
/// candidate twice (`cudnnFind*AlgorithmEx`, Note [Two search rounds]);
/// for ResNet-18's 33 (geometry, direction) pairs it is a large part of a
/// first epoch's extra time (on 4 x H200, commit 81940ad, the time-to-accuracy
/// run's first epoch took 1.6 s against 0.3 s for the next ones, search,
/// compilation and graph capture together; the search alone is not measured
/// yet), paid again by every run, every rank and every evaluation batch
/// shape (PyTorch's `cudnn.benchmark` pays it per process as well). The
/// winner depends only on the card, the cuDNN version, the geometry, the
/// dtype, the direction and whether TF32 is allowed, so it is written to
/// `<kernel cache>/convolution-algorithms.json` under a key made of all of
/// those, and later runs take it from there:
/// - A cached choice is checked before use: cuDNN must report a workspace
///   size for that algorithm on these descriptors, and it must fit the same
///   budget as a search's; otherwise the search runs as if nothing was cached.
/// - Several ranks may write at once: each write reads the file again,
///   merges its entries in and replaces the file atomically (a rename), so a
///   lost race loses at most a choice that is searched again next time.
/// - An unreadable or foreign file is ignored (and replaced by the next
///   write); `COHORT_KERNEL_CACHE=off` turns this cache off with the CUBIN one.
/// - The choice is the one Find timed fastest on some earlier run on this
///   card: runs that want their own timing can delete the file.
public final class ConvolutionAlgorithmCache: @unchecked Sendable {
    public struct Entry: Codable, Equatable, Sendable {
        public var algorithm: Int32
        public var mathType: Int32
        public var milliseconds: Float

        public init(algorithm: Int32, mathType: Int32, milliseconds: Float) {
            (self.algorithm, self.mathType, self.milliseconds) = (algorithm, mathType, milliseconds)
        }
    }

    public static let fileName = "convolution-algorithms.json"
    /// Bumped when the key or the entry changes meaning.
    static let formatVersion = 2  // 2: choices from two search rounds (Note [Two search rounds])

    public let url: URL?
    private let lock = NSLock()
    private var entries: [String: Entry]

    /// The cache file in `directory` (nil: nothing is kept).
    public init(directory: URL?) {
        url = directory?.appendingPathComponent(Self.fileName)
        entries = url.map(Self.read) ?? [:]
    }

    /// The key of one direction of one geometry on one card and library.
    public static func key(device: String, cudnnVersion: Int, geometry g: Conv2dGeometry, dtype: DType, direction: String,
                    allowsTF32: Bool) -> String {
        "v\(formatVersion)|\(device)|cudnn \(cudnnVersion)|n\(g.batch) c\(g.inputChannels) k\(g.outputChannels) "
            + "\(g.inputHeight)x\(g.inputWidth) r\(g.kernelSize) s\(g.stride) p\(g.padding)|\(dtype)|\(direction)|"
            + (allowsTF32 ? "tf32" : "no-tf32")
    }

    public func entry(_ key: String) -> Entry? {
        lock.lock()
        defer { lock.unlock() }
        return entries[key]
    }

    /// Records a choice and writes the file (merged with what other processes wrote).
    public func store(_ entry: Entry, for key: String) {
        lock.lock()
        defer { lock.unlock() }
        entries[key] = entry
        guard let url else { return }
        var merged = Self.read(url)
        merged.merge(entries) { _, ours in ours }
        entries = merged
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            let temporary = url.deletingLastPathComponent()
                .appendingPathComponent(".\(Self.fileName).\(ProcessInfo.processInfo.processIdentifier).\(UUID().uuidString)")
            try encoder.encode(merged).write(to: temporary)
            // rename(2): atomic, and it replaces a file that is there (FileManager's moves do not).
            if rename(temporary.path, url.path) != 0 { try? FileManager.default.removeItem(at: temporary) }
        } catch {
            // A cache that cannot be written only costs the next run its search.
        }
    }

    private static func read(_ url: URL) -> [String: Entry] {
        guard let data = try? Data(contentsOf: url),
              let entries = try? JSONDecoder().decode([String: Entry].self, from: data) else { return [:] }
        return entries
    }
}
