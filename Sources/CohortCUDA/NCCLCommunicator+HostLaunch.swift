import CCUDA
import CohortDistributed

/// Note [All-reduces launched by the host]
/// - The kernel trace of a replayed data-parallel step (docs/results/2026-11-28-graph-gaps)
///   found its extra time against one GPU in the gaps between kernels: as soon as the
///   step's graph holds kernels on a second stream (the buckets' conversions and
///   all-reduces), every kernel of the step, forward's included, starts about 0.3 us
///   later after the one before it (0.42 against 0.10 us), some 0.1 ms a step at 128
///   per GPU. A branch with no kernels costs nothing; a microbenchmark of the same
///   graph shapes did not reproduce the cost, so its trigger is unknown.
/// - With `launchesBackgroundCollectivesFromHost`, no collective enters the graph. While
///   a step is captured, each background all-reduce (a bucket of the gradient reducer)
///   becomes an event-record node on the compute stream (CU_EVENT_RECORD_EXTERNAL:
///   every replay stamps the event where backward finished the bucket) and waits in
///   `hostLaunchQueue`; `waitForCollectives` (the reducer's `finishBackward`) splits the
///   capture there. The step replays as two one-chain graphs, forward and backward,
///   then the optimizer, and between the two launches the host, for each bucket in
///   order, waits for its event, enqueues the bucket's work (bf16 rounding, ncclAllReduce,
///   widening) on the communication stream, and at the end makes the compute stream
///   wait for it all before the optimizer's graph: the same work and order as the
///   captured branch, outside the graph.
/// - How the host waits (`HostLaunchWait`): `spin` polls the event (cuEventQuery) and
///   launches only when backward has passed it, so the communication stream never holds
///   a pending wait, at the price of a busy host thread during backward and a host round
///   trip (microseconds) between a bucket's last gradient and its all-reduce; `stream`
///   enqueues everything at once behind cuStreamWaitEvent on each event, as the graph's
///   edges did, and the host runs ahead; `host` (`--allreduce-launch host-sync`) polls as
///   `spin` does and also polls the all-reduces' end before it launches the optimizer's
///   graph, and eager steps' joins wait on the host too: no stream ever waits on the
///   device for the other's kernels.
/// - The host's launches come from the thread that replays the step, in the same
///   bucket order on every rank (`Note [Communicator contract]`). The host's polls check
///   NCCL's asynchronous error and keep the watchdog's time limit (`waitOnHost`), so a
///   rank whose peer died stops as the watchdog would have stopped it.
/// - Eager steps (warm-up, a step that is not captured) fork and join as before (Note
///   [Communication stream]), except that with `host` the join waits on the host.
/// - Measured (docs/results/2026-11-28-host-launch; `scripts/gpu-allreduce-launch.sh`, 4 x H200,
///   2026-11-28, a376e92 and 6b2e244, each way against one GPU in the same call, the losses of
///   every logged step identical to the graph's): `host` 92.7/93.5% and 92.2/93.1% at 4 x 128
///   against the graph's 92.2/92.4% and 92.4/92.4%, but 95.9% and 95.3% at 4 x 512 against 96.6%
///   and 97.0%, 88.7-89.1% at 4 x 32 against 89.4%; `host-stream` below the graph everywhere.
///   The kernel trace answered the question behind it: the forward's gaps grow as much in `host`
///   as in the graph (0.055 against 1 GPU's 0.011 ms, 2 x H200), and as much with the reducer's
///   two conversion kernels on one element launched from the host (COHORT_ALLREDUCE_DRY=tiny,
///   2 x H100); so the cost is not the graph's branch but kernels on a second stream (that the
///   compute stream waits for: below), and it stays with the steps after them. Off by
///   default (`--allreduce-launch graph`); kept as the way to run a step's collectives
///   outside its graph.
/// - A suspected trigger, found on one GPU with COHORT_SIDE_WORK (CUDABackend+SideWork.swift;
///   H100, 2026-11-28, 4e5ba7b and 1a84a38), the compute stream waiting on the device for a
///   second stream's kernel, led to `host` (`--allreduce-launch host-sync`: the host's polls
///   replace every device-side wait between the streams). Measured the next session
///   (docs/results/2026-11-28-pdl, 4 x H100, 16a9fce): 91.9/92.1% at 4 x 128 against the
///   graph's 92.4/91.8%, 97.2% against 97.7% at 4 x 512; and that one-GPU reproduction costs
///   nothing untraced (it was CUPTI's). Kept as an experiment; what hides the data-parallel
///   step's gaps is Note [Programmatic dependent launch] (KernelLauncher.swift).
public enum HostLaunchWait: String, Sendable, CaseIterable {
    /// The host polls each bucket's event, then enqueues; the compute stream waits for the all-reduces on the device.
    case spin
    /// Everything enqueued at once behind cuStreamWaitEvent; the compute stream waits on the device.
    case stream
    /// The host polls each bucket's event and the all-reduces' end: no stream ever waits for another's kernels.
    case host
}

/// A background collective of a captured step, enqueued at every replay by the host.
struct HostLaunchedCollective {
    /// Stamped by the replay where the collective's input is ready.
    let ready: CUDAEvent
    let call: String
    let body: (ncclComm_t, CUstream) throws -> ncclResult_t
}

