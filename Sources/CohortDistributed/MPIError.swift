import CMPI

/// What went wrong reaching Open MPI.
public enum MPIError: Error, CustomStringConvertible {
    /// dlopen or dlsym failed; `reason` is the loader's message.
    case libraryMissing(reason: String)
    /// `call` returned `code`; `message` is MPI_Error_string's text.
    case call(String, code: Int32, message: String)
    /// The run was not started by a launcher (no rank variables at all).
    case notLaunchedByMPIRun
    /// MPI was already finalized in this process; it cannot start again.
    case finalized
    /// MPI's world is not the one the launcher's variables describe (e.g.
    /// torchrun-style variables set by hand, no MPI launcher: every process
    /// is an MPI world of its own).
    case worldMismatch(environment: RankEnvironment, mpiRank: Int, mpiWorldSize: Int)

    public var description: String {
        switch self {
        case .libraryMissing(let reason):
            return "Open MPI (libmpi.so.40) could not be loaded: \(reason). Install it with "
                + "`apt-get install openmpi-bin libopenmpi3` (Debian/Ubuntu; `libopenmpi-dev` to build), "
                + "or run one process without MPI."
        case .call(let call, let code, let message):
            return "MPI \(call) failed with error \(code): \(message)"
        case .notLaunchedByMPIRun:
            return "the MPI communicator needs ranks started by a launcher (no RANK, OMPI_COMM_WORLD_RANK or SLURM_PROCID "
                + "in the environment); run `cohort launch --nproc-per-node N -- cohort ...` or `mpirun -np N cohort ...`"
        case .worldMismatch(let environment, let mpiRank, let mpiWorldSize):
            return "the launcher's variables say \(environment), but MPI says rank \(mpiRank) of \(mpiWorldSize): "
                + "CPU ranks talk through MPI, so start them with an MPI launcher: `cohort launch --nproc-per-node N -- cohort ...`, "
                + "`mpirun -np N cohort ...` or `srun --mpi=pmix cohort ...`"
        case .finalized:
            return "MPI was already shut down in this process (MPI_Finalize); it cannot be started again"
        }
    }
}

/// The loaded function table; reached only after `cohort_mpi_load` succeeded.
nonisolated(unsafe) let mpi = cohort_mpi().pointee

/// Throws `MPIError.call` unless `code` is MPI_SUCCESS.
func check(_ code: Int32, _ call: String) throws(MPIError) {
    guard code != Int32(COHORT_MPI_SUCCESS) else { return }
    var text = [CChar](repeating: 0, count: Int(COHORT_MPI_MAX_ERROR_STRING) + 1)
    var length: Int32 = 0
    let message: String
    if mpi.MPI_Error_string(code, &text, &length) == Int32(COHORT_MPI_SUCCESS) {
        message = String(decoding: text.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    } else {
        message = "unknown error"
    }
    throw MPIError.call(call, code: code, message: message)
}

/// Loads Open MPI, or throws `MPIError.libraryMissing`.
func loadMPI() throws(MPIError) {
    var message = [CChar](repeating: 0, count: 1024)
    guard cohort_mpi_load(&message, message.count) == 0 else {
        let bytes = message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        throw MPIError.libraryMissing(reason: String(decoding: bytes, as: UTF8.self))
    }
}
