import CCUDA
import Foundation

/// One GPU: the driver loaded and initialised, the device's primary context
/// retained, and what the device and the libraries report about themselves.
///
/// Note [Current context]: the driver API acts on the context current on the
/// calling thread, and cuDNN and cuBLAS (through the runtime) use it too; a
/// thread with none fails with CUDA_ERROR_INVALID_CONTEXT. Training may call
/// the backend from a thread other than the one that made it, so every entry
/// point calls `makeCurrent()` first (a thread-local store in the driver, a
/// few nanoseconds). The primary context is the one the runtime itself uses,
/// so cuDNN and cuBLAS share our allocations and stream.
final class CUDAContext: @unchecked Sendable {
    let deviceIndex: Int
    let device: CUdevice
    let context: CUcontext
    let properties: DeviceProperties
    let versions: LibraryVersions

    struct DeviceProperties: Sendable {
        var name: String
        var computeCapability: (major: Int, minor: Int)
        var multiprocessorCount: Int
        var totalMemoryBytes: Int
        /// NVRTC's target for this device, e.g. `sm_90` (H100 and H200).
        var architecture: String { "sm_\(computeCapability.major)\(computeCapability.minor)" }
    }

    /// Versions as the libraries encode them, decoded for `details` and the kernel cache key.
    struct LibraryVersions: Sendable {
        var driver: Int        // 13000 = CUDA 13.0
        var nvrtc: (major: Int, minor: Int)
        var cudnn: Int         // 91400 = 9.14.0
        var cublas: Int        // 130001 = 13.0.1 (set once the handle exists)

        static func dotted(_ value: Int, _ factors: [Int]) -> String {
            var parts: [String] = []
            var rest = value
            for factor in factors {
                parts.append(String(rest / factor))
                rest %= factor
            }
            parts.append(String(rest))
            return parts.joined(separator: ".")
        }
        var driverText: String { "\(driver / 1000).\(driver % 1000 / 10)" }
        var cudnnText: String { Self.dotted(cudnn, [10000, 100]) }
        var cublasText: String { Self.dotted(cublas, [10000, 100]) }
    }

