import CCUDA
import CohortDistributed
import CohortKernels
import CohortTensor
import Foundation
/// Collectives across GPUs through NCCL, one process (and one GPU) per rank,
/// on the tensors of one `CUDABackend`.
///
/// Note [Communication stream]
/// - Ordinary collectives (`allReduce`, `broadcast`, `allGather`, `barrier`)
///   behave as a `Backend` op (`Note [Communicator contract]`): they return
///   at once and are ordered after the kernels that wrote their input and
///   before every later op. They run on the communicator's own stream
///   between two events: the communication stream waits for an event
///   recorded on the compute stream (fork), the compute stream waits for one
///   after the collective (join). No host waits, so the reducer does not
///   synchronise before a bucket (`runsOnDeviceStream`).
/// - Background all-reduces (`startAllReduce`, the gradient reducer's
///   buckets) fork the same way but do not join: backward's kernels for
///   earlier layers go on on the compute stream while the bucket moves on
///   the communication stream; `waitForCollectives` (the reducer's
///   `finishBackward`) joins once, before the optimizer step. That is the
///   overlap PyTorch DDP's reducer gets from its NCCL stream.
/// - Memory: a background collective's tensor must outlive the join. The
///   reducer's buckets are views of the parameter store's flat gradient
///   buffer (and of its bf16 copy), which live as long as the model; the
///   caching allocator's stream-ordered reuse (Note [Stream-ordered reuse])
///   stays valid because the compute stream joins before anything released
///   after a collective could be reused.
/// - The stream has the highest priority the device offers, so a bucket's
///   kernels are scheduled ahead of backward's queued blocks rather than
///   behind them (the kernels are few; what backward loses to them is part
///   of the measured overlap cost, not measured apart).
/// - Graphs: forks and joins are events, which a stream capture turns into
///   graph edges, and NCCL records its kernels into the capture, so a
///   data-parallel step is captured whole (`supportsGraphCapture`); timing
///   events are skipped while capturing unless COHORT_GRAPH_TIMING=1 makes
///   them event-record nodes (Note [Timing inside graphs] in CUDAEvent.swift).
/// - Timing (Note [Device timing]): between `beginCollectiveTiming` and
///   `collectiveSeconds`, each background all-reduce is bracketed by timed
///   events on the communication stream: its busy time, which includes any
///   wait for a slower peer.
/// - Without the driver's event functions (a very old driver) everything
///   runs on the compute stream, in order, without overlap.
/// - Host tensors (the evaluation's three sums) are staged through a device
///   buffer and the call waits for the result, so callers keep working with
///   `Tensor`s on the host as they do with MPI.
/// - Failures: NCCL calls are blocking-mode (ncclCommInitRank), so a call
///   returns an error code or enqueues; a peer that died shows up as an
///   asynchronous error (`ncclCommGetAsyncError`) or as work that never
///   finishes. A `Watchdog` polls both: after every collective and every
///   step (`watchProgress`) an event is recorded on the compute stream, and
///   if the device has not passed it within the limit (or NCCL reports an
///   error), the watchdog calls `abort`: ncclCommAbort, which unblocks the
///   stream, then the bootstrap's abort (MPI_Abort under mpirun stops every
///   rank), then `_exit(1)`; the launcher names the rank that failed first.
public final class NCCLCommunicator: NarrowingAllReduce, @unchecked Sendable {
    public let rank: Int
    public let worldSize: Int
    public let name = "nccl"
    /// ncclGetVersion's number (22809 = 2.28.9).
    public let version: Int
    /// The backend whose device and stream the collectives use.
    public let backend: CUDABackend
    /// The communicator that carried the unique id (MPI under mpirun): kept
    /// for `abort` (MPI_Abort stops every rank) and shut down after NCCL.
    public let bootstrap: Communicator?

