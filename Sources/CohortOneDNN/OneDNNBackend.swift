import CDNNL
import CohortKernels
import CohortTensor
#if canImport(Glibc)
import Glibc
#endif

/// The CPU backend: convolutions (direct or Winograd, see `Note [oneDNN
/// convolution layouts]`), batch norm, ReLU, residual additions and the
/// classifier on oneDNN primitives (one engine, one in-order stream, every
/// primitive cached per shape, see `Note [Primitive cache]`); pooling, the
/// loss and the optimiser step as plain vectorisable Swift loops.
///
/// oneDNN is loaded with dlopen (see CDNNL), so `init` throws
/// `OneDNNError.libraryMissing` where libdnnl is not installed and the caller
/// falls back to `ReferenceBackend`.
///
/// Threads: Debian's oneDNN runs on OpenMP, one thread per core unless
/// `OMP_NUM_THREADS` says otherwise. Every primitive ends in an OpenMP
/// barrier, so another busy process on the same cores stalls each call by a
/// scheduler slice (measured on 2 cores while another process ran: 4-8 ms
/// for reorders that take microseconds, and a batch-128 ResNet-18 step took
/// 5.7 s on two threads against 4.2 s on one). Give training the cores, or
/// set `OMP_NUM_THREADS=1` when sharing them.
public final class OneDNNBackend: Backend {
    public let name = "onednn"
    public let device = Device.cpu
    public let details: String

    let engine: Engine
    private let allocator = CachingAllocator(underlying: HostAllocator.shared)
    private let scratch = ScratchSpace()
    private var convolutions: [Conv2dGeometry: ConvolutionPlan] = [:]
    private var batchNormForwards: [BatchNormForwardPlan.Key: BatchNormForwardPlan] = [:]
    private var batchNormBackwards: [BatchNormBackwardPlan.Key: BatchNormBackwardPlan] = [:]
    private var reluForwards: [Int: Primitive] = [:]
    private var reluBackwards: [Int: Primitive] = [:]
    private var additions: [AdditionKey: Primitive] = [:]
    private var linears: [LinearKey: LinearPlan] = [:]

    private struct AdditionKey: Hashable {
        var elementCount: Int
        var fuseReLU: Bool
    }

    /// The activation layout of direct convolutions (Note [oneDNN convolution layouts]).
    public let directConvolutionLayout: DirectConvolutionLayout

    public init(directConvolutionLayout: DirectConvolutionLayout = .automatic) throws(OneDNNError) {
        self.directConvolutionLayout = directConvolutionLayout
        var message = [CChar](repeating: 0, count: 1024)
        guard cohort_dnnl_load(&message, message.count) == 0 else {
            let bytes = message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
            throw OneDNNError.libraryMissing(reason: String(decoding: bytes, as: UTF8.self))
        }
        engine = try Engine()
        let version = dnnl.dnnl_version()!.pointee
        let isa = Self.effectiveISA
        let threads = dnnl.omp_get_max_threads.map { "\($0()) OpenMP threads" } ?? "threads set by oneDNN's runtime"
        let resolved = directConvolutionLayout == .automatic ? DirectConvolutionLayout.resolvedAutomatic : directConvolutionLayout
        let layout = resolved == .blocked ? ", blocked activations for direct 3x3 convolutions" : ""
        details = "oneDNN \(version.major).\(version.minor).\(version.patch), ISA \(isa), \(threads)\(layout)"
    }

    /// oneDNN's name for the instruction set its kernels use here, e.g.
    /// "cpu_isa_avx2" (call after the library loaded).
    static var effectiveISA: String {
        dnnl.dnnl_cpu_isa2str(dnnl.dnnl_get_effective_cpu_isa()).map { String(cString: $0) } ?? "unknown"
    }

    /// Sets how many OpenMP threads oneDNN's primitives called from this
    /// thread use (OpenMP keeps the setting per calling thread): replicas
    /// run as threads of one process split the cores as `cohort launch`
    /// splits them between ranks with OMP_NUM_THREADS, instead of each
    /// starting a team as large as the machine (see Threads above). Returns
    /// false where oneDNN or its OpenMP runtime cannot be found; call it
    /// before the thread makes its backend, whose `details` then say the count.
    @discardableResult
    public static func setThreadCount(forCallingThread count: Int) -> Bool {
        precondition(count >= 1, "setThreadCount: \(count) threads")
        guard cohort_dnnl_load(nil, 0) == 0, let set = dnnl.omp_set_num_threads else { return false }
        set(Int32(count))
        return true
    }

