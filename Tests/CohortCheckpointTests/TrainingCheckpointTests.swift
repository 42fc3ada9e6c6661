import CohortCheckpoint
import CohortKernels
import CohortNN
import CohortOptim
import CohortTensor
import Foundation
import XCTest

/// Training checkpoints: model, optimiser and progress survive a round trip
/// bit for bit, and damaged or mismatched files are refused with a reason.
final class TrainingCheckpointTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-checkpoint-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    /// A SmallCNN after two SGD steps, so momentum, statistics and counters are all non-trivial.
    func trainedModel() throws -> (SmallCNN, Optimizer) {
        let backend = ReferenceBackend()
        let model = try SmallCNN(backend: backend, seed: 4)
        let optimizer = try Optimizer(store: model.store, configuration: OptimizerConfiguration(momentum: 0.9, nesterov: true))
        let criterion = try SoftmaxCrossEntropy(backend: backend)
        var generator = SplitMix64(seed: 8)
        let images = Tensor((0..<(4 * 3072)).map { _ in generator.nextNormal() }, shape: [4, 32, 32, 3])
        let labels = Tensor.int32([1, 2, 3, 4])
        for _ in 0..<2 {
            criterion(logits: model.forward(images, mode: .training), labels: labels)
            model.backward(criterion.backward())
            optimizer.step(learningRate: 0.1)
        }
        return (model, optimizer)
    }

    func testRoundTripIsBitForBit() throws {
        let (model, optimizer) = try trainedModel()
        let url = directory.appendingPathComponent("checkpoint.safetensors")
        let progress = TrainingProgress(epoch: 3, globalStep: 117, seed: 42)
        try TrainingCheckpoint.save(model: model, optimizer: optimizer, progress: progress,
                                    configuration: ["lr": "0.1"], to: url)

        let restored = try SmallCNN(backend: ReferenceBackend(), seed: 99)
        let restoredOptimizer = try Optimizer(store: restored.store, configuration: optimizer.configuration)
        let contents = try TrainingCheckpoint.read(from: url)
        try TrainingCheckpoint.restore(contents, into: restored, optimizer: restoredOptimizer)

        XCTAssertEqual(contents.progress, progress)
        XCTAssertEqual(contents.metadata["lr"], "0.1")
        func bits(_ tensor: Tensor) -> [UInt32] { tensor.toArray().map(\.bitPattern) }
        XCTAssertEqual(bits(restored.store.parameters), bits(model.store.parameters))
        XCTAssertEqual(bits(restored.store.statistics), bits(model.store.statistics))
        XCTAssertEqual(bits(restoredOptimizer.momentumBuffer), bits(optimizer.momentumBuffer))
        XCTAssertEqual(restored.store.counters, [2, 2, 2])
        XCTAssertEqual(restoredOptimizer.stepCount, 2)
    }

    func testFileIsAPyTorchStateDictPlusOptimizerState() throws {
        let (model, optimizer) = try trainedModel()
        let url = directory.appendingPathComponent("checkpoint.safetensors")
        try TrainingCheckpoint.save(model: model, optimizer: optimizer,
                                    progress: TrainingProgress(epoch: 1, globalStep: 2, seed: 0), to: url)
        let file = try SafeTensorsFile(contentsOf: url)
        let modelNames = Set(file.names.filter { !$0.hasPrefix("optimizer.") })
        XCTAssertEqual(modelNames, Set(model.store.entries.map(\.name)))
        XCTAssertEqual(file["bn2.num_batches_tracked"]?.dtype, .int64)
        XCTAssertEqual(file["bn2.num_batches_tracked"]?.shape, Shape([]))
        XCTAssertEqual(file["conv2.weight"]?.shape, [32, 16, 3, 3])
        XCTAssertEqual(file["optimizer.momentum.fc.weight"]?.shape, [10, 64])
    }

    func testTruncatedFileIsRejected() throws {
        let (model, optimizer) = try trainedModel()
        let url = directory.appendingPathComponent("checkpoint.safetensors")
        try TrainingCheckpoint.save(model: model, optimizer: optimizer,
                                    progress: TrainingProgress(epoch: 1, globalStep: 2, seed: 0), to: url)
        let data = try Data(contentsOf: url)
        try data.prefix(data.count - 100).write(to: url)
        XCTAssertThrowsError(try TrainingCheckpoint.read(from: url)) { error in
            XCTAssertTrue("\(error)".contains(url.path), "\(error)")
        }
    }

    func testMismatchesAreRejected() throws {
        let (model, optimizer) = try trainedModel()
        let url = directory.appendingPathComponent("checkpoint.safetensors")
        try TrainingCheckpoint.save(model: model, optimizer: optimizer,
                                    progress: TrainingProgress(epoch: 1, globalStep: 2, seed: 0), to: url)
        let contents = try TrainingCheckpoint.read(from: url)

        // Another architecture.
        let resnet = try ResNet18(backend: ReferenceBackend(), seed: 0)
        XCTAssertThrowsError(try TrainingCheckpoint.restore(contents, into: resnet, optimizer: nil)) { error in
            XCTAssertTrue("\(error)".contains("smallcnn"), "\(error)")
        }

        // A missing tensor and a tensor of the wrong shape.
        var file = contents.file
        file.tensors.removeAll { $0.name == "bn1.running_var" }
        let missing = directory.appendingPathComponent("missing.safetensors")
        try file.write(to: missing)
        XCTAssertThrowsError(try TrainingCheckpoint.restore(try TrainingCheckpoint.read(from: missing),
                                                            into: try SmallCNN(backend: ReferenceBackend()), optimizer: nil)) { error in
            XCTAssertTrue("\(error)".contains("bn1.running_var"), "\(error)")
        }
        file = contents.file
        let index = file.tensors.firstIndex { $0.name == "fc.bias" }!
        file.tensors[index] = NamedTensor("fc.bias", Tensor.zeros([11]))
        let reshaped = directory.appendingPathComponent("reshaped.safetensors")
        try file.write(to: reshaped)
        XCTAssertThrowsError(try TrainingCheckpoint.restore(try TrainingCheckpoint.read(from: reshaped),
                                                            into: try SmallCNN(backend: ReferenceBackend()), optimizer: nil)) { error in
            XCTAssertTrue("\(error)".contains("fc.bias"), "\(error)")
        }

        // A safetensors file that is not a Cohort checkpoint.
        let foreign = directory.appendingPathComponent("foreign.safetensors")
        try SafeTensorsFile(tensors: [NamedTensor("x", Tensor.zeros([2]))]).write(to: foreign)
        XCTAssertThrowsError(try TrainingCheckpoint.read(from: foreign)) { error in
            XCTAssertTrue("\(error)".contains("not a Cohort training checkpoint"), "\(error)")
        }
    }
}
