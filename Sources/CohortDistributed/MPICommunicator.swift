import CMPI
import CohortTensor
import Foundation

/// Collectives over MPI_COMM_WORLD on host float32 tensors, for CPU runs
/// started by `mpirun`, `srun --mpi=pmix` or `cohort launch` (which runs
/// mpirun, `Note [Launching CPU ranks]`). Open MPI is loaded with dlopen (see CMPI), so `init`
/// throws `MPIError.libraryMissing` where it is not installed.
///
/// MPI lives once per process: the first `MPICommunicator` initialises it
/// (MPI_THREAD_SERIALIZED: calls may come from any thread, one at a time,
/// which a lock here guarantees) and `shutdown()` finalises it for good.
/// Errors on MPI_COMM_WORLD are returned, not fatal, so a failed collective
/// throws `MPIError.call`; see `Note [Distributed failures]` for what the
/// caller does then, and for the watchdog every collective runs under.
public final class MPICommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public let worldSize: Int
    public let name = "mpi"
    /// Open MPI's MPI_Get_library_version text, first line.
    public let libraryVersion: String

    private let lock = NSLock()
    private let watchdog: Watchdog
    private var finished = false
    /// MPI counts are Int32: larger tensors go in pieces of this many elements.
    private static let maximumCount = Int(Int32.max)

    /// Initialises MPI (once per process) and joins MPI_COMM_WORLD.
    /// - Parameters:
    ///   - environment: must come from a launcher (not `.single`), and must
    ///     agree with MPI's own rank and size, so a missing MPI launcher is a
    ///     clear error instead of a silent 1-rank world.
    ///   - watchdogTimeout: the longest one collective may take before every
    ///     rank is stopped.
    public init(environment: RankEnvironment, watchdogTimeout: Duration = .seconds(30)) throws(MPIError) {
        guard environment.source != .single else { throw .notLaunchedByMPIRun }
        try loadMPI()
        var finalized: Int32 = 0
        try check(mpi.MPI_Finalized(&finalized), "MPI_Finalized")
        guard finalized == 0 else { throw .finalized }
        var initialized: Int32 = 0
        try check(mpi.MPI_Initialized(&initialized), "MPI_Initialized")
        if initialized == 0 {
            var provided: Int32 = 0
            try check(mpi.MPI_Init_thread(nil, nil, Int32(COHORT_MPI_THREAD_SERIALIZED), &provided), "MPI_Init_thread")
            guard provided >= Int32(COHORT_MPI_THREAD_SERIALIZED) else {
                throw .call("MPI_Init_thread", code: -1,
                            message: "thread level \(provided) provided, MPI_THREAD_SERIALIZED (2) needed")
            }
        }
        try check(mpi.MPI_Comm_set_errhandler(mpi.commWorld, mpi.errorsReturn), "MPI_Comm_set_errhandler")
        var rank: Int32 = 0
        var size: Int32 = 0
        try check(mpi.MPI_Comm_rank(mpi.commWorld, &rank), "MPI_Comm_rank")
        try check(mpi.MPI_Comm_size(mpi.commWorld, &size), "MPI_Comm_size")
        guard Int(rank) == environment.rank && Int(size) == environment.worldSize else {
            throw .worldMismatch(environment: environment, mpiRank: Int(rank), mpiWorldSize: Int(size))
        }
        self.rank = Int(rank)
        self.worldSize = Int(size)
        libraryVersion = (try? Self.libraryVersionLine()) ?? "Open MPI"
        let worldRank = self.rank
        watchdog = Watchdog(timeout: watchdogTimeout) { message in
            MPICommunicator.abortJob(rank: worldRank, reason: message)
        }
    }

    deinit { watchdog.stop() }

    /// The MPI library this process would use, for `cohort info`: Open MPI's
    /// version line (MPI_Get_library_version may be called before MPI_Init),
    /// or `MPIError.libraryMissing` with how to install it.
    public static func libraryDescription() throws(MPIError) -> String {
        try loadMPI()
        return try libraryVersionLine()
    }

    /// The first line of MPI_Get_library_version's text (MPI loaded).
    private static func libraryVersionLine() throws(MPIError) -> String {
        var version = [CChar](repeating: 0, count: 4096)
        var length: Int32 = 0
        try check(mpi.MPI_Get_library_version(&version, &length), "MPI_Get_library_version")
        let text = String(decoding: version.prefix(Int(max(0, length))).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.split(whereSeparator: \.isNewline).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? "Open MPI"
    }

    public func allReduce(_ tensor: Tensor, op: ReduceOperation) throws {
        checkHostFloat(tensor, "allReduce")
        try collective("MPI_Allreduce") {
            try forEachPiece(of: tensor) { pointer, count in
                try check(mpi.MPI_Allreduce(cohort_mpi_in_place(), pointer, count, mpi.floatType, mpi.sumOp, mpi.commWorld),
                          "MPI_Allreduce")
            }
        }
        if op == .average && worldSize > 1 {
            // Note [Average]: MPI has no average; sum, then scale locally
            // (NCCL's ncclAvg does the same division on device).
            let scale = 1 / Float(worldSize)
            let values = tensor.floats
            for index in values.indices { values[index] *= scale }
        }
    }

    public func broadcast(_ tensor: Tensor, root: Int) throws {
        checkHostFloat(tensor, "broadcast")
        precondition((0..<worldSize).contains(root), "broadcast: root \(root) is not a rank of \(worldSize)")
        try collective("MPI_Bcast") {
            try forEachPiece(of: tensor) { pointer, count in
                try check(mpi.MPI_Bcast(pointer, count, mpi.floatType, Int32(root), mpi.commWorld), "MPI_Bcast")
            }
        }
    }

    /// Every rank's `bytes` become rank `root`'s; all ranks pass the same
    /// count (e.g. the 128-byte NCCL unique id under mpirun).
    public func broadcast(bytes: inout [UInt8], root: Int) throws {
        precondition((0..<worldSize).contains(root), "broadcast: root \(root) is not a rank of \(worldSize)")
        precondition(bytes.count <= Self.maximumCount, "broadcast: \(bytes.count) bytes is more than one MPI call carries")
        let count = Int32(bytes.count)
        try collective("MPI_Bcast") {
            try bytes.withUnsafeMutableBytes { buffer in
                guard let base = buffer.baseAddress else { return }
                try check(mpi.MPI_Bcast(base, count, mpi.byteType, Int32(root), mpi.commWorld), "MPI_Bcast")
            }
        }
    }

    public func allGather(_ input: Tensor, into output: Tensor) throws {
        checkHostFloat(input, "allGather")
        checkHostFloat(output, "allGather")
        precondition(output.elementCount == input.elementCount * worldSize,
                     "allGather: output has \(output.elementCount) elements, expected \(input.elementCount) x \(worldSize)")
        precondition(input.elementCount <= Self.maximumCount, "allGather: input larger than one MPI call carries")
        let count = Int32(input.elementCount)
        try collective("MPI_Allgather") {
            try check(mpi.MPI_Allgather(input.rawPointer, count, mpi.floatType,
                                        output.rawPointer, count, mpi.floatType, mpi.commWorld), "MPI_Allgather")
        }
    }

    public func barrier() throws {
        try collective("MPI_Barrier") {
            try check(mpi.MPI_Barrier(mpi.commWorld), "MPI_Barrier")
        }
    }

    public func abort(reason: String) -> Never {
        Self.abortJob(rank: rank, reason: reason)
        _exit(1)
    }

    public func shutdown() throws {
        lock.lock()
        defer { lock.unlock() }
        guard !finished else { return }
        finished = true
        watchdog.stop()
        try check(mpi.MPI_Finalize(), "MPI_Finalize")
    }

    /// Prints `reason` and asks Open MPI to kill every rank of the job.
    private static func abortJob(rank: Int, reason: String) {
        FileHandle.standardError.write(Data("cohort rank \(rank): \(reason)\n".utf8))
        _ = mpi.MPI_Abort(mpi.commWorld, 1)
    }

    /// Runs one collective under the lock and the watchdog.
    private func collective(_ call: String, _ body: () throws -> Void) throws {
        lock.lock()
        defer { lock.unlock() }
        precondition(!finished, "\(call) after shutdown()")
        try watchdog.guarding(call, body)
    }

    /// Calls `body` on consecutive pieces of `tensor` small enough for an Int32 count.
    private func forEachPiece(of tensor: Tensor,
                              _ body: (UnsafeMutableRawPointer, Int32) throws -> Void) rethrows {
        var offset = 0
        while offset < tensor.elementCount {
            let count = min(Self.maximumCount, tensor.elementCount - offset)
            try body(tensor.rawPointer + offset * MemoryLayout<Float>.stride, Int32(count))
            offset += count
        }
    }
}
