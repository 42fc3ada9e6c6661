import CCUDA
import CohortKernels
import CohortTensor
import Foundation

/// Convolutions through cuDNN's legacy API on NHWC activations, except the
/// geometries Note [Convolution paths] (ConvolutionGEMM.swift) sends to
/// cuBLAS GEMMs (CUDABackend+ConvolutionGEMM.swift).
///
/// Note [KRSC weights]: our weights are OIHW (PyTorch's layout, see Note
/// [Layout]); cuDNN's NHWC fp32/TF32 tensor-core kernels want the filter in
/// NHWC too (KRSC: `[out][kh][kw][in]`). A filter described as NCHW beside
/// NHWC activations is accepted by some cuDNN versions and engines and
/// refused (NOT_SUPPORTED) or sent to slow kernels by others, so the weight
/// is transposed by a small kernel before the forward and the weight
/// gradient is computed in KRSC and transposed back. ResNet-18's largest
/// weight is 9.4 MB: each transpose is a few microseconds, but a step has
/// dozens; the data gradient reuses the forward's (Note [KRSC weights kept
/// for the data gradient]).
///
/// Note [Convolution algorithms]: each direction of each geometry picks its
/// algorithm once, at first use, with `cudnnFind*AlgorithmEx`, which times
/// the candidates on real inputs (two rounds, each candidate keeping its best
/// time: Note [Two search rounds]) and writes its output; the outputs given
/// to it are scratch blocks straight from the driver (freed right after),
/// never the caller's tensors. The fastest result with status SUCCESS whose
/// workspace fits the budget (half the free memory, at most 1 GiB) wins,
/// and the descriptor takes the math type it reports (DEFAULT lets cuDNN
/// use TF32 on fp32, as PyTorch's `allow_tf32` default for convolutions).
/// Searching synchronises the device: it must never happen during a graph
/// capture, which is why a step is run once before capturing.
///
/// Note [bf16 convolutions]: in bf16 mode the tensors and the KRSC filter are
/// described as CUDNN_DATA_BFLOAT16 with compute type FLOAT (bf16 products,
/// float32 accumulation, as PyTorch's autocast) and TENSOR_OP math to start
/// with (Find then sets what its winner reports); plans are kept per
/// (geometry, dtype), so both precisions can run in one process. The legacy
/// API wants dw in the filter's dtype, so the weight gradient is computed
/// into a bf16 KRSC scratch and one kernel (`krsc_bf16_to_oihw_f32`)
/// transposes and widens it into the float32 OIHW gradient the contract
/// asks for: the gradient carries one bf16 rounding (2^-9 relative), as
/// PyTorch's autocast conv weight gradient does before it is accumulated in
/// float32. Whether cuDNN's legacy API runs every bf16 NHWC geometry is not
/// verified (the 3-channel stem and the self-test's odd channel counts are
/// the doubtful ones): where a bf16 Find fails or returns no usable
/// algorithm, that direction of that geometry says so once on stderr and
/// runs in float32 on widened copies of its operands (same arithmetic as
/// the reference: float32 products and sums, the output rounded once), so
/// a run stays correct and the note shows where bf16 speed is lost.
final class ConvolutionPlan {
    /// Plans are per geometry and activation dtype (Note [bf16 convolutions]).
    struct Key: Hashable {
        var geometry: Conv2dGeometry
        var dtype: DType
        /// Only algorithms cuDNN reports deterministic (`Backend.setDeterministicAlgorithms`).
        var deterministic = false
    }

    let geometry: Conv2dGeometry
    let dtype: DType
    let deterministic: Bool
    let input: cudnnTensorDescriptor_t
    let output: cudnnTensorDescriptor_t
    let filter: cudnnFilterDescriptor_t
    /// One convolution descriptor per direction, so each keeps its own math type.
    let forwardDescriptor, backwardDataDescriptor, backwardFilterDescriptor: cudnnConvolutionDescriptor_t
    var forward, backwardData, backwardFilter: Choice?

