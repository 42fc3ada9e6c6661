import CCUDA

/// Why the CUDA backend cannot start on this machine: a library or a device
/// is missing. Says what is missing and how to get it.
public struct CUDAUnavailable: Error, CustomStringConvertible {
    public enum Missing: Sendable, Equatable {
        /// libcuda.so.1 (the NVIDIA driver) could not be loaded.
        case driver
        /// The driver loaded but reports no device, or not the one asked for.
        case device
        case nvrtc, cublas, cudnn
    }

    public var missing: Missing
    /// The loader's or driver's own words (dlopen errors, device counts).
    public var reason: String

    public init(missing: Missing, reason: String) {
        self.missing = missing
        self.reason = reason
    }

    public var description: String {
        let remedy: String
        switch missing {
        case .driver:
            remedy = "libcuda.so.1 comes with the NVIDIA driver (e.g. `apt-get install nvidia-driver` or the "
                + "driver from nvidia.com; 580 or newer for CUDA 13); in a container, run it with the NVIDIA "
                + "container toolkit (`--gpus all`)"
        case .device:
            remedy = "check `nvidia-smi` and CUDA_VISIBLE_DEVICES"
        case .nvrtc:
            remedy = "libnvrtc.so.13 is part of the CUDA 13 runtime libraries (`apt-get install cuda-nvrtc-13-0`, "
                + "or pip's nvidia-cuda-nvrtc with its lib folder on LD_LIBRARY_PATH)"
        case .cublas:
            remedy = "libcublas.so.13 is part of the CUDA 13 runtime libraries (`apt-get install libcublas-13-0`, "
                + "or pip's nvidia-cublas with its lib folder on LD_LIBRARY_PATH)"
        case .cudnn:
            remedy = "libcudnn.so.9 and its sub-libraries (libcudnn_graph/ops/cnn.so.9) come with cuDNN 9 "
                + "(`apt-get install cudnn9-cuda-13`, or pip's nvidia-cudnn-cu13 with its lib folder on LD_LIBRARY_PATH)"
        }
        return "CUDA backend unavailable: \(reason). To fix: \(remedy). Or use the CPU backends (onednn, reference)."
    }
}

/// A CUDA driver call returned something other than CUDA_SUCCESS.
public struct CUDAError: Error, CustomStringConvertible {
    public var call: String
    public var code: Int32
    /// The driver's name for the code (`CUDA_ERROR_OUT_OF_MEMORY`).
    public var name: String
    public var message: String
    /// What the backend was doing (a shape, a kernel name); may be empty.
    public var context: String

    public init(call: String, code: Int32, name: String, message: String, context: String = "") {
        (self.call, self.code, self.name, self.message, self.context) = (call, code, name, message, context)
    }

    public var description: String {
        "CUDA \(call) failed with \(name) (\(code)): \(message)" + (context.isEmpty ? "" : " [\(context)]")
    }
}

/// A cuDNN call returned something other than CUDNN_STATUS_SUCCESS.
public struct CUDNNError: Error, CustomStringConvertible {
    public var call: String
    public var code: Int32
    public var name: String
    /// cuDNN 9's last-error detail, when it has one.
    public var message: String
    public var context: String

    public init(call: String, code: Int32, name: String, message: String, context: String = "") {
        (self.call, self.code, self.name, self.message, self.context) = (call, code, name, message, context)
    }

    public var description: String {
        var text = "cuDNN \(call) failed with \(name) (\(code))"
        if !message.isEmpty { text += ": \(message)" }
        if code == 1008 { text += " (libcudnn_graph/ops/cnn.so.9 must be on the loader path beside libcudnn.so.9)" }
        return text + (context.isEmpty ? "" : " [\(context)]")
    }
}

/// A cuBLAS call returned something other than CUBLAS_STATUS_SUCCESS.
public struct CUBLASError: Error, CustomStringConvertible {
    public var call: String
    public var code: Int32
    public var name: String
    public var message: String
    public var context: String

    public init(call: String, code: Int32, name: String, message: String, context: String = "") {
        (self.call, self.code, self.name, self.message, self.context) = (call, code, name, message, context)
    }

