import CohortKernels
import CohortNN
import CohortOptim
import CohortTensor

extension Tolerance {
    /// A replay runs the kernels of the eager step with the same arguments
    /// (the learning rate read from device memory holds the same float), so
    /// the results agree bit for bit unless cuDNN picked an algorithm that
    /// accumulates with atomics, whose rounding order varies run to run.
    static let graphReplay = Tolerance(1e-4, maxAbsolute: 1e-3,
                                       "same kernels and arguments; only non-deterministic cuDNN algorithms may differ")
}

/// Graph capture and pinned staging, on the backend under test only (the
/// reference has neither): see `Note [Graph capture]` in docs/design.md.
extension BackendSelfTest {
    func graphChecks() -> [SelfTestCheck] {
        let batch = options.batch
        return [
            SelfTestCheck(name: "upload from staging memory", shape: "[\(batch), 32, 32, 3]") { c in
                let shape: Shape = [batch, 32, 32, 3]
                let host = c.uniform(shape)
                let staging: Tensor, device: Tensor
                do {
                    staging = try c.tested.makeHostStagingTensor(shape, dtype: .float32)
                    device = try c.tested.makeTensor(shape, dtype: .float32)
                } catch {
                    fatalError("selftest staging: cannot allocate \(shape): \(error)")
                }
                c.tested.fill(device, value: .nan)
                staging.rawPointer.copyMemory(from: host.rawPointer, byteCount: host.byteCount)
                c.tested.upload(staging, to: device)
                c.tested.waitForUploads(from: staging)
                staging.floats.update(repeating: .nan)  // the copy must have read the bytes already
                c.compare(nil, actual: c.tested.download(device).toArray(), expected: host.toArray(), .exact)
            },
            // Note [Deferred step reads]: a download that waits for a timestamp alone must see
            // every write before the stamp, with more work queued behind it (which it does not
            // wait for, and which leaves the snapshot alone, as the trainer's slots are left).
            SelfTestCheck(name: "download after a timestamp", shape: "[\(batch), 1000]") { c in
                let shape: Shape = [batch, 1000]
                let host = c.uniform(shape)
                guard let stamp = c.tested.makeTimestamp() else { return }  // host backends: nothing to defer
                let source: Tensor, snapshot: Tensor, busy: Tensor
                do {
                    source = try c.tested.makeTensor(copying: host)
                    snapshot = try c.tested.makeTensor(shape, dtype: .float32)
                    busy = try c.tested.makeTensor([1 << 22], dtype: .float32)
                } catch {
                    fatalError("selftest download after a timestamp: cannot allocate \(shape): \(error)")
                }
                c.tested.fill(snapshot, value: .nan)
                c.tested.copy(source, to: snapshot)
                c.tested.record(stamp)
                for value in 0..<50 { c.tested.fill(busy, value: Float(value)) }  // queued after the stamp
                c.compare(nil, actual: c.tested.download(snapshot, after: stamp).toArray(), expected: host.toArray(), .exact)
                c.tested.synchronize()
            },
            graphFillsCheck(),
            graphReplayCheck(),
        ]
    }