    /// Internal for the symmetric windows' extension (NCCLCommunicator+SymmetricWindows.swift).
    var comm: ncclComm_t?
    let lock = NSLock()
    /// Registered symmetric windows (Note [Symmetric wire buffer]).
    var symmetricWindows: [SymmetricWindow] = []
    /// Whether `makeWireBuffer` registers the bf16 wire buffer as a
    /// symmetric window; set (by every rank alike) before the gradient
    /// reducer is made, from `SymmetricWindowPolicy`.
    public var registersWireBuffer = false
    /// The stream collectives run on (nil: the compute stream; Note [Communication stream]).
    private(set) var communicationStream: CUstream?
    private var forkEvent, progressEvent, markEvent: CUDAEvent?
    private(set) var joinEvent: CUDAEvent?
    /// `markCollectives` recorded `markEvent` and no wait has used it yet.
    private var markPending = false
    /// A background all-reduce has been started and not yet joined.
    private var backgroundPending = false
    var timing = false
    var timingEvents: [(start: CUDAEvent, end: CUDAEvent)] = []
    var timedCollectives = 0
    /// The timing events are nodes of a captured step (Note [Timing inside
    /// graphs]), or recorded by its host launches: every replay stamps them,
    /// so reading does not end the timing.
    var timingCaptured = false
    /// Note [All-reduces launched by the host] (NCCLCommunicator+HostLaunch.swift):
    /// whether a captured step's background all-reduces are enqueued by the
    /// host at each replay instead of being captured into the graph. Set by
    /// every rank alike before the first capture.
    public var launchesBackgroundCollectivesFromHost = false
    /// How the host launches wait for each bucket's gradients.
    public var hostLaunchWait = HostLaunchWait.spin
    /// A capture's background all-reduces, waiting for the split that hands them to the replays.
    var hostLaunchQueue: [HostLaunchedCollective] = []
    /// The backend's `captureSerial` of the capture that filled `hostLaunchQueue`.
    var hostLaunchQueueSerial = 0
    /// One event per queued all-reduce: where backward finished its bucket.
    var bucketReadyEvents: [CUDAEvent] = []
    private var watchdog: Watchdog?
    /// The watchdog's limit, which the host's own waits (Note [All-reduces launched by the host]) keep too.
    private(set) var collectiveTimeout: Duration?
    /// One float on the device: `barrier`'s all-reduce.
    private let barrierScalar: Tensor

    public static let uniqueIdByteCount = 128

    /// "2.28.9".
    public var versionText: String { Self.versionText(version) }

    public var runsOnDeviceStream: Bool { true }
    public var supportsGraphCapture: Bool { true }
    public var reducesBFloat16: Bool { true }
    /// The default time limit of the watchdog (`Note [Communication stream]`):
    /// it counts from when a step or collective is issued, so it must cover
    /// a peer's slowest legitimate delay (a first step's algorithm search,
    /// rank 0's checkpoint) and leave the 30 s in which every rank must stop.
    public static let defaultTimeout = Duration.seconds(20)

    /// NCCL's version code as text: 22809 is 2.28.9 (codes from 2.9 on are
    /// major*10000 + minor*100 + patch; older ones major*1000 + minor*100 + patch).
    public static func versionText(_ code: Int) -> String {
        code >= 10000 ? "\(code / 10000).\(code % 10000 / 100).\(code % 100)"
            : "\(code / 1000).\(code % 1000 / 100).\(code % 100)"
    }

    /// Why libnccl.so.2 cannot be used here (nil when it loads): for tests and messages.
    public static func loadFailure() -> NCCLError? {
        do { try loadNCCL() } catch { return error }
        return nil
    }

    /// A fresh unique id (on rank 0), to hand to every rank before `init`.
    public static func makeUniqueId() throws(NCCLError) -> [UInt8] {
        try loadNCCL()
        var id = CohortNCCLUniqueId()
        try checkNCCL(nccl.ncclGetUniqueId(&id), "ncclGetUniqueId")
        return withUnsafeBytes(of: &id) { Array($0) }
    }

