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
        var generator = SplitMix64(seed: seed)
        let images = Tensor((0..<(count * 32 * 32 * 3)).map { _ in generator.nextNormal() }, shape: [count, 32, 32, 3])
        let labels = Tensor.int32((0..<count).map { _ in Int32(generator.next() % 10) })
        return (images, labels)
    }

    /// Mean training loss of `model` on a batch (batch statistics).
    static func loss(_ model: ImageClassifier, _ criterion: SoftmaxCrossEntropy, images: Tensor, labels: Tensor) -> Float {
        criterion(logits: model.forward(images, mode: .training), labels: labels)
        return model.store.backend.download(criterion.loss).toArray()[0]
    }

    /// Checks the backward of a whole model, one tensor at a time: the
    /// directional derivative `(L(w + eps v) - L(w - eps v)) / 2 eps` along a
    /// random direction v confined to that tensor, against `g . v`.
    ///
    /// Tolerances: float32 losses carry ~1e-7 relative noise (1e-4 after
    /// dividing by 2 eps = 2e-3), and a perturbation of a convolution that
    /// batch norm follows moves pre-activations across ReLU kinks, which
    /// measured up to 5% on SmallCNN's convolutions at eps = 1e-3 (against
    /// under 1% for batch-norm and linear parameters). So 8% for
    /// convolutions, 2% for the rest, plus 2e-3 absolute: the float32 loss
    /// (about 2.3, summed over the batch) moves in steps of a few ulps, and
    /// 16 ulps over 2 eps is 2e-3. A missing term, a wrong sign or a
    /// gradient routed to the wrong tensor is off by far more.
    func checkDirectionalDerivatives(_ model: ImageClassifier, names: [String], batchSize: Int) throws {
        let criterion = try SoftmaxCrossEntropy(backend: model.store.backend, labelSmoothing: 0.1)
        let (images, labels) = Self.batch(batchSize, seed: 11)
        _ = Self.loss(model, criterion, images: images, labels: labels)
        model.backward(criterion.backward())
        let gradient = model.store.gradients.toArray()
        let weights = model.store.parameters.toArray()
        let epsilon: Float = 1e-3
        for name in names {
            let entry = model.store.entry(try XCTUnwrap(model.store.reference(named: name), name))
            // Steps in proportion to the tensor's own scale (its root mean
            // square, or 1 for an all-zero bias), so every tensor is moved by
            // the same relative amount.
            let range = entry.offset..<(entry.offset + entry.shape.elementCount)
            let meanSquare = weights[range].map { Double($0 * $0) }.reduce(0, +) / Double(range.count)
            let scale = meanSquare > 0 ? Float(meanSquare.squareRoot()) : 1
            var generator = SplitMix64(seed: 5)
            var direction = [Float](repeating: 0, count: weights.count)
            for index in range { direction[index] = scale * generator.nextNormal() }
            let analytic = zip(gradient, direction).map { Double($0) * Double($1) }.reduce(0, +)
            func lossAt(_ sign: Float) -> Float {
                model.store.parameters.copy(from: zip(weights, direction).map { $0 + sign * epsilon * $1 })
                return Self.loss(model, criterion, images: images, labels: labels)
            }
            let numeric = Double(lossAt(1) - lossAt(-1)) / Double(2 * epsilon)
            let tolerance = name.contains("conv") || name.contains("downsample.0") ? 0.08 : 0.02
            XCTAssertEqual(numeric, analytic, accuracy: tolerance * abs(analytic) + 2e-3,
                           "\(name): finite differences \(numeric) vs backward \(analytic)")
        }
        model.store.parameters.copy(from: weights)
    }

    func testSmallCNNGradientMatchesFiniteDifferences() throws {
        let model = try SmallCNN(backend: ReferenceBackend(), seed: 3)
        let names = model.store.entries.filter { $0.kind == .trainable }.map(\.name)
        try checkDirectionalDerivatives(model, names: names, batchSize: 6)
    }

    /// The residual wiring, on the last two stages: a block with a
    /// downsampling shortcut, one with the identity, and gradients that
    /// flow back through both into layer3. (Earlier layers' losses are too
    /// rough in float32 for finite differences at batch 2-4: ReLU kinks in
    /// every later layer make the quotient jump by tens of percent between
    /// step sizes. SmallCNN covers those layer types, and the oneDNN
    /// comparison covers every tensor.)
    func testResNet18GradientMatchesFiniteDifferences() throws {
        let model = try ResNet18(backend: ReferenceBackend(), seed: 3)
        try checkDirectionalDerivatives(model, names: [
            "layer3.1.bn2.weight", "layer3.1.bn2.bias", "layer4.0.conv1.weight", "layer4.0.bn1.weight",
            "layer4.0.downsample.0.weight", "layer4.0.downsample.1.weight", "layer4.1.conv2.weight",
            "layer4.1.bn2.weight", "fc.weight", "fc.bias",
        ], batchSize: 4)
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
