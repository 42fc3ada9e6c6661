import CohortKernels
import CohortNN
import CohortOptim
import CohortTensor

extension Tolerance {
    /// A whole training step chains about 40 ops, so it is held to looser
    /// bounds than its ops; it catches what they cannot: views into the flat
    /// buffers, aliasing inside a block, the order of asynchronous calls.
    ///
    /// The forward is smooth: each layer's rounding passes through the ones
    /// after it (measured with oneDNN: 2e-6..4e-6 on logits). The backward is
    /// not: where two backends' forward values straddle 0, a ReLU mask flips
    /// and that element's gradient is dropped on one side only, which moves
    /// every gradient below it (measured with oneDNN fp32 at batch 8 over 13
    /// seeds: 1e-5 without a flip, up to 1e-2 normwise and 9e-2 max-abs in
    /// single tensors with one). A
    /// real fault (a gradient unwritten, a missing shortcut, a wrong view)
    /// errs by order 1.
    ///
    /// At batch 2 (`--quick`) a flip weighs more: batch norm's statistics
    /// come from a quarter of the samples, so one dropped element moves
    /// them, and every gradient below, further. Measured with oneDNN fp32 at
    /// batch 2 over 61 seeds (2026-11-27): a flip in half of them, up to
    /// 3.9e-2 normwise and 0.42 max-abs; hence twice that there.
    static func modelStep(_ precision: MatrixPrecision, _ what: ModelStepOutput, batch: Int = 8) -> Tolerance {
        switch (precision, what) {
        case (.float32, .forward):
            return Tolerance(1e-4, "ResNet-18 forward: ~20 fp32 layers' rounding, amplified by batch norm")
        case (.float32, .backward) where batch < 8, (.float32, .backwardVectors) where batch < 8:
            return Tolerance(8e-2, maxAbsolute: 8e-1,
                             "ResNet-18 gradients and update at batch \(batch), per tensor: ReLU flips move small-batch statistics (oneDNN: 3.9e-2/0.42)")
        case (.float32, .backward), (.float32, .backwardVectors):
            return Tolerance(3e-2, maxAbsolute: 3e-1,
                             "ResNet-18 gradients and update, per tensor: ReLU masks flip near 0 (oneDNN: 1e-2/9e-2)")
        case (.tf32, .forward):
            return Tolerance(2e-2, "ResNet-18 forward: ~20 TF32 layers (5e-4 each), amplified by batch norm")
        case (.tf32, .backward), (.tf32, .backwardVectors):
            // TF32 rounds each product's operands to 2^-11 (5e-4); the backward's
            // ~200x amplification (the bf16 note below) makes that order 0.1 in
            // layer1's batch-norm gradients, sums over 8x32x32 positions that
            // nearly cancel. Measured on an H200 (2026-11-27, b32520f), batch 8:
            // 0.103-0.132 normwise, up to 0.44 max-abs over five seeds with the
            // im2col stem (cuDNN's own convolutions: 0.087); the same seed with
            // --no-tf32 gave 5e-3, so the op chain itself is right.
            return Tolerance(2.5e-1, maxAbsolute: 7e-1,
                             "ResNet-18 gradients/update in TF32, per tensor: backward amplifies 2^-11 rounding (measured 0.13/0.44)")
        }
    }

    /// The bf16 step (both sides a `.bfloat16` model, Note [bf16 self-test]).
    /// Forward: each layer rounds its output to bf16; where the two sides'
    /// float32 results differ by a hair an element rounds one ulp (2^-8)
    /// apart, and batch norm carries that through ~20 layers. Backward: the
    /// float32 step shows the backward amplifying rounding ~200x by the first
    /// layers (2^-24 -> 1e-5); from bf16's 2^-9 that is order 0.3. Measured
    /// with oneDNN float32 on widened bf16 arguments against the reference
    /// (BFloat16SelfTestTests; 6 seeds at batch 2, 3 at batch 8): logits
    /// 9e-3, running statistics 3e-3; gradients per tensor up to 0.41
    /// normwise and 0.61 max-abs, in layer1 and conv1 (layer4 and fc far
    /// less). So the backward rows catch unwritten (NaN), zero (1.0) or
    /// unrelated (1.4) gradients and wiring faults, not small scale errors:
    /// those are the op rows' job.
    static func modelStepBFloat16(_ what: ModelStepOutput) -> Tolerance {
        switch what {
        case .forward:
            return Tolerance(5e-2, maxAbsolute: 1e-1,
                             "bf16 ResNet-18 forward: ~20 layers rounding to bf16, 1-ulp flips carried (measured 9e-3)")
        case .backward, .backwardVectors:
            return Tolerance(6e-1, maxAbsolute: 9e-1,
                             "bf16 ResNet-18 gradients/update per tensor: backward amplifies bf16 rounding (measured 0.41/0.61)")
        }
    }
}

/// What part of a training step a model-step row compares.
enum ModelStepOutput {
    case forward
    /// Gradients and updates (in bf16: of the convolution and linear weights).
    case backward
    /// In bf16: of the rank-1 tensors (batch-norm scale and shift, the linear bias).
    case backwardVectors
}

