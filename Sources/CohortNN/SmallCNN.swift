import CohortKernels
import CohortTensor

/// A small convolutional network for fast tests and smoke runs: three 3x3
/// conv-BN-ReLU stages (16, 32, 64 channels; the last two with stride 2),
/// global average pool, linear. About 24,000 parameters and 2.8 M
/// multiply-adds per 32x32 image, against ResNet-18's 11.2 M and 556 M.
/// Convolutions use PyTorch's default initialisation (uniform, bound
/// `1/sqrt(fanIn)`).
public final class SmallCNN: ImageClassifier {
    public let architecture = "smallcnn"
    public let store: ParameterStore
    public let classCount: Int
    let stages: [(conv: Conv2d, bn: BatchNorm2d)]
    let pool: GlobalAveragePool
    let fc: Linear

    public init(backend: Backend, classCount: Int = 10, seed: UInt64 = 0, precision: Precision = .float32) throws {
        let store = ParameterStore(backend: backend, precision: precision)
        self.store = store
        self.classCount = classCount
        var stages: [(Conv2d, BatchNorm2d)] = []
        var channels = 3
        for (index, (width, stride)) in [(16, 1), (32, 2), (64, 2)].enumerated() {
            let bound = 1 / Float(channels * 9).squareRoot()
            stages.append((Conv2d(store: store, name: "conv\(index + 1)", inputChannels: channels, outputChannels: width,
                                  kernelSize: 3, stride: stride, padding: 1, initialization: .uniform(bound: bound)),
                           BatchNorm2d(store: store, name: "bn\(index + 1)", featureCount: width, fusesReLU: true)))
            channels = width
        }
        self.stages = stages
        pool = GlobalAveragePool(backend: backend)
        fc = Linear(store: store, name: "fc", inputFeatures: channels, outputFeatures: classCount)
        try store.allocate(seed: seed)
    }

    public func forward(_ images: Tensor, mode: ForwardMode) -> Tensor {
        var x = images
        for stage in stages { x = stage.bn(stage.conv(x), mode: mode) }
        return fc(pool(x))
    }

    public func backward(_ dLogits: Tensor) {
        var dx = pool.backward(fc.backward(dLogits))
        for (index, stage) in stages.enumerated().reversed() {
            if let next = stage.conv.backward(stage.bn.backward(dx), needsInputGradient: index > 0) { dx = next }
        }
    }
}
