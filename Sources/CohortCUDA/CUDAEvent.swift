import CCUDA
import Foundation
import CohortKernels
import CohortTensor

/// A CUDA event of one context: ordering between streams (without timing,
/// the cheaper kind) or a device timestamp (Note [Device timing]). Needs
/// the driver's optional event functions; `CUDAEvent.isAvailable` says
/// whether this driver has them.
/// @unchecked Sendable: the watchdog thread queries an event the step thread records; the driver allows both at once.
final class CUDAEvent: DeviceTimestamp, @unchecked Sendable {
    let context: CUDAContext
    let event: CUevent
    let timed: Bool
    /// Whether the last `record` reached the stream (false: never recorded,
    /// or skipped during a graph capture).
    private(set) var isRecorded = false

    static var isAvailable: Bool {
        let d = driver
        return d.cuEventCreate != nil && d.cuEventRecord != nil && d.cuEventDestroy_v2 != nil
            && d.cuEventSynchronize != nil && d.cuEventQuery != nil && d.cuStreamWaitEvent != nil
            && (d.cuEventElapsedTime_v2 ?? d.cuEventElapsedTime) != nil
    }

    init(context: CUDAContext, timed: Bool) throws(CUDAError) {
        precondition(Self.isAvailable, "CUDAEvent: the driver lacks the event functions (check CUDAEvent.isAvailable)")
        self.context = context
        self.timed = timed
        context.makeCurrent()
        var event: CUevent?
        try checkCUDA(driver.cuEventCreate!(&event, timed ? 0 : UInt32(COHORT_CU_EVENT_DISABLE_TIMING)), "cuEventCreate")
        self.event = event!
    }

    deinit {
        context.makeCurrent()
        _ = driver.cuEventDestroy_v2!(event)
    }

    /// Note [Timing inside graphs]
    /// An event recorded while its stream is captured becomes, by default, an
    /// edge of the graph: an ordering, never a timestamp. Recorded with
    /// CU_EVENT_RECORD_EXTERNAL (cuEventRecordWithFlags, CUDA 11.1+) it
    /// becomes an event-record node instead, which stamps the event on every
    /// replay, so `seconds(since:)` between two such events (or one and an
    /// event recorded outside, on the same stream) times part of a replayed
    /// step (PyTorch's `torch.cuda.Event(external=True)` does the same).
    /// A replayed step then reports forward, backward, exposed communication
    /// and each bucket's all-reduce as an eager one does, where otherwise it
    /// reports only its whole. Each node costs the replay a little, so it is
    /// off unless `COHORT_GRAPH_TIMING=1` (a diagnostic: where 4 GPUs lose
    /// time against one, Note [Distributed] in docs/design.md).
    static let timesInsideGraphs: Bool =
        ProcessInfo.processInfo.environment["COHORT_GRAPH_TIMING"] == "1" && driver.cuEventRecordWithFlags != nil

    /// Marks `stream`'s current end. An ordering event recorded while the
    /// stream is captured becomes a dependency edge of the graph; a timed one
    /// is not recorded then (a graph edge has no timestamp), unless
    /// `timesInsideGraphs`: then it becomes an event-record node.
    func record(on stream: CUstream, capturing: Bool = false) {
        if timed && capturing {
            isRecorded = Self.timesInsideGraphs
            guard isRecorded else { return }
            context.makeCurrent()
            mustSucceed {
                try checkCUDA(driver.cuEventRecordWithFlags!(event, stream, UInt32(COHORT_CU_EVENT_RECORD_EXTERNAL)),
                              "cuEventRecordWithFlags")
            }
            return
        }
        context.makeCurrent()
        mustSucceed { try checkCUDA(driver.cuEventRecord!(event, stream), "cuEventRecord") }
        isRecorded = true
    }

    /// Records the event on `stream` as an event-record node while the stream
    /// is captured (CU_EVENT_RECORD_EXTERNAL): every replay stamps it, so work
    /// outside the graph can wait for that point of the replay (Note [All-reduces
    /// launched by the host] in NCCLCommunicator+HostLaunch.swift). False where
    /// the driver lacks cuEventRecordWithFlags.
    static var recordsExternally: Bool { driver.cuEventRecordWithFlags != nil }