    struct Choice: CustomStringConvertible {
        var algorithm: Int32
        var mathType: Int32
        var workspaceBytes: Int
        var milliseconds: Float
        /// cuDNN ran no bf16 algorithm: the direction runs in float32 on widened copies (Note [bf16 convolutions]).
        var widened = false
        /// Every result Find returned, fastest first, as it reported them (`cohort bench convs` prints them).
        var candidates: [ConvolutionAlgorithmReport.Candidate] = []
        var description: String {
            widened ? "float32 on widened bf16 operands (cuDNN found no bf16 algorithm)"
                : "algorithm \(algorithm), math type \(mathType), \(workspaceBytes) bytes of workspace, \(milliseconds) ms"
        }
    }

    /// The math type a descriptor starts with, before a search sets its winner's.
    static func initialMathType(_ dtype: DType, allowsTF32: Bool) -> Int32 {
        Int32(dtype == .bfloat16 ? COHORT_CUDNN_TENSOR_OP_MATH
              : allowsTF32 ? COHORT_CUDNN_DEFAULT_MATH : COHORT_CUDNN_FMA_MATH)
    }

    /// `allowsTF32`: float32 convolutions may run on TF32 tensor cores (off: FMA math only, true fp32).
    init(_ g: Conv2dGeometry, dtype: DType, allowsTF32: Bool, deterministic: Bool) throws(CUDNNError) {
        geometry = g
        self.dtype = dtype
        self.deterministic = deterministic
        let what = "\(g) \(dtype)"
        var input: cudnnTensorDescriptor_t?, output: cudnnTensorDescriptor_t?, filter: cudnnFilterDescriptor_t?
        try checkCUDNN(cudnn.cudnnCreateTensorDescriptor(&input), "cudnnCreateTensorDescriptor")
        try checkCUDNN(cudnn.cudnnCreateTensorDescriptor(&output), "cudnnCreateTensorDescriptor")
        try checkCUDNN(cudnn.cudnnCreateFilterDescriptor(&filter), "cudnnCreateFilterDescriptor")
        (self.input, self.output, self.filter) = (input!, output!, filter!)
        let nhwc = Int32(COHORT_CUDNN_TENSOR_NHWC), float = Int32(COHORT_CUDNN_DATA_FLOAT)
        let data = dtype == .bfloat16 ? Int32(COHORT_CUDNN_DATA_BFLOAT16) : float
        // Tensor-op math for bf16 (what Find will pick anyway); DEFAULT for float32 (TF32 allowed),
        // FMA when it is not (PyTorch's `torch.backends.cudnn.allow_tf32 = False`).
        let math = Self.initialMathType(dtype, allowsTF32: allowsTF32)
        try checkCUDNN(cudnn.cudnnSetTensor4dDescriptor(input!, nhwc, data, Int32(g.batch), Int32(g.inputChannels),
                                                        Int32(g.inputHeight), Int32(g.inputWidth)),
                       "cudnnSetTensor4dDescriptor", "input of \(what)")
        try checkCUDNN(cudnn.cudnnSetTensor4dDescriptor(output!, nhwc, data, Int32(g.batch), Int32(g.outputChannels),
                                                        Int32(g.outputHeight), Int32(g.outputWidth)),
                       "cudnnSetTensor4dDescriptor", "output of \(what)")
        try checkCUDNN(cudnn.cudnnSetFilter4dDescriptor(filter!, data, nhwc, Int32(g.outputChannels),
                                                        Int32(g.inputChannels), Int32(g.kernelSize), Int32(g.kernelSize)),
                       "cudnnSetFilter4dDescriptor", "KRSC weight of \(what)")
        var descriptors: [cudnnConvolutionDescriptor_t] = []
        for _ in 0..<3 {
            var descriptor: cudnnConvolutionDescriptor_t?
            try checkCUDNN(cudnn.cudnnCreateConvolutionDescriptor(&descriptor), "cudnnCreateConvolutionDescriptor")
            try checkCUDNN(cudnn.cudnnSetConvolution2dDescriptor(descriptor!, Int32(g.padding), Int32(g.padding),
                                                                 Int32(g.stride), Int32(g.stride), 1, 1,
                                                                 Int32(COHORT_CUDNN_CROSS_CORRELATION), float),
                           "cudnnSetConvolution2dDescriptor", what)
            try checkCUDNN(cudnn.cudnnSetConvolutionMathType(descriptor!, math),
                           "cudnnSetConvolutionMathType", what)
            descriptors.append(descriptor!)
        }
        (forwardDescriptor, backwardDataDescriptor, backwardFilterDescriptor) = (descriptors[0], descriptors[1], descriptors[2])
    }

