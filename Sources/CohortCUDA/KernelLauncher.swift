import CCUDA
import Foundation
import CohortTensor

/// One argument of a kernel launch, as the kernel's C signature declares it.
enum KernelArgument {
    case pointer(CUdeviceptr)
    case int32(Int32)
    case int64(Int64)
    case float(Float)

    static func tensor(_ tensor: Tensor) -> KernelArgument { .pointer(tensor.devicePointer) }
    /// An `int` parameter; traps (with the value) if it does not fit.
    static func int(_ value: Int) -> KernelArgument {
        guard let narrow = Int32(exactly: value) else { fatalError("CUDABackend: kernel argument \(value) exceeds int32") }
        return .int32(narrow)
    }
    /// A `long long` parameter (element counts, which can pass 2^31).
    static func count(_ value: Int) -> KernelArgument { .int64(Int64(value)) }

    /// The argument's bytes in the low end of a 64-bit slot (little-endian).
    var bits: UInt64 {
        switch self {
        case .pointer(let value): return value
        case .int32(let value): return UInt64(UInt32(bitPattern: value))
        case .int64(let value): return UInt64(bitPattern: value)
        case .float(let value): return UInt64(value.bitPattern)
        }
    }
}

/// Note [Programmatic dependent launch]
/// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
/// Between two kernels of one stream the GPU normally waits for the first to
/// complete (its memory flushed, its completion signalled) before it starts
/// launching the second. In a replayed one-GPU step that gap is about 0.1 us;
/// in the data-parallel step, where kernels also run on the communication
/// stream, it grows to about 0.5 us for every kernel of the step, forward's
/// included (docs/results/2026-11-28-host-launch): 0.1-0.15 ms of a 2.5 ms
/// step at 128 images per GPU, most of what the fourth GPU costs.
/// Hopper's programmatic dependent launch (PDL) moves that wait into the
/// kernel: a kernel launched with programmatic stream serialization may be
/// scheduled as soon as the kernel ahead of it triggers (explicitly, or by all
/// its blocks exiting), and its first statement, `grid_dependency_wait()`
/// (griddepcontrol.wait, in every Cohort kernel), holds its threads until that
/// kernel has completed and its writes are visible. So the launch overlaps the
/// previous kernel's tail; the order of memory effects is unchanged. Captured
/// into a graph, the launch becomes a programmatic edge.
/// - Every kernel also triggers its dependents (griddepcontrol.launch_dependents)
///   once all its blocks have passed the wait, so the next kernel's launch is
///   under way while this one computes; the next kernel's blocks then wait in
///   `grid_dependency_wait()`. Without the trigger (launch at the last block's
///   exit) the 2-GPU step gained 0.02 ms instead of 0.08 (2 x H200, fc0d99a,
///   against launches without the attribute in the same call).
/// - A stream operation that is not a kernel (a copy, a memset, a wait for an
///   event, an NCCL call, a graph launch) must not be overtaken: measured, a
///   programmatic launch behind cuStreamWaitEvent started before the event
///   (the self-test's host-stream rows read half-written gradients). So such
///   operations mark their stream (`serializeNextLaunch(on:)`) and the next
///   kernel launched there is a normal launch. cuDNN's and cuBLAS's calls end
///   with a kernel of theirs: the wait lasts until that kernel has completed,
///   however early it triggered.
/// - Measured (2 x H200, 2026-11-28, 0b00d8e, docs/results/2026-11-28-pdl),
///   against COHORT_PDL=off in the same call, the losses identical: the 2-GPU
///   step at 128 per GPU 2.593 -> 2.530 ms (weak scaling 92.7 -> 95.0%), at 32
///   1.617 -> 1.524 (90.0 -> 95.5%), at 512 6.327 -> 6.349 (97.3 -> 96.9%);
///   the one-GPU step at 128 2.404 -> 2.424 ms with COHORT_PDL=on (its gaps
///   were 0.1 us already, and the waiting blocks take SM slots from the
///   kernel ahead), hence `auto`. On 4 x H200 (same binary and method): 4 x 128
///   92.5 -> 95.0% and 92.3 -> 94.8%, 4 x 32 89.2 -> 94.9%, 4 x 512 97.1 -> 96.5%.
/// - Large batches lose: a step of 6-11 ms has few kernel gaps to hide, and
///   the early blocks still take SM slots. 2 x H200 (2026-11-29, b3f6ab8,
///   against COHORT_PDL=off in the same call, losses identical,
///   docs/results/2026-11-29-2xh200-suite-q2q3/pdl-large-batches.md): 2 x 256
///   95.9 -> 96.8%, 2 x 512 97.6 -> 97.2% and 97.3 -> 97.6%, 2 x 1024
///   96.1 -> 94.9% and 95.9 -> 95.1%. With 4 x 512's loss above, `auto` leaves
///   them off from `ProgrammaticLaunchBatchLimit` images per GPU.
/// COHORT_PDL: `auto` (the default: on where a data-parallel communicator of
/// more than one rank works beside the compute stream and each device's batch
/// is below 512 images, off otherwise), `on` (every launch on sm_90+ where
/// cuLaunchKernelEx exists), `off`.
enum ProgrammaticLaunch: String {
    case off, on, auto
    static let mode: ProgrammaticLaunch = {
        guard let value = ProcessInfo.processInfo.environment["COHORT_PDL"], !value.isEmpty else { return .auto }
        guard let mode = ProgrammaticLaunch(rawValue: value) else {
            FileHandle.standardError.write(Data("COHORT_PDL=\(value) ignored: auto, on or off\n".utf8))
            return .auto
        }
        return mode
    }()