    // MARK: Plans (see Note [Primitive cache])

    /// The cached plan for `key`, made by `make` the first time. A plan that
    /// oneDNN refuses is fatal here (with the call and status; `fatalError`
    /// keeps its message in release builds): the protocol's ops cannot throw,
    /// and a shape oneDNN cannot run is not something a retry fixes.
    private func plan<Key: Hashable, Plan>(_ cache: inout [Key: Plan], _ key: Key,
                                          _ make: (Key) throws -> Plan) -> Plan {
        if let plan = cache[key] { return plan }
        do {
            let plan = try make(key)
            cache[key] = plan
            return plan
        } catch {
            fatalError("OneDNNBackend: \(error)")
        }
    }

    // MARK: Memory

    public func makeTensor(_ shape: Shape, dtype: DType) throws -> Tensor {
        try Tensor(shape: shape, dtype: dtype, allocator: allocator)
    }

    public func upload(_ source: Tensor, to destination: Tensor) {
        precondition(source.shape == destination.shape && source.dtype == destination.dtype,
                     "upload of \(source) into \(destination)")
        destination.rawPointer.copyMemory(from: source.rawPointer, byteCount: source.byteCount)
    }

    public func download(_ source: Tensor) -> Tensor {
        synchronize()
        let host = try! Tensor(shape: source.shape, dtype: source.dtype, allocator: HostAllocator.shared)
        host.rawPointer.copyMemory(from: source.rawPointer, byteCount: source.byteCount)
        return host
    }

    public func fill(_ tensor: Tensor, value: Float) {
        switch tensor.dtype {
        case .float32:
            tensor.rawPointer.assumingMemoryBound(to: Float.self).update(repeating: value, count: tensor.elementCount)
        case .bfloat16:
            tensor.rawPointer.assumingMemoryBound(to: UInt16.self)
                .update(repeating: BFloat16.fromFloat(value), count: tensor.elementCount)
        default:
            preconditionFailure("fill of a \(tensor.dtype) tensor")
        }
    }

    public func copy(_ source: Tensor, to destination: Tensor) {
        precondition(source.elementCount == destination.elementCount, "copy of \(source) into \(destination)")
        let count = source.elementCount
        switch (source.dtype, destination.dtype) {
        case let (from, to) where from == to:
            memmove(destination.rawPointer, source.rawPointer, source.byteCount)
        case (.float32, .bfloat16):
            let from = source.rawPointer.assumingMemoryBound(to: Float.self)
            let to = destination.rawPointer.assumingMemoryBound(to: UInt16.self)
            for index in 0..<count { to[index] = BFloat16.fromFloat(from[index]) }
        case (.bfloat16, .float32):
            let from = source.rawPointer.assumingMemoryBound(to: UInt16.self)
            let to = destination.rawPointer.assumingMemoryBound(to: Float.self)
            for index in 0..<count { to[index] = BFloat16.toFloat(from[index]) }
        default:
            preconditionFailure("copy from \(source.dtype) to \(destination.dtype)")
        }
    }

    public func synchronize() { engine.wait() }

    // MARK: Convolution (see Note [oneDNN convolution layouts])

    public func conv2dForward(output: Tensor, input: Tensor, weight: Tensor, geometry: Conv2dGeometry) {
        expect((output, geometry.outputShape), (input, geometry.inputShape), (weight, geometry.weightShape))
        plan(&convolutions, geometry) { try ConvolutionPlan($0, layout: directConvolutionLayout, engine: engine, scratch: scratch) }
            .runForward(output: output.rawPointer, input: input.rawPointer, weight: weight.rawPointer)
    }

    public func conv2dBackwardData(dInput: Tensor, dOutput: Tensor, weight: Tensor, geometry: Conv2dGeometry) {
        expect((dInput, geometry.inputShape), (dOutput, geometry.outputShape), (weight, geometry.weightShape))
        plan(&convolutions, geometry) { try ConvolutionPlan($0, layout: directConvolutionLayout, engine: engine, scratch: scratch) }
            .runBackwardData(dInput: dInput.rawPointer, dOutput: dOutput.rawPointer, weight: weight.rawPointer)
    }