    deinit {
        _ = cudnn.cudnnDestroyTensorDescriptor(input)
        _ = cudnn.cudnnDestroyTensorDescriptor(output)
        _ = cudnn.cudnnDestroyFilterDescriptor(filter)
        for descriptor in [forwardDescriptor, backwardDataDescriptor, backwardFilterDescriptor] {
            _ = cudnn.cudnnDestroyConvolutionDescriptor(descriptor)
        }
    }
}

extension CUDABackend {
    static let findWorkspaceLimit = 1 << 30
    private static let algorithmsRequested = 8  // cuDNN 9 has at most 8 per direction
    /// CUDNN_DETERMINISTIC, a perf result's `determinism` when the algorithm uses no atomics.
    static let cudnnDeterministic: Int32 = 1

    /// Note [Two search rounds]
    /// - Find times every candidate once. With the same binary on 4 x H200
    ///   (055baba, 2026-11-27; 977d6ba's code in the later calls) the
    ///   1-GPU forward of ResNet-18 at batch 128 took 0.875 ms on a machine
    ///   where the GPU self-test had run before the first training run's
    ///   search, and 1.05-1.10 ms in seven later calls (six fresh machines)
    ///   where the search came first (docs/results/2026-11-27-fixed-step-tax): the choices differed,
    ///   and the cache then kept the worse ones. The likely cause is a first
    ///   launch's one-time cost (CUDA loads a module's kernels lazily, at their
    ///   first launch) landing in the timing of candidates that had not run yet.
    /// - So Find runs `findRounds` times and each candidate (algorithm and math
    ///   type) keeps its best time: the first round pays the one-time costs, the
    ///   second times the kernels warm. The search, once per geometry on a
    ///   machine (Note [Convolution algorithm cache]), takes twice as long.
    ///   Measured (4 x H200, GPU 0, 2026-11-28, 1eb65d8, six fresh caches in one
    ///   call, docs/results/2026-11-28-graph-gaps): one round left the forward at
    ///   1.095 ms on two caches of three (0.875 on the third); two rounds gave
    ///   0.874-0.877 on all three. COHORT_FIND_ROUNDS=1...4 sets the rounds
    ///   (gpu-ddp-check's `search` part compares 1 and 2 on fresh caches).
    static let findRounds = ProcessInfo.processInfo.environment["COHORT_FIND_ROUNDS"]
        .flatMap { Int($0) }.flatMap { (1...4).contains($0) ? $0 : nil } ?? 2

    /// `earlier` with `round`'s results merged in: per (algorithm, math type)
    /// the successful result with the smaller time; fastest first, failures last.
    public static func keepingFastest(_ earlier: [CohortCUDNNConvolutionPerf],
                               _ round: ArraySlice<CohortCUDNNConvolutionPerf>) -> [CohortCUDNNConvolutionPerf] {
        var merged = earlier
        for result in round {
            if let index = merged.firstIndex(where: { $0.algorithm == result.algorithm && $0.mathType == result.mathType }) {
                let kept = merged[index]
                let better = result.status == 0 && (kept.status != 0 || result.time < kept.time)
                if better { merged[index] = result }
            } else {
                merged.append(result)
            }
        }
        return merged.sorted { a, b in
            if (a.status == 0) != (b.status == 0) { return a.status == 0 }
            return a.time < b.time
        }
    }

