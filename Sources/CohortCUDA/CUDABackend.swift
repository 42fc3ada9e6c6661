import CCUDA
import CohortKernels
import CohortTensor
import Foundation

/// The NVIDIA GPU backend, float32 (TF32 allowed in cuDNN's convolutions,
/// as PyTorch's default) or bfloat16 mixed precision (Note [CUDA bf16
/// dtypes]): convolutions on cuDNN, the linear layer on cuBLAS, everything
/// else on NVRTC-compiled kernels (see docs/cuda-backend.md).
///
/// Every library is reached through dlopen (CCUDA), so `init` throws
/// `CUDAUnavailable` on a machine without the driver, a GPU, NVRTC, cuBLAS
/// or cuDNN, and the caller falls back to a CPU backend.
///
/// Execution: one non-blocking stream; every op only enqueues work (no host
/// synchronisation, no allocation in the steady state, algorithm searches
/// only at the first use of a shape), so the host runs ahead and a later
/// stage can capture the step in a CUDA graph. `download` and `synchronize`
/// wait. Errors inside ops stop the program with the typed error (see
/// `mustSucceed`); a kernel fault surfaces at the next synchronisation.
/// One thread at a time may call a backend (cuDNN and cuBLAS handles are
/// not thread-safe); any thread may, see Note [Current context].
public final class CUDABackend: Backend {
    public let name = "cuda"
    public let device: Device
    public let details: String

    let context: CUDAContext
    let rawAllocator: CUDADeviceAllocator
    /// What every tensor and scratch buffer comes from (see Note [Stream-ordered reuse]).
    public let allocator: CachingAllocator
    let stream: CUDAStream
    /// Page-locked staging memory (nil where the driver lacks it); see `makeHostStagingTensor`.
    let pinnedHostAllocator: PinnedHostAllocator?
    let kernels: Kernels
    /// Whether Cohort's kernels launch with programmatic stream serialization
    /// (Note [Programmatic dependent launch] in KernelLauncher.swift).
    public var launchesKernelsProgrammatically: Bool { kernels.programmaticLaunch }

    /// Tells the backend the per-device batch of the data-parallel steps it
    /// will run, before their communicator exists: from
    /// `ProgrammaticLaunchBatchLimit` images, COHORT_PDL=auto leaves
    /// programmatic launches off (Note [Programmatic dependent launch] in
    /// KernelLauncher.swift). Returns a line for the run's header when it did.
    public func prepareDataParallelSteps(perDeviceBatch: Int) -> String? {
        let limit = ProgrammaticLaunchBatchLimit.fromImagesPerDevice
        guard ProgrammaticLaunch.mode == .auto, !ProgrammaticLaunchBatchLimit.allows(perDeviceBatch: perDeviceBatch) else { return nil }
        kernels.programmaticLaunchDeclinedByBatch = true
        return "kernels launched normally at \(limit)+ images per GPU (COHORT_PDL=auto, Note [Programmatic dependent launch])"
    }
    let cudnnHandle: cudnnHandle_t
    let cublasHandle: cublasHandle_t
    private let cublasWorkspace: Storage

    // Plans and scratch, made at the first use of a shape.
    var convolutions: [ConvolutionPlan.Key: ConvolutionPlan] = [:]
    /// cuDNN's algorithm choices of earlier runs (Note [Convolution algorithm cache]).
    let algorithmCache = ConvolutionAlgorithmCache(directory: KernelCacheKey.cacheDirectory())
    /// False: every geometry is searched afresh (`cohort bench convs`, which prints the search's timings).
    public var usesAlgorithmCache = true
    /// `setDeterministicAlgorithms`: later convolutions use plans whose
    /// algorithms cuDNN reports deterministic (a plan key of their own).
    var deterministicAlgorithms = false
    var segmentPlans: [SegmentPlanKey: SegmentPlan] = [:]
    /// COHORT_SIDE_WORK's stream and buffers (CUDABackend+SideWork.swift; nil unless set).
    var sideWork: SideWork?
    /// Counts `captureGraph` calls: what a capture queued can be told from what a failed earlier one left.
    var captureSerial = 0
    /// The graphs a capture ended at each `splitGraphCapture` so far (Note [Split step graphs]).
    var splitGraphParts: [CUgraph] = []
    /// Host work to run after the part of the same index at every replay
    /// (`splitGraphCapture(thenRunning:)`; nil: none).
    var splitGraphActions: [(() throws -> Void)?] = []
    let convolutionWorkspace: ScratchBuffer
    let weightScratch: ScratchBuffer
    /// Each cuDNN-path weight's KRSC copy from its latest forward (Note [KRSC weights kept for the data gradient]).
    let krscCopies = KRSCWeightCopies()
    /// X̂ and dX̂ of the convolutions that run as GEMMs (CUDABackend+ConvolutionGEMM.swift).
    let convolutionOperands: ScratchBuffer
    let reductionScratch: ScratchBuffer
    let lossScratch: ScratchBuffer

