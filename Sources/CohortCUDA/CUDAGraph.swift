import CCUDA
import CohortKernels
import CohortTensor

/// An instantiated CUDA graph (`CUgraphExec`) of one captured step, launched
/// on the backend's stream; see `CUDABackend.captureGraph` and
/// `Note [Graph capture]` in docs/design.md.
final class CUDAGraph: BackendGraph {
    private let context: CUDAContext
    private let stream: CUDAStream
    private let executable: CUgraphExec
    private let allocator: CachingAllocator
    /// `allocator.events` when the capture ended: the graph's addresses are
    /// known to be owned by the tensors that were captured until it moves.
    private let allocatorEvents: Int
    let nodeCount: Int
    /// Memset nodes that became kernel nodes (Note [Memset nodes as kernels]).
    let memsetsReplaced: Int

    init(context: CUDAContext, stream: CUDAStream, executable: CUgraphExec, allocator: CachingAllocator, nodeCount: Int,
         memsetsReplaced: Int = 0) {
        self.context = context
        self.stream = stream
        self.executable = executable
        self.allocator = allocator
        self.nodeCount = nodeCount
        self.memsetsReplaced = memsetsReplaced
        allocatorEvents = allocator.events
    }

    deinit {
        context.makeCurrent()
        // A replay may still be running: let it finish before the executable goes.
        _ = driver.cuStreamSynchronize(stream.stream)
        if let destroy = driver.cuGraphExecDestroy { _ = destroy(executable) }
    }

    var isValid: Bool { allocator.events == allocatorEvents }

    var summary: String {
        "CUDA graph, \(nodeCount) nodes" + (memsetsReplaced > 0 ? " (\(memsetsReplaced) memsets as kernels)" : "")
    }

    func launch() throws {
        guard isValid else {
            throw CUDAGraphError("launch of a stale graph: device memory was allocated or released since the "
                                 + "capture (\(allocator.events - allocatorEvents) events), so its addresses may "
                                 + "belong to other tensors; capture again")
        }
        guard let launch = driver.cuGraphLaunch else { throw CUDAGraphError("the driver lacks cuGraphLaunch") }
        context.makeCurrent()
        try checkCUDA(launch(executable, stream.stream), "cuGraphLaunch", summary)
        ProgrammaticLaunch.serializeNextLaunch(on: stream.stream)  // Note [Programmatic dependent launch]
        stream.graphMayBeRunning = true
    }
}

/// One captured step replayed as several graphs, launched in order on the
/// backend's stream (Note [Split step graphs] in CUDABackend+Graph.swift),
/// with host work between two parts where the capture asked for it.
final class CUDAGraphSequence: BackendGraph {
    let parts: [CUDAGraph]
    /// `actions[i]` runs after `parts[i]`'s launch (nil or missing: nothing).
    let actions: [(() throws -> Void)?]

    init(parts: [CUDAGraph], actions: [(() throws -> Void)?] = []) {
        self.parts = parts
        self.actions = actions
    }

    var isValid: Bool { parts.allSatisfy(\.isValid) }

    var summary: String {
        let hostSteps = actions.compactMap { $0 }.count
        return "\(parts.count) CUDA graphs, \(parts.map { String($0.nodeCount) }.joined(separator: " + ")) nodes"
            + (hostSteps > 0 ? ", \(hostSteps) host launch\(hostSteps == 1 ? "" : "es") between them" : "")
    }

    func launch() throws {
        for (index, part) in parts.enumerated() {
            try part.launch()
            if index < actions.count, let action = actions[index] { try action() }
        }
    }
}

/// A step that could not be captured or replayed, with what was in the way.
public struct CUDAGraphError: Error, CustomStringConvertible {
    public var description: String
    init(_ problem: String) { description = "CUDA graph: " + problem }
}
