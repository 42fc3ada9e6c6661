import CCUDA
import Foundation

/// Identifies one compiled CUBIN: everything that changes the machine code.
///
/// Note [Kernel cache]: NVRTC takes 0.1-1 s per module, so CUBINs are kept
/// on disk under `<cache>/<module>-<hash>.cubin`, the hash covering the
/// source, the options, the NVRTC and driver versions and the compute
/// capability (the architecture is in the options). Two independent 64-bit
/// FNV-1a hashes make a 128-bit name; a collision would need a crafted
/// input. A file that fails to load is recompiled and overwritten, and an
/// unwritable cache directory only costs the compile time.
public struct KernelCacheKey: Hashable, Sendable {
    public var moduleName: String
    public var source: String
    public var options: [String]
    public var nvrtcVersion: String
    public var driverVersion: Int
    public var architecture: String

    public init(moduleName: String, source: String, options: [String], nvrtcVersion: String, driverVersion: Int,
                architecture: String) {
        self.moduleName = moduleName
        self.source = source
        self.options = options
        self.nvrtcVersion = nvrtcVersion
        self.driverVersion = driverVersion
        self.architecture = architecture
    }

    /// 32 hex digits.
    public var hash: String {
        var text = source
        for part in options + [nvrtcVersion, String(driverVersion), architecture] { text += "\u{0}" + part }
        let bytes = Array(text.utf8)
        func fnv1a(_ basis: UInt64) -> UInt64 {
            var hash = basis
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
            return hash
        }
        let first = fnv1a(0xCBF2_9CE4_8422_2325), second = fnv1a(0x84222325_CBF29CE4 ^ 0x9E37_79B9_7F4A_7C15)
        return hexDigits(first) + hexDigits(second)
    }

    /// The cache file's name: readable prefix, then the hash.
    public var fileName: String { "\(moduleName)-\(hash).cubin" }

    private func hexDigits(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// `$COHORT_KERNEL_CACHE` (`off` disables the cache), else
    /// `$XDG_CACHE_HOME/cohort/kernels`, else `~/.cache/cohort/kernels`.
    public static func cacheDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL? {
        if let explicit = environment["COHORT_KERNEL_CACHE"], !explicit.isEmpty {
            return explicit == "off" ? nil : URL(fileURLWithPath: explicit, isDirectory: true)
        }
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
            return URL(fileURLWithPath: xdg, isDirectory: true).appendingPathComponent("cohort/kernels", isDirectory: true)
        }
        if let home = environment["HOME"], !home.isEmpty {
            return URL(fileURLWithPath: home, isDirectory: true).appendingPathComponent(".cache/cohort/kernels", isDirectory: true)
        }
        return nil
    }
}

/// Compiles CUDA C sources with NVRTC into CUBINs for one device and loads
/// them as modules (see Note [Kernel cache]).
final class KernelCompiler {
    let context: CUDAContext
    let cacheDirectory: URL?
    private var modules: [String: KernelModule] = [:]

    init(context: CUDAContext, cacheDirectory: URL? = KernelCacheKey.cacheDirectory()) {
        self.context = context
        self.cacheDirectory = cacheDirectory
    }

    /// Options for every module: real machine code for this device (`sm_XY`
    /// gives a CUBIN; `compute_XY` would give PTX only), C++17, and no fast
    /// math, so expf/logf/division are IEEE-accurate as the reference needs.
    var options: [String] {
        ["--gpu-architecture=\(context.properties.architecture)", "--std=c++17"]
    }

    /// The loaded module for `source`, compiled (or read from the disk cache) at its first use.
    func module(named name: String, source: String) throws -> KernelModule {
        if let module = modules[name] { return module }
        let versions = context.versions
        let key = KernelCacheKey(moduleName: name, source: source, options: options,
                                 nvrtcVersion: "\(versions.nvrtc.major).\(versions.nvrtc.minor)",
                                 driverVersion: versions.driver, architecture: context.properties.architecture)
        let file = cacheDirectory?.appendingPathComponent(key.fileName)
        if let file, let cached = try? Data(contentsOf: file), let module = try? KernelModule(name: name, cubin: cached) {
            modules[name] = module
            return module
        }
        let cubin = try compile(name: name, source: source)
        let module = try KernelModule(name: name, cubin: cubin)
        if let file, let directory = cacheDirectory {
            // Best effort: a read-only home only costs the compile next time.
            try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try? cubin.write(to: file, options: .atomic)
        }
        modules[name] = module
        return module
    }

