import CDNNL

/// Elementwise primitives, planned on the tensors flattened to one
/// dimension (`a`): ReLU and addition do not care about shape, so one plan
/// serves every tensor of the same size.
enum EltwisePlans {
    static func vector(_ elementCount: Int) throws(OneDNNError) -> dnnl_memory_desc_t {
        try memoryDescriptor([elementCount], dnnl_a)
    }

    /// dst = max(0, src); arguments SRC, DST (may be the same memory).
    static func reluForward(elementCount: Int, engine: Engine) throws(OneDNNError) -> Primitive {
        var data = try vector(elementCount)
        var operation = dnnl_eltwise_desc_t()
        try check(dnnl.dnnl_eltwise_forward_desc_init(&operation, dnnl_forward_training, dnnl_eltwise_relu, &data, 0, 0),
                  "dnnl_eltwise_forward_desc_init", "ReLU of \(elementCount)")
        return try Primitive("ReLU of \(elementCount)", engine: engine, operation: &operation,
                             arguments: [DNNL_ARG_SRC, DNNL_ARG_DST])
    }

    /// diff_src = diff_dst where dst > 0, else 0; arguments DST, DIFF_DST, DIFF_SRC.
    static func reluBackward(elementCount: Int, engine: Engine) throws(OneDNNError) -> Primitive {
        var data = try vector(elementCount)
        var operation = dnnl_eltwise_desc_t()
        try check(dnnl.dnnl_eltwise_forward_desc_init(&operation, dnnl_forward_training, dnnl_eltwise_relu_use_dst_for_bwd,
                                                      &data, 0, 0),
                  "dnnl_eltwise_forward_desc_init", "ReLU (hint) of \(elementCount)")
        let hint = try Primitive("ReLU (hint) of \(elementCount)", engine: engine, operation: &operation, arguments: [])
        try check(dnnl.dnnl_eltwise_backward_desc_init(&operation, dnnl_eltwise_relu_use_dst_for_bwd, &data, &data, 0, 0),
                  "dnnl_eltwise_backward_desc_init", "ReLU backward of \(elementCount)")
        return try Primitive("ReLU backward of \(elementCount)", engine: engine, operation: &operation, hint: hint,
                             arguments: [DNNL_ARG_DST, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC])
    }

    /// dst = src0 + src1, then ReLU if `fuseReLU` (a post-op, so one pass);
    /// arguments SRC_0, SRC_1, DST (DST may be SRC_0).
    static func add(elementCount: Int, fuseReLU: Bool, engine: Engine) throws(OneDNNError) -> Primitive {
        var data = try vector(elementCount)
        var operation = dnnl_binary_desc_t()
        let name = "add\(fuseReLU ? " + ReLU" : "") of \(elementCount)"
        try check(dnnl.dnnl_binary_desc_init(&operation, dnnl_binary_add, &data, &data, &data), "dnnl_binary_desc_init", name)
        guard fuseReLU else {
            return try Primitive(name, engine: engine, operation: &operation,
                                 arguments: [DNNL_ARG_SRC_0, DNNL_ARG_SRC_1, DNNL_ARG_DST])
        }
        var postOps: dnnl_post_ops_t?
        try check(dnnl.dnnl_post_ops_create(&postOps), "dnnl_post_ops_create", name)
        defer { _ = dnnl.dnnl_post_ops_destroy(postOps) }
        try check(dnnl.dnnl_post_ops_append_eltwise(postOps, 1, dnnl_eltwise_relu, 0, 0), "dnnl_post_ops_append_eltwise", name)
        var attributes: dnnl_primitive_attr_t?
        try check(dnnl.dnnl_primitive_attr_create(&attributes), "dnnl_primitive_attr_create", name)
        defer { _ = dnnl.dnnl_primitive_attr_destroy(attributes) }
        try check(dnnl.dnnl_primitive_attr_set_post_ops(attributes, postOps), "dnnl_primitive_attr_set_post_ops", name)
        return try Primitive(name, engine: engine, operation: &operation, attributes: attributes,
                             arguments: [DNNL_ARG_SRC_0, DNNL_ARG_SRC_1, DNNL_ARG_DST])
    }
}
