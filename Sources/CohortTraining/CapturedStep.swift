import CohortKernels
import CohortNN
import CohortOptim
import CohortTensor

/// One training step (the caller's forward, loss and backward, then the
/// optimiser step) run eagerly for its first steps and then, where the
/// backend has graphs, captured once and replayed: a ResNet-18 step is about
/// 300 launches, which at batch 32 cost more host time than the GPU needs.
/// See `Note [Graph capture]` in docs/design.md.
///
/// Usage, with every step's inputs already staged in the same device tensors:
///
///     let step = try CapturedStep(optimizer: optimizer) {
///         criterion(logits: model.forward(images, mode: .training), labels: labels)
///         model.backward(criterion.backward())
///     }
///     for s in 0..<steps { try step.run(learningRate: schedule.learningRate(atStep: s), inputs: [images, labels]) }
///
/// - Warm-up: the first `warmUpSteps` runs (at least 1) are eager: cuDNN's
///   algorithm search, scratch growth, the optimiser's tables and its first
///   step (so `isFirstStep` is false in the graph) all happen there.
/// - Learning rate: the optimiser reads it from `learningRate`, a device
///   `[1]` tensor that `run` fills before each step, outside the graph
///   (`Backend.fill`: on CUDA a memset whose value is its argument, so
///   nothing on the host has to stay unchanged until the GPU gets there).
/// - Host bookkeeping: a replay runs no Swift code, so what the step's Swift
///   code counts is counted here: the capture runs it once and measures the
///   change in the store's counters (`num_batches_tracked`) and the
///   optimiser's step count; each later replay adds the same change.
/// - Staleness: a graph is replayed only while `BackendGraph.isValid` (no
///   device allocation or release since the capture: an evaluation pass or
///   another batch shape reallocates the layers' buffers) and while `inputs`
///   are the same tensors as at the capture; otherwise the step warms up
///   eagerly again and is captured again.
/// - Fallback: without graphs (ReferenceBackend, OneDNNBackend, `graphs:
///   false`, or gradient hooks installed whose host code a replay would
///   skip: a reducer on a host communicator) every step is eager and
///   `fallbackReason` says why. A reducer on NCCL is captured with the step
///   (`ParameterStore.gradientReadyHandlerIsCapturable`).
public final class CapturedStep {
    public let optimizer: Optimizer
    private let update: ((Tensor) throws -> Void)?
    public var backend: Backend { optimizer.store.backend }
    public let warmUpSteps: Int
    /// `[1]` float32 on the model's device: the learning rate of the step being run.
    public let learningRate: Tensor
    private let forwardBackward: () throws -> Void

    private var graph: BackendGraph?
    private var capturedInputs: [InputIdentity] = []
    private var eagerStepsLeft: Int
    /// Per replay: what one step adds to each counter and to the optimiser's step count.
    private var counterDeltas: [Int64] = []
    private var stepCountDelta = 0

    /// Why steps run eagerly for good (nil while graphs are, or may yet be, used).
    public private(set) var fallbackReason: String?
    public private(set) var eagerSteps = 0
    public private(set) var replays = 0
    public private(set) var captures = 0
    /// Whether the last `run` replayed a graph.
    public private(set) var lastStepReplayed = false
    /// The backend's description of the current graph, if any.
    public var graphSummary: String? { graph?.summary }

