import CDNNL
import Foundation
import CohortKernels

/// The three primitives of one convolution geometry, with the layout
/// conversions each needs between the user's NHWC/OIHW and its own.
///
/// Note [oneDNN convolution layouts]: measured on the 2-core Zen4
/// (ResNet-18's convolutions at batch 32, one and two threads):
/// - OIHW weights given as they are get only the reference kernel
///   ("ref:any", about 1 GFLOP/s), so weights are always planned with
///   `format_tag_any` and reordered from (and gradients back to) OIHW on
///   every call: at most 9.4 MB, under a millisecond.
/// - Direct convolution on NHWC (`acdb`) activations runs at 180-270 GFLOP/s
///   on two threads; blocked activations with reorders around each call were
///   2-9% slower overall and up to 3x slower on the 1x1 downsampling convs.
/// - Winograd F(4x4, 3x3) (`jit_wino_4x3`, blocked activations only) does
///   the 3x3 stride-1 convolutions with 64 or more channels 1.3-2.2x faster
///   than direct, counting the activation reorders, in every direction
///   (e.g. 256->256 on 8x8: forward 10.2 -> 4.7 ms, weights 11.0 -> 5.1 ms);
///   the 3->64 stem is 5x slower with it. Its transforms add round-off:
///   3e-6 of the largest output against the reference, direct's 1.6e-6.
/// - Without AVX-512 (oneDNN's effective ISA avx2: a 2-core AMD EPYC at
///   2.45 GHz, 2026-11-28, the code of 4147029) there is no Winograd, every
///   convolution runs direct (`jit:avx2`), and those kernels are faster on
///   blocked activations (`nChw8c`) than on NHWC, the reorders counted:
///   ResNet-18's step at batch 32 24 -> 27 images/s (`cohort bench`, medians
///   of 11 alternating pairs of 10-step runs against COHORT_DNNL_ACTIVATIONS=
///   nhwc, 9 pairs faster; that VM is noisy, NHWC ranged 19-32), at batch 128
///   22.9-26.9 -> 27.1-27.7 (three pairs). Per geometry (batch 32, every
///   convolution blocked, `--profile-ops`) the 3x3 convolutions of 64 or more
///   input channels gain 0-30% in each direction; the 1x1 shortcuts and the
///   3-channel stem lose (0.5-0.8x, about 1 ms each), so they stay NHWC.
///   `DirectConvolutionLayout` holds the rule; COHORT_DNNL_ACTIVATIONS=nhwc
///   or blocked overrides it (A/B runs; the tests check both layouts).
final class ConvolutionPlan {
    let algorithm: Algorithm
    private let forward: Direction
    private let backwardData: Direction
    private let backwardWeights: Direction

    enum Algorithm: String {
        case direct, winograd
    }

    /// One primitive with a layout adapter per argument (two inputs, one output).
    private struct Direction {
        let primitive: Primitive
        let first, second, output: LayoutAdapter

        func run(_ first: UnsafeMutableRawPointer, _ second: UnsafeMutableRawPointer, output: UnsafeMutableRawPointer) {
            let a = self.first.into(first), b = self.second.into(second)
            self.output.out(to: output) { primitive.execute(a, b, $0) }
        }
    }

    init(_ geometry: Conv2dGeometry, layout: DirectConvolutionLayout, engine: Engine,
         scratch: ScratchSpace) throws(OneDNNError) {
        let winogradShape = geometry.kernelSize == 3 && geometry.stride == 1
            && geometry.inputChannels >= 64 && geometry.outputChannels >= 64
        if winogradShape, let plan = try Self.plan(geometry, .winograd, engine: engine, scratch: scratch) {
            (forward, backwardData, backwardWeights) = plan
            algorithm = .winograd
        } else {
            (forward, backwardData, backwardWeights) = try Self.plan(geometry, .direct, blocked: layout.usesBlockedActivations(geometry),
                                                                     engine: engine, scratch: scratch)!
            algorithm = .direct
        }
    }

    func runForward(output: UnsafeMutableRawPointer, input: UnsafeMutableRawPointer, weight: UnsafeMutableRawPointer) {
        forward.run(input, weight, output: output)
    }

