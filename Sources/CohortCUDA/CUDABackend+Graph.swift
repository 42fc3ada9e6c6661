import Foundation
import CCUDA
import CohortKernels
import CohortTensor

/// Graph capture, pinned staging and the upload events behind them; see
/// `Note [Graph capture]` in docs/design.md for the rules a captured step follows.
extension CUDABackend {
    /// Captures `body` on the backend's stream in thread-local mode, then
    /// instantiates the graph. Nothing `body` enqueues runs now.
    ///
    /// Why thread-local: a call on *this* thread that cannot be captured
    /// (cuMemAlloc, a stream or device synchronisation, a legacy-stream copy)
    /// then fails and invalidates the capture instead of being silently
    /// reordered, as relaxed mode would allow; while other threads (the data
    /// loader, a watchdog, a pinned allocation for the next batch) stay free
    /// to call CUDA, which global mode would turn into errors.
    ///
    /// Checked, each failing with its name: the caching allocator is frozen
    /// (an allocation throws, a release fails the capture), the raw
    /// allocator refuses (cuDNN's algorithm search), and the stream refuses
    /// host waits, uploads, downloads and host-learning-rate optimizer steps.
    /// Graphs written by COHORT_GRAPH_DOT so far (names the files).
    nonisolated(unsafe) static var graphsPrinted = 0

    public func captureGraph(_ body: () throws -> Void) throws -> BackendGraph? {
        let d = driver
        guard let begin = d.cuStreamBeginCapture_v2, let end = d.cuStreamEndCapture,
              let instantiate = d.cuGraphInstantiateWithFlags, let destroyGraph = d.cuGraphDestroy,
              d.cuGraphLaunch != nil, d.cuGraphExecDestroy != nil else { return nil }
        require(!stream.isCapturing, "captureGraph: a capture is already in progress")
        context.makeCurrent()
        // Surfaces a fault of earlier work here, not as a failed capture.
        stream.synchronize("before graph capture")

        allocator.freeze(for: "CUDA graph capture")
        rawAllocator.isCapturing = true
        stream.isCapturing = true
        do {
            try checkCUDA(begin(stream.stream, Int32(COHORT_CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)),
                          "cuStreamBeginCapture_v2")
        } catch {
            stream.isCapturing = false
            rawAllocator.isCapturing = false
            _ = allocator.thaw()
            throw error
        }
        var bodyError: Error?
        do { try body() } catch { bodyError = error }
        var graph: CUgraph?
        let endResult = end(stream.stream, &graph)
        stream.isCapturing = false
        rawAllocator.isCapturing = false
        let released = allocator.thaw()
        defer { if let graph { _ = destroyGraph(graph) } }

        if let bodyError { throw bodyError }
        try checkCUDA(endResult, "cuStreamEndCapture",
                      "an operation in the captured step was not capturable (CAPTURE_INVALIDATED: an unsafe call "
                      + "on this thread, or work from another stream joined in)")
        guard released.isEmpty else {
            throw CUDAGraphError("the step released \(released.count) device blocks during capture "
                                 + "(\(released.reduce(0, +)) bytes): a tensor it made died, so the graph would "
                                 + "use freed memory; keep step buffers alive (ReusableBuffer)")
        }
        guard let graph else { throw CUDAGraphError("cuStreamEndCapture returned no graph") }
        var nodeCount = 0
        if let getNodes = d.cuGraphGetNodes {
            try checkCUDA(getNodes(graph, nil, &nodeCount), "cuGraphGetNodes")
        }
        guard nodeCount > 0 || d.cuGraphGetNodes == nil else {
            throw CUDAGraphError("the captured step enqueued no work on the backend's stream")
        }
        let environment = ProcessInfo.processInfo.environment
        if let folder = environment["COHORT_GRAPH_DOT"], let print = d.cuGraphDebugDotPrint {
            // A diagnostic: the captured step as Graphviz text, one file per capture and process.
            Self.graphsPrinted += 1
            let path = "\(folder)/graph-\(ProcessInfo.processInfo.processIdentifier)-\(device.index)-\(Self.graphsPrinted).dot"
            try checkCUDA(print(graph, path, UInt32(COHORT_CU_GRAPH_DEBUG_DOT_FLAGS_VERBOSE)), "cuGraphDebugDotPrint", path)
        }
        // COHORT_GRAPH_NODE_PRIORITY=1, an experiment: kernel nodes keep the priority of the
        // stream they were captured from (the all-reduces' high one) instead of taking the
        // launch stream's, which a graph otherwise applies to every node.
        let flags = environment["COHORT_GRAPH_NODE_PRIORITY"] == "1"
            ? UInt64(COHORT_CUDA_GRAPH_INSTANTIATE_FLAG_USE_NODE_PRIORITY) : 0
        var executable: CUgraphExec?
        try checkCUDA(instantiate(&executable, graph, flags), "cuGraphInstantiateWithFlags", "\(nodeCount) nodes")
        guard let executable else { throw CUDAGraphError("cuGraphInstantiateWithFlags returned no executable") }
        let result = CUDAGraph(context: context, stream: stream, executable: executable, allocator: allocator,
                               nodeCount: nodeCount)
        // Moves the graph's resources to the device now, so the first replay is not slower than the rest.
        if let upload = d.cuGraphUpload {
            try checkCUDA(upload(executable, stream.stream), "cuGraphUpload", "\(nodeCount) nodes")
        }
        return result
    }

    /// A host tensor in page-locked memory (`cuMemHostAlloc`, portable), so
    /// `upload` from it is a true asynchronous DMA; see `waitForUploads(from:)`
    /// before writing it again. Falls back to ordinary memory where the
    /// driver lacks `cuMemHostAlloc`.
    public func makeHostStagingTensor(_ shape: Shape, dtype: DType) throws -> Tensor {
        guard let pinned = pinnedHostAllocator else {
            return try Tensor(shape: shape, dtype: dtype, allocator: HostAllocator.shared)
        }
        return try Tensor(shape: shape, dtype: dtype, allocator: pinned)
    }

    public func waitForUploads(from host: Tensor) {
        pinnedHostAllocator?.waitForUploads(from: host.storage)
    }
}
