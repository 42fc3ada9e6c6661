import CohortKernels
import CohortTensor

/// How a parameter is initialised, with PyTorch's formulas.
public enum ParameterInitialization: Sendable {
    /// `torch.nn.init.kaiming_normal_(mode="fan_out", nonlinearity="relu")`:
    /// normal with std `sqrt(2 / fanOut)`; torchvision's ResNet convolutions.
    case kaimingNormalFanOut(fanOut: Int)
    /// Uniform in `[-bound, bound]`; PyTorch's default for `Conv2d` and
    /// `Linear` weights and biases is `bound = 1 / sqrt(fanIn)` (kaiming
    /// uniform with a = sqrt(5)).
    case uniform(bound: Float)
    case constant(Float)
}

/// One named tensor of a model, as it appears in a PyTorch state dict.
public struct ParameterEntry: Sendable {
    public enum Kind: Sendable, Equatable {
        /// Trained; lives in the flat parameter buffer.
        case trainable
        /// Running statistics; live in the flat statistics buffer.
        case statistic
        /// `num_batches_tracked`: an int64 counter kept on the host.
        case counter
    }

    public var name: String
    public var shape: Shape
    public var kind: Kind
    /// Element offset in the flat buffer of its kind (index into `counters` for `.counter`).
    public var offset: Int
    /// Optimiser flags for trainable entries.
    public var segment: ParameterSegment
    var initialization: ParameterInitialization
}

/// A flat buffer laid out like a store's gradients, read as `scale * value`:
/// what an optimizer step reads. The store's own float32 gradients with scale
/// 1, or a data-parallel run's bf16 all-reduce sums with 1/ranks (Note
/// [Widening in the optimizer] in GradientReducer.swift).
public struct ScaledGradients {
    public let values: Tensor
    public let scale: Float

    public init(values: Tensor, scale: Float) {
        self.values = values
        self.scale = scale
    }
}

/// A reference to a declared tensor, valid once the store is allocated.
public struct ParameterReference: Hashable, Sendable {
    public let index: Int
}

/// Every parameter and running statistic of one model on one backend, in
/// flat buffers (see `Note [Flat parameters]`).
///
/// Layers declare their tensors while the model is built, in PyTorch's
/// registration order (so `entries` is the order of `model.state_dict()`),
/// then `allocate(seed:)` creates the buffers and initialises them.
public final class ParameterStore {
    public let backend: Backend
    /// The dtype of activations and of the weights layers compute with.
    public let precision: Precision
    public private(set) var entries: [ParameterEntry] = []
    public private(set) var parameterCount = 0
    public private(set) var statisticCount = 0

    /// All trainable parameters, flat, float32.
    public private(set) var parameters: Tensor!
    /// The weights convolutions and linear layers read: `parameters` itself
    /// in float32, a bf16 copy in bf16 (refreshed by `refreshComputeParameters`).
    public private(set) var computeParameters: Tensor!
    /// Gradients, float32, laid out like `parameters`; each backward overwrites them.
    public private(set) var gradients: Tensor!
    /// Running means and variances, flat, float32.
    public private(set) var statistics: Tensor!
    /// `num_batches_tracked` of each batch norm, in declaration order.
    public var counters: [Int64] = []

    /// Called by layers as soon as the gradients of a parameter are written
    /// during backward (reverse order of the forward): the hook a gradient
    /// reducer uses to start all-reducing a bucket while backward goes on.
    public var gradientReadyHandler: ((ParameterReference) -> Void)?
    /// True when `gradientReadyHandler` only enqueues device work on buffers
    /// that outlive the step (a reducer whose communicator can be captured):
    /// a graph replay, which runs no Swift code, then does what it did.
    public var gradientReadyHandlerIsCapturable = false

    public init(backend: Backend, precision: Precision = .float32) {
        self.backend = backend
        self.precision = precision
    }

    public var isAllocated: Bool { parameters != nil }

