import CohortCheckpoint
import CohortData
import CohortKernels
import CohortNN
import CohortOptim
import CohortTensor
import CohortTraining
import Foundation
import XCTest

/// Data-parallel training against a single-process oracle: `cohort train`
/// on 2 MPI ranks with batch B per rank must reach the parameters of one
/// process that, at every step, runs backward on rank 0's batch and on
/// rank 1's batch and averages the two gradients (gradient accumulation of
/// the same two half-batches).
///
/// Why not 1 rank with batch 2B: batch norm normalises with per-rank batch
/// statistics (`Note [Batch norm across ranks]`), so one batch of 2B is a
/// different computation; two half-batches with their own statistics are
/// exactly what the ranks compute. The running statistics are not compared
/// (the oracle updates them twice per step), only the trained parameters,
/// which training-mode forward never reads the running statistics for.
final class DataParallelTests: XCTestCase {
    static let batchSize = 8
    static let steps = 3
    static let learningRate: Float = 0.05
    static let seed: UInt64 = 5

    func testTwoRanksMatchGradientAccumulationOfTheirBatches() throws {
        let expected = try Self.oracleParameters()
        // Overlapped buckets, one all-reduce after backward, and the optimizer updating the rest
        // while the last bucket is reduced (Note [Optimizer beside the last all-reduce]) with
        // small buckets merged (Note [Small buckets]).
        for variant in [[], ["--no-overlap"], ["--overlap-optimizer", "--merge-small-buckets"]] {
            let name = variant.isEmpty ? "overlap" : variant.joined(separator: " ")
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-ddp-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: folder) }
            var arguments = ["train", "--device", "cpu", "--dataset", "synthetic", "--model", "smallcnn", "--epochs", "1",
                             "--steps-per-epoch", String(Self.steps), "--batch-size", String(Self.batchSize),
                             "--lr", String(Self.learningRate), "--seed", String(Self.seed), "--eval-limit", "16",
                             "--log-every", "1", "--no-progress", "--run-dir", folder.path]
            arguments += variant
            let (status, output) = try runUnderMPIRun(ranks: 2, arguments)
            XCTAssertEqual(status, 0, output)
            XCTAssertTrue(output.contains("global batch 16 = 2 ranks x 8"), output)

            let contents = try TrainingCheckpoint.read(from: folder.appendingPathComponent("checkpoint.safetensors"))
            let model = try ModelArchitecture.smallcnn.build(backend: ReferenceBackend(), seed: 0)
            try TrainingCheckpoint.restore(contents, into: model, optimizer: nil)
            let actual = model.store.parameters.toArray()
            let difference = zip(actual, expected).map { abs($0 - $1) }.max() ?? .infinity
            // Same ops, same data, same order of the two-term sum: only
            // oneDNN's thread count may differ between the ranks (1 core
            // each under mpirun) and this process, changing the order of
            // its convolution reductions.
            print("\(name): largest parameter difference from the oracle \(difference) (parameters moved by up to \(zip(actual, try Self.initialParameters()).map { abs($0 - $1) }.max() ?? 0))")
            XCTAssertLessThan(difference, 1e-5, "\(name): largest parameter difference \(difference)")

            for rank in 0..<2 {
                let lines = try String(contentsOf: folder.appendingPathComponent("metrics-rank\(rank).jsonl"), encoding: .utf8)
                    .split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
                let steps = lines.filter { $0["event"] as? String == "step" }
                XCTAssertEqual(steps.count, Self.steps, "rank \(rank)")
                let bytes = steps.last?["allreduce_bytes"] as? [Int]
                XCTAssertEqual(bytes?.reduce(0, +), expected.count * 4, "rank \(rank): every gradient byte all-reduced once")
                for key in ["forward_seconds", "backward_seconds", "optimizer_seconds", "communication_seconds",
                            "step_data_wait_seconds"] {
                    XCTAssertNotNil(steps.last?[key] as? Double, "rank \(rank): \(key) missing")
                }
                XCTAssertEqual(lines.first?["world_size"] as? String, "2")
            }
        }
    }

    /// The parameters before training (to show the comparison is not trivial).
    static func initialParameters() throws -> [Float] {
        try ModelArchitecture.smallcnn.build(backend: ReferenceBackend(), seed: Self.seed).store.parameters.toArray()
    }

    /// The parameters after `steps` steps of gradient accumulation over the
    /// two ranks' batches, computed in this process with the same backend.
    static func oracleParameters() throws -> [Float] {
        let (backend, _) = try makeBackend(device: .cpu, choice: .auto)
        let model = try ModelArchitecture.smallcnn.build(backend: backend, seed: Self.seed)
        let optimizer = try Optimizer(store: model.store, configuration: OptimizerConfiguration())
        let criterion = try SoftmaxCrossEntropy(backend: backend)
        let dataset = ImageDataset.synthetic(count: 50_000, seed: 1) // as `--dataset synthetic`
        let loaders = (0..<2).map { rank in
            DataLoader(dataset: dataset, sampler: DistributedSampler(datasetCount: dataset.count, worldSize: 2, rank: rank,
                                                                      shuffle: true, seed: Self.seed),
                       batchSize: Self.batchSize, augmentation: .cifar10Training, prefetchDepth: 0)
        }
        for step in 0..<Self.steps {
            var sum = [Float](repeating: 0, count: model.store.parameterCount)
            for loader in loaders {
                let batch = try loader.batch(epoch: 0, index: step)
                criterion(logits: model.forward(batch.images, mode: .training), labels: batch.labels)
                model.backward(criterion.backward())
                let gradients = backend.download(model.store.gradients).toArray()
                for index in sum.indices { sum[index] += gradients[index] }
            }
            backend.upload(Tensor(sum.map { $0 * 0.5 }, shape: [sum.count]), to: model.store.gradients)
            optimizer.step(learningRate: Self.learningRate)
        }
        return backend.download(model.store.parameters).toArray()
    }
}
