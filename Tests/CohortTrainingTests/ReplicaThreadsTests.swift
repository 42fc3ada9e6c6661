import CohortCheckpoint
import CohortData
import CohortDistributed
import CohortKernels
import CohortNN
import CohortOneDNN
import CohortOptim
import CohortTensor
import CohortTraining
import Foundation
import XCTest

/// `--strategy dp` (replicas as threads of one process, `Note [Replica
/// threads]`) against the strategies and oracles it must equal:
/// - the 2-rank MPI run of `DataParallelTests` with the same arguments, bit
///   for bit (same ops, same data, same two-term sums; both at one oneDNN
///   thread per replica, so the convolutions reduce in the same order), and
///   its gradient-accumulation oracle;
/// - one process at twice the batch, for a model without batch norm (with
///   it, per-replica batch statistics make the two different computations,
///   `Note [Batch norm across ranks]`).
final class ReplicaThreadsTests: XCTestCase {
    typealias Settings = DataParallelTests

    func testReplicaThreadsMatchMPIRanksBitForBit() throws {
        let folders = (dp: temporaryFolder("dp"), ddp: temporaryFolder("ddp"))
        defer { for folder in [folders.dp, folders.ddp] { try? FileManager.default.removeItem(at: folder) } }
        let arguments = ["train", "--device", "cpu", "--dataset", "synthetic", "--model", "smallcnn", "--epochs", "1",
                         "--steps-per-epoch", String(Settings.steps), "--batch-size", String(Settings.batchSize),
                         "--lr", String(Settings.learningRate), "--seed", String(Settings.seed), "--eval-limit", "16",
                         "--log-every", "1", "--no-progress"]
        let dp = try runCohort(arguments + ["--strategy", "dp", "--replicas", "2", "--run-dir", folders.dp.path],
                               environment: ["OMP_NUM_THREADS": "1"])
        XCTAssertEqual(dp.status, 0, dp.output)
        XCTAssertTrue(dp.output.contains("global batch 16 = 2 replicas x 8"), dp.output)
        let ddp = try runUnderMPIRun(ranks: 2, arguments + ["--run-dir", folders.ddp.path],
                                     mpirunOptions: ["-x", "OMP_NUM_THREADS=1"])
        XCTAssertEqual(ddp.status, 0, ddp.output)

        let threads = try trainedParameters(folders.dp), ranks = try trainedParameters(folders.ddp)
        let expected = try Settings.oracleParameters()
        let moved = zip(threads, try Settings.initialParameters()).map { abs($0 - $1) }.max() ?? 0
        let fromOracle = zip(threads, expected).map { abs($0 - $1) }.max() ?? .infinity
        print("dp: parameters moved by up to \(moved); largest difference from the MPI run "
              + "\(zip(threads, ranks).map { abs($0 - $1) }.max() ?? .infinity), from the oracle \(fromOracle)")
        XCTAssertGreaterThan(moved, 1e-3, "training did not move the parameters: the comparison would prove nothing")
        XCTAssertEqual(threads, ranks, "dp and ddp parameters differ")
        // As DataParallelTests: the oracle runs oneDNN on this process's thread count.
        XCTAssertLessThan(fromOracle, 1e-5)

        for rank in 0..<2 {
            let threadSteps = try stepRecords(folders.dp, rank: rank), rankSteps = try stepRecords(folders.ddp, rank: rank)
            XCTAssertEqual(threadSteps.count, Settings.steps, "replica \(rank)")
            XCTAssertEqual(threadSteps.map { $0["loss"] as? Double }, rankSteps.map { $0["loss"] as? Double },
                           "replica \(rank): step losses")
            XCTAssertEqual((threadSteps.last?["allreduce_bytes"] as? [Int])?.reduce(0, +), expected.count * 4,
                           "replica \(rank): every gradient byte all-reduced once")
        }
    }

    func testTwoReplicaThreadsMatchOneProcessAtTwiceTheBatch() throws {
        let two = try trainPoolingClassifier(replicas: 2, batchSize: 8)
        let one = try trainPoolingClassifier(replicas: 1, batchSize: 16)
        XCTAssertEqual(two[0].parameters, two[1].parameters, "the replicas drifted apart")
        let difference = zip(two[0].parameters, one[0].parameters).map { abs($0 - $1) }.max() ?? .infinity
        let moved = zip(one[0].parameters, one[0].initial).map { abs($0 - $1) }.max() ?? 0
        print("2 replicas x 8 against 1 x 16: largest parameter difference \(difference) (moved by up to \(moved))")
        XCTAssertGreaterThan(moved, 1e-3)
        // Same images and gradients; only the float32 sums are grouped
        // differently (a mean of 16 against the mean of two means of 8).
        XCTAssertLessThan(difference, 1e-6)
        for step in 0..<3 {
            let replicaMean = (two[0].losses[step] + two[1].losses[step]) / 2
            XCTAssertEqual(replicaMean, one[0].losses[step], accuracy: 1e-5, "step \(step + 1): mean of the replicas' losses")
        }
    }

