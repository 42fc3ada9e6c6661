import CohortKernels
import CohortNN
import CohortTensor

/// Which update rule an `Optimizer` applies.
public enum OptimizerKind: String, CaseIterable, Sendable, Codable {
    /// `torch.optim.SGD` (momentum, dampening, Nesterov, weight decay).
    case sgd
    /// SGD with LARS's layer-wise trust ratio (You, Gitman, Ginsburg 2017),
    /// applied to weights; batch-norm parameters and biases take plain SGD.
    case lars
}

/// Settings of an optimiser, fixed for a run (the learning rate comes from
/// the schedule at each step).
public struct OptimizerConfiguration: Sendable, Codable, Hashable {
    public var kind: OptimizerKind
    public var momentum: Float
    public var dampening: Float
    public var weightDecay: Float
    public var nesterov: Bool
    /// LARS's eta: how far one step may move a layer relative to its norm.
    public var larsTrustCoefficient: Float

    public init(kind: OptimizerKind = .sgd, momentum: Float = 0.9, dampening: Float = 0, weightDecay: Float = 5e-4,
                nesterov: Bool = false, larsTrustCoefficient: Float = 0.001) {
        self.kind = kind
        self.momentum = momentum
        self.dampening = dampening
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        self.larsTrustCoefficient = larsTrustCoefficient
    }
}

/// Updates a model's flat parameters from its flat gradients in one backend
/// call per step (see `Note [Flat parameters]`), keeping the momentum buffer
/// on the model's device.
public final class Optimizer {
    public let configuration: OptimizerConfiguration
    public let store: ParameterStore
    /// Momentum buffer, laid out like the parameters.
    public let momentumBuffer: Tensor
    /// Steps taken so far (also PyTorch's "is the momentum buffer set" flag).
    public private(set) var stepCount: Int = 0
    /// Where each step reads its gradients, asked at every step (a captured
    /// step asks once, at its capture); nil: the store's gradients. A
    /// data-parallel trainer points it at its gradient reducer, which may leave
    /// the averages in its bf16 wire (Note [Widening in the optimizer] in
    /// GradientReducer.swift).
    public var gradientSource: (() -> ScaledGradients)?

    private var gradients: ScaledGradients {
        let source = gradientSource?() ?? ScaledGradients(values: store.gradients, scale: 1)
        precondition(source.values.elementCount == store.gradients.elementCount,
                     "gradient source of \(source.values.elementCount) values for \(store.gradients.elementCount) gradients")
        return source
    }

    public init(store: ParameterStore, configuration: OptimizerConfiguration) throws {
        precondition(store.isAllocated, "create the optimiser after the model")
        precondition(!configuration.nesterov || (configuration.momentum > 0 && configuration.dampening == 0),
                     "Nesterov momentum requires a momentum and zero dampening")
        self.store = store
        self.configuration = configuration
        momentumBuffer = try store.backend.makeTensor([store.parameterCount])
        store.backend.fill(momentumBuffer, value: 0)
    }

    /// Applies one update with `learningRate` to every parameter.
    public func step(learningRate: Float) {
        let gradients = gradients
        store.backend.optimizerStep(parameters: store.parameters, gradients: gradients.values,
                                    momentumBuffer: momentumBuffer, segments: store.segments,
                                    configuration: settings(learningRate: learningRate, gradientScale: gradients.scale))
        store.refreshComputeParameters()
        stepCount += 1
    }

    /// Applies one update with the learning rate held in `learningRate`, a
    /// float32 `[1]` tensor on the model's device, read when the step runs:
    /// the form a captured graph replays (`CapturedStep`).
    public func step(learningRate: Tensor) {
        let gradients = gradients
        store.backend.optimizerStep(parameters: store.parameters, gradients: gradients.values,
                                    momentumBuffer: momentumBuffer, segments: store.segments,
                                    configuration: settings(learningRate: 0, gradientScale: gradients.scale),
                                    learningRate: learningRate)
        store.refreshComputeParameters()
        stepCount += 1
    }