    /// Fills captured in a graph (memset nodes, which the CUDA backend turns
    /// into kernel nodes: Note [Memset nodes as kernels]) replayed twice over
    /// other values: each must write what it wrote eagerly, in its place
    /// between the work around it (the copy in between must read the first
    /// fill's value, not the second's).
    private func graphFillsCheck() -> SelfTestCheck {
        let batch = options.batch
        return SelfTestCheck(name: "fills inside a graph", shape: "[\(batch), 1000] fp32, [1001] bf16") { c in
            guard self.backendHasGraphs(c.tested) else { return }
            let shape: Shape = [batch, 1000]
            let wide: Tensor, copied: Tensor, narrow: Tensor
            do {
                wide = try c.tested.makeTensor(shape, dtype: .float32)
                copied = try c.tested.makeTensor(shape, dtype: .float32)
                narrow = try c.tested.makeTensor([1001], dtype: .bfloat16)
            } catch {
                fatalError("selftest fills inside a graph: cannot allocate: \(error)")
            }
            let graph: BackendGraph?
            do {
                graph = try c.tested.captureGraph {
                    c.tested.fill(wide, value: 0.5)    // 4-byte elements
                    c.tested.copy(wide, to: copied)
                    c.tested.fill(narrow, value: -2)   // 2-byte elements, an odd count
                    c.tested.fill(wide, value: 3)
                }
            } catch {
                fatalError("selftest fills inside a graph: capture failed: \(error)")
            }
            guard let graph else { return }
            for _ in 0..<2 {
                for tensor in [wide, copied, narrow] { c.tested.fill(tensor, value: .nan) }
                do { try graph.launch() } catch { fatalError("selftest fills inside a graph: replay failed: \(error)") }
                c.compare("copy of the first fill", actual: c.tested.download(copied).toArray(),
                          expected: [Float](repeating: 0.5, count: shape.elementCount), .exact, note: graph.summary)
                c.compare("second fill", actual: c.tested.download(wide).toArray(),
                          expected: [Float](repeating: 3, count: shape.elementCount), .exact)
                c.compare("bf16 fill", actual: c.tested.download(narrow).toArray(),
                          expected: [Float](repeating: -2, count: 1001), .exact)
            }
        }
    }

    /// Two identical ResNet-18s on the backend under test: one trained by a
    /// plain eager loop, one through `CapturedStep` (one eager warm-up step,
    /// then a capture and two more replays), with a different learning rate
    /// at every step (which a graph that froze it would get wrong). Compares
    /// parameters, running statistics, `num_batches_tracked` and the
    /// optimiser's step count. No rows on a backend without graphs.
    private func graphReplayCheck() -> SelfTestCheck {
        let batch = options.batch
        let learningRates: [Float] = [0.1, 0.05, 0.08, 0.02]
        return SelfTestCheck(name: "graph replay", shape: "resnet18 batch \(batch), 1 eager + 3 graph steps") { c in
            guard self.backendHasGraphs(c.tested) else { return }
            // Eager and replayed steps alike on deterministic algorithms: see compareReplay.
            c.tested.setDeterministicAlgorithms(true)
            defer { c.tested.setDeterministicAlgorithms(false) }
            let seed = c.random.next()
            let hostImages = c.uniform([batch, 32, 32, 3], -2...2), hostLabels = c.labels(batch, classes: 10)
            var models: [ResNet18] = [], optimizers: [Optimizer] = [], criteria: [SoftmaxCrossEntropy] = []
            let images: Tensor, labels: Tensor
            do {
                images = try c.tested.makeTensor(copying: hostImages)
                labels = try c.tested.makeTensor(copying: hostLabels)
                for _ in 0..<3 {
                    let model = try ResNet18(backend: c.tested, classCount: 10, seed: seed)
                    model.store.setWeightDecay(false) { $0.shape.rank == 1 }
                    models.append(model)
                    optimizers.append(try Optimizer(store: model.store, configuration: OptimizerConfiguration(
                        momentum: 0.9, weightDecay: 5e-4, nesterov: true)))
                    criteria.append(try SoftmaxCrossEntropy(backend: c.tested, labelSmoothing: 0.1))
                }
            } catch {
                fatalError("selftest graph replay: cannot build the models: \(error)")
            }
            // Eager first (twice: the second run measures the backend's own
            // run-to-run variation, e.g. cuDNN algorithms that accumulate with
            // atomics): its first step allocates, which would make the graph stale.
            for model in [0, 2] {
                for learningRate in learningRates {
                    criteria[model](logits: models[model].forward(images, mode: .training), labels: labels)
                    models[model].backward(criteria[model].backward())
                    optimizers[model].step(learningRate: learningRate)
                }
            }
            let captured: CapturedStep
            do {
                captured = try CapturedStep(optimizer: optimizers[1], warmUpSteps: 1) {
                    criteria[1](logits: models[1].forward(images, mode: .training), labels: labels)
                    models[1].backward(criteria[1].backward())
                }
                for learningRate in learningRates { try captured.run(learningRate: learningRate, inputs: [images, labels]) }
            } catch {
                fatalError("selftest graph replay: \(error)")
            }
            c.tested.synchronize()
            self.compareReplay(c, eager: models[0].store, graph: models[1].store, repeated: models[2].store,
                          losses: (criteria[0].loss, criteria[1].loss), note: captured.graphSummary)
            c.compare("replays and step count",
                      actual: [Float(captured.eagerSteps), Float(captured.replays), Float(optimizers[1].stepCount)],
                      expected: [1, Float(learningRates.count - 1), Float(optimizers[0].stepCount)], .exact,
                      note: captured.fallbackReason.map { "eager: \($0)" })
        }
    }