    /// Declares a trainable tensor.
    public func declareParameter(_ name: String, shape: Shape, initialization: ParameterInitialization,
                                 weightDecay: Bool = true, layerAdaptation: Bool = true) -> ParameterReference {
        precondition(!isAllocated, "declare \(name) before allocate()")
        let segment = ParameterSegment(offset: parameterCount, count: shape.elementCount,
                                       weightDecay: weightDecay, layerAdaptation: layerAdaptation)
        entries.append(ParameterEntry(name: name, shape: shape, kind: .trainable, offset: parameterCount,
                                      segment: segment, initialization: initialization))
        parameterCount += shape.elementCount
        return ParameterReference(index: entries.count - 1)
    }

    /// Declares a running statistic (not trained, not all-reduced).
    public func declareStatistic(_ name: String, shape: Shape, initialValue: Float) -> ParameterReference {
        precondition(!isAllocated, "declare \(name) before allocate()")
        entries.append(ParameterEntry(name: name, shape: shape, kind: .statistic, offset: statisticCount,
                                      segment: ParameterSegment(offset: 0, count: 0),
                                      initialization: .constant(initialValue)))
        statisticCount += shape.elementCount
        return ParameterReference(index: entries.count - 1)
    }

    /// Declares an int64 counter (`num_batches_tracked`).
    public func declareCounter(_ name: String) -> ParameterReference {
        precondition(!isAllocated, "declare \(name) before allocate()")
        entries.append(ParameterEntry(name: name, shape: Shape([]), kind: .counter, offset: counters.count,
                                      segment: ParameterSegment(offset: 0, count: 0), initialization: .constant(0)))
        counters.append(0)
        return ParameterReference(index: entries.count - 1)
    }

    /// Creates the flat buffers and initialises every tensor from `seed`,
    /// drawing in declaration order (one generator for the whole model).
    public func allocate(seed: UInt64) throws {
        precondition(!isAllocated, "allocate() called twice")
        var generator = SplitMix64(seed: seed)
        let hostParameters = Tensor.zeros([parameterCount])
        let hostStatistics = Tensor.zeros([statisticCount])
        for entry in entries where entry.kind != .counter {
            let target = entry.kind == .trainable ? hostParameters.floats : hostStatistics.floats
            let range = entry.offset..<(entry.offset + entry.shape.elementCount)
            switch entry.initialization {
            case .constant(let value):
                for index in range { target[index] = value }
            case .uniform(let bound):
                for index in range { target[index] = generator.nextUniform(-bound, bound) }
            case .kaimingNormalFanOut(let fanOut):
                let std = (2.0 / Float(fanOut)).squareRoot()
                for index in range { target[index] = std * generator.nextNormal() }
            }
        }
        parameters = try backend.makeTensor(copying: hostParameters)
        computeParameters = precision == .float32 ? parameters : try backend.makeTensor([parameterCount], dtype: precision.dtype)
        refreshComputeParameters()
        gradients = try backend.makeTensor([parameterCount])
        backend.fill(gradients, value: 0)
        statistics = try backend.makeTensor(copying: hostStatistics)
    }

    public func entry(_ reference: ParameterReference) -> ParameterEntry { entries[reference.index] }

    /// The reference of the tensor called `name` (PyTorch's state-dict key), if the model has one.
    public func reference(named name: String) -> ParameterReference? {
        entries.firstIndex { $0.name == name }.map(ParameterReference.init(index:))
    }

    /// The tensor of a parameter or statistic: a view into its flat buffer.
    public func value(_ reference: ParameterReference) -> Tensor {
        let entry = entries[reference.index]
        switch entry.kind {
        case .trainable: return parameters.view(elementOffset: entry.offset, shape: entry.shape)
        case .statistic: return statistics.view(elementOffset: entry.offset, shape: entry.shape)
        case .counter: preconditionFailure("\(entry.name) is a host counter")
        }
    }

