import CohortKernels
import CohortNN
import CohortOneDNN
import CohortTensor
import XCTest

/// Whole-model forward/backward: the explicit backward against finite
/// differences, and oneDNN against the reference on ResNet-18.
final class ModelGradientTests: XCTestCase {
    /// A batch of normal random images and labels.
    static func batch(_ count: Int, seed: UInt64) -> (images: Tensor, labels: Tensor) {
        var generator = SeededGenerator(seed: seed)
        let images = Tensor((0..<(count * 32 * 32 * 3)).map { _ in generator.nextNormal() }, shape: [count, 32, 32, 3])
        let labels = Tensor.int32((0..<count).map { _ in Int32(generator.next() % 10) })
        return (images, labels)
    }

    /// Mean training loss of `model` on a batch (batch statistics).
    static func loss(_ model: ImageClassifier, _ criterion: SoftmaxCrossEntropy, images: Tensor, labels: Tensor) -> Float {
        criterion(logits: model.forward(images, mode: .training), labels: labels)
        return model.store.backend.download(criterion.loss).toArray()[0]
    }

    /// Directional derivative check: (L(w + eps v) - L(w - eps v)) / 2 eps
    /// against g . v for a random direction v over all parameters. Float32
    /// losses carry about 1e-7 relative noise, so eps = 1e-3 bounds the
    /// finite-difference error near 1e-3 relative; 2% tolerance is safe and
    /// still fails for any wrong sign or missing term.
    func testSmallCNNGradientMatchesFiniteDifferences() throws {
        let backend = ReferenceBackend()
        let model = try SmallCNN(backend: backend, seed: 3)
        let criterion = try SoftmaxCrossEntropy(backend: backend, labelSmoothing: 0.1)
        let (images, labels) = Self.batch(6, seed: 11)

        _ = Self.loss(model, criterion, images: images, labels: labels)
        model.backward(criterion.backward())
        let gradient = model.store.gradients.toArray()

        var generator = SeededGenerator(seed: 5)
        let direction = (0..<gradient.count).map { _ in generator.nextNormal() }
        let analytic = zip(gradient, direction).map { Double($0) * Double($1) }.reduce(0, +)

        let weights = model.store.parameters.toArray()
        let epsilon: Float = 1e-3
        func lossAt(_ sign: Float) -> Float {
            model.store.parameters.copy(from: zip(weights, direction).map { $0 + sign * epsilon * $1 })
            return Self.loss(model, criterion, images: images, labels: labels)
        }
        let numeric = Double(lossAt(1) - lossAt(-1)) / Double(2 * epsilon)
        XCTAssertEqual(numeric, analytic, accuracy: 0.02 * abs(analytic), "finite differences \(numeric) vs backward \(analytic)")
    }

    /// ResNet-18 forward and backward of one batch on oneDNN against the
    /// reference. Float32 with different summation orders through 18 layers
    /// of batch norm: logits agree to 1e-3 relative to their scale, gradients
    /// to 1e-2 of each tensor's largest value.
    func testResNet18OneDNNMatchesReference() throws {
        let oneDNN: OneDNNBackend
        do { oneDNN = try OneDNNBackend() } catch { throw XCTSkip("oneDNN unavailable: \(error)") }
        let reference = ReferenceBackend()
        let (images, labels) = Self.batch(4, seed: 21)
        var results: [(logits: [Float], gradients: [Float], store: ParameterStore)] = []
        for backend in [reference, oneDNN] as [Backend] {
            let model = try ResNet18(backend: backend, seed: 9)
            let criterion = try SoftmaxCrossEntropy(backend: backend)
            let deviceImages = try backend.makeTensor(copying: images)
            let deviceLabels = try backend.makeTensor(copying: labels)
            let logits = model.forward(deviceImages, mode: .training)
            criterion(logits: logits, labels: deviceLabels)
            model.backward(criterion.backward())
            results.append((backend.download(logits).toArray(), backend.download(model.store.gradients).toArray(),
                            model.store))
        }
        let logitScale = results[0].logits.map(abs).max()!
        for (a, b) in zip(results[0].logits, results[1].logits) {
            XCTAssertEqual(a, b, accuracy: 1e-3 * logitScale)
        }
        for entry in results[0].store.entries where entry.kind == .trainable {
            let range = entry.offset..<(entry.offset + entry.shape.elementCount)
            let expected = results[0].gradients[range], actual = results[1].gradients[range]
            let scale = max(expected.map(abs).max()!, 1e-6)
            let worst = zip(expected, actual).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(worst, 1e-2 * scale, "gradient of \(entry.name): worst difference \(worst), scale \(scale)")
        }
    }

    /// The loss of ResNet-18 falls over a few SGD steps on one small batch.
    func testResNet18LossFallsOnASmallBatch() throws {
        let backend: Backend = (try? OneDNNBackend()) ?? ReferenceBackend()
        let model = try ResNet18(backend: backend, seed: 2)
        let criterion = try SoftmaxCrossEntropy(backend: backend)
        let (hostImages, hostLabels) = Self.batch(8, seed: 4)
        let images = try backend.makeTensor(copying: hostImages)
        let labels = try backend.makeTensor(copying: hostLabels)
        let optimizerSegments = model.store.segments
        let momentum = try backend.makeTensor([model.store.parameterCount])
        backend.fill(momentum, value: 0)
        var losses: [Float] = []
        for step in 0..<6 {
            losses.append(Self.loss(model, criterion, images: images, labels: labels))
            model.backward(criterion.backward())
            backend.optimizerStep(parameters: model.store.parameters, gradients: model.store.gradients,
                                  momentumBuffer: momentum, segments: optimizerSegments,
                                  configuration: OptimizerStepConfiguration(learningRate: 0.05, momentum: 0.9,
                                                                            isFirstStep: step == 0))
        }
        XCTAssertLessThan(losses.last!, 0.5 * losses.first!, "losses: \(losses)")
    }
}