    /// Compares a model trained through replays (`graph`) with the same steps
    /// run eagerly (`eager`), within the backend's own run-to-run variation
    /// (`repeated`: the eager steps again): parameters, running statistics,
    /// the last loss and `num_batches_tracked`.
    func compareReplay(_ c: SelfTestContext, eager: ParameterStore, graph: ParameterStore, repeated: ParameterStore,
                       losses: (eager: Tensor, graph: Tensor), note: String?) {
        let eagerParameters = c.tested.download(eager.parameters).toArray()
        // The same eager steps twice give the backend's own run-to-run
        // variation: cuDNN's fastest algorithms may accumulate with atomics,
        // and four SGD steps at batch 8 amplify those roundings (measured on
        // an H200: 2e-2 normwise between two eager runs, and 1e-5 on another
        // machine whose search chose other algorithms, 2026-11-28). So the
        // callers run on deterministic algorithms (setDeterministicAlgorithms),
        // where the repeat agrees bit for bit and a replay must too, within the
        // fixed bound; on a backend that cannot, a replay must stay within 3
        // times the variation. A frozen learning rate or a stale buffer is off
        // by far more than the fixed bound (a read before a write: 3.5e-2).
        let variation = RelativeError(c.tested.download(repeated.parameters).toArray(), eagerParameters)
        let replay = variation.normwise <= Tolerance.graphReplay.bound ? Tolerance.graphReplay : Tolerance(
            max(Tolerance.graphReplay.bound, 3 * variation.normwise),
            maxAbsolute: max(Tolerance.graphReplay.maxAbsolute ?? 0, 3 * variation.maxAbsolute),
            "3x the backend's run-to-run variation (two eager runs: \(String(format: "%.1e", variation.normwise)) normwise)")
        c.compare("eager repeat parameters", actual: c.tested.download(repeated.parameters).toArray(),
                  expected: eagerParameters, replay,
                  note: "the same eager steps twice: the backend's run-to-run variation")
        c.compare("parameters", actual: c.tested.download(graph.parameters).toArray(),
                  expected: eagerParameters, replay, note: note)
        c.compare("runningStatistics", actual: c.tested.download(graph.statistics).toArray(),
                  expected: c.tested.download(eager.statistics).toArray(), replay)
        c.compare("loss", actual: c.tested.download(losses.graph).toArray(),
                  expected: c.tested.download(losses.eager).toArray(), replay)
        c.compare("num_batches_tracked", actual: graph.counters.map(Float.init),
                  expected: eager.counters.map(Float.init), .exact)
    }

    /// Captures one fill: nil means the backend has no graphs.
    func backendHasGraphs(_ backend: Backend) -> Bool {
        do {
            let probe = try backend.makeTensor([1])
            let graph = try backend.captureGraph { backend.fill(probe, value: 1) }
            backend.synchronize()
            return graph != nil
        } catch {
            fatalError("selftest graph replay: capturing a single fill failed: \(error)")
        }
    }
}
