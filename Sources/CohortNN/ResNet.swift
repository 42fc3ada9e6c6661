import CohortKernels
import CohortTensor

/// torchvision's `BasicBlock`: two 3x3 convolutions with batch norm, and a
/// shortcut that is the identity or, where the shape changes, a strided 1x1
/// convolution with batch norm (`downsample.0`, `downsample.1`).
///
///     y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))
public final class BasicBlock {
    let conv1: Conv2d
    let bn1: BatchNorm2d
    let conv2: Conv2d
    let bn2: BatchNorm2d
    let downsample: (conv: Conv2d, bn: BatchNorm2d)?
    private let backend: Backend
    private var output = ReusableBuffer()
    private var lastOutput: Tensor?

    init(store: ParameterStore, name: String, inputChannels: Int, outputChannels: Int, stride: Int) {
        backend = store.backend
        conv1 = Conv2d(store: store, name: "\(name).conv1", inputChannels: inputChannels,
                       outputChannels: outputChannels, kernelSize: 3, stride: stride, padding: 1)
        bn1 = BatchNorm2d(store: store, name: "\(name).bn1", featureCount: outputChannels, fusesReLU: true)
        conv2 = Conv2d(store: store, name: "\(name).conv2", inputChannels: outputChannels,
                       outputChannels: outputChannels, kernelSize: 3, stride: 1, padding: 1)
        bn2 = BatchNorm2d(store: store, name: "\(name).bn2", featureCount: outputChannels)
        if stride != 1 || inputChannels != outputChannels {
            downsample = (Conv2d(store: store, name: "\(name).downsample.0", inputChannels: inputChannels,
                                 outputChannels: outputChannels, kernelSize: 1, stride: stride),
                          BatchNorm2d(store: store, name: "\(name).downsample.1", featureCount: outputChannels))
        } else {
            downsample = nil
        }
    }

    /// x `[N,H,W,Cin]` -> `[N,H/stride,W/stride,Cout]`.
    func callAsFunction(_ x: Tensor, mode: ForwardMode) -> Tensor {
        let main = bn2(conv2(bn1(conv1(x), mode: mode)), mode: mode)
        let shortcut = downsample.map { $0.bn($0.conv(x), mode: mode) } ?? x
        let y = output.tensor(main.shape, main.dtype, on: backend)
        backend.add(output: y, main, shortcut, fuseReLU: true)
        lastOutput = y
        return y
    }

    /// dy -> dx. Overwrites `dy` (the final ReLU's mask is applied in place).
    func backward(_ dy: Tensor) -> Tensor {
        guard let y = lastOutput else { preconditionFailure("BasicBlock.backward before forward") }
        backend.reluBackward(dInput: dy, dOutput: dy, output: y)
        // Shortcut first: its parameters come after the main path's in the
        // forward, so their gradients are ready earlier in reverse order.
        let dShortcut = downsample.map { $0.conv.backward($0.bn.backward(dy))! } ?? dy
        let dMain = conv1.backward(bn1.backward(conv2.backward(bn2.backward(dy))!))!
        backend.add(output: dMain, dMain, dShortcut, fuseReLU: false)
        return dMain
    }
}

/// ResNet-18 in its CIFAR form (He et al. 2016; torchvision's `resnet18` with
/// the stem changed to a 3x3 stride-1 convolution and the max pool removed):
/// conv 3x3/64, BasicBlocks [2, 2, 2, 2] at widths 64-128-256-512 (stride 2
/// at the first block of layers 2-4), global average pool, linear.
///
/// 11,173,962 parameters for 10 classes, with torchvision's names
/// (`conv1.weight`, `layer2.0.downsample.0.weight`, `fc.bias`, ...) and
/// initialisation (kaiming normal fan-out for convolutions, BN weight 1 and
/// bias 0, PyTorch's default for the linear layer), so a checkpoint loads
/// into `torchvision.models.resnet18(num_classes=10)` with that stem.
public final class ResNet18: ImageClassifier {
    public let architecture = "resnet18"
    public let store: ParameterStore
    public let classCount: Int
    let conv1: Conv2d
    let bn1: BatchNorm2d
    let blocks: [BasicBlock]
    let pool: GlobalAveragePool
    let fc: Linear

    public init(backend: Backend, classCount: Int = 10, seed: UInt64 = 0, precision: Precision = .float32) throws {
        let store = ParameterStore(backend: backend, precision: precision)
        self.store = store
        self.classCount = classCount
        conv1 = Conv2d(store: store, name: "conv1", inputChannels: 3, outputChannels: 64,
                       kernelSize: 3, stride: 1, padding: 1)
        bn1 = BatchNorm2d(store: store, name: "bn1", featureCount: 64, fusesReLU: true)
        var blocks: [BasicBlock] = []
        var channels = 64
        for (layerIndex, width) in [64, 128, 256, 512].enumerated() {
            for blockIndex in 0..<2 {
                let stride = (layerIndex > 0 && blockIndex == 0) ? 2 : 1
                blocks.append(BasicBlock(store: store, name: "layer\(layerIndex + 1).\(blockIndex)",
                                         inputChannels: channels, outputChannels: width, stride: stride))
                channels = width
            }
        }
        self.blocks = blocks
        pool = GlobalAveragePool(backend: backend)
        fc = Linear(store: store, name: "fc", inputFeatures: 512, outputFeatures: classCount)
        try store.allocate(seed: seed)
    }

    public func forward(_ images: Tensor, mode: ForwardMode) -> Tensor {
        var x = bn1(conv1(images), mode: mode)
        for block in blocks { x = block(x, mode: mode) }
        return fc(pool(x))
    }

    public func backward(_ dLogits: Tensor) {
        var dx = pool.backward(fc.backward(dLogits))
        for block in blocks.reversed() { dx = block.backward(dx) }
        _ = conv1.backward(bn1.backward(dx), needsInputGradient: false)
    }
}