    /// Marks `stream`: its next kernel launch is a normal one (see the Note).
    static func serializeNextLaunch(on stream: CUstream?) {
        guard mode != .off, let stream else { return }
        barriers.insert(stream)
    }

    fileprivate static let barriers = StreamBarriers()
}

/// COHORT_PDL=auto's batch rule: data-parallel steps of this many images per
/// device or more launch normally (Note [Programmatic dependent launch]).
public enum ProgrammaticLaunchBatchLimit {
    public static let fromImagesPerDevice = 512

    /// Whether `auto` may launch a data-parallel step's kernels programmatically.
    public static func allows(perDeviceBatch: Int) -> Bool { perDeviceBatch < fromImagesPerDevice }
}

/// The streams whose next kernel must launch normally; streams of several
/// replica threads (`--strategy dp`) share it, hence the lock.
final class StreamBarriers: @unchecked Sendable {
    private let lock = NSLock()
    private var streams = Set<UInt>()
    func insert(_ stream: CUstream) { lock.lock(); streams.insert(UInt(bitPattern: stream)); lock.unlock() }
    /// Whether `stream` was marked (and clears the mark).
    func take(_ stream: CUstream) -> Bool {
        lock.lock(); defer { lock.unlock() }
        return streams.remove(UInt(bitPattern: stream)) != nil
    }
}

/// The backend's kernels: modules compiled on first use (see Note [Kernel
/// cache]) and launched on the backend's stream.
final class Kernels {
    let compiler: KernelCompiler
    let stream: CUDAStream
    let multiprocessorCount: Int
    private var residentBlocks: [String: Int] = [:]

    /// Whether launches carry programmatic stream serialization (Note
    /// [Programmatic dependent launch]): an sm_90+ device, a driver with
    /// cuLaunchKernelEx, and COHORT_PDL=on, or `auto` once a data-parallel
    /// communicator asked for it (`allowProgrammaticLaunch()`).
    private(set) var programmaticLaunch: Bool
    private let programmaticLaunchSupported: Bool
    /// Set by `CUDABackend.prepareDataParallelSteps(perDeviceBatch:)`: the
    /// batch is too large for `auto` to turn programmatic launches on.
    var programmaticLaunchDeclinedByBatch = false

    init(compiler: KernelCompiler, stream: CUDAStream) {
        self.compiler = compiler
        self.stream = stream
        multiprocessorCount = compiler.context.properties.multiprocessorCount
        programmaticLaunchSupported = compiler.context.properties.computeCapability.major >= 9 && driver.cuLaunchKernelEx != nil
        programmaticLaunch = ProgrammaticLaunch.mode == .on && programmaticLaunchSupported
    }

    /// COHORT_PDL=auto: a communicator of several ranks with a stream of its
    /// own turns programmatic launches on (Note [Programmatic dependent launch]),
    /// unless the per-device batch declined them. Returns whether they are on.
    @discardableResult
    func allowProgrammaticLaunch() -> Bool {
        if ProgrammaticLaunch.mode == .auto && programmaticLaunchSupported && !programmaticLaunchDeclinedByBatch {
            programmaticLaunch = true
        }
        return programmaticLaunch
    }

    /// Compiles (or loads from the disk cache) every module, so that a
    /// compile error is thrown by `CUDABackend.init` with NVRTC's log
    /// instead of stopping the first op that needs the module.
    func prepare() throws {
        for module in KernelSource.all {
            _ = try compiler.module(named: module.name, source: module.source)
        }
    }

