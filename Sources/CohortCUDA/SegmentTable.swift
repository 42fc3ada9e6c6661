import CohortKernels

/// The optimiser's segments as the fused kernels read them.
///
/// Note [Fused optimiser step]: one launch updates every parameter tensor.
/// The flat buffer is cut into chunks of at most `chunkSize` elements, none
/// straddling two segments; one block runs per chunk and finds its segment
/// (flags, LARS trust ratio) in the tables, as apex's and PyTorch's
/// multi-tensor apply do. For LARS, `lars_chunk_norms` first writes each
/// chunk's sums of squares of w and g, and `lars_trust` (one thread per
/// segment) adds its chunks in order (deterministic, no atomics) into the
/// trust ratio. The tables depend only on the segments, so they are packed
/// and uploaded once per distinct segments array and kept.
///
/// Layout, all int64 so the kernels index them without padding rules:
///     segments [segment][4] = flags (1 weight decay, 2 LARS), firstChunk, chunkCount, 0
///     chunks   [chunk][4]   = start, end (exclusive), segment, 0
public struct SegmentTable: Equatable, Sendable {
    public static let chunkSize = 8192

    public var segments: [Int64]
    public var chunks: [Int64]
    public var segmentCount: Int { segments.count / 4 }
    public var chunkCount: Int { chunks.count / 4 }

    /// Packs `segments` of a flat buffer of `parameterCount` elements. A
    /// segment outside the buffer is a programmer error (fatal, with the range).
    public init(_ segments: [ParameterSegment], parameterCount: Int, chunkSize: Int = SegmentTable.chunkSize) {
        var segmentRows: [Int64] = []
        var chunkRows: [Int64] = []
        segmentRows.reserveCapacity(segments.count * 4)
        for (index, segment) in segments.enumerated() {
            guard segment.offset >= 0 && segment.count >= 0 && segment.offset + segment.count <= parameterCount else {
                fatalError("CUDABackend.optimizerStep: segment \(segment.offset)..<\(segment.offset + segment.count) "
                           + "outside \(parameterCount) parameters")
            }
            let flags = (segment.weightDecay ? 1 : 0) | (segment.layerAdaptation ? 2 : 0)
            let firstChunk = chunkRows.count / 4
            var start = segment.offset
            let end = segment.offset + segment.count
            while start < end {
                let chunkEnd = min(start + chunkSize, end)
                chunkRows += [Int64(start), Int64(chunkEnd), Int64(index), 0]
                start = chunkEnd
            }
            segmentRows += [Int64(flags), Int64(firstChunk), Int64(chunkRows.count / 4 - firstChunk), 0]
        }
        self.segments = segmentRows
        self.chunks = chunkRows
    }
}