    /// cuBLAS's own workspace: 32 MiB, NVIDIA's advice for Hopper; set once
    /// so cuBLAS never allocates during a step (or a graph capture).
    static let cublasWorkspaceBytes = 32 << 20

    /// Opens GPU `deviceIndex` (CUDA's ordinal, after CUDA_VISIBLE_DEVICES).
    /// Whether float32 convolutions may use TF32 tensor cores (PyTorch's
    /// default for convolutions); false gives true float32 throughout.
    public let allowsTF32: Bool
    /// Whether convolutions may leave cuDNN for the GEMM paths (Note [Convolution paths]).
    public let convolutionPathPolicy: ConvolutionPathPolicy

    /// `convolutionPaths`: nil reads `COHORT_CONV_PATH` (unset: `auto`); an
    /// unknown value there throws `ConvolutionPathPolicyError`.
    public init(deviceIndex: Int = 0, allowsTF32: Bool = true, convolutionPaths: ConvolutionPathPolicy? = nil) throws {
        self.allowsTF32 = allowsTF32
        convolutionPathPolicy = try convolutionPaths ?? ConvolutionPathPolicy()
        context = try CUDAContext(deviceIndex: deviceIndex)
        device = .cuda(deviceIndex)
        rawAllocator = CUDADeviceAllocator(context: context)
        allocator = CachingAllocator(underlying: rawAllocator)
        stream = try CUDAStream(context: context)
        pinnedHostAllocator = PinnedHostAllocator(context: context)
        kernels = Kernels(compiler: KernelCompiler(context: context), stream: stream)
        try kernels.prepare()
        convolutionWorkspace = ScratchBuffer("cuDNN workspace", allocator: allocator)
        weightScratch = ScratchBuffer("KRSC and padded weights", allocator: allocator)
        convolutionOperands = ScratchBuffer("convolution GEMM operands", allocator: allocator)
        reductionScratch = ScratchBuffer("reduction partials", allocator: allocator)
        lossScratch = ScratchBuffer("per-row loss", allocator: allocator)

        var cudnnHandle: cudnnHandle_t?
        try checkCUDNN(cudnn.cudnnCreate(&cudnnHandle), "cudnnCreate")
        try checkCUDNN(cudnn.cudnnSetStream(cudnnHandle!, stream.stream), "cudnnSetStream")
        self.cudnnHandle = cudnnHandle!

        var cublasHandle: cublasHandle_t?
        try checkCUBLAS(cublas.cublasCreate_v2(&cublasHandle), "cublasCreate_v2")
        try checkCUBLAS(cublas.cublasSetStream_v2(cublasHandle!, stream.stream), "cublasSetStream_v2")
        cublasWorkspace = try allocator.allocate(byteCount: Self.cublasWorkspaceBytes)
        try checkCUBLAS(cublas.cublasSetWorkspace_v2(cublasHandle!, cublasWorkspace.address, Self.cublasWorkspaceBytes),
                        "cublasSetWorkspace_v2")
        var cublasVersion: Int32 = 0
        try checkCUBLAS(cublas.cublasGetVersion_v2(cublasHandle!, &cublasVersion), "cublasGetVersion_v2")
        self.cublasHandle = cublasHandle!

        var versions = context.versions
        versions.cublas = Int(cublasVersion)
        let p = context.properties
        let gibibytes = Double(p.totalMemoryBytes) / Double(1 << 30)
        details = "\(p.name), \(p.architecture), \(p.multiprocessorCount) SMs, "
            + String(format: "%.1f GiB, ", gibibytes)
            + "driver CUDA \(versions.driverText), NVRTC \(versions.nvrtc.major).\(versions.nvrtc.minor), "
            + "cuDNN \(versions.cudnnText), cuBLAS \(versions.cublasText)"
    }

    // MARK: Memory

    public func makeTensor(_ shape: Shape, dtype: DType) throws -> Tensor {
        context.makeCurrent()
        return try Tensor(shape: shape, dtype: dtype, allocator: allocator)
    }