    /// The copy of a trainable parameter that layers compute with (bf16 in bf16 mode).
    public func computeValue(_ reference: ParameterReference) -> Tensor {
        let entry = entries[reference.index]
        precondition(entry.kind == .trainable, "\(entry.name) is not trainable")
        return computeParameters.view(elementOffset: entry.offset, shape: entry.shape)
    }

    /// Counts the changes to the parameters: every `refreshComputeParameters`
    /// (which follows every write to `parameters`: an optimiser step, a
    /// checkpoint load, the broadcast from rank 0) and the initialisation. A
    /// layer compares it across its forward and backward to tell the backend
    /// its weights did not change in between (`Backend.conv2dBackwardData(...,
    /// weightAsInForward:)`).
    public private(set) var generation = 0

    /// Rounds the float32 masters into the compute copy: after every change
    /// to `parameters` (an optimiser step, a checkpoint load). One conversion
    /// over the flat buffer; nothing to do in float32 (but count the change).
    public func refreshComputeParameters() {
        generation += 1
        if computeParameters !== parameters { backend.copy(parameters, to: computeParameters) }
    }

    /// `refreshComputeParameters` for the elements in `range` only.
    public func refreshComputeParameters(_ range: Range<Int>) {
        generation += 1
        guard computeParameters !== parameters, !range.isEmpty else { return }
        backend.copy(parameters.view(elementOffset: range.lowerBound, shape: [range.count]),
                     to: computeParameters.view(elementOffset: range.lowerBound, shape: [range.count]))
    }

    /// The gradient of a trainable parameter: a view into the gradient buffer.
    public func gradient(_ reference: ParameterReference) -> Tensor {
        let entry = entries[reference.index]
        precondition(entry.kind == .trainable, "\(entry.name) has no gradient")
        return gradients.view(elementOffset: entry.offset, shape: entry.shape)
    }

    /// Optimiser segments of all trainable tensors, in buffer order.
    public var segments: [ParameterSegment] { entries.filter { $0.kind == .trainable }.map(\.segment) }

    /// Changes the weight-decay flag of every trainable tensor whose name
    /// matches `predicate` (e.g. exempt batch-norm parameters and biases).
    public func setWeightDecay(_ enabled: Bool, where predicate: (ParameterEntry) -> Bool) {
        for index in entries.indices where entries[index].kind == .trainable && predicate(entries[index]) {
            entries[index].segment.weightDecay = enabled
        }
    }

    /// Adds `deltas[i]` to counter `i`: what the layers' forwards would have
    /// counted in steps that ran without them (replays of a captured graph).
    public func advanceCounters(by deltas: [Int64]) {
        precondition(deltas.count == counters.count, "\(deltas.count) deltas for \(counters.count) counters")
        for index in counters.indices { counters[index] += deltas[index] }
    }

    func incrementCounter(_ reference: ParameterReference) {
        counters[entries[reference.index].offset] += 1
    }

    func gradientReady(_ reference: ParameterReference) { gradientReadyHandler?(reference) }

    /// Sets the scale of every residual block's last batch norm
    /// (`layerN.M.bn2.weight`, torchvision's names) to 0, so each block starts
    /// as its shortcut (torchvision's `zero_init_residual`); returns how many
    /// it set. Throws where the model has none (not a ResNet).
    @discardableResult
    public func zeroInitializeResidualScales() throws -> Int {
        let targets = entries.filter { $0.kind == .trainable && $0.name.hasPrefix("layer") && $0.name.hasSuffix(".bn2.weight") }
        guard !targets.isEmpty else {
            throw ParameterStoreError(description: "zero-init residual: the model has no residual block (layerN.M.bn2.weight)")
        }
        for entry in targets {
            backend.fill(parameters.view(elementOffset: entry.offset, shape: [entry.shape.elementCount]), value: 0)
        }
        refreshComputeParameters()
        return targets.count
    }
}

/// A request the store cannot carry out for this model.
public struct ParameterStoreError: Error, CustomStringConvertible {
    public let description: String
}
