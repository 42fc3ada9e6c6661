import CohortKernels
import CohortTensor

/// Batch normalisation over N, H, W of an NHWC tensor,
/// `torch.nn.BatchNorm2d(featureCount, eps=1e-5, momentum=0.1)`, optionally
/// fused with the ReLU that follows it.
///
/// Tensors (PyTorch's names): `weight` (scale, init 1), `bias` (shift, init
/// 0), `running_mean` (0), `running_var` (1), `num_batches_tracked`.
/// Training normalises with the batch's statistics and updates the running
/// ones (unbiased variance); evaluation uses the running ones.
public final class BatchNorm2d {
    public let featureCount: Int
    public let epsilon: Float
    public let momentum: Float
    public let fusesReLU: Bool
    public let scale: ParameterReference
    public let shift: ParameterReference
    public let runningMean: ParameterReference
    public let runningVar: ParameterReference
    public let batchesTracked: ParameterReference
    private let store: ParameterStore
    private var input: Tensor?
    private var trainingOutput: Tensor?
    private var output = ReusableBuffer()
    private var dInput = ReusableBuffer()
    private let savedMean: Tensor
    private let savedInvStd: Tensor

    public init(store: ParameterStore, name: String, featureCount: Int, epsilon: Float = 1e-5,
                momentum: Float = 0.1, fusesReLU: Bool = false) {
        self.store = store
        self.featureCount = featureCount
        self.epsilon = epsilon
        self.momentum = momentum
        self.fusesReLU = fusesReLU
        // LARS leaves batch-norm parameters unadapted (You et al. 2017).
        scale = store.declareParameter("\(name).weight", shape: [featureCount], initialization: .constant(1),
                                       layerAdaptation: false)
        shift = store.declareParameter("\(name).bias", shape: [featureCount], initialization: .constant(0),
                                       layerAdaptation: false)
        runningMean = store.declareStatistic("\(name).running_mean", shape: [featureCount], initialValue: 0)
        runningVar = store.declareStatistic("\(name).running_var", shape: [featureCount], initialValue: 1)
        batchesTracked = store.declareCounter("\(name).num_batches_tracked")
        savedMean = try! store.backend.makeTensor([featureCount])
        savedInvStd = try! store.backend.makeTensor([featureCount])
    }

    /// x `[N,H,W,C]` -> same shape.
    public func callAsFunction(_ x: Tensor, mode: ForwardMode) -> Tensor {
        precondition(x.shape.rank == 4 && x.shape[3] == featureCount,
                     "BatchNorm2d expects [N,H,W,\(featureCount)], got \(x.shape)")
        let backend = store.backend
        let y = output.tensor(x.shape, x.dtype, on: backend)
        switch mode {
        case .training:
            backend.batchNormForwardTraining(
                output: y, input: x, scale: store.value(scale), shift: store.value(shift),
                runningMean: store.value(runningMean), runningVar: store.value(runningVar),
                savedMean: savedMean, savedInvStd: savedInvStd,
                momentum: momentum, epsilon: epsilon, fuseReLU: fusesReLU)
            store.incrementCounter(batchesTracked)
            input = x
            trainingOutput = y
        case .recalibration(let momentum):
            backend.batchNormForwardTraining(
                output: y, input: x, scale: store.value(scale), shift: store.value(shift),
                runningMean: store.value(runningMean), runningVar: store.value(runningVar),
                savedMean: savedMean, savedInvStd: savedInvStd,
                momentum: momentum, epsilon: epsilon, fuseReLU: fusesReLU)
        case .evaluation:
            backend.batchNormForwardInference(
                output: y, input: x, scale: store.value(scale), shift: store.value(shift),
                runningMean: store.value(runningMean), runningVar: store.value(runningVar),
                epsilon: epsilon, fuseReLU: fusesReLU)
        }
        return y
    }

    /// dy -> dx; writes the scale and shift gradients.
    public func backward(_ dy: Tensor) -> Tensor {
        guard let input, let y = trainingOutput else {
            preconditionFailure("BatchNorm2d.backward before a training forward")
        }
        let dx = dInput.tensor(input.shape, dy.dtype, on: store.backend)
        store.backend.batchNormBackward(
            dInput: dx, dScale: store.gradient(scale), dShift: store.gradient(shift), dOutput: dy,
            input: input, output: y, scale: store.value(scale),
            savedMean: savedMean, savedInvStd: savedInvStd, fuseReLU: fusesReLU)
        store.gradientReady(shift)
        store.gradientReady(scale)
        return dx
    }
}
