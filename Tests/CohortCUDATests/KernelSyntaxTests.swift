import CohortCUDA
import Foundation
import XCTest

/// Every NVRTC module parses as CUDA C++17 for sm_90, checked with clang's
/// CUDA front end (the Swift toolchain ships clang), so a typo in a kernel
/// fails here rather than at start-up on the GPU machine. clang gets no CUDA
/// headers; the stand-in declarations below cover what NVRTC provides built
/// in (attributes, built-in variables, intrinsics and math functions the
/// kernels use). Semantics are proven by `cohort selftest` on a GPU.
final class KernelSyntaxTests: XCTestCase {
    static let builtins = """
        #define __device__ __attribute__((device))
        #define __global__ __attribute__((global))
        #define __shared__ __attribute__((shared))
        #define __forceinline__ __inline__ __attribute__((always_inline))
        #define __launch_bounds__(...) __attribute__((launch_bounds(__VA_ARGS__)))
        #include "__clang_cuda_builtin_vars.h"
        __device__ float __uint_as_float(unsigned int); __device__ float __int_as_float(int);
        __device__ unsigned int __float_as_uint(float); __device__ int __float_as_int(float);
        __device__ void __syncthreads();
        __device__ float __shfl_down_sync(unsigned, float, int, int w = 32);
        __device__ double __shfl_down_sync(unsigned, double, int, int w = 32);
        __device__ int __shfl_down_sync(unsigned, int, int, int w = 32);
        __device__ float __shfl_xor_sync(unsigned, float, int, int w = 32);
        __device__ double __shfl_xor_sync(unsigned, double, int, int w = 32);
        __device__ int __shfl_xor_sync(unsigned, int, int, int w = 32);
        __device__ float expf(float); __device__ float logf(float); __device__ float sqrtf(float);
        __device__ float rsqrtf(float); __device__ float fmaxf(float, float); __device__ float fminf(float, float);
        __device__ float fabsf(float); __device__ double sqrt(double); __device__ double exp(double);
        __device__ double log(double); __device__ double fabs(double); __device__ double fmax(double, double);
        __device__ float atomicAdd(float*, float); __device__ double atomicAdd(double*, double);
        __device__ int isnan(float); __device__ int isinf(float); __device__ int isfinite(float);
        __device__ int isnan(double); __device__ int isinf(double); __device__ int isfinite(double);
        """

    /// Every kernel the backend launches by name exists as an `extern "C"`
    /// kernel of its module (a misspelt name would fail only at its first
    /// launch on the GPU). The bf16 names follow `CUDABackend.kernelName`
    /// (`_bf16`) and `elementwise(_:_:dtype:...)` (`_bf16x8`).
    func testEveryLaunchedKernelIsDefined() {
        let launched: [String: [String]] = [
            "elementwise": ["convert_f32_to_bf16", "convert_bf16_to_f32", "broadcast_rows", "krsc_to_oihw",
                            "krsc_bf16_to_oihw_f32", "graph_memset"]
                + ["relu_forward", "relu_backward", "residual_add"].flatMap { [$0, $0 + "_bf16", $0 + "_bf16x8"] }
                + ["global_average_pool", "global_average_pool_backward", "column_sums", "oihw_to_krsc"]
                    .flatMap { [$0, $0 + "_bf16"] },
            "batch_norm": ["bn_backward_finalize"]
                + ["bn_statistics_partials", "bn_statistics_finalize", "bn_inference", "bn_backward_partials",
                   "bn_normalize", "bn_backward_data"].flatMap { [$0, $0 + "_bf16"] },
            "batch_norm_bf16x8": ["bn_statistics_partials", "bn_normalize", "bn_backward_partials", "bn_backward_data"]
                .map { $0 + "_bf16x8" },
            "loss": ["softmax_xent_reduce"] + ["softmax_xent_rows", "softmax_xent_backward"].flatMap { [$0, $0 + "_bf16"] },
            // CUDABackend+ConvolutionGEMM.swift: `<name>_<unit bytes>` and kernelName's `_bf16`.
            "convolution_gemm": ["gather_pixels", "scatter_pixels"].flatMap { name in [16, 4, 2].map { "\(name)_\($0)" } }
                + ["im2col", "copy_columns"].flatMap { [$0, $0 + "_bf16"] },
        ]
        let sources = Dictionary(uniqueKeysWithValues: CUDAKernelSources.modules.map { ($0.name, $0.source) })
        for (module, names) in launched {
            guard let source = sources[module] else { return XCTFail("no module \(module)") }
            // A kernel's name is followed by its parameter list on the line that declares it.
            let declared = Set(source.split(separator: "\n").filter { $0.contains("extern \"C\" __global__") }
                .compactMap { line -> String? in
                    guard let open = line.firstIndex(of: "(") else { return nil }
                    let head = line[..<open].split(separator: " ").last.map(String.init)
                    return head == "__launch_bounds__" ? nil : head
                })
            let declaredWithBounds = Set(source.split(separator: "\n").compactMap { line -> String? in
                guard line.contains("__launch_bounds__"), let close = line.range(of: ") ") else { return nil }
                return line[close.upperBound...].split(separator: "(").first.map(String.init)
            })
            for name in names {
                XCTAssertTrue(declared.contains(name) || declaredWithBounds.contains(name), "\(module) has no kernel \(name)")
            }
        }
    }

    /// Every kernel's body starts with `grid_dependency_wait()`: with
    /// COHORT_PDL a kernel may be scheduled before the one ahead of it has
    /// finished, and only that wait keeps it from reading what is not yet
    /// written (Note [Programmatic dependent launch]). A kernel added without
    /// it would race only on a GPU, and only with PDL on.
    func testEveryKernelWaitsForTheKernelBeforeIt() throws {
        var checked = 0
        for module in CUDAKernelSources.modules {
            var rest = Substring(module.source)
            while let global = rest.range(of: "__global__") {
                let signature = rest[global.upperBound...]
                let open = try XCTUnwrap(signature.firstIndex(of: "{"), "\(module.name): a kernel without a body")
                let name = signature[..<open].split(separator: "(").first?.split(separator: " ").last ?? "?"
                let body = signature[signature.index(after: open)...].drop { $0 == " " || $0 == "\n" }
                XCTAssertTrue(body.hasPrefix("grid_dependency_wait();"),
                              "\(module.name).\(name) does not start with grid_dependency_wait()")
                checked += 1
                rest = signature[open...]
            }
        }
        XCTAssertGreaterThan(checked, 50)
    }

    func testEveryModuleParses() throws {
        let clang = ["/opt/swift/usr/bin/clang", "/usr/bin/clang"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let clang else { throw XCTSkip("no clang to syntax-check CUDA with") }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-kernels-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let shim = folder.appendingPathComponent("nvrtc-builtins.h")
        try Self.builtins.write(to: shim, atomically: true, encoding: .utf8)
        XCTAssertEqual(CUDAKernelSources.modules.count, 7)
        for module in CUDAKernelSources.modules {
            let file = folder.appendingPathComponent("\(module.name).cu")
            try module.source.write(to: file, atomically: true, encoding: .utf8)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: clang)
            process.arguments = ["-x", "cuda", "-fsyntax-only", "--cuda-gpu-arch=sm_90", "--cuda-device-only",
                                 "-nocudainc", "-nocudalib", "-std=c++17", "-include", shim.path, file.path]
            let pipe = Pipe()
            process.standardError = pipe
            process.standardOutput = pipe
            try process.run()
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            XCTAssertEqual(process.terminationStatus, 0, "\(module.name):\n\(output)")
        }
    }
}