    /// One update in two parts (Note [Optimizer beside the last all-reduce]
    /// in GradientReducer.swift): every parameter outside `later` first,
    /// then `between()` (the wait for `later`'s gradients), then those in
    /// `later`, which must hold whole tensors. The same parameters as `step`.
    public func step(learningRate: Tensor, deferring later: Range<Int>, between: () throws -> Void) rethrows {
        try step(deferring: later, between: between) { parameters, gradients, scale, momentum, segments in
            store.backend.optimizerStep(parameters: parameters, gradients: gradients, momentumBuffer: momentum,
                                        segments: segments, configuration: settings(learningRate: 0, gradientScale: scale),
                                        learningRate: learningRate)
        }
    }

    /// The same with a host learning rate (eager steps).
    public func step(learningRate: Float, deferring later: Range<Int>, between: () throws -> Void) rethrows {
        try step(deferring: later, between: between) { parameters, gradients, scale, momentum, segments in
            store.backend.optimizerStep(parameters: parameters, gradients: gradients, momentumBuffer: momentum,
                                        segments: segments,
                                        configuration: settings(learningRate: learningRate, gradientScale: scale))
        }
    }

    private func step(deferring later: Range<Int>, between: () throws -> Void,
                      _ update: (Tensor, Tensor, Float, Tensor, [ParameterSegment]) -> Void) rethrows {
        let count = store.parameterCount
        let gradients = gradients
        precondition(later.lowerBound >= 0 && later.upperBound <= count, "deferred range \(later) outside \(count) parameters")
        let segments = store.segments
        for segment in segments {
            let end = segment.offset + segment.count
            precondition(end <= later.lowerBound || segment.offset >= later.upperBound
                         || (segment.offset >= later.lowerBound && end <= later.upperBound),
                         "the deferred range \(later) cuts the tensor at \(segment.offset)..<\(end)")
        }
        func part(_ range: Range<Int>) {
            guard !range.isEmpty else { return }
            let inside = segments.filter { $0.offset >= range.lowerBound && $0.offset + $0.count <= range.upperBound }
                .map { segment -> ParameterSegment in
                    var rebased = segment
                    rebased.offset -= range.lowerBound
                    return rebased
                }
            guard !inside.isEmpty else { return }
            let view = { (tensor: Tensor) in tensor.view(elementOffset: range.lowerBound, shape: [range.count]) }
            update(view(store.parameters), view(gradients.values), gradients.scale, view(momentumBuffer), inside)
            store.refreshComputeParameters(range)
        }
        part(later.upperBound..<count)
        part(0..<later.lowerBound)
        try between()
        part(later)
        stepCount += 1
    }

    /// Counts `count` steps that ran without this object (replays of a
    /// captured graph, which run no Swift code).
    public func advanceStepCount(by count: Int) {
        precondition(count >= 0 && stepCount > 0, "advanceStepCount(by: \(count)) with \(stepCount) steps taken")
        stepCount += count
    }

    private func settings(learningRate: Float, gradientScale: Float) -> OptimizerStepConfiguration {
        OptimizerStepConfiguration(
            learningRate: learningRate, momentum: configuration.momentum, dampening: configuration.dampening,
            weightDecay: configuration.weightDecay, nesterov: configuration.nesterov,
            larsTrustCoefficient: configuration.kind == .lars ? configuration.larsTrustCoefficient : nil,
            isFirstStep: stepCount == 0, gradientScale: gradientScale)
    }

    /// Restores the state saved in a checkpoint.
    public func restore(stepCount: Int, momentum: Tensor) {
        precondition(momentum.elementCount == momentumBuffer.elementCount, "momentum buffer size mismatch")
        store.backend.upload(momentum.reshaped(momentumBuffer.shape), to: momentumBuffer)
        self.stepCount = stepCount
    }
}
