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
              d.cuGraphInstantiateWithFlags != nil, let destroyGraph = d.cuGraphDestroy,
              d.cuGraphLaunch != nil, d.cuGraphExecDestroy != nil else { return nil }
        require(!stream.isCapturing, "captureGraph: a capture is already in progress")
        context.makeCurrent()
        try prepareSideWork()
        // Surfaces a fault of earlier work here, not as a failed capture.
        stream.synchronize("before graph capture")

        captureSerial += 1
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
        splitGraphParts = []
        splitGraphActions = []
        do { try body() } catch { bodyError = error }
        var last: CUgraph?
        let endResult = end(stream.stream, &last)
        stream.isCapturing = false
        rawAllocator.isCapturing = false
        let released = allocator.thaw()
        var parts = splitGraphParts
        let actions = splitGraphActions
        splitGraphParts = []
        splitGraphActions = []
        if let last { parts.append(last) }
        defer { for part in parts { _ = destroyGraph(part) } }

        if let bodyError { throw bodyError }
        try checkCUDA(endResult, "cuStreamEndCapture",
                      "an operation in the captured step was not capturable (CAPTURE_INVALIDATED: an unsafe call "
                      + "on this thread, or work from another stream joined in)")
        guard released.isEmpty else {
            throw CUDAGraphError("the step released \(released.count) device blocks during capture "
                                 + "(\(released.reduce(0, +)) bytes): a tensor it made died, so the graph would "
                                 + "use freed memory; keep step buffers alive (ReusableBuffer)")
        }
        guard last != nil else { throw CUDAGraphError("cuStreamEndCapture returned no graph") }
        var executables: [CUDAGraph] = []
        for graph in parts {
            executables.append(try instantiateCapturedGraph(graph))
        }
        if SideWork.mode != nil {
            // The diagnostic's work after the step's last part (CUDABackend+SideWork.swift).
            var withSide = actions + Array(repeating: nil, count: max(executables.count - actions.count, 0))
            let last = executables.count - 1
            let after = withSide[last]
            withSide[last] = { [unowned self] in try after?(); try self.runSideWork() }
            return CUDAGraphSequence(parts: executables, actions: withSide)
        }
        if executables.count == 1 { return executables[0] }
        return CUDAGraphSequence(parts: executables, actions: actions)
    }

    /// Note [Split step graphs]
    /// - A step captured whole is one graph; with an all-reduce forked onto
    ///   the communication stream it is no longer one chain of nodes. On
    ///   4 x H200 the forward of such a step (where no all-reduce runs) took
    ///   0.05-0.06 ms longer than the same kernels, same grids, in the
    ///   one-chain graph of 1 GPU or 4 with `--no-communication`; the
    ///   question was whether the graph's shape costs that.
    /// - `splitGraphCapture` ends the graph recorded so far and begins the
    ///   next on the same stream, in the same capture (the allocator stays
    ///   frozen); the result replays the parts in order, one launch each
    ///   (`CUDAGraphSequence`). A split is only legal where every forked
    ///   stream has joined back (between forward and backward, for a reducer).
    /// - Measured (`cohort train --split-step-graph`, 4 x H200, 2026-11-27, the
    ///   split of 977d6ba on 2f0bb54, against the default and 1 GPU in the same
    ///   call, docs/results/2026-11-27-fixed-step-tax): forward alone in its own
    ///   one-chain graph took as long as inside the whole step (1.150 against
    ///   1.151 ms at 4 x 128; 1-GPU 1.094), and weak scaling did not move
    ///   (93.0/93.4% against 93.3/93.5%). The graph's shape is not the cost,
    ///   so the split stays an experiment, off by default.
    /// - `action`, if given, runs on the host after this part's launch at
    ///   every replay, before the next part's (Note [All-reduces launched by
    ///   the host] in NCCLCommunicator+HostLaunch.swift: it enqueues the
    ///   step's all-reduces on another stream, outside any graph).
    public func splitGraphCapture(thenRunning action: (() throws -> Void)? = nil) throws {
        guard stream.isCapturing else { return }
        let d = driver
        guard let begin = d.cuStreamBeginCapture_v2, let end = d.cuStreamEndCapture else { return }
        var graph: CUgraph?
        try checkCUDA(end(stream.stream, &graph), "cuStreamEndCapture", "splitting a graph capture "
                      + "(work forked onto another stream must join back before a split)")
        guard let graph else { throw CUDAGraphError("cuStreamEndCapture returned no graph at a split") }
        splitGraphParts.append(graph)
        splitGraphActions.append(action)
        try checkCUDA(begin(stream.stream, Int32(COHORT_CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)),
                      "cuStreamBeginCapture_v2", "after a split")
    }

    /// Counts, rewrites (Note [Memset nodes as kernels]), prints (COHORT_GRAPH_DOT), instantiates and
    /// uploads one captured graph.
    private func instantiateCapturedGraph(_ graph: CUgraph) throws -> CUDAGraph {
        let d = driver
        guard let instantiate = d.cuGraphInstantiateWithFlags else {
            throw CUDAGraphError("the driver lacks cuGraphInstantiateWithFlags")
        }
        var nodeCount = 0
        if let getNodes = d.cuGraphGetNodes {
            try checkCUDA(getNodes(graph, nil, &nodeCount), "cuGraphGetNodes")
        }
        guard nodeCount > 0 || d.cuGraphGetNodes == nil else {
            throw CUDAGraphError("the captured step enqueued no work on the backend's stream")
        }
        let memsetsReplaced = try replaceMemsetNodes(in: graph)
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
                               nodeCount: nodeCount, memsetsReplaced: memsetsReplaced)
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