    /// Checks what `init` is given before any library is touched.
    public static func validate(rank: Int, worldSize: Int, uniqueId: [UInt8]) throws(NCCLError) {
        guard worldSize >= 1, worldSize <= Int(Int32.max) else {
            throw .invalidArgument("world size \(worldSize) must be at least 1")
        }
        guard (0..<worldSize).contains(rank) else {
            throw .invalidArgument("rank \(rank) is not in 0..<\(worldSize)")
        }
        guard uniqueId.count == uniqueIdByteCount else {
            throw .invalidArgument("the unique id has \(uniqueId.count) bytes, ncclUniqueId has \(uniqueIdByteCount)")
        }
        guard uniqueId.contains(where: { $0 != 0 }) else {
            throw .invalidArgument("the unique id is all zeros (rank 0's ncclGetUniqueId never reached this rank?)")
        }
    }

    /// NCCL's data type for a tensor dtype the collectives take (float32 7, bfloat16 9).
    public static func dataType(_ dtype: DType) throws(NCCLError) -> Int32 {
        switch dtype {
        case .float32: return Int32(COHORT_NCCL_FLOAT32)
        case .bfloat16: return Int32(COHORT_NCCL_BFLOAT16)
        default: throw .invalidArgument("collectives take float32 or bfloat16 tensors, not \(dtype)")
        }
    }

    /// NCCL's reduction for `op` (sum 0, average 4).
    public static func reduction(_ op: ReduceOperation) -> Int32 {
        switch op {
        case .sum: return Int32(COHORT_NCCL_SUM)
        case .average: return Int32(COHORT_NCCL_AVG)
        }
    }

    /// Joins the communicator of `worldSize` ranks that share `uniqueId`
    /// (made by rank 0's `makeUniqueId()`); returns once every rank has joined.
    /// `timeout`: the watchdog's limit (nil: no watchdog).
    public convenience init(backend: CUDABackend, rank: Int, worldSize: Int, uniqueId: [UInt8],
                            bootstrap: Communicator? = nil, timeout: Duration? = NCCLCommunicator.defaultTimeout) throws {
        try Self.validate(rank: rank, worldSize: worldSize, uniqueId: uniqueId)
        try loadNCCL()
        backend.context.makeCurrent()
        var id = CohortNCCLUniqueId()
        withUnsafeMutableBytes(of: &id) { $0.copyBytes(from: uniqueId) }
        var comm: ncclComm_t?
        try checkNCCL(cohort_nccl_comm_init_rank(&comm, Int32(worldSize), &id, Int32(rank)), "ncclCommInitRank")
        guard let comm else { throw NCCLError.call("ncclCommInitRank", code: 0, message: "returned no communicator", detail: "") }
        try self.init(backend: backend, rank: rank, worldSize: worldSize, adopting: comm, bootstrap: bootstrap,
                      timeout: timeout)
    }

    /// The communication stream, its events and the watchdog (Note [Communication stream]).
    private func setUpStreamAndWatchdog(timeout: Duration?) throws {
        let d = driver
        // COHORT_NCCL_STREAM=compute, an experiment: collectives on the compute stream, in
        // order, without overlap, so a captured step is one chain of nodes (what a fork to
        // a second stream costs a replayed graph, against what overlap saves).
        let ownStream = ProcessInfo.processInfo.environment["COHORT_NCCL_STREAM"] != "compute"
        if ownStream, CUDAEvent.isAvailable, let create = d.cuStreamCreateWithPriority {
            backend.context.makeCurrent()
            var least: Int32 = 0, greatest: Int32 = 0
            if let range = d.cuCtxGetStreamPriorityRange {
                try checkCUDA(range(&least, &greatest), "cuCtxGetStreamPriorityRange")
            }
            // COHORT_NCCL_STREAM_PRIORITY=normal: the compute stream's priority instead, an experiment
            // on how much the all-reduces' kernels slow the backward they overlap (Note [Distributed]).
            let normal = ProcessInfo.processInfo.environment["COHORT_NCCL_STREAM_PRIORITY"] == "normal"
            var stream: CUstream?
            try checkCUDA(create(&stream, UInt32(COHORT_CU_STREAM_NON_BLOCKING), normal ? least : greatest),
                          "cuStreamCreateWithPriority")
            communicationStream = stream
            // Kernels beside the communication stream's make every gap between two kernels
            // longer; programmatic launches hide it (Note [Programmatic dependent launch]).
            if worldSize > 1 { backend.kernels.allowProgrammaticLaunch() }
            forkEvent = try CUDAEvent(context: backend.context, timed: false)
            joinEvent = try CUDAEvent(context: backend.context, timed: false)
            markEvent = try CUDAEvent(context: backend.context, timed: false)
        }
        collectiveTimeout = timeout
        guard let timeout, CUDAEvent.isAvailable else { return }
        progressEvent = try CUDAEvent(context: backend.context, timed: false)
        watchdog = Watchdog(timeout: timeout) { [weak self] message in
            guard let self else { return }
            self.abort(reason: message)
        }
    }

