import CohortKernels
import CohortTensor

/// 2-D convolution without bias, `torch.nn.Conv2d(in, out, k, stride, padding, bias=False)`.
///
/// Input `[N,H,W,Cin]`, weight `[Cout,Cin,k,k]` (named `<name>.weight`),
/// output `[N,Ho,Wo,Cout]` with `Ho = (H + 2*padding - k) / stride + 1`.
public final class Conv2d {
    public let inputChannels: Int
    public let outputChannels: Int
    public let kernelSize: Int
    public let stride: Int
    public let padding: Int
    public let weight: ParameterReference
    private let store: ParameterStore
    private var input: Tensor?
    private var geometry: Conv2dGeometry?
    /// `store.generation` at the last forward: unchanged at backward, the weights are the forward's.
    private var forwardGeneration = -1
    private var output = ReusableBuffer()
    private var dInput = ReusableBuffer()

    /// - Parameter initialization: defaults to torchvision's ResNet choice,
    ///   kaiming normal over fan-out (`std = sqrt(2 / (out * k * k))`).
    public init(store: ParameterStore, name: String, inputChannels: Int, outputChannels: Int,
                kernelSize: Int, stride: Int = 1, padding: Int = 0,
                initialization: ParameterInitialization? = nil) {
        self.store = store
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
        let fanOut = outputChannels * kernelSize * kernelSize
        weight = store.declareParameter("\(name).weight",
                                        shape: [outputChannels, inputChannels, kernelSize, kernelSize],
                                        initialization: initialization ?? .kaimingNormalFanOut(fanOut: fanOut))
    }

    /// x `[N,H,W,Cin]` -> `[N,Ho,Wo,Cout]`; keeps x for the backward.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.shape.rank == 4 && x.shape[3] == inputChannels,
                     "Conv2d expects [N,H,W,\(inputChannels)], got \(x.shape)")
        let geometry = Conv2dGeometry(batch: x.shape[0], inputChannels: inputChannels, outputChannels: outputChannels,
                                      inputHeight: x.shape[1], inputWidth: x.shape[2],
                                      kernelSize: kernelSize, stride: stride, padding: padding)
        let y = output.tensor(geometry.outputShape, x.dtype, on: store.backend)
        store.backend.conv2dForward(output: y, input: x, weight: store.computeValue(weight), geometry: geometry)
        input = x
        self.geometry = geometry
        forwardGeneration = store.generation
        return y
    }

    /// Writes the weight gradient and returns dx (nil when `needsInputGradient` is false: the stem).
    public func backward(_ dy: Tensor, needsInputGradient: Bool = true) -> Tensor? {
        guard let input, let geometry else { preconditionFailure("Conv2d.backward before forward") }
        let backend = store.backend
        backend.conv2dBackwardWeight(dWeight: store.gradient(weight), input: input, dOutput: dy, geometry: geometry)
        store.gradientReady(weight)
        guard needsInputGradient else { return nil }
        let dx = dInput.tensor(geometry.inputShape, dy.dtype, on: backend)
        backend.conv2dBackwardData(dInput: dx, dOutput: dy, weight: store.computeValue(weight), geometry: geometry,
                                   weightAsInForward: store.generation == forwardGeneration)
        return dx
    }
}
