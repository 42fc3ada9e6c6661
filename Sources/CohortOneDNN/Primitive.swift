import CDNNL
import CohortTensor

/// One oneDNN primitive, planned once for a shape, with a memory object per
/// argument whose data pointer is swapped in on every call.
///
/// Note [Primitive cache]: planning a primitive (descriptor, JIT-compiled
/// kernel, memory objects) costs 0.05-1.4 ms (ONEDNN_VERBOSE=2 on the 2-core
/// Zen4; convolutions the most), and a ResNet-18 step runs over a hundred of
/// them: about 15 ms, 4% of a batch-32 step, if planned per call. So the
/// backend keeps one plan per op and shape in a dictionary; the steady state
/// only sets data handles and executes.
final class Primitive {
    let descriptor: dnnl_primitive_desc_t
    private let primitive: dnnl_primitive_t
    private let arguments: [Int32]
    private var memories: [dnnl_memory_t] = []
    private let engine: Engine
    let name: String

    /// Plans `operation` (an initialised `dnnl_*_desc_t`), binding the
    /// argument indices `arguments` (`DNNL_ARG_*`) in the order `execute`
    /// receives pointers. `hint` is the forward descriptor a backward needs.
    convenience init(_ name: String, engine: Engine, operation: UnsafeRawPointer, attributes: OpaquePointer? = nil,
         hint: Primitive? = nil, arguments: [Int32]) throws(OneDNNError) {
        var descriptor: dnnl_primitive_desc_t?
        try check(dnnl.dnnl_primitive_desc_create(&descriptor, operation, attributes, engine.engine, hint?.descriptor),
                  "dnnl_primitive_desc_create", name)
        try self.init(name, engine: engine, descriptor: descriptor!, arguments: arguments)
    }

    /// A reorder (layout conversion) from `source` to `destination`.
    convenience init(reorderFrom source: dnnl_memory_desc_t, to destination: dnnl_memory_desc_t,
                     engine: Engine, name: String) throws(OneDNNError) {
        var descriptor: dnnl_primitive_desc_t?
        var source = source, destination = destination
        try check(dnnl.dnnl_reorder_primitive_desc_create(&descriptor, &source, engine.engine, &destination, engine.engine, nil),
                  "dnnl_reorder_primitive_desc_create", name)
        try self.init(name, engine: engine, descriptor: descriptor!, arguments: [DNNL_ARG_FROM, DNNL_ARG_TO])
    }

    private init(_ name: String, engine: Engine, descriptor: dnnl_primitive_desc_t, arguments: [Int32]) throws(OneDNNError) {
        self.name = name
        self.engine = engine
        self.descriptor = descriptor
        self.arguments = arguments
        var primitive: dnnl_primitive_t?
        let status = dnnl.dnnl_primitive_create(&primitive, descriptor)
        guard status == dnnl_success, let primitive else {
            _ = dnnl.dnnl_primitive_desc_destroy(descriptor)
            try check(status, "dnnl_primitive_create", name)
            preconditionFailure("dnnl_primitive_create returned success and no primitive")
        }
        self.primitive = primitive
        for argument in arguments {
            var memory: dnnl_memory_t?
            try check(dnnl.dnnl_memory_create(&memory, self.memoryDescriptor(argument), engine.engine, nil),
                      "dnnl_memory_create", "argument \(argument) of \(name)")
            memories.append(memory!)
        }
    }

    deinit {
        for memory in memories { _ = dnnl.dnnl_memory_destroy(memory) }
        _ = dnnl.dnnl_primitive_destroy(primitive)
        _ = dnnl.dnnl_primitive_desc_destroy(descriptor)
    }

    /// The layout the primitive chose (or was given) for `argument`.
    func memoryDescriptor(_ argument: Int32) -> UnsafePointer<dnnl_memory_desc_t> {
        dnnl.dnnl_primitive_desc_query_md(descriptor, dnnl_query_exec_arg_md, argument)!
    }

    /// Bytes `argument` occupies in the primitive's layout.
    func byteCount(_ argument: Int32) -> Int { Int(dnnl.dnnl_memory_desc_get_size(memoryDescriptor(argument))) }

    /// The implementation oneDNN picked (e.g. "brgconv:avx512_core").
    var implementation: String {
        var text: UnsafePointer<CChar>?
        guard dnnl.dnnl_primitive_desc_query(descriptor, dnnl_query_impl_info_str, 0, &text) == dnnl_success,
              let text else { return "?" }
        return String(cString: text)
    }

    /// Runs the primitive on `pointers`, one per argument given at init.
    func execute(_ pointers: UnsafeMutableRawPointer...) {
        precondition(pointers.count == arguments.count, "\(name): \(pointers.count) pointers for \(arguments.count) arguments")
        var execArguments: [dnnl_exec_arg_t] = []
        execArguments.reserveCapacity(arguments.count)
        for index in arguments.indices {
            mustSucceed(dnnl.dnnl_memory_set_data_handle(memories[index], pointers[index]), "dnnl_memory_set_data_handle", name)
            execArguments.append(dnnl_exec_arg_t(arg: arguments[index], memory: memories[index]))
        }
        mustSucceed(dnnl.dnnl_primitive_execute(primitive, engine.stream, Int32(execArguments.count), execArguments),
                    "dnnl_primitive_execute", name)
    }
}

/// The CPU engine and its in-order stream, shared by every primitive.
final class Engine {
    let engine: dnnl_engine_t
    let stream: dnnl_stream_t

    init() throws(OneDNNError) {
        var engine: dnnl_engine_t?
        try check(dnnl.dnnl_engine_create(&engine, dnnl_cpu, 0), "dnnl_engine_create", "the CPU engine")
        var stream: dnnl_stream_t?
        let status = dnnl.dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue)
        guard status == dnnl_success else {
            _ = dnnl.dnnl_engine_destroy(engine)
            try check(status, "dnnl_stream_create", "the CPU stream")
            preconditionFailure("unreachable")
        }
        self.engine = engine!
        self.stream = stream!
    }

    deinit {
        _ = dnnl.dnnl_stream_destroy(stream)
        _ = dnnl.dnnl_engine_destroy(engine)
    }

    func wait() { mustSucceed(dnnl.dnnl_stream_wait(stream), "dnnl_stream_wait", "synchronize") }
}

/// A memory descriptor for float32 data of `dimensions` in layout `tag`
/// (`dnnl_format_tag_any` lets the primitive choose).
func memoryDescriptor(_ dimensions: [Int], _ tag: dnnl_format_tag_t) throws(OneDNNError) -> dnnl_memory_desc_t {
    var descriptor = dnnl_memory_desc_t()
    try check(dnnl.dnnl_memory_desc_init_by_tag(&descriptor, Int32(dimensions.count), dimensions.map(Int64.init), dnnl_f32, tag),
              "dnnl_memory_desc_init_by_tag", "dimensions \(dimensions)")
    return descriptor
}

/// 64-byte aligned host memory owned by a cached plan (reordered weights,
/// batch-norm variance, workspaces).
final class Buffer {
    let pointer: UnsafeMutableRawPointer
    let byteCount: Int

    init(byteCount: Int) {
        self.byteCount = byteCount
        // Out of host memory here is as fatal as for any Swift allocation.
        pointer = try! HostAllocator.shared.allocateRaw(byteCount: max(byteCount, 64))
    }

    deinit { HostAllocator.shared.release(address: pointer, byteCount: byteCount) }

    var floats: UnsafeMutablePointer<Float> { pointer.assumingMemoryBound(to: Float.self) }
}
