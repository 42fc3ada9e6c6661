import CohortDistributed
import CohortKernels
import CohortNN
import CohortOptim
import CohortTensor

/// Makes a one-rank communicator whose collectives a captured step can hold,
/// set to launch a captured step's all-reduces the way asked (`cohort
/// selftest` on CUDA passes one that makes NCCL communicators).
/// @unchecked Sendable: the self-test calls it from the thread that runs the checks only.
public struct DataParallelCommunicatorFactory: @unchecked Sendable {
    public let make: (AllReduceLaunch) throws -> Communicator

    public init(_ make: @escaping (AllReduceLaunch) throws -> Communicator) {
        self.make = make
    }
}

/// Note [Self-test of the data-parallel step]
/// - The gradient reducer's captured step (bucket all-reduces overlapped with
///   backward, bf16 on the wire) runs only with several GPUs in training, where
///   a wrong ordering shows as a slightly different loss curve at best. Here it
///   runs on one GPU: a one-rank NCCL communicator all-reduces each bucket (the
///   identity, after the same bf16 rounding in every run), so a model trained
///   through replays must match the same steps run eagerly, as `graph replay`
///   does without a reducer, within the backend's run-to-run variation.
/// - One check per `AllReduceLaunch` (Note [All-reduces launched by the host]):
///   in the graph, and the host's launches between two graphs; a replay that
///   read a bucket before backward wrote it, or optimised before its widening,
///   is off by far more than that variation. Each with the optimizer reading the
///   wire itself (Note [Widening in the optimizer]), and the graph's once more
///   with the widening into the float32 gradients.
extension BackendSelfTest {
    func dataParallelStepChecks() -> [SelfTestCheck] {
        guard let factory = options.dataParallelCommunicators else { return [] }
        let batch = options.batch
        let learningRates: [Float] = [0.1, 0.05, 0.08, 0.02]
        // Every launch with the optimizer reading the wire (the default), and the graph's with the widening too.
        let ways = AllReduceLaunch.allCases.map { ($0, true) } + [(AllReduceLaunch.graph, false)]
        return ways.map { launch, widensInOptimizer in
            SelfTestCheck(name: "data-parallel step, --allreduce-launch \(launch.rawValue)"
                              + (widensInOptimizer ? "" : ", --no-widen-in-optimizer"),
                          shape: "resnet18 batch \(batch), 1 NCCL rank, bf16 wire, 1 eager + 3 graph steps") { c in
                guard self.backendHasGraphs(c.tested) else { return }
                c.tested.setDeterministicAlgorithms(true)  // see compareReplay
                defer { c.tested.setDeterministicAlgorithms(false) }
                let seed = c.random.next()
                let hostImages = c.uniform([batch, 32, 32, 3], -2...2), hostLabels = c.labels(batch, classes: 10)
                let communicator: Communicator, images: Tensor, labels: Tensor
                var models: [ResNet18] = [], optimizers: [Optimizer] = [], criteria: [SoftmaxCrossEntropy] = []
                var reducers: [GradientReducer] = []
                do {
                    communicator = try factory.make(launch)
                    images = try c.tested.makeTensor(copying: hostImages)
                    labels = try c.tested.makeTensor(copying: hostLabels)
                    for _ in 0..<3 {
                        let model = try ResNet18(backend: c.tested, classCount: 10, seed: seed)
                        model.store.setWeightDecay(false) { $0.shape.rank == 1 }
                        models.append(model)
                        optimizers.append(try Optimizer(store: model.store, configuration: OptimizerConfiguration(
                            momentum: 0.9, weightDecay: 5e-4, nesterov: true)))
                        criteria.append(try SoftmaxCrossEntropy(backend: c.tested, labelSmoothing: 0.1))
                        let reducer = try GradientReducer(store: model.store, communicator: communicator,
                                                          communicationDType: .bfloat16, mergesSmallBuckets: true)
                        reducer.widensInOptimizer = widensInOptimizer  // as the trainer sets it
                        optimizers.last!.gradientSource = { reducer.reducedGradients }
                        reducers.append(reducer)
                    }
                } catch {
                    fatalError("selftest data-parallel step (\(launch.rawValue)): cannot build the models: \(error)")
                }
                // One model's forward, backward with its reducer's all-reduces, as the trainer's step.
                func forwardBackward(_ m: Int) throws {
                    criteria[m](logits: models[m].forward(images, mode: .training), labels: labels)
                    reducers[m].prepareForBackward()
                    models[m].backward(criteria[m].backward())
                    try reducers[m].finishBackward()
                }
                let captured: CapturedStep
                do {
                    // Eager twice (the backend's run-to-run variation), then through replays.
                    for m in [0, 2] {
                        for learningRate in learningRates {
                            try forwardBackward(m)
                            optimizers[m].step(learningRate: learningRate)
                        }
                    }
                    captured = try CapturedStep(optimizer: optimizers[1], warmUpSteps: 1) { try forwardBackward(1) }
                    for learningRate in learningRates { try captured.run(learningRate: learningRate, inputs: [images, labels]) }
                    c.tested.synchronize()
                } catch {
                    fatalError("selftest data-parallel step (\(launch.rawValue)): \(error)")
                }
                self.compareReplay(c, eager: models[0].store, graph: models[1].store, repeated: models[2].store,
                              losses: (criteria[0].loss, criteria[1].loss), note: captured.graphSummary)
                let hostLaunches = captured.graphSummary?.contains("host launch") ?? false
                c.compare("replays, host launches", actual: [Float(captured.eagerSteps), Float(captured.replays),
                                                             hostLaunches ? 1 : 0],
                          expected: [1, Float(learningRates.count - 1), launch == .graph ? 0 : 1], .exact,
                          note: captured.fallbackReason.map { "eager: \($0)" })
                do {
                    try communicator.shutdown()
                } catch {
                    fatalError("selftest data-parallel step (\(launch.rawValue)): shutting the communicator down: \(error)")
                }
            }
        }
    }
}