    public func conv2dBackwardWeight(dWeight: Tensor, input: Tensor, dOutput: Tensor, geometry: Conv2dGeometry) {
        expect((dWeight, geometry.weightShape), (input, geometry.inputShape), (dOutput, geometry.outputShape))
        plan(&convolutions, geometry) { try ConvolutionPlan($0, layout: directConvolutionLayout, engine: engine, scratch: scratch) }
            .runBackwardWeights(dWeight: dWeight.rawPointer, input: input.rawPointer, dOutput: dOutput.rawPointer)
    }

    // MARK: Batch normalisation (see Note [oneDNN batch norm])

    private func batchNormShape(_ input: Tensor) -> BatchNormShape {
        precondition(input.shape.rank == 4, "batch norm of \(input): want NHWC")
        return BatchNormShape(batch: input.shape[0], height: input.shape[1], width: input.shape[2], channels: input.shape[3])
    }

    private func batchNormForwardPlan(_ input: Tensor, epsilon: Float, fuseReLU: Bool) -> BatchNormForwardPlan {
        let key = BatchNormForwardPlan.Key(shape: batchNormShape(input), epsilon: epsilon, fuseReLU: fuseReLU)
        return plan(&batchNormForwards, key) { try BatchNormForwardPlan($0, engine: engine) }
    }

    public func batchNormForwardTraining(output: Tensor, input: Tensor, scale: Tensor, shift: Tensor,
                                         runningMean: Tensor, runningVar: Tensor,
                                         savedMean: Tensor, savedInvStd: Tensor,
                                         momentum: Float, epsilon: Float, fuseReLU: Bool) {
        let plan = batchNormForwardPlan(input, epsilon: epsilon, fuseReLU: fuseReLU)
        let channels: Shape = [plan.key.shape.channels]
        expect((output, input.shape), (input, input.shape), (scale, channels), (shift, channels),
               (runningMean, channels), (runningVar, channels), (savedMean, channels), (savedInvStd, channels))
        let n = Float(plan.key.shape.elementCount / plan.key.shape.channels)
        precondition(n > 1, "training-mode batch norm needs more than one value per channel (got \(input.shape))")
        plan.runTraining(output: output.rawPointer, input: input.rawPointer, scale: scale.rawPointer,
                         shift: shift.rawPointer, mean: savedMean.rawPointer)
        let variance = plan.variance.floats, mean = savedMean.floats, invStd = savedInvStd.floats
        let runMean = runningMean.floats, runVar = runningVar.floats
        let unbias = n / (n - 1)
        for c in 0..<channels[0] {
            invStd[c] = 1 / (variance[c] + epsilon).squareRoot()
            runMean[c] = (1 - momentum) * runMean[c] + momentum * mean[c]
            runVar[c] = (1 - momentum) * runVar[c] + momentum * variance[c] * unbias
        }
    }

    public func batchNormForwardInference(output: Tensor, input: Tensor, scale: Tensor, shift: Tensor,
                                          runningMean: Tensor, runningVar: Tensor, epsilon: Float, fuseReLU: Bool) {
        let plan = batchNormForwardPlan(input, epsilon: epsilon, fuseReLU: fuseReLU)
        let channels: Shape = [plan.key.shape.channels]
        expect((output, input.shape), (input, input.shape), (scale, channels), (shift, channels),
               (runningMean, channels), (runningVar, channels))
        plan.inference.execute(input.rawPointer, runningMean.rawPointer, runningVar.rawPointer,
                               scale.rawPointer, shift.rawPointer, output.rawPointer)
    }