    /// Takes over `comm`, rank `rank` of `worldSize`: one `ncclCommInitRank`
    /// made (the initializer above), or one of those that one `ncclCommInitAll`
    /// made for the replica threads of one process (`makeGroup(backends:)`,
    /// Note [NCCL for replica threads]).
    init(backend: CUDABackend, rank: Int, worldSize: Int, adopting comm: ncclComm_t, bootstrap: Communicator? = nil,
         timeout: Duration? = NCCLCommunicator.defaultTimeout) throws {
        try loadNCCL()
        var versionCode: Int32 = 0
        try checkNCCL(nccl.ncclGetVersion(&versionCode), "ncclGetVersion")
        self.rank = rank
        self.worldSize = worldSize
        self.version = Int(versionCode)
        self.backend = backend
        self.bootstrap = bootstrap
        self.comm = comm
        backend.context.makeCurrent()
        barrierScalar = try backend.makeTensor([1], dtype: .float32)
        backend.fill(barrierScalar, value: 1)
        try setUpStreamAndWatchdog(timeout: timeout)
    }

    deinit {
        watchdog?.stop()
        if let comm {
            backend.context.makeCurrent()
            _ = nccl.ncclCommAbort(comm)
        }
        if let communicationStream {
            backend.context.makeCurrent()
            _ = driver.cuStreamSynchronize(communicationStream)
            _ = driver.cuStreamDestroy_v2(communicationStream)
        }
    }

    // MARK: Background collectives (Note [Communication stream])

    public func startAllReduce(_ tensor: Tensor, op: ReduceOperation) throws {
        guard !tensor.device.isHost else {
            throw NCCLError.invalidArgument("startAllReduce: \(tensor) must be on \(backend.device) (host tensors take allReduce)")
        }
        guard tensor.device == backend.device else {
            throw NCCLError.invalidArgument("startAllReduce: \(tensor) is not on this communicator's device \(backend.device)")
        }
        let count = tensor.elementCount, dataType = try Self.dataType(tensor.dtype)
        try enqueue("ncclAllReduce", background: true) { comm, stream in
            nccl.ncclAllReduce(devicePointer(tensor.devicePointer), devicePointer(tensor.devicePointer), count,
                               dataType, Self.reduction(op), comm, stream)
        }
    }