    /// Launches `kernel` from `module` (compiling it the first time).
    /// `cuLaunchKernel` takes an array of pointers to the arguments; each
    /// argument sits in its own 8-byte slot, which the driver copies at the
    /// call, so the slots may die when it returns. `stream`: another stream
    /// of the same context than the backend's (the communicator's, Note [bf16
    /// all-reduce off the compute stream] in NCCLCommunicator.swift).
    func launch(_ module: KernelSource, _ kernel: String, grid: (Int, Int, Int), block: (Int, Int, Int),
                sharedBytes: Int = 0, on stream: CUstream? = nil, _ arguments: [KernelArgument]) {
        let function = mustSucceed {
            try compiler.module(named: module.name, source: module.source).function(kernel)
        }
        guard grid.0 > 0 && grid.1 > 0 && grid.2 > 0 && grid.0 < Int(UInt32.max) && grid.1 <= 65535 && grid.2 <= 65535 else {
            fatalError("CUDABackend: \(module.name).\(kernel) launched with an invalid grid \(grid)")
        }
        var slots = arguments.map(\.bits)
        var call = "cuLaunchKernel"
        let result = slots.withUnsafeMutableBufferPointer { slotBuffer -> CUresult in
            var pointers: [UnsafeMutableRawPointer?] = (0..<slotBuffer.count).map {
                UnsafeMutableRawPointer(slotBuffer.baseAddress! + $0)
            }
            return pointers.withUnsafeMutableBufferPointer { pointerBuffer in
                let target = stream ?? self.stream.stream
                guard programmaticLaunch, !ProgrammaticLaunch.barriers.take(target), let launchEx = driver.cuLaunchKernelEx else {
                    return driver.cuLaunchKernel(function, UInt32(grid.0), UInt32(grid.1), UInt32(grid.2),
                                                 UInt32(block.0), UInt32(block.1), UInt32(block.2), UInt32(sharedBytes),
                                                 target, pointerBuffer.baseAddress, nil)
                }
                call = "cuLaunchKernelEx"
                var attribute = CohortLaunchAttribute()
                attribute.id = Int32(COHORT_CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION)
                attribute.value.intValue = 1
                return withUnsafeMutablePointer(to: &attribute) { attributePointer in
                    var config = CohortLaunchConfig(
                        gridDimX: UInt32(grid.0), gridDimY: UInt32(grid.1), gridDimZ: UInt32(grid.2),
                        blockDimX: UInt32(block.0), blockDimY: UInt32(block.1), blockDimZ: UInt32(block.2),
                        sharedMemBytes: UInt32(sharedBytes), hStream: target, attrs: attributePointer, numAttrs: 1)
                    return launchEx(&config, function, pointerBuffer.baseAddress, nil)
                }
            }
        }
        mustSucceed {
            try checkCUDA(result, call,
                          "\(module.name).\(kernel) grid \(grid) block \(block) shared \(sharedBytes)")
        }
    }

    /// `kernel` of `module` (compiled the first time), for a graph node made by hand.
    func function(_ module: KernelSource, _ kernel: String) throws -> CUfunction {
        try compiler.module(named: module.name, source: module.source).function(kernel)
    }

    /// How many blocks of `threads` threads of `kernel` one SM holds at once
    /// (its registers and static shared memory decide), from the driver's
    /// occupancy calculator; 2 where the driver lacks it. Cached per kernel
    /// and block size. Sizes the one-wave grids of the vector kernels
    /// (Note [Vector batch norm]): every block resident, none waiting for a second wave.
    func residentBlocksPerMultiprocessor(_ module: KernelSource, _ kernel: String, threads: Int) -> Int {
        let key = "\(module.name).\(kernel)/\(threads)"
        if let known = residentBlocks[key] { return known }
        var blocks: Int32 = 2
        if let occupancy = driver.cuOccupancyMaxActiveBlocksPerMultiprocessor {
            let function = mustSucceed { try compiler.module(named: module.name, source: module.source).function(kernel) }
            mustSucceed {
                try checkCUDA(occupancy(&blocks, function, Int32(threads), 0), "cuOccupancyMaxActiveBlocksPerMultiprocessor",
                              "\(key)")
            }
        }
        let known = max(1, Int(blocks))
        residentBlocks[key] = known
        return known
    }