    public func upload(_ source: Tensor, to destination: Tensor) {
        require(source.device.isHost, "upload: source \(source) is not a host tensor")
        expect("upload", destination, source.shape, source.dtype)
        context.makeCurrent()
        stream.copyToDevice(destination.devicePointer, from: source.rawPointer, byteCount: source.byteCount)
        pinnedHostAllocator?.recordUpload(from: source.storage, on: stream)
    }

    public func download(_ source: Tensor) -> Tensor {
        expect("download", source, source.shape, source.dtype)
        context.makeCurrent()
        let host = try! Tensor(shape: source.shape, dtype: source.dtype, allocator: HostAllocator.shared)
        stream.copyToHost(host.rawPointer, from: source.devicePointer, byteCount: source.byteCount)
        return host
    }

    public func fill(_ tensor: Tensor, value: Float) {
        context.makeCurrent()
        switch tensor.dtype {
        case .float32:
            expect("fill", tensor, tensor.shape, .float32)
            stream.fill32(tensor.devicePointer, bits: value.bitPattern, count: tensor.elementCount)
        case .bfloat16:
            expect("fill", tensor, tensor.shape, .bfloat16)
            stream.fill16(tensor.devicePointer, bits: BFloat16.fromFloat(value), count: tensor.elementCount)
        default:
            fatalError("CUDABackend.fill: \(tensor) is neither float32 nor bfloat16")
        }
    }

    public func copy(_ source: Tensor, to destination: Tensor) {
        expect("copy", source, source.shape, source.dtype)
        expect("copy", destination, destination.shape, destination.dtype)
        require(source.elementCount == destination.elementCount, "copy: \(source) into \(destination)")
        context.makeCurrent()
        if source.dtype == destination.dtype {
            stream.copy(destination.devicePointer, from: source.devicePointer, byteCount: source.byteCount)
        } else {
            convert(source, to: destination)
        }
    }

    public func copy(_ source: Tensor, to destination: Tensor, scaledBy scale: Float) {
        expect("copy(scaledBy:)", source, source.shape, .bfloat16)
        expect("copy(scaledBy:)", destination, destination.shape, .float32)
        require(source.elementCount == destination.elementCount, "copy(scaledBy:): \(source) into \(destination)")
        context.makeCurrent()
        convert(source, to: destination, scale: scale)
    }

    /// `copy` between float32 and bfloat16, on the backend's stream or on
    /// `otherStream` of the same context (the communicator's, which rounds
    /// and widens bf16 all-reduces there: Note [bf16 all-reduce off the
    /// compute stream] in NCCLCommunicator.swift). The caller orders it.
    /// `scale` multiplies each widened bf16 value (a summed all-reduce made an average).
    func convert(_ source: Tensor, to destination: Tensor, on otherStream: CUstream? = nil, scale: Float? = nil) {
        let count = source.elementCount
        switch (source.dtype, destination.dtype) {
        case (.bfloat16, .float32) where scale != nil:
            kernels.elementwise(.elementwise, "convert_bf16_to_f32_scaled", count: count, on: otherStream,
                                [.tensor(destination), .tensor(source), .float(scale!), .count(count)])
        case (.float32, .bfloat16):
            kernels.elementwise(.elementwise, "convert_f32_to_bf16", count: count, on: otherStream,
                                [.tensor(destination), .tensor(source), .count(count)])
        case (.bfloat16, .float32):
            kernels.elementwise(.elementwise, "convert_bf16_to_f32", count: count, on: otherStream,
                                [.tensor(destination), .tensor(source), .count(count)])
        default:
            fatalError("CUDABackend.copy: cannot convert \(source.dtype) to \(destination.dtype)")
        }
    }

    public func synchronize() {
        context.makeCurrent()
        stream.synchronize("CUDABackend.synchronize")
    }

    // MARK: Elementwise

    public func reluForward(output: Tensor, input: Tensor) {
        let dtype = activationDType("reluForward", [("output", output), ("input", input)])
        expect("reluForward", input, input.shape, dtype)
        expect("reluForward", output, input.shape, dtype)
        context.makeCurrent()
        let count = input.elementCount
        elementwise(.elementwise, "relu_forward", dtype: dtype, count: count,
                    vectorizable: vectorizable(count: count, output, input)) {
            [.tensor(output), .tensor(input), .count($0)]
        }
    }