    public func conv2dForward(output: Tensor, input: Tensor, weight: Tensor, geometry g: Conv2dGeometry) {
        let dtype = checkConvolution("conv2dForward", g, input: input, weight: weight, weightName: "weight",
                                     output: output, outputName: "output")
        context.makeCurrent()
        // Note [KRSC weights kept for the data gradient]: only this forward's transpose below makes the copy current.
        krscCopies.markStale(weight.devicePointer)
        let path = convolutionPath(g, .forward)
        if path != .cudnn {
            return gemmConvolutionForward(output: output, input: input, weight: weight, ConvolutionGEMMPlan(g, path))
        }
        let plan = convolutionPlan(g, dtype)
        let w = krscWeightForForward(weight, g)
        let x = devicePointer(input.devicePointer), y = devicePointer(output.devicePointer)
        if plan.forward == nil {
            plan.forward = chooseAlgorithm("forward", plan, plan.forwardDescriptor, outputBytes: output.byteCount,
                                           workspaceOf: { algorithm, bytes in
                cudnn.cudnnGetConvolutionForwardWorkspaceSize.map {
                    $0(cudnnHandle, plan.input, plan.filter, plan.forwardDescriptor, plan.output, algorithm, &bytes)
                }
            }) {
                cudnn.cudnnFindConvolutionForwardAlgorithmEx(cudnnHandle, plan.input, x, plan.filter, w,
                                                             plan.forwardDescriptor, plan.output, $0, $1, &$2, $3, $4, $5)
            }
        }
        let choice = plan.forward!
        if choice.widened {
            let yWide = widenedOutput(output)
            conv2dForward(output: yWide, input: widened(input), weight: widened(weight), geometry: g)
            copy(yWide, to: output)
            return
        }
        let workspace = devicePointer(convolutionWorkspace.pointer(byteCount: choice.workspaceBytes))
        var one: Float = 1, zero: Float = 0
        mustSucceed {
            try checkCUDNN(cudnn.cudnnConvolutionForward(cudnnHandle, &one, plan.input, x, plan.filter, w,
                                                         plan.forwardDescriptor, choice.algorithm, workspace,
                                                         choice.workspaceBytes, &zero, plan.output, y),
                           "cudnnConvolutionForward", "\(g), \(choice)")
        }
    }

    public func conv2dBackwardData(dInput: Tensor, dOutput: Tensor, weight: Tensor, geometry g: Conv2dGeometry) {
        conv2dBackwardData(dInput: dInput, dOutput: dOutput, weight: weight, geometry: g, weightAsInForward: false)
    }

    public func conv2dBackwardData(dInput: Tensor, dOutput: Tensor, weight: Tensor, geometry g: Conv2dGeometry,
                                   weightAsInForward: Bool) {
        let dtype = checkConvolution("conv2dBackwardData", g, input: dInput, inputName: "dInput", weight: weight,
                                     weightName: "weight", output: dOutput, outputName: "dOutput")
        context.makeCurrent()
        let path = convolutionPath(g, .backwardData)
        if path != .cudnn {
            return gemmConvolutionBackwardData(dInput: dInput, dOutput: dOutput, weight: weight,
                                               ConvolutionGEMMPlan(g, path))
        }
        let plan = convolutionPlan(g, dtype)
        let w = krscWeightForBackwardData(weight, g, weightAsInForward: weightAsInForward)
        let dy = devicePointer(dOutput.devicePointer), dx = devicePointer(dInput.devicePointer)
        if plan.backwardData == nil {
            plan.backwardData = chooseAlgorithm("backward data", plan, plan.backwardDataDescriptor,
                                                outputBytes: dInput.byteCount, workspaceOf: { algorithm, bytes in
                cudnn.cudnnGetConvolutionBackwardDataWorkspaceSize.map {
                    $0(cudnnHandle, plan.filter, plan.output, plan.backwardDataDescriptor, plan.input, algorithm, &bytes)
                }
            }) {
                cudnn.cudnnFindConvolutionBackwardDataAlgorithmEx(cudnnHandle, plan.filter, w, plan.output, dy,
                                                                  plan.backwardDataDescriptor, plan.input,
                                                                  $0, $1, &$2, $3, $4, $5)
            }
        }
        let choice = plan.backwardData!
        if choice.widened {
            let dxWide = widenedOutput(dInput)
            conv2dBackwardData(dInput: dxWide, dOutput: widened(dOutput), weight: widened(weight), geometry: g)
            copy(dxWide, to: dInput)
            return
        }
        let workspace = devicePointer(convolutionWorkspace.pointer(byteCount: choice.workspaceBytes))
        var one: Float = 1, zero: Float = 0
        mustSucceed {
            try checkCUDNN(cudnn.cudnnConvolutionBackwardData(cudnnHandle, &one, plan.filter, w, plan.output, dy,
                                                              plan.backwardDataDescriptor, choice.algorithm, workspace,
                                                              choice.workspaceBytes, &zero, plan.input, dx),
                           "cudnnConvolutionBackwardData", "\(g), \(choice)")
        }
    }