    /// Launch shape of the grid-stride elementwise kernels: 256 threads (8
    /// warps, full occupancy at low register use), and at most 16 blocks per
    /// SM, after which each thread loops; enough blocks to hide memory
    /// latency, few enough that the tail is short.
    func elementwise(_ module: KernelSource, _ kernel: String, count: Int, sharedBytes: Int = 0,
                     on stream: CUstream? = nil, _ arguments: [KernelArgument]) {
        guard count > 0 else { return }
        let blocks = min((count + 255) / 256, multiprocessorCount * 16)
        launch(module, kernel, grid: (blocks, 1, 1), block: (256, 1, 1), sharedBytes: sharedBytes, on: stream, arguments)
    }

    /// Launch shape of the `*_bf16x8` elementwise kernels, which take four
    /// 16-byte units per thread per iteration (Note [Vector bf16 access]):
    /// 256 threads, as many blocks as the GPU holds at once (one wave, each
    /// thread looping) or fewer when `units` is small.
    func vectorElementwise(_ module: KernelSource, _ kernel: String, units: Int, _ arguments: [KernelArgument]) {
        guard units > 0 else { return }
        let resident = residentBlocksPerMultiprocessor(module, kernel, threads: 256) * multiprocessorCount
        let blocks = min((units + 4 * 256 - 1) / (4 * 256), resident)
        launch(module, kernel, grid: (blocks, 1, 1), block: (256, 1, 1), arguments)
    }
}

/// CUDA C source of one module, compiled as a unit.
struct KernelSource: Sendable {
    let name: String
    let source: String

    static let all: [KernelSource] = [.elementwise, .batchNorm, .batchNormVector, .loss, .optimizer, .augmentation,
                                      .convolutionGEMM]
}

/// The CUDA C of every kernel module, exactly as NVRTC receives it: for
/// tests that syntax-check it on machines without a GPU.
public enum CUDAKernelSources {
    public static var modules: [(name: String, source: String)] { KernelSource.all.map { ($0.name, $0.source) } }
}

/// Definitions every module starts with. NVRTC 13 has no built-in
/// `cuda_bf16.h`, so bfloat16 is its bit pattern (`unsigned short`), widened
/// by a shift and narrowed with PTX's round-to-nearest-even conversion
/// (sm_80 and later; NaN becomes the canonical 0x7FFF, where the host's
/// `BFloat16.fromFloat` keeps the payload).
let kernelPrelude = #"""
typedef unsigned short bf16;
__device__ __forceinline__ float bf16_to_float(bf16 h) { return __uint_as_float(((unsigned int)h) << 16); }
__device__ __forceinline__ bf16 float_to_bf16(float f) {
    unsigned short r;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(f));
    return r;
}
// Note [Programmatic dependent launch] (KernelLauncher.swift): every kernel starts
// here. Launched with programmatic stream serialization, a kernel may be scheduled
// before the one ahead of it in the stream has finished; this waits until that
// kernel has completed and its writes are visible (a no-op after a normal launch,
// and before sm_90); then it lets its own dependents launch once all of its
// blocks have passed this point (a no-op where none is launched so).
__device__ __forceinline__ void grid_dependency_wait() {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}
#define GRID_STRIDE(i, n) for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)blockDim.x * gridDim.x)
// Element access by type, so one template body serves float32 and bfloat16:
// a bf16 load widens exactly, a bf16 store rounds once (to nearest even).
__device__ __forceinline__ float load_element(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float load_element(const bf16* p, long long i) { return bf16_to_float(p[i]); }
__device__ __forceinline__ void store_element(float* p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ void store_element(bf16* p, long long i, float v) { p[i] = float_to_bf16(v); }
// Eight bfloat16 moved as one 16-byte access (Note [Vector bf16 access]); element 2k
// is the low half of word k (little-endian). The *_bf16x8 kernels index in these units.
struct alignas(16) bf16x8 { unsigned int w[4]; };
__device__ __forceinline__ void unpack_bf16x8(bf16x8 p, float* f) {
#pragma unroll
    for (int k = 0; k < 4; k++) {
        f[2 * k] = __uint_as_float(p.w[k] << 16);
        f[2 * k + 1] = __uint_as_float(p.w[k] & 0xffff0000u);
    }
}
__device__ __forceinline__ bf16x8 pack_bf16x8(const float* f) {
    bf16x8 p;
#pragma unroll
    for (int k = 0; k < 4; k++)
        p.w[k] = (unsigned int)float_to_bf16(f[2 * k]) | ((unsigned int)float_to_bf16(f[2 * k + 1]) << 16);
    return p;
}

"""#
