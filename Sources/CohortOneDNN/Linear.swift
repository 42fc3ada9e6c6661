import CDNNL

/// What a linear layer is planned for: `[batch, inputs] -> [batch, outputs]`.
struct LinearKey: Hashable {
    var batch, inputs, outputs: Int
}

/// oneDNN inner-product primitives for one linear layer, on the user's
/// row-major layouts (`ab`) throughout: the classifier (512 -> 10) is too
/// small for weight reorders to pay off.
final class LinearPlan {
    let forward: Primitive
    let backwardData: Primitive
    let backwardWeights: Primitive

    init(_ key: LinearKey, engine: Engine) throws(OneDNNError) {
        let name = "linear \(key.inputs)->\(key.outputs) on \(key.batch)"
        var source = try memoryDescriptor([key.batch, key.inputs], dnnl_ab)
        var weights = try memoryDescriptor([key.outputs, key.inputs], dnnl_ab)
        var bias = try memoryDescriptor([key.outputs], dnnl_a)
        var destination = try memoryDescriptor([key.batch, key.outputs], dnnl_ab)
        var operation = dnnl_inner_product_desc_t()

        try check(dnnl.dnnl_inner_product_forward_desc_init(&operation, dnnl_forward_training, &source, &weights, &bias, &destination),
                  "dnnl_inner_product_forward_desc_init", name)
        forward = try Primitive("forward \(name)", engine: engine, operation: &operation,
                                arguments: [DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST])
        try check(dnnl.dnnl_inner_product_backward_data_desc_init(&operation, &source, &weights, &destination),
                  "dnnl_inner_product_backward_data_desc_init", name)
        backwardData = try Primitive("backward data \(name)", engine: engine, operation: &operation, hint: forward,
                                     arguments: [DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC])
        try check(dnnl.dnnl_inner_product_backward_weights_desc_init(&operation, &source, &weights, &bias, &destination),
                  "dnnl_inner_product_backward_weights_desc_init", name)
        backwardWeights = try Primitive("backward weights \(name)", engine: engine, operation: &operation, hint: forward,
                                        arguments: [DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_BIAS])
    }
}
