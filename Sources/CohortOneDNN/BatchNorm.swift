import CDNNL

/// The NHWC shape batch norm runs on.
struct BatchNormShape: Hashable {
    var batch, height, width, channels: Int
    var elementCount: Int { batch * height * width * channels }
    var description: String { "batch norm of \(channels) channels on \(batch)x\(height)x\(width)" }

    func data() throws(OneDNNError) -> dnnl_memory_desc_t {
        try memoryDescriptor([batch, channels, height, width], dnnl_acdb)
    }
}

private let affine = UInt32(dnnl_use_scale.rawValue | dnnl_use_shift.rawValue)

/// Note [oneDNN batch norm]: oneDNN normalises and computes the batch mean
/// and biased variance (flags `use_scale | use_shift`: scale and shift as
/// separate `[C]` tensors, as the protocol passes them). It keeps no running
/// statistics, so the backend updates them afterwards with PyTorch's momentum
/// and unbiased variance. With `fuseReLU` the forward uses `fuse_norm_relu`
/// (one pass over the data instead of two) and drops its workspace, because
/// the protocol's backward receives the post-ReLU output instead: the
/// backward masks `dOutput` with ReLU's backward (`relu_use_dst_for_bwd`,
/// ReLU'(0) = 0) into `dInput` and runs the plain backward in place there.
/// The backward gets the saved inverse std, not the variance, so it is
/// planned with epsilon 0 and given `variance = 1/invStd^2`: oneDNN's
/// `1/sqrt(variance + 0)` is then the saved inverse std, within rounding.
final class BatchNormForwardPlan {
    struct Key: Hashable {
        var shape: BatchNormShape
        var epsilon: Float
        var fuseReLU: Bool
    }

    let key: Key
    let training: Primitive
    let inference: Primitive
    /// The batch variance the training forward writes, `[C]`.
    let variance: Buffer
    private let workspace: Buffer?

    init(_ key: Key, engine: Engine) throws(OneDNNError) {
        self.key = key
        let name = key.shape.description + (key.fuseReLU ? " + ReLU" : "")
        var data = try key.shape.data()
        let flags = affine | (key.fuseReLU ? UInt32(dnnl_fuse_norm_relu.rawValue) : 0)
        var operation = dnnl_batch_normalization_desc_t()
        try check(dnnl.dnnl_batch_normalization_forward_desc_init(&operation, dnnl_forward_training, &data, key.epsilon, flags),
                  "dnnl_batch_normalization_forward_desc_init", name)
        training = try Primitive("training \(name)", engine: engine, operation: &operation,
                                 arguments: [DNNL_ARG_SRC, DNNL_ARG_SCALE, DNNL_ARG_SHIFT, DNNL_ARG_DST,
                                             DNNL_ARG_MEAN, DNNL_ARG_VARIANCE] + (key.fuseReLU ? [DNNL_ARG_WORKSPACE] : []))
        workspace = key.fuseReLU ? Buffer(byteCount: training.byteCount(DNNL_ARG_WORKSPACE)) : nil
        variance = Buffer(byteCount: key.shape.channels * MemoryLayout<Float>.size)

        let global = UInt32(dnnl_use_global_stats.rawValue)
        try check(dnnl.dnnl_batch_normalization_forward_desc_init(&operation, dnnl_forward_inference, &data, key.epsilon,
                                                                  flags | global),
                  "dnnl_batch_normalization_forward_desc_init", name)
        inference = try Primitive("inference \(name)", engine: engine, operation: &operation,
                                  arguments: [DNNL_ARG_SRC, DNNL_ARG_MEAN, DNNL_ARG_VARIANCE,
                                              DNNL_ARG_SCALE, DNNL_ARG_SHIFT, DNNL_ARG_DST])
    }

    /// Normalises with the batch statistics, writing the mean into `mean`
    /// and the biased variance into `variance`.
    func runTraining(output: UnsafeMutableRawPointer, input: UnsafeMutableRawPointer, scale: UnsafeMutableRawPointer,
                     shift: UnsafeMutableRawPointer, mean: UnsafeMutableRawPointer) {
        if let workspace {
            training.execute(input, scale, shift, output, mean, variance.pointer, workspace.pointer)
        } else {
            training.execute(input, scale, shift, output, mean, variance.pointer)
        }
    }
}

/// The backward of batch norm for one shape (see `Note [oneDNN batch norm]`).
final class BatchNormBackwardPlan {
    struct Key: Hashable {
        var shape: BatchNormShape
        var fuseReLU: Bool
    }

    private let backward: Primitive
    private let reluBackward: Primitive?
    private let variance: Buffer
    /// oneDNN 2.6's backward with `use_shift` insists on a SHIFT argument,
    /// which the gradients do not depend on (the protocol does not pass it).
    private let unusedShift: Buffer

    init(_ key: Key, engine: Engine) throws(OneDNNError) {
        let name = key.shape.description
        var data = try key.shape.data()
        var operation = dnnl_batch_normalization_desc_t()
        try check(dnnl.dnnl_batch_normalization_forward_desc_init(&operation, dnnl_forward_training, &data, 0, affine),
                  "dnnl_batch_normalization_forward_desc_init", name)
        let hint = try Primitive("training (hint) \(name)", engine: engine, operation: &operation, arguments: [])
        try check(dnnl.dnnl_batch_normalization_backward_desc_init(&operation, dnnl_backward, &data, &data, 0, affine),
                  "dnnl_batch_normalization_backward_desc_init", name)
        backward = try Primitive("backward \(name)", engine: engine, operation: &operation, hint: hint,
                                 arguments: [DNNL_ARG_SRC, DNNL_ARG_MEAN, DNNL_ARG_VARIANCE, DNNL_ARG_SCALE, DNNL_ARG_SHIFT,
                                             DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC, DNNL_ARG_DIFF_SCALE, DNNL_ARG_DIFF_SHIFT])
        reluBackward = key.fuseReLU ? try EltwisePlans.reluBackward(elementCount: key.shape.elementCount, engine: engine) : nil
        variance = Buffer(byteCount: key.shape.channels * MemoryLayout<Float>.size)
        unusedShift = Buffer(byteCount: key.shape.channels * MemoryLayout<Float>.size)
        unusedShift.floats.update(repeating: 0, count: key.shape.channels)
    }

    func run(dInput: UnsafeMutableRawPointer, dScale: UnsafeMutableRawPointer, dShift: UnsafeMutableRawPointer,
             dOutput: UnsafeMutableRawPointer, input: UnsafeMutableRawPointer, output: UnsafeMutableRawPointer,
             scale: UnsafeMutableRawPointer, savedMean: UnsafeMutableRawPointer, savedInvStd: UnsafePointer<Float>,
             channels: Int) {
        for c in 0..<channels { variance.floats[c] = 1 / (savedInvStd[c] * savedInvStd[c]) }
        var gradient = dOutput
        if let reluBackward {
            reluBackward.execute(output, dOutput, dInput)
            gradient = dInput
        }
        backward.execute(input, savedMean, variance.pointer, scale, unusedShift.pointer, gradient, dInput, dScale, dShift)
    }
}