extension NCCLCommunicator {
    /// Sets how a captured step's background all-reduces launch (`--allreduce-launch`); every
    /// rank alike, before the first capture.
    public func setAllReduceLaunch(_ launch: AllReduceLaunch) {
        launchesBackgroundCollectivesFromHost = launch != .graph
        switch launch {
        case .graph, .host: hostLaunchWait = .spin
        case .hostStream: hostLaunchWait = .stream
        case .hostSync: hostLaunchWait = .host
        }
    }

    /// With the lock held, while the compute stream is captured: marks the
    /// stream's current point with an event-record node and queues `body` for
    /// the replays' host launches.
    func queueForHostLaunch(_ call: String, _ body: @escaping (ncclComm_t, CUstream) throws -> ncclResult_t) throws {
        if hostLaunchQueueSerial != backend.captureSerial {
            hostLaunchQueue = []  // what a capture that failed before its split left
            hostLaunchQueueSerial = backend.captureSerial
        }
        let index = hostLaunchQueue.count
        if bucketReadyEvents.count == index { bucketReadyEvents.append(try CUDAEvent(context: backend.context, timed: false)) }
        let ready = bucketReadyEvents[index]
        try ready.recordExternally(on: backend.stream.stream)
        hostLaunchQueue.append(HostLaunchedCollective(ready: ready, call: call, body: body))
    }

    /// With the lock held, at the join of a capture whose all-reduces are
    /// queued: ends the graph here and hands them to the replays.
    func splitCaptureForHostLaunches() throws {
        let queued = hostLaunchQueue
        hostLaunchQueue = []
        if timing { timingCaptured = true }
        try backend.splitGraphCapture(thenRunning: { [unowned self] in try self.launchFromHost(queued) })
    }

    /// At a replay, after the graph that stamps `collectives`' events was launched:
    /// enqueues each on the communication stream once its gradients are ready, then
    /// makes the compute stream wait for all of them.
    private func launchFromHost(_ collectives: [HostLaunchedCollective]) throws {
        lock.lock()
        defer { lock.unlock() }
        guard let comm, let communicationStream, let joinEvent else {
            throw NCCLError.invalidArgument("a replayed step's all-reduces after shutdown() or abort")
        }
        backend.context.makeCurrent()
        if timing { timedCollectives = 0 }
        let timesEach = timing && CUDAEvent.timesInsideGraphs
        for (index, collective) in collectives.enumerated() {
            if hostLaunchWait != .stream { try waitOnHost(for: collective.ready, "backward's bucket \(index)") }
            // The host saw the event pass: the device needs no wait (`host`), or one that is already met.
            if hostLaunchWait != .host { collective.ready.makeWait(communicationStream) }
            var timed: (start: CUDAEvent, end: CUDAEvent)?
            if timesEach {
                if timingEvents.count == timedCollectives {
                    timingEvents.append((try CUDAEvent(context: backend.context, timed: true),
                                         try CUDAEvent(context: backend.context, timed: true)))
                }
                timed = timingEvents[timedCollectives]
                timedCollectives += 1
                timed!.start.record(on: communicationStream)
            }
            try checkNCCL(try collective.body(comm, communicationStream), collective.call, comm: comm)
            ProgrammaticLaunch.serializeNextLaunch(on: communicationStream)
            timed?.end.record(on: communicationStream)
        }
        joinEvent.record(on: communicationStream)
        if hostLaunchWait == .host {
            try waitOnHost(for: joinEvent, "the step's all-reduces")
        } else {
            joinEvent.makeWait(backend.stream.stream)
        }
        var asyncResult: ncclResult_t = 0
        try checkNCCL(nccl.ncclCommGetAsyncError(comm, &asyncResult), "ncclCommGetAsyncError", comm: comm)
        try checkNCCL(asyncResult, "a replayed step's all-reduce (an earlier collective's asynchronous error)", comm: comm)
    }

    /// Polls `event` until the device passed it. A peer that died leaves it
    /// unfinished: NCCL's asynchronous error, or the watchdog's time limit,
    /// stops this rank then (Note [Communication stream]), so no rank spins forever.
    func waitOnHost(for event: CUDAEvent, _ what: String) throws {
        let deadline = collectiveTimeout.map { ContinuousClock.now + $0 }
        var polls = 0
        while try !event.hasCompleted() {
            polls += 1
            guard polls % 4096 == 0 else { continue }
            if let comm {
                var asyncResult: ncclResult_t = 0
                if nccl.ncclCommGetAsyncError(comm, &asyncResult) == Int32(COHORT_NCCL_SUCCESS),
                   asyncResult != Int32(COHORT_NCCL_SUCCESS), asyncResult != Int32(COHORT_NCCL_IN_PROGRESS) {
                    abort(reason: "NCCL reported \(String(cString: nccl.ncclGetErrorString(asyncResult))) while waiting for \(what)")
                }
            }
            if let deadline, ContinuousClock.now > deadline {
                abort(reason: "\(what) did not finish within \(collectiveTimeout!) (a peer stopped?)")
            }
        }
    }
}