    func runBackwardData(dInput: UnsafeMutableRawPointer, dOutput: UnsafeMutableRawPointer, weight: UnsafeMutableRawPointer) {
        backwardData.run(dOutput, weight, output: dInput)
    }

    func runBackwardWeights(dWeight: UnsafeMutableRawPointer, input: UnsafeMutableRawPointer, dOutput: UnsafeMutableRawPointer) {
        backwardWeights.run(input, dOutput, output: dWeight)
    }

    /// The three directions with `algorithm`, or nil when oneDNN has no
    /// Winograd implementation for this geometry.
    private static func plan(_ g: Conv2dGeometry, _ algorithm: Algorithm, blocked: Bool = false, engine: Engine,
                             scratch: ScratchSpace) throws(OneDNNError) -> (Direction, Direction, Direction)? {
        let name = "\(g) (\(algorithm.rawValue))"
        let sourceDims = [g.batch, g.inputChannels, g.inputHeight, g.inputWidth]
        let destinationDims = [g.batch, g.outputChannels, g.outputHeight, g.outputWidth]
        let weightDims = [g.outputChannels, g.inputChannels, g.kernelSize, g.kernelSize]
        let userSource = try memoryDescriptor(sourceDims, dnnl_acdb)
        let userDestination = try memoryDescriptor(destinationDims, dnnl_acdb)
        let userWeights = try memoryDescriptor(weightDims, dnnl_abcd)
        let activationTag = algorithm == .winograd || blocked ? dnnl_format_tag_any : dnnl_acdb
        var source = try memoryDescriptor(sourceDims, activationTag)
        var destination = try memoryDescriptor(destinationDims, activationTag)
        var weights = try memoryDescriptor(weightDims, dnnl_format_tag_any)
        let alg = algorithm == .winograd ? dnnl_convolution_winograd : dnnl_convolution_direct
        // Symmetric padding, as PyTorch passes it: oneDNN's output size check
        // (in + 2p - k) / s + 1 floors like ours, so rows past the last window are never read.
        let strides: [Int64] = [Int64(g.stride), Int64(g.stride)]
        let padding: [Int64] = [Int64(g.padding), Int64(g.padding)]

        func direction(_ label: String, _ operation: UnsafeRawPointer, hint: Primitive?,
                       _ arguments: [(Int32, dnnl_memory_desc_t)]) throws(OneDNNError) -> Direction? {
            let primitive: Primitive
            do {
                primitive = try Primitive("\(label) \(name)", engine: engine, operation: operation, hint: hint,
                                          arguments: arguments.map(\.0))
            } catch let error where algorithm == .winograd && error.isUnimplemented {
                return nil
            }
            var adapters: [LayoutAdapter] = []
            for (slot, (argument, user)) in arguments.enumerated() {
                adapters.append(try LayoutAdapter(user: user, planned: primitive.memoryDescriptor(argument).pointee,
                                                  isOutput: slot == 2, slot: slot, scratch: scratch, engine: engine,
                                                  name: "argument \(argument) of \(primitive.name)"))
            }
            return Direction(primitive: primitive, first: adapters[0], second: adapters[1], output: adapters[2])
        }

        var operation = dnnl_convolution_desc_t()
        try check(dnnl.dnnl_convolution_forward_desc_init(&operation, dnnl_forward_training, alg, &source, &weights, nil,
                                                          &destination, strides, padding, padding),
                  "dnnl_convolution_forward_desc_init", name)
        guard let forward = try direction("forward", &operation, hint: nil, [
            (DNNL_ARG_SRC, userSource), (DNNL_ARG_WEIGHTS, userWeights), (DNNL_ARG_DST, userDestination),
        ]) else { return nil }

        try check(dnnl.dnnl_convolution_backward_data_desc_init(&operation, alg, &source, &weights, &destination,
                                                                strides, padding, padding),
                  "dnnl_convolution_backward_data_desc_init", name)
        guard let backwardData = try direction("backward data", &operation, hint: forward.primitive, [
            (DNNL_ARG_DIFF_DST, userDestination), (DNNL_ARG_WEIGHTS, userWeights), (DNNL_ARG_DIFF_SRC, userSource),
        ]) else { return nil }

        try check(dnnl.dnnl_convolution_backward_weights_desc_init(&operation, alg, &source, &weights, nil, &destination,
                                                                   strides, padding, padding),
                  "dnnl_convolution_backward_weights_desc_init", name)
        guard let backwardWeights = try direction("backward weights", &operation, hint: forward.primitive, [
            (DNNL_ARG_SRC, userSource), (DNNL_ARG_DIFF_DST, userDestination), (DNNL_ARG_DIFF_WEIGHTS, userWeights),
        ]) else { return nil }
        return (forward, backwardData, backwardWeights)
    }
}