    /// Note [bf16 all-reduce off the compute stream]
    /// - `--allreduce-dtype bf16` halves the bytes each bucket moves, but
    ///   rounding each float32 bucket into bf16 before the call and widening
    ///   it after the join put two kernels per bucket on the compute stream:
    ///   18 small kernels in the critical path of a ResNet-18 step, which
    ///   cost more than the halved traffic saved (4 x H200, c34016e: 89.9%
    ///   weak-scaling efficiency at 128 per GPU against 90.9% in fp32).
    /// - Here the rounding, the all-reduce and the widening of a bucket all
    ///   run on the communication stream, after the fork: backward goes on
    ///   beside all three, and the join before the optimizer step covers the
    ///   widened gradients. The conversions are grid-stride kernels of a few
    ///   microseconds each; their busy time is part of the bucket's timed
    ///   span (Note [Device timing]).
    /// - Correctness: the self-test's bf16 conversions are the same kernels;
    ///   real-data loss curves with bf16 on the wire (gpu-ddp-check's curves,
    ///   4 x H200, c90f6ef, docs/results/2026-11-27-4xh200-suite-5) end
    ///   within the spread of two 1-GPU seeds, as fp32's do.
    /// COHORT_ALLREDUCE_DRY, a diagnostic for the 4-GPU step's fixed extra time
    /// (docs/results/2026-11-27-fixed-step-tax): `empty` forks and joins each
    /// bucket with nothing in between, `convert` runs its bf16 rounding and
    /// widening but no ncclAllReduce, `tiny` the same two kernels on one element,
    /// `tiny1` only the rounding kernel on one element, `wire` the ncclAllReduce
    /// of the wire without either conversion. Gradients are then NOT averaged; a run
    /// says so on standard error.
    static let dryAllReduceVariable = "COHORT_ALLREDUCE_DRY"
    static let dryAllReduce: String? = {
        guard let value = ProcessInfo.processInfo.environment[dryAllReduceVariable], !value.isEmpty else { return nil }
        guard ["empty", "convert", "tiny", "tiny1", "wire"].contains(value) else {
            FileHandle.standardError.write(Data("\(dryAllReduceVariable)=\(value) ignored: empty, convert, tiny, tiny1 or wire\n".utf8))
            return nil
        }
        FileHandle.standardError.write(Data("\(dryAllReduceVariable)=\(value): gradients are NOT all-reduced (a timing diagnostic)\n".utf8))
        return value
    }()

    public func startAllReduce(_ tensor: Tensor, through wire: Tensor, op: ReduceOperation, widens: Bool) throws {
        for (name, t) in [("tensor", tensor), ("wire", wire)] {
            guard !t.device.isHost, t.device == backend.device else {
                throw NCCLError.invalidArgument("startAllReduce: \(name) \(t) is not on this communicator's device \(backend.device)")
            }
        }
        guard tensor.dtype == .float32, wire.dtype == .bfloat16, tensor.elementCount == wire.elementCount else {
            throw NCCLError.invalidArgument("startAllReduce: \(tensor) travels through a bfloat16 wire of the same count, not \(wire)")
        }
        let count = wire.elementCount, dataType = try Self.dataType(wire.dtype)
        // NCCL's symmetric kernels sum only: the widening divides (Note [Symmetric wire buffer]).
        let summed = op == .average && isInSymmetricWindow(wire)
        let scale: Float? = summed ? 1 / Float(worldSize) : nil
        if let dry = Self.dryAllReduce {
            // A diagnostic: the fork and join of a bucket with less (or no) work inside.
            try enqueue("ncclAllReduce (\(Self.dryAllReduceVariable)=\(dry))", background: true) { [backend] comm, stream in
                if dry == "wire" {
                    return nccl.ncclAllReduce(devicePointer(wire.devicePointer), devicePointer(wire.devicePointer), count,
                                              dataType, Self.reduction(summed ? .sum : op), comm, stream)
                } else if dry == "tiny1" {
                    backend.convert(tensor.view(elementOffset: 0, shape: [1]), to: wire.view(elementOffset: 0, shape: [1]), on: stream)
                } else if dry == "convert" {
                    backend.convert(tensor, to: wire, on: stream)
                    backend.convert(wire, to: tensor, on: stream, scale: nil)
                } else if dry == "tiny" {
                    // The same two kernels on one element: a branch with kernels but next to no traffic.
                    let (one, oneWire) = (tensor.view(elementOffset: 0, shape: [1]), wire.view(elementOffset: 0, shape: [1]))
                    backend.convert(one, to: oneWire, on: stream)
                    backend.convert(oneWire, to: one, on: stream, scale: nil)
                }
                return Int32(COHORT_NCCL_SUCCESS)
            }
            return
        }
        try enqueue("ncclAllReduce", background: true) { [backend] comm, stream in
            backend.convert(tensor, to: wire, on: stream)
            let result = nccl.ncclAllReduce(devicePointer(wire.devicePointer), devicePointer(wire.devicePointer), count,
                                            dataType, Self.reduction(summed ? .sum : op), comm, stream)
            if result == Int32(COHORT_NCCL_SUCCESS) && widens { backend.convert(wire, to: tensor, on: stream, scale: scale) }
            return result
        }
    }

