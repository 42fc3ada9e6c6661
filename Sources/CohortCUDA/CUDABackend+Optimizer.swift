import CCUDA
import CohortKernels
import CohortTensor

/// The device copies of one segments array's tables, with the scratch the
/// LARS kernels need (see Note [Fused optimiser step]).
final class SegmentPlan {
    let table: SegmentTable
    let segments: Storage
    let chunks: Storage
    /// [chunk][2] doubles: sums of squares of w and g.
    let chunkNorms: Storage
    /// [segment] floats: the LARS trust ratio.
    let trust: Storage

    init(_ table: SegmentTable, allocator: DeviceAllocator, stream: CUDAStream) throws {
        self.table = table
        segments = try allocator.allocate(byteCount: max(table.segments.count, 1) * 8)
        chunks = try allocator.allocate(byteCount: max(table.chunks.count, 1) * 8)
        chunkNorms = try allocator.allocate(byteCount: max(table.chunkCount, 1) * 2 * 8)
        trust = try allocator.allocate(byteCount: max(table.segmentCount, 1) * 4)
        table.segments.withUnsafeBytes {
            stream.copyToDevice(CUdeviceptr(UInt(bitPattern: segments.address)), from: $0.baseAddress!, byteCount: $0.count)
        }
        table.chunks.withUnsafeBytes {
            stream.copyToDevice(CUdeviceptr(UInt(bitPattern: chunks.address)), from: $0.baseAddress!, byteCount: $0.count)
        }
    }
}

/// Segments are validated against the buffer's length when packed, so the length is part of the key.
struct SegmentPlanKey: Hashable {
    var segments: [ParameterSegment]
    var parameterCount: Int
}

extension Storage {
    var devicePointer: CUdeviceptr { CUdeviceptr(UInt(bitPattern: address)) }
}

extension CUDABackend {
    public func optimizerStep(parameters: Tensor, gradients: Tensor, momentumBuffer: Tensor,
                              segments: [ParameterSegment], configuration c: OptimizerStepConfiguration) {
        // A captured kernel argument would freeze the learning rate for every replay.
        stream.forbidDuringCapture("optimizerStep with a host learning rate (pass it as a device tensor)")
        enqueueOptimizerStep(parameters: parameters, gradients: gradients, momentumBuffer: momentumBuffer,
                             segments: segments, configuration: c, learningRateOnDevice: nil)
    }

    public func optimizerStep(parameters: Tensor, gradients: Tensor, momentumBuffer: Tensor,
                              segments: [ParameterSegment], configuration c: OptimizerStepConfiguration,
                              learningRate: Tensor) {
        expect("optimizerStep", learningRate, [1])
        enqueueOptimizerStep(parameters: parameters, gradients: gradients, momentumBuffer: momentumBuffer,
                             segments: segments, configuration: c, learningRateOnDevice: learningRate)
    }

    private func enqueueOptimizerStep(parameters: Tensor, gradients: Tensor, momentumBuffer: Tensor,
                                      segments: [ParameterSegment], configuration c: OptimizerStepConfiguration,
                                      learningRateOnDevice: Tensor?) {
        let op = "optimizerStep"
        require(parameters.shape.rank == 1, "\(op): parameters must be flat, got \(parameters.shape)")
        expect(op, parameters, parameters.shape)
        require(gradients.dtype == .float32 || gradients.dtype == .bfloat16,
                "\(op): gradients must be float32 or bfloat16, got \(gradients)")
        expect(op, gradients, parameters.shape, gradients.dtype)
        expect(op, momentumBuffer, parameters.shape)
        // bf16 gradients: an all-reduce's sums read in place (Note [Widening in the optimizer]).
        let suffix = gradients.dtype == .bfloat16 ? "_bf16_gradients" : ""
        context.makeCurrent()
        let plan = segmentPlan(segments, parameterCount: parameters.elementCount)
        let chunkCount = plan.table.chunkCount
        guard chunkCount > 0 else { return }
        let lars = c.larsTrustCoefficient
        if let eta = lars {
            kernels.launch(.optimizer, "lars_chunk_norms" + suffix, grid: (chunkCount, 1, 1), block: (256, 1, 1),
                           [.pointer(plan.chunkNorms.devicePointer), .tensor(parameters), .tensor(gradients),
                            .float(c.gradientScale), .pointer(plan.chunks.devicePointer)])
            kernels.launch(.optimizer, "lars_trust", grid: ((plan.table.segmentCount + 127) / 128, 1, 1),
                           block: (128, 1, 1),
                           [.pointer(plan.trust.devicePointer), .pointer(plan.chunkNorms.devicePointer),
                            .pointer(plan.segments.devicePointer), .int(plan.table.segmentCount), .float(eta),
                            .float(c.weightDecay), .float(c.larsEpsilon)])
        }
        kernels.launch(.optimizer, "sgd_update" + suffix, grid: (chunkCount, 1, 1), block: (256, 1, 1),
                       [.tensor(parameters), .tensor(gradients), .float(c.gradientScale), .tensor(momentumBuffer),
                        .pointer(plan.chunks.devicePointer), .pointer(plan.segments.devicePointer),
                        .pointer(plan.trust.devicePointer), .int32(lars == nil ? 0 : 1), .float(c.learningRate),
                        .pointer(learningRateOnDevice?.devicePointer ?? 0),
                        .float(c.momentum), .float(c.dampening), .float(c.weightDecay), .int32(c.nesterov ? 1 : 0),
                        .int32(c.isFirstStep ? 1 : 0)])
    }

    /// The uploaded tables for `segments` over a buffer of `parameterCount`, made at their first use.
    private func segmentPlan(_ segments: [ParameterSegment], parameterCount: Int) -> SegmentPlan {
        let key = SegmentPlanKey(segments: segments, parameterCount: parameterCount)
        if let plan = segmentPlans[key] { return plan }
        let table = SegmentTable(segments, parameterCount: parameterCount)
        let plan = mustSucceed { try SegmentPlan(table, allocator: allocator, stream: stream) }
        segmentPlans[key] = plan
        return plan
    }
}