    /// - Parameters:
    ///   - optimizer: the model's optimiser; its store is the model's.
    ///   - warmUpSteps: eager steps before the capture (and again after a
    ///     graph goes stale); at least 1.
    ///   - graphs: false runs every step eagerly (to compare).
    ///   - update: the optimizer step after `forwardBackward`, given the
    ///     learning-rate tensor; nil: `optimizer.step(learningRate:)` (a data-parallel
    ///     trainer passes one that waits for its last bucket midway, Note
    ///     [Optimizer beside the last all-reduce]).
    ///   - forwardBackward: forward, loss and backward of one step on fixed
    ///     device tensors; it must follow `Note [Graph capture]`.
    public init(optimizer: Optimizer, warmUpSteps: Int = 2, graphs: Bool = true,
                update: ((Tensor) throws -> Void)? = nil,
                forwardBackward: @escaping () throws -> Void) throws {
        precondition(warmUpSteps >= 0, "warmUpSteps must be 0 or more")
        self.optimizer = optimizer
        self.update = update
        self.warmUpSteps = max(warmUpSteps, 1)
        self.forwardBackward = forwardBackward
        eagerStepsLeft = self.warmUpSteps
        learningRate = try optimizer.store.backend.makeTensor([1])
        if !graphs { fallbackReason = "graphs turned off" }
    }

    /// Whether steps are, or will be after warm-up, replayed from a graph.
    public var usesGraphs: Bool { fallbackReason == nil }

    /// Runs one step with `learningRate`. `inputs`: the device tensors the
    /// step reads that the caller fills between steps (images, labels); a
    /// graph is replayed only while they are the same tensors.
    public func run(learningRate value: Float, inputs: [Tensor] = []) throws {
        backend.fill(learningRate, value: value)
        let identities = inputs.map(InputIdentity.init)
        if let current = graph, !current.isValid || identities != capturedInputs {
            graph = nil
            eagerStepsLeft = warmUpSteps
        }
        lastStepReplayed = false
        if let graph {
            try graph.launch()
            optimizer.store.advanceCounters(by: counterDeltas)
            optimizer.advanceStepCount(by: stepCountDelta)
            replays += 1
            lastStepReplayed = true
            return
        }
        if fallbackReason == nil && eagerStepsLeft == 0 && optimizer.stepCount > 0 {
            if optimizer.store.gradientReadyHandler != nil && !optimizer.store.gradientReadyHandlerIsCapturable {
                fallbackReason = "gradient hooks are installed (a reducer's host code would not run in a replay)"
            } else if try capture(identities) {
                return
            }
        }
        try eagerStep()
    }

    /// Drops the graph: the next steps warm up and capture again. Call it
    /// after work that moved memory without the allocator knowing.
    public func invalidate() {
        graph = nil
        eagerStepsLeft = warmUpSteps
    }

    private func eagerStep() throws {
        try forwardBackward()
        try updateParameters()
        eagerSteps += 1
        eagerStepsLeft = max(eagerStepsLeft - 1, 0)
    }

    private func updateParameters() throws {
        if let update { try update(learningRate) } else { optimizer.step(learningRate: learningRate) }
    }

    /// Captures a step and launches it (the step of this `run`); false
    /// (nothing run, nothing counted) where the backend has no graphs.
    private func capture(_ identities: [InputIdentity]) throws -> Bool {
        let store = optimizer.store
        let countersBefore = store.counters, stepCountBefore = optimizer.stepCount
        // The body's Swift code runs once here, counting one step's worth of
        // bookkeeping; the launch below is that step.
        let captured = try backend.captureGraph {
            try forwardBackward()
            try updateParameters()
        }
        guard let captured else {
            precondition(store.counters == countersBefore && optimizer.stepCount == stepCountBefore,
                         "captureGraph returned nil after running the step")
            fallbackReason = "the \(backend.name) backend has no graphs"
            return false
        }
        counterDeltas = zip(store.counters, countersBefore).map { $0 - $1 }
        stepCountDelta = optimizer.stepCount - stepCountBefore
        graph = captured
        capturedInputs = identities
        captures += 1
        try captured.launch()
        replays += 1
        lastStepReplayed = true
        return true
    }
}

/// A device tensor as a captured graph sees it: its address, shape and dtype.
private struct InputIdentity: Equatable {
    var address: UnsafeMutableRawPointer
    var shape: Shape
    var dtype: DType

    init(_ tensor: Tensor) {
        address = tensor.rawPointer
        shape = tensor.shape
        dtype = tensor.dtype
    }
}