    public var description: String {
        "cuBLAS \(call) failed with \(name) (\(code))" + (message.isEmpty ? "" : ": \(message)")
            + (context.isEmpty ? "" : " [\(context)]")
    }
}

/// An NVRTC call failed; a failed compile carries the compiler's log.
public struct NVRTCError: Error, CustomStringConvertible {
    public var call: String
    public var code: Int32
    public var name: String
    /// The program's name (the kernel module) and the compile log, if any.
    public var program: String
    public var log: String

    public init(call: String, code: Int32, name: String, program: String, log: String = "") {
        (self.call, self.code, self.name, self.program, self.log) = (call, code, name, program, log)
    }

    public var description: String {
        "NVRTC \(call) failed with \(name) (\(code)) for \(program)" + (log.isEmpty ? "" : "; compile log:\n\(log)")
    }
}

// MARK: Checking status codes

/// The function tables, valid once their loader succeeded (only code
/// reached after `CUDAContext.init` loaded all four uses them). Computed, not
/// stored: a lazily initialised global read before its loader ran would keep
/// a table of null pointers for good.
var driver: CohortCUDADriver { cohort_cuda_driver().pointee }
var nvrtc: CohortNVRTC { cohort_nvrtc().pointee }
var cublas: CohortCUBLAS { cohort_cublas().pointee }
var cudnn: CohortCUDNN { cohort_cudnn().pointee }

/// Throws `CUDAError` unless `result` is CUDA_SUCCESS (0).
func checkCUDA(_ result: CUresult, _ call: String, _ context: @autoclosure () -> String = "") throws(CUDAError) {
    guard result != 0 else { return }
    var name: UnsafePointer<CChar>?
    var message: UnsafePointer<CChar>?
    _ = driver.cuGetErrorName(result, &name)
    _ = driver.cuGetErrorString(result, &message)
    throw CUDAError(call: call, code: result, name: name.map { String(cString: $0) } ?? "CUDA_ERROR_\(result)",
                    message: message.map { String(cString: $0) } ?? "unknown error", context: context())
}

/// Throws `CUDNNError` unless `status` is CUDNN_STATUS_SUCCESS (0).
func checkCUDNN(_ status: cudnnStatus_t, _ call: String, _ context: @autoclosure () -> String = "") throws(CUDNNError) {
    guard status != 0 else { return }
    var detail = ""
    if let lastError = cudnn.cudnnGetLastErrorString {
        var buffer = [CChar](repeating: 0, count: 1024)
        lastError(&buffer, buffer.count)
        detail = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
    throw CUDNNError(call: call, code: status, name: String(cString: cudnn.cudnnGetErrorString(status)),
                     message: detail, context: context())
}

/// Throws `CUBLASError` unless `status` is CUBLAS_STATUS_SUCCESS (0).
func checkCUBLAS(_ status: cublasStatus_t, _ call: String, _ context: @autoclosure () -> String = "") throws(CUBLASError) {
    guard status != 0 else { return }
    let name = cublas.cublasGetStatusName.flatMap { $0(status) }.map { String(cString: $0) } ?? "CUBLAS_STATUS_\(status)"
    let message = cublas.cublasGetStatusString.flatMap { $0(status) }.map { String(cString: $0) } ?? ""
    throw CUBLASError(call: call, code: status, name: name, message: message, context: context())
}

/// Throws `NVRTCError` unless `result` is NVRTC_SUCCESS (0).
func checkNVRTC(_ result: nvrtcResult, _ call: String, program: String, log: String = "") throws(NVRTCError) {
    guard result != 0 else { return }
    throw NVRTCError(call: call, code: result, name: String(cString: nvrtc.nvrtcGetErrorString(result)),
                     program: program, log: log)
}

/// For the non-throwing `Backend` methods: a failure there (an illegal
/// address, a cuDNN refusal of a shape it planned) is not recoverable, so it
/// stops the program with the full typed error. `fatalError`, not
/// `preconditionFailure`, because release builds drop the latter's message.
func mustSucceed<T>(_ body: () throws -> T) -> T {
    do { return try body() } catch { fatalError("CUDABackend: \(error)") }
}

/// The loader's error text from a C buffer.
func loaderMessage(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
