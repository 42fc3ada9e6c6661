import CCUDA

/// The backend's one stream: every op, copy and library call is enqueued on
/// it, in program order (see Note [Stream-ordered reuse]). Non-blocking, so
/// it never waits for work on the legacy default stream of other code.
final class CUDAStream {
    let context: CUDAContext
    let stream: CUstream
    /// Set by `CUDABackend.captureGraph` while it records this stream: host
    /// waits and uploads are then bugs, stopped here with their name (see
    /// Note [Graph capture] in docs/design.md).
    var isCapturing = false
    /// A graph was launched on this stream since its last synchronize: it may
    /// still be running (Note [NCCL graph mixing] in NCCLLibrary.swift).
    var graphMayBeRunning = false

    init(context: CUDAContext) throws(CUDAError) {
        self.context = context
        var stream: CUstream?
        try checkCUDA(driver.cuStreamCreate(&stream, UInt32(COHORT_CU_STREAM_NON_BLOCKING)), "cuStreamCreate")
        self.stream = stream!
    }

    deinit {
        context.makeCurrent()
        _ = driver.cuStreamSynchronize(stream)
        _ = driver.cuStreamDestroy_v2(stream)
    }

    /// Waits for everything enqueued so far; a kernel fault from any earlier
    /// launch surfaces here (CUDA errors are sticky and reported late).
    func synchronize(_ context: @autoclosure () -> String = "") {
        forbidDuringCapture("a host wait (cuStreamSynchronize: \(context()))")
        mustSucceed { try checkCUDA(driver.cuStreamSynchronize(stream), "cuStreamSynchronize", context()) }
        graphMayBeRunning = false
    }

    /// HtoD from pageable host memory: the driver stages the bytes before the
    /// call returns, so the host buffer may be reused at once.
    func copyToDevice(_ destination: CUdeviceptr, from source: UnsafeRawPointer, byteCount: Int) {
        guard byteCount > 0 else { return }
        forbidDuringCapture("an upload of \(byteCount) bytes (stage inputs before the step)")
        ProgrammaticLaunch.serializeNextLaunch(on: stream)  // Note [Programmatic dependent launch]
        mustSucceed {
            try checkCUDA(driver.cuMemcpyHtoDAsync_v2(destination, source, byteCount, stream), "cuMemcpyHtoDAsync_v2",
                          "\(byteCount) bytes")
        }
    }

    /// DtoH, then waits for it (the host reads the bytes next).
    func copyToHost(_ destination: UnsafeMutableRawPointer, from source: CUdeviceptr, byteCount: Int) {
        guard byteCount > 0 else { return }
        forbidDuringCapture("a download of \(byteCount) bytes")
        ProgrammaticLaunch.serializeNextLaunch(on: stream)  // Note [Programmatic dependent launch]
        mustSucceed {
            try checkCUDA(driver.cuMemcpyDtoHAsync_v2(destination, source, byteCount, stream), "cuMemcpyDtoHAsync_v2",
                          "\(byteCount) bytes")
        }
        synchronize("after a \(byteCount)-byte download")
    }

    func copy(_ destination: CUdeviceptr, from source: CUdeviceptr, byteCount: Int) {
        guard byteCount > 0 else { return }
        ProgrammaticLaunch.serializeNextLaunch(on: stream)  // Note [Programmatic dependent launch]
        mustSucceed {
            try checkCUDA(driver.cuMemcpyDtoDAsync_v2(destination, source, byteCount, stream), "cuMemcpyDtoDAsync_v2",
                          "\(byteCount) bytes")
        }
    }

    func fill32(_ destination: CUdeviceptr, bits: UInt32, count: Int) {
        guard count > 0 else { return }
        ProgrammaticLaunch.serializeNextLaunch(on: stream)  // Note [Programmatic dependent launch]
        mustSucceed {
            try checkCUDA(driver.cuMemsetD32Async(destination, bits, count, stream), "cuMemsetD32Async", "\(count) values")
        }
    }

    func fill16(_ destination: CUdeviceptr, bits: UInt16, count: Int) {
        guard count > 0 else { return }
        ProgrammaticLaunch.serializeNextLaunch(on: stream)  // Note [Programmatic dependent launch]
        mustSucceed {
            try checkCUDA(driver.cuMemsetD16Async(destination, bits, count, stream), "cuMemsetD16Async", "\(count) values")
        }
    }

    /// Stops the program if the stream is being captured: `what` cannot be
    /// recorded in a graph (it waits on the host, or reads host memory at
    /// replay time that the host may have changed).
    func forbidDuringCapture(_ what: @autoclosure () -> String) {
        if isCapturing {
            fatalError("CUDABackend: \(what()) during CUDA graph capture; a captured step may not wait, "
                       + "upload or download (Note [Graph capture] in docs/design.md)")
        }
    }
}
