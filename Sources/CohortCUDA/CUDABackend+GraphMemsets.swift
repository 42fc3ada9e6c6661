import Foundation
import CCUDA

/// Note [Memset nodes as kernels]
/// - cuDNN's split-reduction convolution kernels (the `sm90_xmma_*` fprop,
///   dgrad and wgrad kernels it picks for ResNet-18 in bf16) zero a 4-byte
///   counter in their workspace with a memset before each launch. Captured,
///   that is a memset node in front of 22 of a step's convolutions.
/// - A memset node is a slow way to write 4 bytes in a replayed graph. In
///   CUPTI's kernel trace of the 1-GPU step at batch 128 (scripts/kernel-trace,
///   2 x H100, 2026-11-28, binary 1eb65d8) the 22 gaps in front of those
///   convolutions were 4.0-5.9 us against a median of 0.1 us between the
///   step's other kernels (106 of its 128 us of gaps; tracing makes them
///   dearer than they are). Untraced, in a microbenchmark
///   (scripts/kernel-trace/branch_tax.cu, H100), 22 memset nodes added 58 us
///   to a chain of 300 kernels and 22 one-block kernels 16 us.
/// - So before a captured graph is instantiated, each memset node becomes a
///   kernel node (`graph_memset` in Kernels+Elementwise.swift) with the same
///   dependencies and dependents: the same bytes written at the same point of
///   the step, by an SM instead of the memset path. cuDNN cannot be asked to
///   skip its memsets; the graph is the one place they can be changed.
///   Memsets next to each other (two fills in a row) are chained through
///   their replacements.
/// - Measured (2 x H100, 2026-11-28, binary 54868a2, against
///   COHORT_GRAPH_MEMSETS=keep in the same call, docs/results/2026-11-28-graph-gaps):
///   the device step at 128 per GPU 2.631/2.634 -> 2.602/2.598 ms on 1 GPU
///   (-1.2%) and 2.836/2.844 -> 2.803/2.807 ms on 2; at 32 1.566 -> 1.561, at
///   512 7.143 -> 7.129 (1 GPU). The trace: gaps between the step's kernels
///   0.12 -> 0.02 ms, its kernels 0.02 ms longer (the 22 new ones).
/// - Left as captured: graphs whose edges carry data (the dependency queries
///   answer LOSSY_QUERY; checked before anything changes), memsets of an
///   element size other than 1, 2 or 4, and every graph when
///   COHORT_GRAPH_MEMSETS=keep (the same-call baseline of a benchmark).
extension CUDABackend {
    static let keepsMemsetNodes = ProcessInfo.processInfo.environment["COHORT_GRAPH_MEMSETS"] == "keep"