    public func conv2dBackwardWeight(dWeight: Tensor, input: Tensor, dOutput: Tensor, geometry g: Conv2dGeometry) {
        // dWeight is float32 in both precisions (Note [bf16 convolutions]).
        let dtype = checkConvolution("conv2dBackwardWeight", g, input: input, weight: dWeight, weightName: "dWeight",
                                     weightDType: .float32, output: dOutput, outputName: "dOutput")
        context.makeCurrent()
        let path = convolutionPath(g, .backwardWeight)
        if path != .cudnn {
            return gemmConvolutionBackwardWeight(dWeight: dWeight, input: input, dOutput: dOutput,
                                                 ConvolutionGEMMPlan(g, path))
        }
        let plan = convolutionPlan(g, dtype)
        let x = devicePointer(input.devicePointer), dy = devicePointer(dOutput.devicePointer)
        // cuDNN writes dw in the filter's dtype: bf16 KRSC in bf16 mode.
        let krscBytes = dWeight.elementCount * dtype.byteSize
        let dwKRSC = devicePointer(weightScratch.pointer(byteCount: krscBytes))
        if plan.backwardFilter == nil {
            plan.backwardFilter = chooseAlgorithm("backward filter", plan, plan.backwardFilterDescriptor,
                                                  outputBytes: krscBytes, workspaceOf: { algorithm, bytes in
                cudnn.cudnnGetConvolutionBackwardFilterWorkspaceSize.map {
                    $0(cudnnHandle, plan.input, plan.output, plan.backwardFilterDescriptor, plan.filter, algorithm, &bytes)
                }
            }) {
                cudnn.cudnnFindConvolutionBackwardFilterAlgorithmEx(cudnnHandle, plan.input, x, plan.output, dy,
                                                                    plan.backwardFilterDescriptor, plan.filter,
                                                                    $0, $1, &$2, $3, $4, $5)
            }
        }
        let choice = plan.backwardFilter!
        if choice.widened {
            conv2dBackwardWeight(dWeight: dWeight, input: widened(input), dOutput: widened(dOutput), geometry: g)
            return
        }
        let workspace = devicePointer(convolutionWorkspace.pointer(byteCount: choice.workspaceBytes))
        var one: Float = 1, zero: Float = 0
        mustSucceed {
            try checkCUDNN(cudnn.cudnnConvolutionBackwardFilter(cudnnHandle, &one, plan.input, x, plan.output, dy,
                                                                plan.backwardFilterDescriptor, choice.algorithm,
                                                                workspace, choice.workspaceBytes, &zero,
                                                                plan.filter, dwKRSC),
                           "cudnnConvolutionBackwardFilter", "\(g), \(choice)")
        }
        let taps = g.kernelSize * g.kernelSize
        kernels.elementwise(.elementwise, dtype == .bfloat16 ? "krsc_bf16_to_oihw_f32" : "krsc_to_oihw",
                            count: dWeight.elementCount,
                            [.tensor(dWeight), .pointer(CUdeviceptr(UInt(bitPattern: dwKRSC))),
                             .int(g.outputChannels), .int(g.inputChannels), .int(taps)])
    }

    // MARK: Plans

    private func convolutionPlan(_ g: Conv2dGeometry, _ dtype: DType) -> ConvolutionPlan {
        let key = ConvolutionPlan.Key(geometry: g, dtype: dtype, deterministic: deterministicAlgorithms)
        if let plan = convolutions[key] { return plan }
        let plan = mustSucceed {
            try ConvolutionPlan(g, dtype: dtype, allowsTF32: allowsTF32, deterministic: deterministicAlgorithms)
        }
        convolutions[key] = plan
        return plan
    }

    /// A float32 copy of bf16 `tensor` (Note [bf16 convolutions]); freed
    /// blocks are safe to reuse on the one stream (Note [Stream-ordered reuse]).
    private func widened(_ tensor: Tensor) -> Tensor {
        let wide = widenedOutput(tensor)
        copy(tensor, to: wide)
        return wide
    }