    func testAFailedReplicaStopsTheOthersAndIsNamed() throws {
        struct OutOfMemory: Error, CustomStringConvertible { var description: String { "out of memory" } }
        let group = ThreadGroup(size: 3, timeout: .seconds(60))
        let communicators = group.makeCommunicators()
        let started = ContinuousClock.now
        XCTAssertThrowsError(try ReplicaThreads.run(count: 3, grace: .seconds(20), stopOthers: { rank, error in
            group.fail(rank: rank, reason: "\(error)")
        }) { rank in
            if rank == 1 {
                usleep(100_000)
                throw OutOfMemory()
            }
            try communicators[rank].allReduce(Tensor.zeros([8]), op: .average)  // waits for replica 1
        }) { error in
            XCTAssertEqual("\(error)", "replica 1 of 3 failed: out of memory")
        }
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(10), "the others waited for the time-out")
    }

    // MARK: Helpers

    func temporaryFolder(_ name: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("cohort-\(name)-\(UUID().uuidString)")
    }

    func trainedParameters(_ folder: URL) throws -> [Float] {
        let contents = try TrainingCheckpoint.read(from: folder.appendingPathComponent("checkpoint.safetensors"))
        let model = try ModelArchitecture.smallcnn.build(backend: ReferenceBackend(), seed: 0)
        try TrainingCheckpoint.restore(contents, into: model, optimizer: nil)
        return model.store.parameters.toArray()
    }

    func stepRecords(_ folder: URL, rank: Int) throws -> [[String: Any]] {
        try String(contentsOf: folder.appendingPathComponent("metrics-rank\(rank).jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
            .filter { $0["event"] as? String == "step" }
    }

    struct ReplicaRun: Sendable {
        var initial: [Float]
        var parameters: [Float]
        var losses: [Float]
    }

    /// Three SGD steps of `PoolingClassifier` on `replicas` threads with
    /// `batchSize` images each, gradients averaged through a `ThreadGroup`
    /// and a `GradientReducer` as `Trainer` does.
    func trainPoolingClassifier(replicas: Int, batchSize: Int) throws -> [ReplicaRun] {
        let group = ThreadGroup(size: replicas, timeout: .seconds(30))
        let communicators = group.makeCommunicators()
        let dataset = ImageDataset.synthetic(count: 4096, seed: 1)
        return try ReplicaThreads.run(count: replicas, grace: .seconds(30), stopOthers: { rank, error in
            group.fail(rank: rank, reason: "\(error)")
        }) { rank in
            setCPUThreadCount(forCallingThread: 1)
            let backend = try makeBackend(device: .cpu, choice: .auto).backend
            let model = try PoolingClassifier(backend: backend, seed: 3)
            let initial = backend.download(model.store.parameters).toArray()
            let optimizer = try Optimizer(store: model.store, configuration: OptimizerConfiguration())
            let criterion = try SoftmaxCrossEntropy(backend: backend)
            let reducer = replicas > 1 ? try GradientReducer(store: model.store, communicator: communicators[rank]) : nil
            try reducer?.broadcastInitialState()
            let sampler = DistributedSampler(datasetCount: dataset.count, worldSize: replicas, rank: rank, shuffle: true,
                                             seed: 7)
            let loader = DataLoader(dataset: dataset, sampler: sampler, batchSize: batchSize,
                                    augmentation: .cifar10Training, prefetchDepth: 0)
            var losses: [Float] = []
            for step in 0..<3 {
                let batch = try loader.batch(epoch: 0, index: step)
                criterion(logits: model.forward(batch.images), labels: batch.labels)
                reducer?.prepareForBackward()
                model.backward(criterion.backward())
                try reducer?.finishBackward()
                optimizer.step(learningRate: 0.5)
                losses.append(backend.download(criterion.loss).toArray()[0])
            }
            return ReplicaRun(initial: initial, parameters: backend.download(model.store.parameters).toArray(), losses: losses)
        }
    }
}

/// A classifier without batch norm: 3x3 convolution (3 -> 8 channels),
/// global average pool, linear (8 -> 10). Its gradient for a batch is the
/// mean of its samples' gradients, so two half-batches averaged equal the whole.
final class PoolingClassifier {
    let store: ParameterStore
    let conv: Conv2d
    let pool: GlobalAveragePool
    let fc: Linear

    init(backend: Backend, seed: UInt64) throws {
        store = ParameterStore(backend: backend)
        conv = Conv2d(store: store, name: "conv", inputChannels: 3, outputChannels: 8, kernelSize: 3, padding: 1,
                      initialization: .uniform(bound: 1 / Float(27).squareRoot()))
        pool = GlobalAveragePool(backend: backend)
        fc = Linear(store: store, name: "fc", inputFeatures: 8, outputFeatures: 10)
        try store.allocate(seed: seed)
    }

    /// images `[N,32,32,3]` -> logits `[N,10]`.
    func forward(_ images: Tensor) -> Tensor { fc(pool(conv(images))) }

    func backward(_ dLogits: Tensor) {
        _ = conv.backward(pool.backward(fc.backward(dLogits)), needsInputGradient: false)
    }
}