    func recordExternally(on stream: CUstream) throws(CUDAError) {
        guard let recordWithFlags = driver.cuEventRecordWithFlags else {
            throw CUDAError(call: "cuEventRecordWithFlags", code: 0, name: "missing", message: "this driver lacks it (CUDA 11.1+)")
        }
        context.makeCurrent()
        try checkCUDA(recordWithFlags(event, stream, UInt32(COHORT_CU_EVENT_RECORD_EXTERNAL)), "cuEventRecordWithFlags")
        isRecorded = true
    }

    /// Makes `stream`'s later work wait until the device has passed this event.
    func makeWait(_ stream: CUstream) {
        context.makeCurrent()
        mustSucceed { try checkCUDA(driver.cuStreamWaitEvent!(stream, event, 0), "cuStreamWaitEvent") }
        ProgrammaticLaunch.serializeNextLaunch(on: stream)  // Note [Programmatic dependent launch]
    }

    /// Whether the device has passed the event (true for one never recorded).
    /// Throws what the work before it failed with.
    func hasCompleted() throws(CUDAError) -> Bool {
        context.makeCurrent()
        let result = driver.cuEventQuery!(event)
        if result == Int32(COHORT_CUDA_ERROR_NOT_READY) { return false }
        try checkCUDA(result, "cuEventQuery")
        return true
    }

    /// Device seconds from `start` to this event, waiting for this one; nil
    /// unless both were recorded with timing.
    func seconds(since start: CUDAEvent) -> Double? {
        guard timed, start.timed, isRecorded, start.isRecorded else { return nil }
        context.makeCurrent()
        var milliseconds: Float = 0
        mustSucceed { try checkCUDA(driver.cuEventSynchronize!(event), "cuEventSynchronize") }
        // A timing the driver refuses (say, a pair it cannot compare) is a
        // missing figure, not a reason to stop training.
        let elapsed = (driver.cuEventElapsedTime_v2 ?? driver.cuEventElapsedTime)!
        guard elapsed(&milliseconds, start.event, event) == 0 else { return nil }
        return Double(milliseconds) / 1000
    }
}

extension CUDABackend {
    public func makeTimestamp() -> DeviceTimestamp? {
        guard CUDAEvent.isAvailable else { return nil }
        return mustSucceed { try CUDAEvent(context: context, timed: true) }
    }

    public func record(_ timestamp: DeviceTimestamp) {
        guard let event = timestamp as? CUDAEvent else {
            preconditionFailure("record: \(type(of: timestamp)) is not a timestamp of the cuda backend")
        }
        event.record(on: stream.stream, capturing: stream.isCapturing)
    }

    /// Waits for `timestamp` alone, then copies `source` with the legacy
    /// stream's synchronous copy: it does not wait for the compute stream
    /// (non-blocking), so the steps queued behind `timestamp` keep running.
    /// Without cuMemcpyDtoH, or for an event never recorded, `download`.
    public func download(_ source: Tensor, after timestamp: DeviceTimestamp) -> Tensor {
        guard let event = timestamp as? CUDAEvent, event.isRecorded, let copy = driver.cuMemcpyDtoH_v2,
              !stream.isCapturing, source.device == device else { return download(source) }
        context.makeCurrent()
        mustSucceed { try checkCUDA(driver.cuEventSynchronize!(event.event), "cuEventSynchronize", "before a download") }
        let host = try! Tensor(shape: source.shape, dtype: source.dtype, allocator: HostAllocator.shared)
        if source.byteCount > 0 {
            mustSucceed { try checkCUDA(copy(host.rawPointer, source.devicePointer, source.byteCount), "cuMemcpyDtoH_v2",
                                        "\(source.byteCount) bytes") }
        }
        return host
    }

    public func seconds(from start: DeviceTimestamp, to end: DeviceTimestamp) -> Double? {
        guard let start = start as? CUDAEvent, let end = end as? CUDAEvent else { return nil }
        return end.seconds(since: start)
    }

    /// Note [Timing inside graphs]: with `COHORT_GRAPH_TIMING=1` and a driver that can.
    public var recordsTimestampsInsideGraphs: Bool { CUDAEvent.timesInsideGraphs }
}