    public func reluBackward(dInput: Tensor, dOutput: Tensor, output: Tensor) {
        let dtype = activationDType("reluBackward", [("dInput", dInput), ("dOutput", dOutput), ("output", output)])
        expect("reluBackward", dOutput, dOutput.shape, dtype)
        expect("reluBackward", output, dOutput.shape, dtype)
        expect("reluBackward", dInput, dOutput.shape, dtype)
        context.makeCurrent()
        let count = dOutput.elementCount
        elementwise(.elementwise, "relu_backward", dtype: dtype, count: count,
                    vectorizable: vectorizable(count: count, dInput, dOutput, output)) {
            [.tensor(dInput), .tensor(dOutput), .tensor(output), .count($0)]
        }
    }

    public func add(output: Tensor, _ a: Tensor, _ b: Tensor, fuseReLU: Bool) {
        let dtype = activationDType("add", [("output", output), ("a", a), ("b", b)])
        expect("add", a, a.shape, dtype)
        expect("add", b, a.shape, dtype)
        expect("add", output, a.shape, dtype)
        context.makeCurrent()
        let count = a.elementCount
        elementwise(.elementwise, "residual_add", dtype: dtype, count: count,
                    vectorizable: vectorizable(count: count, output, a, b)) {
            [.tensor(output), .tensor(a), .tensor(b), .count($0), .int32(fuseReLU ? 1 : 0)]
        }
    }

    // MARK: Pooling

    public func globalAveragePoolForward(output: Tensor, input: Tensor) {
        let (batch, height, width, channels) = nhwc("globalAveragePoolForward", input)
        let dtype = activationDType("globalAveragePoolForward", [("output", output), ("input", input)])
        expect("globalAveragePoolForward", output, [batch, channels], dtype)
        context.makeCurrent()
        // Grid (N, ceil(C/32)), 32 x 8 blocks: see Kernels+Elementwise.swift. In bf16 a warp
        // reads 64 bytes per row (scalar): this pool sees 4x4 pixels in ResNet-18, too little to vectorise.
        kernels.launch(.elementwise, kernelName("global_average_pool", dtype), grid: (batch, (channels + 31) / 32, 1), block: (32, 8, 1),
                       [.tensor(output), .tensor(input), .int(height * width), .int(channels)])
    }

    public func globalAveragePoolBackward(dInput: Tensor, dOutput: Tensor) {
        let (batch, height, width, channels) = nhwc("globalAveragePoolBackward", dInput)
        let dtype = activationDType("globalAveragePoolBackward", [("dInput", dInput), ("dOutput", dOutput)])
        expect("globalAveragePoolBackward", dOutput, [batch, channels], dtype)
        context.makeCurrent()
        let pixels = height * width
        // Scalar in bf16 too: 4x4x512 per image in ResNet-18, a few microseconds.
        kernels.elementwise(.elementwise, kernelName("global_average_pool_backward", dtype), count: dInput.elementCount,
                            [.tensor(dInput), .tensor(dOutput), .count(dInput.elementCount), .int(pixels),
                             .int(channels), .float(1 / Float(pixels))])
    }
}

// MARK: Checks (programmer errors: fatalError keeps the message in release builds)

extension CUDABackend {
    func require(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { fatalError("CUDABackend.\(message())") }
    }

    /// Requires a tensor of `dtype` and exactly `shape` on this backend's device.
    func expect(_ op: String, _ tensor: Tensor, _ shape: Shape, _ dtype: DType = .float32) {
        require(tensor.device == device && tensor.dtype == dtype && tensor.shape == shape,
                "\(op): expected a \(dtype) tensor of shape \(shape) on \(device), got \(tensor)")
    }

    /// The dimensions of a float32 or bfloat16 NHWC tensor on this device
    /// (the caller checks the dtypes of the op's other tensors against it).
    func nhwc(_ op: String, _ tensor: Tensor) -> (batch: Int, height: Int, width: Int, channels: Int) {
        require(tensor.shape.rank == 4, "\(op): expected an NHWC tensor, got shape \(tensor.shape)")
        require(tensor.dtype == .float32 || tensor.dtype == .bfloat16,
                "\(op): expected a float32 or bfloat16 NHWC tensor, got \(tensor)")
        expect(op, tensor, tensor.shape, tensor.dtype)
        return (tensor.shape[0], tensor.shape[1], tensor.shape[2], tensor.shape[3])
    }
}

/// A device address as the pointer type cuDNN and cuBLAS take (never dereferenced on the host).
func devicePointer(_ address: CUdeviceptr) -> UnsafeMutableRawPointer {
    UnsafeMutableRawPointer(bitPattern: UInt(address))!
}

extension CUDABackend {
    public func setDeterministicAlgorithms(_ deterministic: Bool) { deterministicAlgorithms = deterministic }
}