    /// Replaces `graph`'s memset nodes by kernel nodes (Note [Memset nodes as
    /// kernels]); returns how many it replaced (0 where the driver lacks the
    /// graph-editing calls or the graph's edges carry data).
    func replaceMemsetNodes(in graph: CUgraph) throws -> Int {
        let d = driver
        guard !Self.keepsMemsetNodes, let getNodes = d.cuGraphGetNodes, let nodeType = d.cuGraphNodeGetType,
              let memsetParameters = d.cuGraphMemsetNodeGetParams, let dependenciesOf = d.cuGraphNodeGetDependencies,
              let dependentsOf = d.cuGraphNodeGetDependentNodes, let addKernelNode = d.cuGraphAddKernelNode_v2,
              let addDependencies = d.cuGraphAddDependencies, let destroyNode = d.cuGraphDestroyNode else { return 0 }

        var count = 0
        try checkCUDA(getNodes(graph, nil, &count), "cuGraphGetNodes")
        var nodes = [CUgraphNode?](repeating: nil, count: count)
        try checkCUDA(getNodes(graph, &nodes, &count), "cuGraphGetNodes")

        struct Memset {
            let node: CUgraphNode
            let parameters: CohortMemsetNodeParams
            let dependencies: [CUgraphNode?]
            let dependents: [CUgraphNode?]
        }
        // Everything is read before anything changes, so a refused query leaves the graph whole.
        var memsets: [Memset] = []
        for case let node? in nodes.prefix(count) {
            var type: Int32 = -1
            try checkCUDA(nodeType(node, &type), "cuGraphNodeGetType")
            guard type == Int32(COHORT_CU_GRAPH_NODE_TYPE_MEMSET) else { continue }
            var parameters = CohortMemsetNodeParams()
            try checkCUDA(memsetParameters(node, &parameters), "cuGraphMemsetNodeGetParams")
            guard [1, 2, 4].contains(parameters.elementSize), parameters.width > 0, parameters.height > 0 else { continue }
            var edges: [[CUgraphNode?]] = []
            for query in [dependenciesOf, dependentsOf] {
                var edgeCount = 0
                let first = query(node, nil, &edgeCount)
                if first == Int32(COHORT_CUDA_ERROR_LOSSY_QUERY) { return 0 }
                try checkCUDA(first, "cuGraphNodeGetDependencies")
                var list = [CUgraphNode?](repeating: nil, count: edgeCount)
                if edgeCount > 0 {
                    let second = query(node, &list, &edgeCount)
                    if second == Int32(COHORT_CUDA_ERROR_LOSSY_QUERY) { return 0 }
                    try checkCUDA(second, "cuGraphNodeGetDependencies")
                }
                edges.append(Array(list.prefix(edgeCount)))
            }
            memsets.append(Memset(node: node, parameters: parameters, dependencies: edges[0], dependents: edges[1]))
        }
        guard !memsets.isEmpty else { return 0 }

        let function = try kernels.function(.elementwise, "graph_memset")
        // Memsets can be each other's neighbours (two fills in a row): an edge read above may name a
        // memset already replaced, which then stands for its replacement.
        var replacements: [CUgraphNode: CUgraphNode] = [:]
        let current = { (node: CUgraphNode?) -> CUgraphNode? in node.map { replacements[$0] ?? $0 } }
        for memset in memsets {
            let dependencies = memset.dependencies.map(current), dependents = memset.dependents.map(current)
            let p = memset.parameters
            let elements = Int(p.width) * Int(p.height)
            let threads = elements >= 256 ? 256 : (elements + 31) / 32 * 32
            let blocks = min((elements + threads - 1) / threads, kernels.multiprocessorCount * 16)
            // graph_memset(dst, pitch, value, elementSize, width, height), one 8-byte slot each (KernelLauncher).
            var slots: [UInt64] = [p.dst, UInt64(p.pitch), UInt64(p.value), UInt64(p.elementSize),
                                   UInt64(p.width), UInt64(p.height)]
            var replacement: CUgraphNode?
            let result = slots.withUnsafeMutableBufferPointer { slotBuffer -> CUresult in
                var pointers: [UnsafeMutableRawPointer?] = (0..<slotBuffer.count).map {
                    UnsafeMutableRawPointer(slotBuffer.baseAddress! + $0)
                }
                return pointers.withUnsafeMutableBufferPointer { pointerBuffer in
                    var kernel = CohortKernelNodeParams(
                        func: function, gridDimX: UInt32(blocks), gridDimY: 1, gridDimZ: 1,
                        blockDimX: UInt32(threads), blockDimY: 1, blockDimZ: 1, sharedMemBytes: 0,
                        kernelParams: pointerBuffer.baseAddress, extra: nil, kern: nil, ctx: nil)
                    return addKernelNode(&replacement, graph, dependencies, dependencies.count, &kernel)
                }
            }
            try checkCUDA(result, "cuGraphAddKernelNode_v2", "graph_memset of \(elements) x \(p.elementSize) bytes")
            guard let replacement else { throw CUDAGraphError("cuGraphAddKernelNode_v2 returned no node") }
            if !dependents.isEmpty {
                let from = [CUgraphNode?](repeating: replacement, count: dependents.count)
                try checkCUDA(addDependencies(graph, from, dependents, dependents.count), "cuGraphAddDependencies")
            }
            try checkCUDA(destroyNode(memset.node), "cuGraphDestroyNode")
            replacements[memset.node] = replacement
        }
        return memsets.count
    }
}
