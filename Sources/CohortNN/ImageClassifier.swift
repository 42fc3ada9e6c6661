import CohortKernels
import CohortTensor

/// A network mapping NHWC images to class logits, with its explicit backward.
public protocol ImageClassifier: AnyObject {
    /// The architecture's name as printed in a run's header ("resnet18").
    var architecture: String { get }
    var store: ParameterStore { get }
    var classCount: Int { get }
    /// images `[N,32,32,3]` in `store.precision`'s dtype -> logits `[N,classCount]` in the same dtype.
    func forward(_ images: Tensor, mode: ForwardMode) -> Tensor
    /// Writes every parameter's gradient from dLogits `[N,classCount]`
    /// (after a `.training` forward).
    func backward(_ dLogits: Tensor)
}

/// The models `cohort` can build, by name.
public enum ModelArchitecture: String, CaseIterable, Sendable {
    case resnet18
    case smallcnn

    public func build(backend: Backend, classCount: Int = 10, seed: UInt64,
                      precision: Precision = .float32) throws -> ImageClassifier {
        switch self {
        case .resnet18: return try ResNet18(backend: backend, classCount: classCount, seed: seed, precision: precision)
        case .smallcnn: return try SmallCNN(backend: backend, classCount: classCount, seed: seed, precision: precision)
        }
    }
}