    /// Loads the four libraries, initialises the driver and retains device
    /// `deviceIndex`'s primary context. Throws `CUDAUnavailable` when a
    /// library or the device is missing, `CUDAError` when the driver fails.
    init(deviceIndex: Int) throws {
        try Self.load(cohort_cuda_load_driver, .driver)
        do {
            try checkCUDA(driver.cuInit(0), "cuInit")
        } catch {
            // 100 NO_DEVICE, 35 INSUFFICIENT_DRIVER (the driver is older than the CUDA the libraries need):
            // the machine, not the program, lacks something.
            switch error.code {
            case 100: throw CUDAUnavailable(missing: .device, reason: error.description)
            case 35: throw CUDAUnavailable(missing: .driver, reason: error.description)
            default: throw error
            }
        }
        var count: Int32 = 0
        try checkCUDA(driver.cuDeviceGetCount(&count), "cuDeviceGetCount")
        guard deviceIndex >= 0 && deviceIndex < Int(count) else {
            throw CUDAUnavailable(missing: .device,
                                  reason: "device cuda:\(deviceIndex) asked for, but the driver sees \(count) GPU(s)")
        }
        try Self.load(cohort_cuda_load_nvrtc, .nvrtc)
        try Self.load(cohort_cuda_load_cublas, .cublas)
        try Self.load(cohort_cuda_load_cudnn, .cudnn)

        self.deviceIndex = deviceIndex
        var device: CUdevice = 0
        try checkCUDA(driver.cuDeviceGet(&device, Int32(deviceIndex)), "cuDeviceGet", "ordinal \(deviceIndex)")
        self.device = device
        // COHORT_CUDA_SCHEDULE=spin|yield|blocking: how host threads wait for
        // this device (CU_CTX_SCHED_*; the driver's default, auto, spins while
        // there are fewer busy contexts than cores). A knob for measuring
        // several GPUs driven by one process (`--strategy dp`).
        if let schedule = ProcessInfo.processInfo.environment["COHORT_CUDA_SCHEDULE"],
           let setFlags = driver.cuDevicePrimaryCtxSetFlags_v2 {
            let flags: UInt32? = ["spin": 1, "yield": 2, "blocking": 4, "auto": 0][schedule]
            guard let flags else {
                throw CUDAError(call: "COHORT_CUDA_SCHEDULE", code: 1, name: "CUDA_ERROR_INVALID_VALUE",
                                message: "COHORT_CUDA_SCHEDULE is \(schedule); use spin, yield, blocking or auto")
            }
            try checkCUDA(setFlags(device, flags), "cuDevicePrimaryCtxSetFlags_v2", schedule)
        }
        var context: CUcontext?
        try checkCUDA(driver.cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain")
        guard let context else {
            throw CUDAError(call: "cuDevicePrimaryCtxRetain", code: 0, name: "CUDA_SUCCESS", message: "returned no context")
        }
        self.context = context
        try checkCUDA(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")

        var nameBuffer = [CChar](repeating: 0, count: 256)
        try checkCUDA(driver.cuDeviceGetName(&nameBuffer, Int32(nameBuffer.count - 1), device), "cuDeviceGetName")
        func attribute(_ attribute: Int32, _ what: String) throws -> Int {
            var value: Int32 = 0
            try checkCUDA(driver.cuDeviceGetAttribute(&value, attribute, device), "cuDeviceGetAttribute", what)
            return Int(value)
        }
        var totalMemory = 0
        try checkCUDA(driver.cuDeviceTotalMem_v2(&totalMemory, device), "cuDeviceTotalMem_v2")
        properties = DeviceProperties(
            name: loaderMessage(nameBuffer),
            computeCapability: (try attribute(Int32(COHORT_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR), "compute capability major"),
                                try attribute(Int32(COHORT_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR), "compute capability minor")),
            multiprocessorCount: try attribute(Int32(COHORT_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT), "multiprocessor count"),
            totalMemoryBytes: totalMemory)

        var driverVersion: Int32 = 0
        try checkCUDA(driver.cuDriverGetVersion(&driverVersion), "cuDriverGetVersion")
        var nvrtcMajor: Int32 = 0, nvrtcMinor: Int32 = 0
        try checkNVRTC(nvrtc.nvrtcVersion(&nvrtcMajor, &nvrtcMinor), "nvrtcVersion", program: "-")
        versions = LibraryVersions(driver: Int(driverVersion), nvrtc: (Int(nvrtcMajor), Int(nvrtcMinor)),
                                   cudnn: Int(cudnn.cudnnGetVersion()), cublas: 0)
    }

    private static func load(_ loader: (UnsafeMutablePointer<CChar>?, Int) -> Int32,
                             _ missing: CUDAUnavailable.Missing) throws(CUDAUnavailable) {
        var message = [CChar](repeating: 0, count: 1024)
        guard loader(&message, message.count) == 0 else {
            throw CUDAUnavailable(missing: missing, reason: loaderMessage(message))
        }
    }

    /// Makes this device's context current on the calling thread (see Note [Current context]).
    func makeCurrent() {
        mustSucceed { try checkCUDA(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent", "cuda:\(deviceIndex)") }
    }

    /// Free and total device memory, as the driver sees them now.
    func memoryInfo() throws(CUDAError) -> (free: Int, total: Int) {
        var free = 0, total = 0
        try checkCUDA(driver.cuMemGetInfo_v2(&free, &total), "cuMemGetInfo_v2")
        return (free, total)
    }
}

/// Only the driver loaded: used by tests and `cohort` to say why CUDA is
/// unavailable without touching a device. Returns nil when it loads.
public func cudaDriverLoadFailure() -> CUDAUnavailable? {
    var message = [CChar](repeating: 0, count: 1024)
    guard cohort_cuda_load_driver(&message, message.count) != 0 else { return nil }
    return CUDAUnavailable(missing: .driver, reason: loaderMessage(message))
}

/// How many GPUs the driver sees (after CUDA_VISIBLE_DEVICES), without
/// opening any: `--strategy dp` checks its replica count against it.
/// Throws `CUDAUnavailable` where the driver or a device is missing.
public func cudaVisibleDeviceCount() throws -> Int {
    if let failure = cudaDriverLoadFailure() { throw failure }
    do {
        try checkCUDA(driver.cuInit(0), "cuInit")
    } catch {
        switch error.code {  // as CUDAContext.init: the machine lacks something
        case 100: throw CUDAUnavailable(missing: .device, reason: error.description)
        case 35: throw CUDAUnavailable(missing: .driver, reason: error.description)
        default: throw error
        }
    }
    var count: Int32 = 0
    try checkCUDA(driver.cuDeviceGetCount(&count), "cuDeviceGetCount")
    return Int(count)
}