    public func batchNormBackward(dInput: Tensor, dScale: Tensor, dShift: Tensor, dOutput: Tensor,
                                  input: Tensor, output: Tensor, scale: Tensor,
                                  savedMean: Tensor, savedInvStd: Tensor, fuseReLU: Bool) {
        let shape = batchNormShape(input)
        let channels: Shape = [shape.channels]
        expect((dInput, input.shape), (dOutput, input.shape), (input, input.shape), (dScale, channels), (dShift, channels),
               (scale, channels), (savedMean, channels), (savedInvStd, channels))
        if fuseReLU { expect((output, input.shape)) }
        plan(&batchNormBackwards, BatchNormBackwardPlan.Key(shape: shape, fuseReLU: fuseReLU)) {
            try BatchNormBackwardPlan($0, engine: engine)
        }.run(dInput: dInput.rawPointer, dScale: dScale.rawPointer, dShift: dShift.rawPointer, dOutput: dOutput.rawPointer,
              input: input.rawPointer, output: output.rawPointer, scale: scale.rawPointer, savedMean: savedMean.rawPointer,
              savedInvStd: UnsafePointer(savedInvStd.floats.baseAddress!), channels: shape.channels)
    }

    // MARK: Elementwise

    public func reluForward(output: Tensor, input: Tensor) {
        expect((output, input.shape), (input, input.shape))
        plan(&reluForwards, input.elementCount) { try EltwisePlans.reluForward(elementCount: $0, engine: engine) }
            .execute(input.rawPointer, output.rawPointer)
    }

    public func reluBackward(dInput: Tensor, dOutput: Tensor, output: Tensor) {
        expect((dInput, output.shape), (dOutput, output.shape), (output, output.shape))
        plan(&reluBackwards, output.elementCount) { try EltwisePlans.reluBackward(elementCount: $0, engine: engine) }
            .execute(output.rawPointer, dOutput.rawPointer, dInput.rawPointer)
    }

    public func add(output: Tensor, _ a: Tensor, _ b: Tensor, fuseReLU: Bool) {
        expect((output, a.shape), (a, a.shape), (b, a.shape))
        // oneDNN computes in place only over its first source; addition commutes.
        let (first, second) = output.rawPointer == b.rawPointer ? (b, a) : (a, b)
        plan(&additions, AdditionKey(elementCount: a.elementCount, fuseReLU: fuseReLU)) {
            try EltwisePlans.add(elementCount: $0.elementCount, fuseReLU: $0.fuseReLU, engine: engine)
        }.execute(first.rawPointer, second.rawPointer, output.rawPointer)
    }

    // MARK: Classifier

    public func linearForward(output: Tensor, input: Tensor, weight: Tensor, bias: Tensor) {
        let key = linearKey(input: input, weight: weight)
        expect((output, [key.batch, key.outputs]), (bias, [key.outputs]))
        plan(&linears, key) { try LinearPlan($0, engine: engine) }.forward
            .execute(input.rawPointer, weight.rawPointer, bias.rawPointer, output.rawPointer)
    }

    public func linearBackward(dInput: Tensor?, dWeight: Tensor, dBias: Tensor,
                               dOutput: Tensor, input: Tensor, weight: Tensor) {
        let key = linearKey(input: input, weight: weight)
        expect((dWeight, weight.shape), (dBias, [key.outputs]), (dOutput, [key.batch, key.outputs]))
        let plan = plan(&linears, key) { try LinearPlan($0, engine: engine) }
        if let dInput {
            expect((dInput, input.shape))
            plan.backwardData.execute(dOutput.rawPointer, weight.rawPointer, dInput.rawPointer)
        }
        plan.backwardWeights.execute(input.rawPointer, dOutput.rawPointer, dWeight.rawPointer, dBias.rawPointer)
    }

    private func linearKey(input: Tensor, weight: Tensor) -> LinearKey {
        precondition(input.shape.rank == 2 && weight.shape.rank == 2 && input.shape[1] == weight.shape[1],
                     "linear of input \(input.shape) with weight \(weight.shape)")
        expect((input, input.shape), (weight, weight.shape))
        return LinearKey(batch: input.shape[0], inputs: input.shape[1], outputs: weight.shape[0])
    }
}

/// Checks that each tensor is a float32 CPU tensor of the shape paired with it.
func expect(_ checks: (tensor: Tensor, shape: Shape)...) {
    for (tensor, shape) in checks {
        precondition(tensor.shape == shape && tensor.dtype == .float32 && tensor.device.isHost,
                     "OneDNNBackend: got \(tensor), want a float32 CPU tensor of shape \(shape)")
    }
}