    public func waitForCollectives() throws {
        lock.lock()
        defer { lock.unlock() }
        try join()
    }

    /// An event at the communication stream's current end (Note [Optimizer
    /// beside the last all-reduce]): the collectives enqueued so far.
    public func markCollectives() {
        lock.lock()
        defer { lock.unlock() }
        guard backgroundPending, let communicationStream, let markEvent else { return }
        markEvent.record(on: communicationStream, capturing: backend.stream.isCapturing)
        markPending = true
    }

    /// Makes the compute stream wait for the marked collectives only; the
    /// later ones stay pending until `waitForCollectives`.
    public func waitForMarkedCollectives() throws {
        lock.lock()
        defer { lock.unlock() }
        guard markPending, let markEvent else { return try join() }
        markEvent.makeWait(backend.stream.stream)
        markPending = false
    }

    public func beginCollectiveTiming() {
        lock.lock()
        defer { lock.unlock() }
        timing = true
        timedCollectives = 0
        timingCaptured = backend.stream.isCapturing
    }

    public func collectiveSeconds() -> [Double]? {
        lock.lock()
        defer { lock.unlock() }
        guard timing else { return nil }
        if !timingCaptured { timing = false }
        var result: [Double] = []
        for (start, end) in timingEvents.prefix(timedCollectives) {
            guard let seconds = end.seconds(since: start) else { return nil }
            result.append(seconds)
        }
        return result
    }

    public func collectiveStartSeconds(since origin: DeviceTimestamp) -> [Double]? {
        lock.lock()
        defer { lock.unlock() }
        guard let origin = origin as? CUDAEvent else { return nil }
        var result: [Double] = []
        for (start, _) in timingEvents.prefix(timedCollectives) {
            guard let seconds = start.seconds(since: origin) else { return nil }
            result.append(seconds)
        }
        return result
    }

    public func watchProgress() {
        lock.lock()
        defer { lock.unlock() }
        watch("a training step or its collectives")
    }

    /// With the lock held: makes the compute stream wait for the background
    /// collectives (in a capture with host launches: splits the graph there,
    /// Note [All-reduces launched by the host]).
    private func join() throws {
        if backend.stream.isCapturing && !hostLaunchQueue.isEmpty { return try splitCaptureForHostLaunches() }
        guard backgroundPending, let communicationStream, let joinEvent else { return }
        joinEvent.record(on: communicationStream, capturing: backend.stream.isCapturing)
        if hostLaunchWait == .host && launchesBackgroundCollectivesFromHost && !backend.stream.isCapturing {
            // Note [All-reduces launched by the host]: no device-side wait on this stream's kernels.
            try waitOnHost(for: joinEvent, "a collective's end")
        } else {
            joinEvent.makeWait(backend.stream.stream)
        }
        backgroundPending = false
        markPending = false
    }

    /// With the lock held: has the watchdog wait for the compute stream's
    /// current end (which follows every joined collective); not during a
    /// capture, whose work runs only at replay.
    private func watch(_ what: String) {
        guard let watchdog, let progressEvent, let comm, !backend.stream.isCapturing else { return }
        progressEvent.record(on: backend.stream.stream)
        nonisolated(unsafe) let watchedComm = comm
        watchdog.watch(what) { [progressEvent] in
            var asyncResult: ncclResult_t = 0
            if nccl.ncclCommGetAsyncError(watchedComm, &asyncResult) == Int32(COHORT_NCCL_SUCCESS),
               asyncResult != Int32(COHORT_NCCL_SUCCESS), asyncResult != Int32(COHORT_NCCL_IN_PROGRESS) {
                return .failed("NCCL reported \(String(cString: nccl.ncclGetErrorString(asyncResult))) in the background")
            }
            do {
                return try progressEvent.hasCompleted() ? .finished : .running
            } catch {
                return .failed("\(error)")
            }
        }
    }

