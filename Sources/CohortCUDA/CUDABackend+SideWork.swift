import CCUDA
import CohortKernels
import CohortTensor
import Foundation

/// COHORT_SIDE_WORK, a diagnostic for the data-parallel step's gap growth
/// (docs/results/2026-11-28-host-launch): with any kernel on a second stream
/// (the reducer's conversions, even of one element, in the step's graph or
/// launched from the host), every later gap between two of the compute
/// stream's kernels grows from about 0.1 to 0.5 us, forward's included.
/// This reproduces the second stream's work in a one-GPU run, with nothing
/// else of data parallelism around it, so the trigger can be varied alone:
/// after each launch of a captured step the host enqueues on a stream of its
/// own (`COHORT_SIDE_PRIORITY=high` (the default, as the communication
/// stream) or `normal`):
///   `kernel`       the bf16 rounding kernel on one element (what COHORT_ALLREDUCE_DRY=tiny runs)
///   `kernel-join`  the same, then the compute stream waits for it (an event), as the reducer's join
///   `kernel-once`  the kernel after the first launch only
///   `memset`       a 4-byte cuMemsetD32Async instead of a kernel
///   `kernel-join-kernel`  `kernel-join`, then the same kernel on the compute stream after the wait
///   `kernel-sync`  the kernel, then the host waits for the side stream (no device-side join)
///   `kernel-value` the kernel, then the side stream writes a counter (cuStreamWriteValue32) that
///                  the compute stream waits for (cuStreamWaitValue32): a device-side join without events
/// Nothing the step computes changes. Off (unset) in every normal run.
/// Untraced, `kernel-join` costs nothing (docs/results/2026-11-28-pdl: 2.526 against 2.527 ms,
/// H100): the growth it showed came with CUPTI's kernel trace, not with the wait alone.
struct SideWork {
    enum Mode: String {
        case kernel, kernelJoin = "kernel-join", kernelOnce = "kernel-once", memset
        case kernelJoinKernel = "kernel-join-kernel", kernelSync = "kernel-sync", kernelValue = "kernel-value"
    }
    static let mode: Mode? = ProcessInfo.processInfo.environment["COHORT_SIDE_WORK"].flatMap(Mode.init(rawValue:))

    let stream: CUstream
    let event: CUDAEvent
    let source: Tensor, destination: Tensor
    /// `kernel-value`'s counter (4 bytes, zero at the start).
    let counter: Tensor
    var launches = 0
}

extension CUDABackend {
    /// Called before a capture begins (allocations are still allowed): the side stream and its buffers.
    func prepareSideWork() throws {
        guard SideWork.mode != nil, sideWork == nil, let create = driver.cuStreamCreateWithPriority, CUDAEvent.isAvailable else { return }
        context.makeCurrent()
        var least: Int32 = 0, greatest: Int32 = 0
        if let range = driver.cuCtxGetStreamPriorityRange { try checkCUDA(range(&least, &greatest), "cuCtxGetStreamPriorityRange") }
        let normal = ProcessInfo.processInfo.environment["COHORT_SIDE_PRIORITY"] == "normal"
        var side: CUstream?
        try checkCUDA(create(&side, UInt32(COHORT_CU_STREAM_NON_BLOCKING), normal ? least : greatest), "cuStreamCreateWithPriority")
        sideWork = SideWork(stream: side!, event: try CUDAEvent(context: context, timed: false),
                            source: try makeTensor([1], dtype: .float32), destination: try makeTensor([1], dtype: .bfloat16),
                            counter: try makeTensor([1], dtype: .float32))
        fill(sideWork!.counter, value: 0)  // all bits zero: the counter's 0
        FileHandle.standardError.write(Data("COHORT_SIDE_WORK=\(SideWork.mode!.rawValue) on a \(normal ? "normal" : "high")-priority stream (a timing diagnostic)\n".utf8))
    }

    /// After a captured step's launch: the side stream's work (see `SideWork`).
    func runSideWork() throws {
        guard let mode = SideWork.mode, var work = sideWork else { return }
        context.makeCurrent()
        defer { work.launches += 1; sideWork = work }
        switch mode {
        case .kernelOnce where work.launches > 0:
            return
        case .kernelValue:
            guard let wait = driver.cuStreamWaitValue32_v2, let write = driver.cuStreamWriteValue32_v2 else {
                throw CUDAError(call: "cuStreamWaitValue32_v2", code: 0, name: "missing", message: "this driver lacks stream memory operations")
            }
            convert(work.source, to: work.destination, on: work.stream)
            let value = UInt32(work.launches + 1)
            try checkCUDA(write(work.stream, work.counter.devicePointer, value, 0), "cuStreamWriteValue32_v2")
            try checkCUDA(wait(stream.stream, work.counter.devicePointer, value, UInt32(COHORT_CU_STREAM_WAIT_VALUE_GEQ)),
                          "cuStreamWaitValue32_v2")
            ProgrammaticLaunch.serializeNextLaunch(on: stream.stream)
        case .kernel, .kernelOnce, .kernelJoin, .kernelJoinKernel, .kernelSync:
            convert(work.source, to: work.destination, on: work.stream)
            if mode == .kernelJoin || mode == .kernelJoinKernel {
                work.event.record(on: work.stream)
                work.event.makeWait(stream.stream)
            }
            if mode == .kernelJoinKernel { convert(work.source, to: work.destination) }
            if mode == .kernelSync { try checkCUDA(driver.cuStreamSynchronize(work.stream), "cuStreamSynchronize") }
        case .memset:
            try checkCUDA(driver.cuMemsetD32Async(work.source.devicePointer, 0, 1, work.stream), "cuMemsetD32Async")
            ProgrammaticLaunch.serializeNextLaunch(on: work.stream)
        }
    }
}