    /// An uninitialised float32 tensor of `tensor`'s shape.
    private func widenedOutput(_ tensor: Tensor) -> Tensor {
        mustSucceed { try makeTensor(tensor.shape, dtype: .float32) }
    }

    /// The OIHW `weight` transposed into the KRSC scratch buffer (Note [KRSC weights]).
    func krscWeight(from weight: Tensor, _ g: Conv2dGeometry) -> UnsafeMutableRawPointer {
        let destination = weightScratch.pointer(byteCount: weight.byteCount)
        transposeToKRSC(weight, into: UnsafeMutableRawPointer(bitPattern: UInt(destination))!, g)
        return devicePointer(destination)
    }

    /// Enqueues the OIHW -> KRSC transpose of `weight` into `destination` (`weight.byteCount` bytes).
    func transposeToKRSC(_ weight: Tensor, into destination: UnsafeMutableRawPointer, _ g: Conv2dGeometry) {
        kernels.elementwise(.elementwise, kernelName("oihw_to_krsc", weight.dtype), count: weight.elementCount,
                            [.pointer(CUdeviceptr(UInt(bitPattern: destination))), .tensor(weight),
                             .int(g.outputChannels), .int(g.inputChannels), .int(g.kernelSize * g.kernelSize)])
    }

    /// Runs one Find call on scratch output and workspace (Note [Convolution
    /// algorithms]); `find(outputScratch, requested, &returned, results, workspace, workspaceBytes)`.
    /// `workspaceOf(algorithm, &bytes)`: cuDNN's workspace size for one
    /// algorithm on these descriptors (nil where the library lacks the call),
    /// which checks a choice read from the cache (Note [Convolution algorithm cache]).
    private func chooseAlgorithm(
        _ direction: String, _ plan: ConvolutionPlan, _ descriptor: cudnnConvolutionDescriptor_t, outputBytes: Int,
        workspaceOf: (Int32, inout Int) -> cudnnStatus_t?,
        _ find: (UnsafeMutableRawPointer, Int32, inout Int32, UnsafeMutablePointer<CohortCUDNNConvolutionPerf>,
                 UnsafeMutableRawPointer, Int) -> cudnnStatus_t
    ) -> ConvolutionPlan.Choice {
        mustSucceed {
            let what = "\(direction) of \(plan.geometry) \(plan.dtype)"
            let budget = min(Self.findWorkspaceLimit, try context.memoryInfo().free / 2)
            let cacheKey = ConvolutionAlgorithmCache.key(
                device: context.properties.name, cudnnVersion: context.versions.cudnn, geometry: plan.geometry,
                dtype: plan.dtype, direction: direction + (plan.deterministic ? " deterministic" : ""),
                allowsTF32: allowsTF32)
            if usesAlgorithmCache, let cached = algorithmCache.entry(cacheKey),
               cudnn.cudnnSetConvolutionMathType(descriptor, cached.mathType) == 0 {
                var bytes = 0
                if workspaceOf(cached.algorithm, &bytes) == 0, bytes <= budget {
                    return ConvolutionPlan.Choice(algorithm: cached.algorithm, mathType: cached.mathType,
                                                  workspaceBytes: bytes, milliseconds: cached.milliseconds)
                }
                // Not usable here: search as if nothing was cached, from the descriptor's first math type.
                try checkCUDNN(cudnn.cudnnSetConvolutionMathType(
                    descriptor, ConvolutionPlan.initialMathType(plan.dtype, allowsTF32: allowsTF32)),
                               "cudnnSetConvolutionMathType", what)
            }
            let workspace = try rawAllocator.allocateRaw(byteCount: max(budget, 256))
            defer { rawAllocator.release(address: workspace, byteCount: max(budget, 256)) }
            let scratchOutput = try rawAllocator.allocateRaw(byteCount: outputBytes)
            defer { rawAllocator.release(address: scratchOutput, byteCount: outputBytes) }
            // Note [Two search rounds]: each candidate's time is its best over the rounds.
            var fastest: [CohortCUDNNConvolutionPerf] = []
            var status: cudnnStatus_t = 0
            for _ in 0..<Self.findRounds {
                var results = [CohortCUDNNConvolutionPerf](repeating: CohortCUDNNConvolutionPerf(),
                                                           count: Self.algorithmsRequested)
                var returned: Int32 = 0
                status = results.withUnsafeMutableBufferPointer {
                    find(scratchOutput, Int32(Self.algorithmsRequested), &returned, $0.baseAddress!, workspace, budget)
                }
                if status != 0 { break }
                fastest = Self.keepingFastest(fastest, results.prefix(Int(returned)))
            }
            let candidates = fastest
            let reported = candidates.map {
                ConvolutionAlgorithmReport.Candidate(algorithm: Int($0.algorithm), status: Int($0.status),
                                                     milliseconds: Double($0.time), workspaceBytes: $0.memory,
                                                     mathType: Int($0.mathType))
            }
            // Without TF32, only FMA-math results qualify for float32 (Find may report tensor-op variants too).
            let best = candidates.first(where: {
                $0.status == 0 && $0.memory <= budget
                    && (plan.dtype != .float32 || allowsTF32 || $0.mathType == Int32(COHORT_CUDNN_FMA_MATH))
                    && (!plan.deterministic || $0.determinism == Self.cudnnDeterministic)
            })
            if plan.dtype == .bfloat16 && (status != 0 || best == nil) {
                var reason = "no algorithm ran; tried "
                    + candidates.map { "algorithm \($0.algorithm): status \($0.status)" }.joined(separator: "; ")
                do { try checkCUDNN(status, "cudnnFindConvolution*AlgorithmEx", what) } catch { reason = "\(error)" }
                FileHandle.standardError.write(Data(("cohort: cuDNN runs no bf16 NHWC algorithm for the \(what) ("
                    + reason + "); it runs in float32 on widened copies (Note [bf16 convolutions])\n").utf8))
                return ConvolutionPlan.Choice(algorithm: -1, mathType: 0, workspaceBytes: 0, milliseconds: 0, widened: true,
                                              candidates: reported)
            }
            try checkCUDNN(status, "cudnnFindConvolution*AlgorithmEx", what)
            guard let best else {
                let tried = candidates.map { "algorithm \($0.algorithm): status \($0.status), \($0.memory) bytes" }
                throw CUDNNError(call: "cudnnFindConvolution*AlgorithmEx", code: 3000, name: "CUDNN_STATUS_NOT_SUPPORTED",
                                 message: "no algorithm ran within \(budget) bytes of workspace; tried "
                                     + tried.joined(separator: "; "), context: what)
            }
            try checkCUDNN(cudnn.cudnnSetConvolutionMathType(descriptor, best.mathType), "cudnnSetConvolutionMathType", what)
            if usesAlgorithmCache {
                algorithmCache.store(.init(algorithm: best.algorithm, mathType: best.mathType, milliseconds: best.time),
                                     for: cacheKey)
            }
            return ConvolutionPlan.Choice(algorithm: best.algorithm, mathType: best.mathType,
                                          workspaceBytes: best.memory, milliseconds: best.time, candidates: reported)
        }
    }

    /// Checks shapes and dtypes; returns the activation dtype. Accepted: all
    /// float32, or bf16 activations with a bf16 weight (forward, data
    /// gradient) or a float32 dWeight (`weightDType`, weight gradient).
    private func checkConvolution(_ op: String, _ g: Conv2dGeometry, input: Tensor, inputName: String = "input",
                                  weight: Tensor, weightName: String, weightDType: DType? = nil,
                                  output: Tensor, outputName: String) -> DType {
        let dtype = activationDType("\(op) (\(g))", [(inputName, input), (outputName, output)])
        let expectedWeight = weightDType ?? dtype
        require(weight.dtype == expectedWeight,
                "\(op) (\(g)): unsupported dtype combination (\(inputName) \(input.dtype), \(outputName) \(output.dtype), "
                    + "\(weightName) \(weight.dtype)); with \(dtype) activations \(weightName) must be \(expectedWeight)")
        expect("\(op) (\(g)) \(inputName)", input, g.inputShape, dtype)
        expect("\(op) (\(g)) \(weightName)", weight, g.weightShape, expectedWeight)
        expect("\(op) (\(g)) \(outputName)", output, g.outputShape, dtype)
        return dtype
    }
}
