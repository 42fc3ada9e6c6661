import CohortKernels
import CohortTensor

/// Fully connected layer, `torch.nn.Linear(inputFeatures, outputFeatures)`:
/// `y = x W^T + b`, x `[N,in]`, weight `[out,in]`, bias `[out]`.
///
/// Initialisation is PyTorch's default: weight and bias uniform in
/// `[-1/sqrt(in), 1/sqrt(in)]` (kaiming uniform with a = sqrt(5)).
public final class Linear {
    public let inputFeatures: Int
    public let outputFeatures: Int
    public let weight: ParameterReference
    public let bias: ParameterReference
    private let store: ParameterStore
    private var input: Tensor?
    private var output = ReusableBuffer()
    private var dInput = ReusableBuffer()

    public init(store: ParameterStore, name: String, inputFeatures: Int, outputFeatures: Int) {
        self.store = store
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        let bound = 1 / Float(inputFeatures).squareRoot()
        weight = store.declareParameter("\(name).weight", shape: [outputFeatures, inputFeatures],
                                        initialization: .uniform(bound: bound))
        // LARS leaves biases unadapted (You et al. 2017).
        bias = store.declareParameter("\(name).bias", shape: [outputFeatures], initialization: .uniform(bound: bound),
                                      layerAdaptation: false)
    }

    /// x `[N,in]` -> `[N,out]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.shape.rank == 2 && x.shape[1] == inputFeatures,
                     "Linear expects [N,\(inputFeatures)], got \(x.shape)")
        let y = output.tensor([x.shape[0], outputFeatures], x.dtype, on: store.backend)
        store.backend.linearForward(output: y, input: x, weight: store.computeValue(weight), bias: store.value(bias))
        input = x
        return y
    }

    /// dy `[N,out]` -> dx `[N,in]`; writes the weight and bias gradients.
    public func backward(_ dy: Tensor) -> Tensor {
        guard let input else { preconditionFailure("Linear.backward before forward") }
        let dx = dInput.tensor(input.shape, dy.dtype, on: store.backend)
        store.backend.linearBackward(dInput: dx, dWeight: store.gradient(weight), dBias: store.gradient(bias),
                                     dOutput: dy, input: input, weight: store.computeValue(weight))
        store.gradientReady(bias)
        store.gradientReady(weight)
        return dx
    }
}

/// Mean over height and width, `torch.nn.AdaptiveAvgPool2d(1)` followed by
/// flatten: `[N,H,W,C]` -> `[N,C]`.
public final class GlobalAveragePool {
    private let backend: Backend
    private var inputShape: Shape?
    private var output = ReusableBuffer()
    private var dInput = ReusableBuffer()

    public init(backend: Backend) { self.backend = backend }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.shape.rank == 4, "GlobalAveragePool expects [N,H,W,C], got \(x.shape)")
        let y = output.tensor([x.shape[0], x.shape[3]], x.dtype, on: backend)
        backend.globalAveragePoolForward(output: y, input: x)
        inputShape = x.shape
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let inputShape else { preconditionFailure("GlobalAveragePool.backward before forward") }
        let dx = dInput.tensor(inputShape, dy.dtype, on: backend)
        backend.globalAveragePoolBackward(dInput: dx, dOutput: dy)
        return dx
    }
}
