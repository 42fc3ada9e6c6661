import CCUDA
import Foundation

extension NCCLCommunicator {
    /// One communicator per backend, rank i on `backends[i]`'s GPU, made by
    /// one `ncclCommInitAll` from the calling thread: the GPU side of
    /// `--strategy dp` (Note [NCCL for replica threads]).
    ///
    /// Note [NCCL for replica threads]
    /// - One process drives every GPU, one thread per GPU, each thread one
    ///   rank with its own `CUDABackend` (context, stream, cuDNN and cuBLAS
    ///   handles) and its own communicator, exactly as a rank of the
    ///   one-process-per-GPU strategy; only the way the communicators are
    ///   made differs. `ncclCommInitAll` creates all of them at once from
    ///   one thread, before any replica thread starts (it needs no unique id
    ///   and no rendezvous: the ranks are in this process).
    /// - With one thread per GPU, each thread calls collectives on its own
    ///   communicator: no `ncclGroupStart/End` (those are for one thread
    ///   driving several GPUs). Collectives go on each communicator's
    ///   stream (Note [Communication stream]), so the reducer, the graph
    ///   capture and the trainer are unchanged; each has its own watchdog.
    /// - NCCL_RUNTIME_CONNECT is set to 0 unless the user set it: NCCL 2.22
    ///   and later otherwise connect the ranks lazily inside the first
    ///   collective, allocating device memory while other threads of this
    ///   process may be blocked on their peers; connecting at
    ///   `ncclCommInitAll` keeps every allocation out of the replicas' way
    ///   (the deadlock between one thread's allocation and another's
    ///   waiting NCCL kernel that single-process NCCL users have met).
    /// - Failures: a replica that throws aborts its communicator and ends
    ///   the process (`abort(reason:)`), as a failed rank ends a
    ///   one-process-per-GPU job; no thread is left waiting.
    public static func makeGroup(backends: [CUDABackend],
                                 timeout: Duration? = NCCLCommunicator.defaultTimeout) throws -> [NCCLCommunicator] {
        guard !backends.isEmpty else { throw NCCLError.invalidArgument("makeGroup: no backends") }
        var devices = backends.map { Int32($0.device.index) }
        guard Set(devices).count == devices.count else {
            throw NCCLError.invalidArgument("one GPU per replica: the devices \(devices) repeat one")
        }
        setenv("NCCL_RUNTIME_CONNECT", "0", 0)
        try loadNCCL()
        var comms = [ncclComm_t?](repeating: nil, count: backends.count)
        try checkNCCL(nccl.ncclCommInitAll(&comms, Int32(backends.count), &devices), "ncclCommInitAll")
        var made: [NCCLCommunicator] = []
        for (rank, backend) in backends.enumerated() {
            guard let comm = comms[rank] else {
                throw NCCLError.call("ncclCommInitAll", code: 0, message: "returned no communicator for rank \(rank)", detail: "")
            }
            made.append(try NCCLCommunicator(backend: backend, rank: rank, worldSize: backends.count, adopting: comm, timeout: timeout))
        }
        return made
    }
}