    public func allReduce(_ tensor: Tensor, op: ReduceOperation) throws {
        try onDevice(tensor, "ncclAllReduce") { device in
            let count = device.elementCount
            try self.enqueue("ncclAllReduce") { comm, stream in
                nccl.ncclAllReduce(devicePointer(device.devicePointer), devicePointer(device.devicePointer), count,
                                   try Self.dataType(device.dtype), Self.reduction(op), comm, stream)
            }
        }
    }

    public func broadcast(_ tensor: Tensor, root: Int) throws {
        guard (0..<worldSize).contains(root) else { throw NCCLError.invalidArgument("broadcast: root \(root) is not a rank of \(worldSize)") }
        try onDevice(tensor, "ncclBroadcast") { device in
            let count = device.elementCount
            try self.enqueue("ncclBroadcast") { comm, stream in
                nccl.ncclBroadcast(devicePointer(device.devicePointer), devicePointer(device.devicePointer), count,
                                   try Self.dataType(device.dtype), Int32(root), comm, stream)
            }
        }
    }

    public func allGather(_ input: Tensor, into output: Tensor) throws {
        guard output.elementCount == input.elementCount * worldSize, output.dtype == input.dtype else {
            throw NCCLError.invalidArgument("allGather: output \(output) must hold \(worldSize) x \(input.elementCount) "
                                            + "\(input.dtype) elements")
        }
        guard input.device.isHost == output.device.isHost else {
            throw NCCLError.invalidArgument("allGather: input \(input) and output \(output) must both be on the host or both on \(backend.device)")
        }
        try onDevice(input, "ncclAllGather", copyBack: false) { deviceInput in
            try self.onDevice(output, "ncclAllGather", upload: false) { deviceOutput in
                let count = deviceInput.elementCount
                try self.enqueue("ncclAllGather") { comm, stream in
                    nccl.ncclAllGather(devicePointer(deviceInput.devicePointer), devicePointer(deviceOutput.devicePointer),
                                       count, try Self.dataType(deviceInput.dtype), comm, stream)
                }
            }
        }
    }

    /// An all-reduce of one float, then a wait for the stream; then checks
    /// NCCL's asynchronous error (a peer that failed).
    public func barrier() throws {
        try allReduce(barrierScalar, op: .sum)
        backend.synchronize()
        try checkAsyncError()
    }

    /// Throws the error NCCL recorded in the background, if any.
    public func checkAsyncError() throws {
        lock.lock()
        defer { lock.unlock() }
        guard let comm else { return }
        var result: ncclResult_t = 0
        try checkNCCL(nccl.ncclCommGetAsyncError(comm, &result), "ncclCommGetAsyncError", comm: comm)
        try checkNCCL(result, "a collective (asynchronous error)", comm: comm)
    }

