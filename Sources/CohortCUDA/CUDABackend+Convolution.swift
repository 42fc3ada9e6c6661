import CCUDA
import CohortKernels
import CohortTensor

/// Convolutions through cuDNN's legacy API on NHWC activations.
///
/// Note [KRSC weights]: our weights are OIHW (PyTorch's layout, see Note
/// [Layout]); cuDNN's NHWC fp32/TF32 tensor-core kernels want the filter in
/// NHWC too (KRSC: `[out][kh][kw][in]`). A filter described as NCHW beside
/// NHWC activations is accepted by some cuDNN versions and engines and
/// refused (NOT_SUPPORTED) or sent to slow kernels by others, so the weight
/// is transposed by a small kernel into a scratch buffer before the forward
/// and the data gradient, and the weight gradient is computed in KRSC and
/// transposed back. ResNet-18's largest weight is 9.4 MB: each transpose is
/// a few microseconds against milliseconds of convolution.
///
/// Note [Convolution algorithms]: each direction of each geometry picks its
/// algorithm once, at first use, with `cudnnFind*AlgorithmEx`, which times
/// the candidates on real inputs and writes its output; the outputs given
/// to it are scratch blocks straight from the driver (freed right after),
/// never the caller's tensors. The fastest result with status SUCCESS whose
/// workspace fits the budget (half the free memory, at most 1 GiB) wins,
/// and the descriptor takes the math type it reports (DEFAULT lets cuDNN
/// use TF32 on fp32, as PyTorch's `allow_tf32` default for convolutions).
/// Searching synchronises the device: it must never happen during a graph
/// capture, which is why a step is run once before capturing.
final class ConvolutionPlan {
    let geometry: Conv2dGeometry
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
        var description: String {
            "algorithm \(algorithm), math type \(mathType), \(workspaceBytes) bytes of workspace, \(milliseconds) ms"
        }
    }

    init(_ g: Conv2dGeometry) throws(CUDNNError) {
        geometry = g
        let what = "\(g)"
        var input: cudnnTensorDescriptor_t?, output: cudnnTensorDescriptor_t?, filter: cudnnFilterDescriptor_t?
        try checkCUDNN(cudnn.cudnnCreateTensorDescriptor(&input), "cudnnCreateTensorDescriptor")
        try checkCUDNN(cudnn.cudnnCreateTensorDescriptor(&output), "cudnnCreateTensorDescriptor")
        try checkCUDNN(cudnn.cudnnCreateFilterDescriptor(&filter), "cudnnCreateFilterDescriptor")
        (self.input, self.output, self.filter) = (input!, output!, filter!)
        let nhwc = Int32(COHORT_CUDNN_TENSOR_NHWC), float = Int32(COHORT_CUDNN_DATA_FLOAT)
        try checkCUDNN(cudnn.cudnnSetTensor4dDescriptor(input!, nhwc, float, Int32(g.batch), Int32(g.inputChannels),
                                                        Int32(g.inputHeight), Int32(g.inputWidth)),
                       "cudnnSetTensor4dDescriptor", "input of \(what)")
        try checkCUDNN(cudnn.cudnnSetTensor4dDescriptor(output!, nhwc, float, Int32(g.batch), Int32(g.outputChannels),
                                                        Int32(g.outputHeight), Int32(g.outputWidth)),
                       "cudnnSetTensor4dDescriptor", "output of \(what)")
        try checkCUDNN(cudnn.cudnnSetFilter4dDescriptor(filter!, float, nhwc, Int32(g.outputChannels),
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
            try checkCUDNN(cudnn.cudnnSetConvolutionMathType(descriptor!, Int32(COHORT_CUDNN_DEFAULT_MATH)),
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

    public func conv2dForward(output: Tensor, input: Tensor, weight: Tensor, geometry g: Conv2dGeometry) {
        checkConvolution("conv2dForward", g, input: input, weight: weight, output: output)
        context.makeCurrent()
        let plan = convolutionPlan(g)
        let w = krscWeight(from: weight, g)
        let x = devicePointer(input.devicePointer), y = devicePointer(output.devicePointer)
        if plan.forward == nil {
            plan.forward = chooseAlgorithm("forward", plan, plan.forwardDescriptor, outputBytes: output.byteCount) {
                cudnn.cudnnFindConvolutionForwardAlgorithmEx(cudnnHandle, plan.input, x, plan.filter, w,
                                                             plan.forwardDescriptor, plan.output, $0, $1, &$2, $3, $4, $5)
            }
        }
        let choice = plan.forward!
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
        checkConvolution("conv2dBackwardData", g, input: dInput, weight: weight, output: dOutput)
        context.makeCurrent()
        let plan = convolutionPlan(g)
        let w = krscWeight(from: weight, g)
        let dy = devicePointer(dOutput.devicePointer), dx = devicePointer(dInput.devicePointer)
        if plan.backwardData == nil {
            plan.backwardData = chooseAlgorithm("backward data", plan, plan.backwardDataDescriptor,
                                                outputBytes: dInput.byteCount) {
                cudnn.cudnnFindConvolutionBackwardDataAlgorithmEx(cudnnHandle, plan.filter, w, plan.output, dy,
                                                                  plan.backwardDataDescriptor, plan.input,
                                                                  $0, $1, &$2, $3, $4, $5)
            }
        }
        let choice = plan.backwardData!
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
        checkConvolution("conv2dBackwardWeight", g, input: input, weight: dWeight, output: dOutput)
        context.makeCurrent()
        let plan = convolutionPlan(g)
        let x = devicePointer(input.devicePointer), dy = devicePointer(dOutput.devicePointer)
        let dwKRSC = devicePointer(weightScratch.pointer(byteCount: dWeight.byteCount))
        if plan.backwardFilter == nil {
            plan.backwardFilter = chooseAlgorithm("backward filter", plan, plan.backwardFilterDescriptor,
                                                  outputBytes: dWeight.byteCount) {
                cudnn.cudnnFindConvolutionBackwardFilterAlgorithmEx(cudnnHandle, plan.input, x, plan.output, dy,
                                                                    plan.backwardFilterDescriptor, plan.filter,
                                                                    $0, $1, &$2, $3, $4, $5)
            }
        }
        let choice = plan.backwardFilter!
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
        kernels.elementwise(.elementwise, "krsc_to_oihw", count: dWeight.elementCount,
                            [.tensor(dWeight), .pointer(CUdeviceptr(UInt(bitPattern: dwKRSC))),
                             .int(g.outputChannels), .int(g.inputChannels), .int(taps)])
    }

    // MARK: Plans

    private func convolutionPlan(_ g: Conv2dGeometry) -> ConvolutionPlan {
        if let plan = convolutions[g] { return plan }
        let plan = mustSucceed { try ConvolutionPlan(g) }
        convolutions[g] = plan
        return plan
    }

    /// The OIHW `weight` transposed into the KRSC scratch buffer (Note [KRSC weights]).
    private func krscWeight(from weight: Tensor, _ g: Conv2dGeometry) -> UnsafeMutableRawPointer {
        let destination = weightScratch.pointer(byteCount: weight.byteCount)
        kernels.elementwise(.elementwise, "oihw_to_krsc", count: weight.elementCount,
                            [.pointer(destination), .tensor(weight), .int(g.outputChannels), .int(g.inputChannels),
                             .int(g.kernelSize * g.kernelSize)])
        return devicePointer(destination)
    }

    /// Runs one Find call on scratch output and workspace (Note [Convolution
    /// algorithms]); `find(outputScratch, requested, &returned, results, workspace, workspaceBytes)`.
    private func chooseAlgorithm(
        _ direction: String, _ plan: ConvolutionPlan, _ descriptor: cudnnConvolutionDescriptor_t, outputBytes: Int,
        _ find: (UnsafeMutableRawPointer, Int32, inout Int32, UnsafeMutablePointer<CohortCUDNNConvolutionPerf>,
                 UnsafeMutableRawPointer, Int) -> cudnnStatus_t
    ) -> ConvolutionPlan.Choice {
        mustSucceed {
            let what = "\(direction) of \(plan.geometry)"
            let budget = min(Self.findWorkspaceLimit, try context.memoryInfo().free / 2)
            let workspace = try rawAllocator.allocateRaw(byteCount: max(budget, 256))
            defer { rawAllocator.release(address: workspace, byteCount: max(budget, 256)) }
            let scratchOutput = try rawAllocator.allocateRaw(byteCount: outputBytes)
            defer { rawAllocator.release(address: scratchOutput, byteCount: outputBytes) }
            var results = [CohortCUDNNConvolutionPerf](repeating: CohortCUDNNConvolutionPerf(),
                                                       count: Self.algorithmsRequested)
            var returned: Int32 = 0
            let status = results.withUnsafeMutableBufferPointer {
                find(scratchOutput, Int32(Self.algorithmsRequested), &returned, $0.baseAddress!, workspace, budget)
            }
            try checkCUDNN(status, "cudnnFindConvolution*AlgorithmEx", what)
            let candidates = results.prefix(Int(returned))
            guard let best = candidates.first(where: { $0.status == 0 && $0.memory <= budget }) else {
                let tried = candidates.map { "algorithm \($0.algorithm): status \($0.status), \($0.memory) bytes" }
                throw CUDNNError(call: "cudnnFindConvolution*AlgorithmEx", code: 3000, name: "CUDNN_STATUS_NOT_SUPPORTED",
                                 message: "no algorithm ran within \(budget) bytes of workspace; tried "
                                     + tried.joined(separator: "; "), context: what)
            }
            try checkCUDNN(cudnn.cudnnSetConvolutionMathType(descriptor, best.mathType), "cudnnSetConvolutionMathType", what)
            return ConvolutionPlan.Choice(algorithm: best.algorithm, mathType: best.mathType,
                                          workspaceBytes: best.memory, milliseconds: best.time)
        }
    }

    private func checkConvolution(_ op: String, _ g: Conv2dGeometry, input: Tensor, weight: Tensor, output: Tensor) {
        expect("\(op) (\(g)) input", input, g.inputShape)
        expect("\(op) (\(g)) weight", weight, g.weightShape)
        expect("\(op) (\(g)) output", output, g.outputShape)
    }
}
