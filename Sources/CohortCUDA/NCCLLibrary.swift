import CCUDA
import Foundation

// NCCL as a library: loading it, its errors, and the process-wide settings
// Cohort gives it before the first communicator (NCCLCommunicator.swift uses them).

/// Why NCCL cannot be used, or what an NCCL call reported.
public enum NCCLError: Error, CustomStringConvertible, Equatable {
    /// libnccl.so.2 (or one of its symbols) could not be loaded: the loader's words.
    case unavailable(reason: String)
    /// A programmer or configuration error caught before NCCL is called.
    case invalidArgument(String)
    /// An NCCL call returned something other than ncclSuccess.
    case call(String, code: Int32, message: String, detail: String)

    public var description: String {
        switch self {
        case .unavailable(let reason):
            return "NCCL unavailable: \(reason). To fix: install NVIDIA's libnccl2 package (`apt-get install libnccl2` "
                + "from the CUDA repository, or pip's nvidia-nccl-cu13 with its lib folder on LD_LIBRARY_PATH); "
                + "multi-rank GPU runs need it, one-GPU runs and CPU ranks (--device cpu, MPI) do not"
        case .invalidArgument(let message):
            return "NCCL: \(message)"
        case .call(let call, let code, let message, let detail):
            return "NCCL \(call) failed with \(code) (\(message))" + (detail.isEmpty ? "" : ": \(detail)")
        }
    }
}

/// The NCCL function table, valid once `loadNCCL()` succeeded.
var nccl: CohortNCCL { cohort_nccl().pointee }

/// Loads libnccl.so.2 (once per process; the same error on every later call).
func loadNCCL() throws(NCCLError) {
    setenv("NCCL_GRAPH_MIXING_SUPPORT", "0", 0)  // Note [NCCL graph mixing]; a user's setting wins
    var message = [CChar](repeating: 0, count: 1024)
    guard cohort_nccl_load(&message, message.count) == 0 else {
        throw .unavailable(reason: loaderMessage(message))
    }
}

/// Note [NCCL graph mixing]
/// NCCL_GRAPH_MIXING_SUPPORT (default 1) lets NCCL work from a captured graph
/// still running while the same communicator launches more, from another
/// graph or outside any; NCCL pays for it on every captured collective. On
/// 4 x H200 (a6f2ef4, replayed steps timed inside the graph,
/// docs/results/2026-11-27-4xh200-graph-phases) turning it off took 0.04 ms
/// off a 4 x 128 step (3.05 -> 3.01 ms) and 0.09 ms off a 4 x 512 one
/// (6.67 -> 6.59 ms), in forward and backward alike; in untimed steps
/// (79cadb6, each against the other in one call, twice) nothing at 128 and
/// 0.04 ms at 512 (6.64 against 6.69 ms). Cohort never needs the
/// mixing: it launches one graph at a time per communicator, and the one
/// case NCCL's documentation then forbids, an uncaptured collective while a
/// graph's may still run (an evaluation's all-reduce, an eager step after
/// replays, a broadcast), waits for the stream first (`enqueue`, through
/// `CUDAStream.graphMayBeRunning`). `loadNCCL` sets it to 0 unless the
/// environment already has it, before NCCL reads it.
/// Read once, at the first uncaptured collective after a replay (after `loadNCCL` set it).
let ncclGraphMixingSupport: Bool = ProcessInfo.processInfo.environment["NCCL_GRAPH_MIXING_SUPPORT"] != "0"

/// Note [NCCL blocks at large batches]
/// Each of NCCL's all-reduce kernels in a captured step is 24 blocks with
/// 82 KB of shared memory (the step graph, 4 x H200, a6f2ef4), on SMs
/// whose convolution kernels want 164 KB a block: while a bucket moves,
/// backward's convolutions have 24 fewer SMs. Capped at 8 blocks
/// (NCCL_MAX_CTAS=8) a bucket takes longer but backward loses less: on
/// 4 x H200 (79cadb6, two repeats each, against one GPU in the same call)
/// weak scaling went from 94.6/94.4% to 95.1/95.0% at 512 images per GPU,
/// where backward (4.1 ms) hides the slower all-reduces with room to spare,
/// but from 91.0/90.9% down to 89.6/89.8% at 128, where it (1.5 ms) does
/// not. So Cohort caps the blocks from 512 images per GPU, and only where
/// every rank is on one machine: over a network fewer channels would cut
/// the bandwidth itself. A user's NCCL_MAX_CTAS wins.
public enum NCCLBlockLimit {
    public static let blocks = 8
    public static let fromImagesPerDevice = 512

    /// The block cap for a run, nil for NCCL's own choice.
    public static func blocks(perDeviceBatch: Int, ranksShareOneMachine: Bool) -> Int? {
        perDeviceBatch >= fromImagesPerDevice && ranksShareOneMachine ? blocks : nil
    }

    /// Sets NCCL_MAX_CTAS (before the communicators exist) unless the
    /// environment has it; returns what it did, for the run's header.
    public static func apply(perDeviceBatch: Int, ranksShareOneMachine: Bool) -> String? {
        if let set = ProcessInfo.processInfo.environment["NCCL_MAX_CTAS"] { return "NCCL_MAX_CTAS=\(set) (from the environment)" }
        guard let limit = blocks(perDeviceBatch: perDeviceBatch, ranksShareOneMachine: ranksShareOneMachine) else { return nil }
        setenv("NCCL_MAX_CTAS", String(limit), 1)
        return "NCCL_MAX_CTAS=\(limit): all-reduces on \(limit) blocks at \(fromImagesPerDevice)+ images per GPU (Note [NCCL blocks at large batches])"
    }
}

/// Throws `NCCLError.call` unless `result` is ncclSuccess (0).
func checkNCCL(_ result: ncclResult_t, _ call: String, comm: ncclComm_t? = nil) throws(NCCLError) {
    guard result != Int32(COHORT_NCCL_SUCCESS) else { return }
    let detail = nccl.ncclGetLastError.flatMap { $0(comm) }.map { String(cString: $0) } ?? ""
    throw .call(call, code: result, message: String(cString: nccl.ncclGetErrorString(result)), detail: detail)
}