    public func abort(reason: String) -> Never {
        FileHandle.standardError.write(Data("cohort rank \(rank): \(reason)\n".utf8))
        // ncclCommAbort waits for NCCL's own threads; should one of them be
        // stuck too, the process still ends.
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: 10)
            _exit(1)
        }
        if let comm {
            backend.context.makeCurrent()
            _ = nccl.ncclCommAbort(comm)
            self.comm = nil
        }
        if let bootstrap { bootstrap.abort(reason: "NCCL communicator aborted") }
        _exit(1)
    }

    /// Waits for the stream, destroys the communicator, then shuts the bootstrap down.
    public func shutdown() throws {
        watchdog?.stop()
        lock.lock()
        let comm = self.comm
        self.comm = nil
        lock.unlock()
        guard let comm else { return }
        backend.synchronize()
        try deregisterSymmetricWindows(comm)
        try checkNCCL(nccl.ncclCommDestroy(comm), "ncclCommDestroy")
        try bootstrap?.shutdown()
    }

    // MARK: Helpers

    /// Runs `body` with a device tensor: `tensor` itself when it lives on
    /// this backend's device; for a host tensor, a device copy (uploaded
    /// first unless `upload` is false), whose result is waited for and
    /// copied back (unless `copyBack` is false).
    private func onDevice(_ tensor: Tensor, _ call: String, upload: Bool = true, copyBack: Bool = true,
                          _ body: (Tensor) throws -> Void) throws {
        _ = try Self.dataType(tensor.dtype)
        if !tensor.device.isHost {
            guard tensor.device == backend.device else {
                throw NCCLError.invalidArgument("\(call): \(tensor) is not on this communicator's device \(backend.device)")
            }
            try body(tensor)
            return
        }
        let staged = try backend.makeTensor(tensor.shape, dtype: tensor.dtype)
        if upload { backend.upload(tensor, to: staged) }
        try body(staged)
        if copyBack {
            let result = backend.download(staged)  // waits for the stream
            tensor.rawPointer.copyMemory(from: result.rawPointer, byteCount: tensor.byteCount)
        } else {
            backend.synchronize()
        }
    }

    /// Enqueues one collective on the communication stream, after the
    /// compute stream's work so far; an ordinary one is joined back at once,
    /// a `background` one at `waitForCollectives` (Note [Communication stream]).
    private func enqueue(_ call: String, background: Bool = false,
                         _ body: @escaping (ncclComm_t, CUstream) throws -> ncclResult_t) throws {
        lock.lock()
        defer { lock.unlock() }
        guard let comm else { throw NCCLError.invalidArgument("\(call) after shutdown() or abort") }
        backend.context.makeCurrent()
        let compute = backend.stream.stream, capturing = backend.stream.isCapturing
        if background && capturing && launchesBackgroundCollectivesFromHost && communicationStream != nil
            && CUDAEvent.recordsExternally {
            return try queueForHostLaunch(call, body)
        }
        if !background { backend.stream.forbidDuringCapture("an NCCL \(call) outside a gradient reducer") }
        if !capturing && backend.stream.graphMayBeRunning && !ncclGraphMixingSupport {
            backend.stream.synchronize("before an uncaptured NCCL \(call) after a replayed step (Note [NCCL graph mixing])")
        }
        var stream = compute
        if let communicationStream, let forkEvent {
            forkEvent.record(on: compute, capturing: capturing)
            forkEvent.makeWait(communicationStream)
            stream = communicationStream
        }
        var timed: (start: CUDAEvent, end: CUDAEvent)?
        if timing && background && (!capturing || CUDAEvent.timesInsideGraphs) {
            if timingEvents.count == timedCollectives {
                timingEvents.append((try CUDAEvent(context: backend.context, timed: true),
                                     try CUDAEvent(context: backend.context, timed: true)))
            }
            timed = timingEvents[timedCollectives]
            timedCollectives += 1
            timed!.start.record(on: stream, capturing: capturing)
        }
        try checkNCCL(try body(comm, stream), call, comm: comm)
        ProgrammaticLaunch.serializeNextLaunch(on: stream)  // NCCL's own stream operations (Note [Programmatic dependent launch])
        timed?.end.record(on: stream, capturing: capturing)
        if communicationStream != nil {
            backgroundPending = true
            if !background { try join() }
        }
        // A peer's failure recorded in the background (an atomic read in NCCL).
        var asyncResult: ncclResult_t = 0
        try checkNCCL(nccl.ncclCommGetAsyncError(comm, &asyncResult), "ncclCommGetAsyncError", comm: comm)
        try checkNCCL(asyncResult, "\(call) (an earlier collective's asynchronous error)", comm: comm)
        if !background { watch(call) }
    }
}
