import CDNNL
import CohortKernels

/// The three primitives of one convolution geometry, with the weight
/// reorders each needs.
///
/// Note [oneDNN convolution layouts]: activations stay NHWC (`acdb`) in
/// the user's memory, which oneDNN's brgemm/jit kernels read directly; the
/// weights are planned with `format_tag_any` and reordered from and to the
/// user's OIHW on every call. Measured on the 2-core Zen4 at batch 32
/// (ResNet-18's convolutions, one thread): OIHW weights given as they are get
/// only the reference kernel ("ref:any", about 1 GFLOP/s, 100x slower);
/// blocked activations (`any` everywhere, with reorders of the activations)
/// cost 2-9% more than NHWC in total and up to 3x more on the 1x1
/// downsampling convolutions. The weight reorders move at most 9.4 MB per
/// call, well under a millisecond.
final class ConvolutionPlan {
    let forward: Primitive
    let backwardData: Primitive
    let backwardWeights: Primitive
    private let forwardWeights: WeightReorder
    private let backwardDataWeights: WeightReorder
    private let backwardWeightsGradient: WeightReorder

    init(_ geometry: Conv2dGeometry, engine: Engine) throws(OneDNNError) {
        let g = geometry
        let name = "\(g)"
        let source = try memoryDescriptor([g.batch, g.inputChannels, g.inputHeight, g.inputWidth], dnnl_acdb)
        let destination = try memoryDescriptor([g.batch, g.outputChannels, g.outputHeight, g.outputWidth], dnnl_acdb)
        let weightDims = [g.outputChannels, g.inputChannels, g.kernelSize, g.kernelSize]
        let userWeights = try memoryDescriptor(weightDims, dnnl_abcd)
        let anyWeights = try memoryDescriptor(weightDims, dnnl_format_tag_any)
        let strides: [Int64] = [Int64(g.stride), Int64(g.stride)]
        // Symmetric padding, as PyTorch passes it: oneDNN's output size check
        // (in + 2p - k) / s + 1 floors like ours, so rows past the last window are never read.
        let padding: [Int64] = [Int64(g.padding), Int64(g.padding)]

        var operation = dnnl_convolution_desc_t()
        var (src, dst, weights) = (source, destination, anyWeights)
        try check(dnnl.dnnl_convolution_forward_desc_init(&operation, dnnl_forward_training, dnnl_convolution_direct,
                                                          &src, &weights, nil, &dst, strides, padding, padding),
                  "dnnl_convolution_forward_desc_init", name)
        forward = try Primitive("forward \(name)", engine: engine, operation: &operation,
                                arguments: [DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST])

        try check(dnnl.dnnl_convolution_backward_data_desc_init(&operation, dnnl_convolution_direct,
                                                                &src, &weights, &dst, strides, padding, padding),
                  "dnnl_convolution_backward_data_desc_init", name)
        backwardData = try Primitive("backward data \(name)", engine: engine, operation: &operation, hint: forward,
                                     arguments: [DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC])

        try check(dnnl.dnnl_convolution_backward_weights_desc_init(&operation, dnnl_convolution_direct,
                                                                   &src, &weights, nil, &dst, strides, padding, padding),
                  "dnnl_convolution_backward_weights_desc_init", name)
        backwardWeights = try Primitive("backward weights \(name)", engine: engine, operation: &operation, hint: forward,
                                        arguments: [DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS])

        forwardWeights = try WeightReorder(from: userWeights, to: forward.memoryDescriptor(DNNL_ARG_WEIGHTS).pointee,
                                           engine: engine, name: "weights for \(forward.name)")
        backwardDataWeights = try WeightReorder(from: userWeights, to: backwardData.memoryDescriptor(DNNL_ARG_WEIGHTS).pointee,
                                                engine: engine, name: "weights for \(backwardData.name)")
        backwardWeightsGradient = try WeightReorder(from: backwardWeights.memoryDescriptor(DNNL_ARG_DIFF_WEIGHTS).pointee,
                                                    to: userWeights, engine: engine, name: "gradient of \(backwardWeights.name)")
    }

    func runForward(output: UnsafeMutableRawPointer, input: UnsafeMutableRawPointer, weight: UnsafeMutableRawPointer) {
        forward.execute(input, forwardWeights.into(weight), output)
    }

    func runBackwardData(dInput: UnsafeMutableRawPointer, dOutput: UnsafeMutableRawPointer, weight: UnsafeMutableRawPointer) {
        backwardData.execute(dOutput, backwardDataWeights.into(weight), dInput)
    }

    func runBackwardWeights(dWeight: UnsafeMutableRawPointer, input: UnsafeMutableRawPointer, dOutput: UnsafeMutableRawPointer) {
        backwardWeightsGradient.out(to: dWeight) { planned in backwardWeights.execute(input, dOutput, planned) }
    }
}

/// Converts weights between the user's OIHW and a primitive's layout, or
/// passes the user's pointer through when the two agree.
private final class WeightReorder {
    private let reorder: Primitive?
    private let buffer: Buffer?

    init(from source: dnnl_memory_desc_t, to destination: dnnl_memory_desc_t, engine: Engine, name: String) throws(OneDNNError) {
        var (source, destination) = (source, destination)
        if dnnl.dnnl_memory_desc_equal(&source, &destination) != 0 {
            reorder = nil
            buffer = nil
        } else {
            reorder = try Primitive(reorderFrom: source, to: destination, engine: engine, name: name)
            let planned = dnnl.dnnl_memory_desc_get_size(reorder!.memoryDescriptor(DNNL_ARG_FROM))
            let user = dnnl.dnnl_memory_desc_get_size(reorder!.memoryDescriptor(DNNL_ARG_TO))
            buffer = Buffer(byteCount: Int(max(planned, user)))
        }
    }

    /// The user's weights `user` in the primitive's layout.
    func into(_ user: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        guard let reorder, let buffer else { return user }
        reorder.execute(user, buffer.pointer)
        return buffer.pointer
    }

    /// Lets `produce` write the primitive's layout, then converts it into `user`.
    func out(to user: UnsafeMutableRawPointer, _ produce: (UnsafeMutableRawPointer) -> Void) {
        guard let reorder, let buffer else { return produce(user) }
        produce(buffer.pointer)
        reorder.execute(buffer.pointer, user)
    }
}
