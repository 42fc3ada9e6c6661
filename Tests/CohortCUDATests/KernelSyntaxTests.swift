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

    func testEveryModuleParses() throws {
        let clang = ["/opt/swift/usr/bin/clang", "/usr/bin/clang"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let clang else { throw XCTSkip("no clang to syntax-check CUDA with") }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-kernels-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let shim = folder.appendingPathComponent("nvrtc-builtins.h")
        try Self.builtins.write(to: shim, atomically: true, encoding: .utf8)
        XCTAssertEqual(CUDAKernelSources.modules.count, 5)
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
