import CohortTensor

/// The shape of one 2-D convolution: what the backends need to plan it.
///
/// Input `[batch, inputHeight, inputWidth, inputChannels]` (NHWC), weight
/// `[outputChannels, inputChannels, kernelSize, kernelSize]` (OIHW), output
/// `[batch, outputHeight, outputWidth, outputChannels]` (NHWC), with
/// `outputHeight = (inputHeight + 2 * padding - kernelSize) / stride + 1`.
/// No bias and no dilation: ResNet's convolutions need neither.
public struct Conv2dGeometry: Hashable, Sendable, CustomStringConvertible {
    public var batch: Int
    public var inputChannels: Int
    public var outputChannels: Int
    public var inputHeight: Int
    public var inputWidth: Int
    public var kernelSize: Int
    public var stride: Int
    public var padding: Int

    public init(batch: Int, inputChannels: Int, outputChannels: Int, inputHeight: Int, inputWidth: Int,
                kernelSize: Int, stride: Int = 1, padding: Int = 0) {
        precondition(batch > 0 && inputChannels > 0 && outputChannels > 0 && kernelSize > 0 && stride > 0 && padding >= 0)
        self.batch = batch
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.inputHeight = inputHeight
        self.inputWidth = inputWidth
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
        precondition(outputHeight > 0 && outputWidth > 0, "convolution \(self) has an empty output")
    }

    public var outputHeight: Int { (inputHeight + 2 * padding - kernelSize) / stride + 1 }
    public var outputWidth: Int { (inputWidth + 2 * padding - kernelSize) / stride + 1 }

    public var inputShape: Shape { [batch, inputHeight, inputWidth, inputChannels] }
    public var weightShape: Shape { [outputChannels, inputChannels, kernelSize, kernelSize] }
    public var outputShape: Shape { [batch, outputHeight, outputWidth, outputChannels] }

    /// Multiply-adds of the forward pass (each backward costs the same).
    public var multiplyAdds: Int {
        batch * outputHeight * outputWidth * outputChannels * inputChannels * kernelSize * kernelSize
    }

    public var description: String {
        "conv \(inputChannels)->\(outputChannels) k\(kernelSize) s\(stride) p\(padding) on \(batch)x\(inputHeight)x\(inputWidth)"
    }
}

/// A contiguous range of the flat parameter buffer holding one parameter
/// tensor, with how the optimiser treats it.
public struct ParameterSegment: Hashable, Sendable {
    /// First element, counted from the start of the flat buffer.
    public var offset: Int
    public var count: Int
    /// Whether weight decay applies (`false` for batch-norm scales and shifts
    /// and biases when the recipe exempts them).
    public var weightDecay: Bool
    /// Whether LARS scales this tensor's update by its trust ratio (`false`
    /// for batch-norm parameters and biases, as in You et al. 2017).
    public var layerAdaptation: Bool

    public init(offset: Int, count: Int, weightDecay: Bool = true, layerAdaptation: Bool = true) {
        self.offset = offset
        self.count = count
        self.weightDecay = weightDecay
        self.layerAdaptation = layerAdaptation
    }
}

/// Hyper-parameters of one optimiser step, PyTorch's `torch.optim.SGD`
/// semantics, optionally with LARS's layer-wise trust ratio.
public struct OptimizerStepConfiguration: Hashable, Sendable {
    public var learningRate: Float
    public var momentum: Float
    public var dampening: Float
    public var weightDecay: Float
    public var nesterov: Bool
    /// LARS trust coefficient eta; nil for plain SGD.
    public var larsTrustCoefficient: Float?
    /// Added to the LARS denominator to avoid division by zero.
    public var larsEpsilon: Float
    /// True on the first step: PyTorch then sets the momentum buffer to the
    /// gradient itself (no dampening), not to `momentum * 0 + (1 - dampening) * g`.
    public var isFirstStep: Bool
    /// Each gradient is read as `gradientScale * g`: 1 for a model's own
    /// gradients; 1/ranks for the bf16 sums of an all-reduce the optimizer
    /// reads in place (Note [Widening in the optimizer] in GradientReducer.swift).
    public var gradientScale: Float

    public init(learningRate: Float, momentum: Float = 0, dampening: Float = 0, weightDecay: Float = 0,
                nesterov: Bool = false, larsTrustCoefficient: Float? = nil, larsEpsilon: Float = 1e-8,
                isFirstStep: Bool = false, gradientScale: Float = 1) {
        self.learningRate = learningRate
        self.momentum = momentum
        self.dampening = dampening
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        self.larsTrustCoefficient = larsTrustCoefficient
        self.larsEpsilon = larsEpsilon
        self.isFirstStep = isFirstStep
        self.gradientScale = gradientScale
    }
}