/// Converts one argument between the user's layout and a primitive's, or
/// passes the user's pointer through when the two agree. The converted copy
/// lives in a slot of the backend's `ScratchSpace`.
private final class LayoutAdapter {
    private let reorder: Primitive?
    private let byteCount: Int
    private let slot: Int
    private let scratch: ScratchSpace

    init(user: dnnl_memory_desc_t, planned: dnnl_memory_desc_t, isOutput: Bool, slot: Int, scratch: ScratchSpace,
         engine: Engine, name: String) throws(OneDNNError) {
        var (user, planned) = (user, planned)
        self.slot = slot
        self.scratch = scratch
        byteCount = Int(dnnl.dnnl_memory_desc_get_size(&planned))
        if dnnl.dnnl_memory_desc_equal(&user, &planned) != 0 {
            reorder = nil
        } else if isOutput {
            reorder = try Primitive(reorderFrom: planned, to: user, engine: engine, name: name)
        } else {
            reorder = try Primitive(reorderFrom: user, to: planned, engine: engine, name: name)
        }
    }

    /// The input `user` in the primitive's layout.
    func into(_ user: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        guard let reorder else { return user }
        let planned = scratch.pointer(slot: slot, byteCount: byteCount)
        reorder.execute(user, planned)
        return planned
    }

    /// Lets `produce` write the primitive's layout, then converts it into `user`.
    func out(to user: UnsafeMutableRawPointer, _ produce: (UnsafeMutableRawPointer) -> Void) {
        guard let reorder else { return produce(user) }
        let planned = scratch.pointer(slot: slot, byteCount: byteCount)
        produce(planned)
        reorder.execute(planned, user)
    }
}

/// Buffers for layout conversions, shared by every plan: calls run one at
/// a time (the CPU stream executes synchronously), so each argument
/// position needs one buffer as large as the largest conversion, not one
/// per plan (which would be hundreds of MB at batch 128).
final class ScratchSpace {
    private var buffers: [Buffer?] = [nil, nil, nil]

    func pointer(slot: Int, byteCount: Int) -> UnsafeMutableRawPointer {
        if let buffer = buffers[slot], buffer.byteCount >= byteCount { return buffer.pointer }
        let buffer = Buffer(byteCount: byteCount)
        buffers[slot] = buffer
        return buffer.pointer
    }
}

/// Which activation layout direct convolutions run on (Note [oneDNN
/// convolution layouts]): the user's NHWC, or oneDNN's blocked layout with
/// reorders around each call.
public enum DirectConvolutionLayout: String, Sendable, CaseIterable {
    /// Blocked for the 3x3 convolutions of 64+ input channels where the CPU
    /// has no AVX-512 (COHORT_DNNL_ACTIVATIONS overrides), NHWC otherwise.
    case automatic = "auto"
    case nhwc
    case blocked

    /// `automatic` as this machine and COHORT_DNNL_ACTIVATIONS resolve it.
    static let resolvedAutomatic: DirectConvolutionLayout = {
        if let value = ProcessInfo.processInfo.environment["COHORT_DNNL_ACTIVATIONS"], !value.isEmpty {
            if let layout = DirectConvolutionLayout(rawValue: value), layout != .automatic { return layout }
            if value != "auto" {
                FileHandle.standardError.write(Data("COHORT_DNNL_ACTIVATIONS=\(value) ignored: auto, nhwc or blocked\n".utf8))
            }
        }
        let isa = OneDNNBackend.effectiveISA
        return isa.contains("avx512") || isa.contains("amx") ? .nhwc : .blocked
    }()

    func usesBlockedActivations(_ g: Conv2dGeometry) -> Bool {
        switch self {
        case .automatic: return Self.resolvedAutomatic.usesBlockedActivations(g)
        case .nhwc: return false
        case .blocked: return g.kernelSize == 3 && g.inputChannels >= 64
        }
    }
}