/// A whole ResNet-18 training step on both backends from the same seeded
/// model, images and labels: logits, loss and running statistics after the
/// forward, every parameter's gradient after the backward (the gradient
/// buffer is poisoned first, so a gradient left unwritten shows), and the
/// parameters after one SGD step (momentum 0.9, Nesterov, weight decay 5e-4
/// with batch-norm parameters and biases exempt, label smoothing 0.1),
/// compared as the update each tensor received, `w_after - w_before`: the
/// weights themselves would hide an update that is wholly wrong behind |w|.
///
/// With `.bfloat16` both models compute in bf16 (float32 masters, gradients
/// and optimiser state, so the gradient and update rows compare float32 buffers).
extension BackendSelfTest {
    func modelStepCheck(_ modelPrecision: Precision) -> SelfTestCheck {
        let batch = options.batch, matrixPrecision = options.matrixPrecision
        func tolerance(_ what: ModelStepOutput) -> Tolerance {
            modelPrecision == .bfloat16 ? .modelStepBFloat16(what) : .modelStep(matrixPrecision, what, batch: batch)
        }
        return SelfTestCheck(name: checkName("resnet18 step", modelPrecision.dtype),
                             shape: "batch \(batch), 32x32x3, 10 classes") { c in
            let seed = c.random.next()
            let images = c.pair(c.uniform([batch, 32, 32, 3], -2...2), modelPrecision.dtype), labels = c.pair(c.labels(batch, classes: 10))
            var models: [ResNet18] = [], optimizers: [Optimizer] = [], criteria: [SoftmaxCrossEntropy] = []
            do {
                for backend in [c.reference, c.tested] as [Backend] {
                    let model = try ResNet18(backend: backend, classCount: 10, seed: seed, precision: modelPrecision)
                    model.store.setWeightDecay(false) { $0.shape.rank == 1 }
                    models.append(model)
                    optimizers.append(try Optimizer(store: model.store, configuration: OptimizerConfiguration(
                        momentum: 0.9, weightDecay: 5e-4, nesterov: true)))
                    criteria.append(try SoftmaxCrossEntropy(backend: backend, labelSmoothing: 0.1))
                }
            } catch {
                fatalError("selftest resnet18 step: cannot build the model: \(error)")
            }
            let (reference, tested) = (models[0], models[1])
            var logits: [Tensor] = []
            for (index, side) in [\TensorPair.reference, \TensorPair.tested].enumerated() {
                logits.append(models[index].forward(images[keyPath: side], mode: .training))
                criteria[index](logits: logits[index], labels: labels[keyPath: side])
            }
            c.compare("logits", TensorPair(tested: logits[1], reference: logits[0]), tolerance(.forward))
            c.compare("loss", TensorPair(tested: criteria[1].loss, reference: criteria[0].loss), tolerance(.forward))
            c.compare("runningStatistics", TensorPair(tested: tested.store.statistics, reference: reference.store.statistics),
                      tolerance(.forward))

            c.tested.fill(tested.store.gradients, value: .nan)
            for index in models.indices { models[index].backward(criteria[index].backward()) }
            let gradients = (c.tested.download(tested.store.gradients).toArray(), reference.store.gradients.toArray())
            // bf16: conv/linear weights apart from batch-norm scale/shift and the bias (rank 1); float32: one row.
            let groups: [(label: String, what: ModelStepOutput, includes: (ParameterEntry) -> Bool)] =
                modelPrecision == .bfloat16
                ? [(" weights", .backward, { $0.shape.rank > 1 }),
                   (" bn+bias", .backwardVectors, { $0.shape.rank == 1 })]
                : [("", .backward, { _ in true })]
            for group in groups {
                self.compareByTensor(c, "gradients" + group.label, reference.store, gradients, tolerance(group.what),
                                     where: group.includes)
            }

            let before = (c.tested.download(tested.store.parameters).toArray(), reference.store.parameters.toArray())
            for optimizer in optimizers { optimizer.step(learningRate: 0.1) }
            let after = (c.tested.download(tested.store.parameters).toArray(), reference.store.parameters.toArray())
            let updates = (zip(after.0, before.0).map { $0 - $1 }, zip(after.1, before.1).map { $0 - $1 })
            for group in groups {
                self.compareByTensor(c, "parameterUpdate" + group.label, reference.store, updates, tolerance(group.what),
                                     where: group.includes)
            }
        }
    }

    /// One row for a flat buffer, judged tensor by tensor: each parameter's
    /// relative errors against its own norms; the row shows the worst tensor.
    private func compareByTensor(_ c: SelfTestContext, _ output: String, _ store: ParameterStore,
                                 _ values: (tested: [Float], reference: [Float]), _ tolerance: Tolerance,
                                 where includes: (ParameterEntry) -> Bool) {
        let (actual, expected) = values
        var worst = RelativeError(maxAbsolute: 0, normwise: 0, nonFinite: 0)
        var worstName = "", unwritten: [String] = []
        for entry in store.entries where entry.kind == .trainable && includes(entry) {
            let range = entry.offset..<(entry.offset + entry.shape.elementCount)
            let error = RelativeError(actual[range], expected[range])
            if error.nonFinite > 0 { unwritten.append(entry.name) }
            worst.nonFinite += error.nonFinite
            if error.nonFinite == 0 && error.normwise >= worst.normwise { worstName = entry.name }
            worst.maxAbsolute = max(worst.maxAbsolute, error.maxAbsolute)
            worst.normwise = max(worst.normwise, error.normwise)
        }
        if worst.nonFinite > 0 {
            worst.maxAbsolute = .nan
            worst.normwise = .nan
        }
        let note = unwritten.isEmpty
            ? "worst: \(worstName)"
            : "NaN or infinite in \(unwritten.count) tensors (unwritten?): " + unwritten.prefix(4).joined(separator: ", ")
        c.record(output, error: worst, tolerance: tolerance, note: note)
    }
}