    /// NVRTC: source to CUBIN. A failed compile throws `NVRTCError` with the log.
    func compile(name: String, source: String) throws(NVRTCError) -> Data {
        var program: nvrtcProgram?
        try checkNVRTC(nvrtc.nvrtcCreateProgram(&program, source, name + ".cu", 0, nil, nil), "nvrtcCreateProgram",
                       program: name)
        defer { _ = nvrtc.nvrtcDestroyProgram(&program) }
        let options = self.options
        let optionPointers = options.map { strdup($0) }
        defer { optionPointers.forEach { free($0) } }
        let result = optionPointers.map { UnsafePointer($0) }.withUnsafeBufferPointer {
            nvrtc.nvrtcCompileProgram(program!, Int32(options.count), $0.baseAddress)
        }
        let log = programLog(program!)
        try checkNVRTC(result, "nvrtcCompileProgram", program: "\(name) (\(options.joined(separator: " ")))", log: log)
        var size = 0
        try checkNVRTC(nvrtc.nvrtcGetCUBINSize(program!, &size), "nvrtcGetCUBINSize", program: name)
        guard size > 0 else {
            throw NVRTCError(call: "nvrtcGetCUBINSize", code: 0, name: "empty CUBIN (PTX-only target?)", program: name, log: log)
        }
        var cubin = [CChar](repeating: 0, count: size)
        try checkNVRTC(nvrtc.nvrtcGetCUBIN(program!, &cubin), "nvrtcGetCUBIN", program: name)
        return cubin.withUnsafeBytes { Data($0) }
    }

    private func programLog(_ program: nvrtcProgram) -> String {
        var size = 0
        guard nvrtc.nvrtcGetProgramLogSize(program, &size) == 0, size > 1 else { return "" }
        var log = [CChar](repeating: 0, count: size)
        guard nvrtc.nvrtcGetProgramLog(program, &log) == 0 else { return "" }
        return loaderMessage(log)
    }
}

/// A loaded CUBIN and the kernels looked up in it.
final class KernelModule {
    let name: String
    let module: CUmodule
    private var functions: [String: CUfunction] = [:]

    init(name: String, cubin: Data) throws(CUDAError) {
        self.name = name
        var module: CUmodule?
        let result = cubin.withUnsafeBytes { driver.cuModuleLoadData(&module, $0.baseAddress!) }
        try checkCUDA(result, "cuModuleLoadData", "module \(name)")
        self.module = module!
    }

    /// COHORT_KERNEL_CARVEOUT=<0-100>, an experiment: the share of each SM's
    /// L1/shared memory Cohort's own kernels prefer as shared memory (0: the
    /// most L1). A question from the graph-phase study (Note [Distributed] in
    /// docs/design.md): whether the SMs keep the split NCCL's 82 KB blocks
    /// set, leaving the batch-norm and elementwise kernels after them less L1.
    static let preferredCarveout: Int32? = ProcessInfo.processInfo.environment["COHORT_KERNEL_CARVEOUT"]
        .flatMap { Int32($0) }.flatMap { (0...100).contains($0) ? $0 : nil }

    /// The `extern "C" __global__` function `kernel`.
    func function(_ kernel: String) throws(CUDAError) -> CUfunction {
        if let function = functions[kernel] { return function }
        var function: CUfunction?
        try checkCUDA(driver.cuModuleGetFunction(&function, module, kernel), "cuModuleGetFunction", "\(name).\(kernel)")
        if let carveout = Self.preferredCarveout, let set = driver.cuFuncSetAttribute {
            try checkCUDA(set(function!, Int32(COHORT_CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT), carveout),
                          "cuFuncSetAttribute", "\(name).\(kernel): shared-memory carveout \(carveout)")
        }
        functions[kernel] = function!
        return function!
    }
}
