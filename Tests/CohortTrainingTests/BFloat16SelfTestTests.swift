import CohortKernels
import CohortOneDNN
import CohortTensor
import CohortTraining
import XCTest

/// The bf16 rows of the self-test (Note [bf16 self-test]): they run on a
/// backend with bf16 compute, are skipped with a note on one without, and
/// their tolerances hold for a backend that computes bf16 the way the GPU
/// does, in float32 in another order than the reference, rounding once.
final class BFloat16SelfTestTests: XCTestCase {
    func testReferenceRunsEveryBFloat16Row() {
        let selfTest = BackendSelfTest(backend: ReferenceBackend(), options: .init(seed: 7, quick: true, filter: " bf16"))
        XCTAssertTrue(selfTest.runsBFloat16Ops)
        XCTAssertEqual(selfTest.notes, [])
        let report = selfTest.run()
        XCTAssertGreaterThan(report.rows.count, 150)
        XCTAssertEqual(report.failures.map(SelfTestReport.tableLine), [])
        for method in ["conv2dForward", "conv2dBackwardData", "conv2dBackwardWeight", "batchNormForwardTraining",
                       "batchNormForwardInference", "batchNormBackward", "reluForward", "reluBackward", "add",
                       "globalAveragePoolForward", "globalAveragePoolBackward", "linearForward", "linearBackward",
                       "softmaxCrossEntropyForward", "softmaxCrossEntropyBackward", "resnet18 step"] {
            XCTAssertTrue(report.rows.contains { $0.check.hasPrefix(method) && $0.check.contains(" bf16") },
                          "no bf16 row for \(method)")
        }
    }

    func testNoBFloat16SkipsTheRows() {
        let selfTest = BackendSelfTest(backend: ReferenceBackend(), options: .init(quick: true, bfloat16: false))
        XCTAssertFalse(selfTest.runsBFloat16Ops)
        XCTAssertFalse(selfTest.plannedChecks.contains { $0.name.contains("bf16") || $0.name.contains("bfloat16") })
    }

    func testBackendWithoutBFloat16ComputeSkipsTheOpRowsWithANote() throws {
        let backend: OneDNNBackend
        do { backend = try OneDNNBackend() } catch { throw XCTSkip("oneDNN is not available: \(error)") }
        let selfTest = BackendSelfTest(backend: backend, options: .init(quick: true))
        XCTAssertFalse(selfTest.runsBFloat16Ops)
        XCTAssertEqual(selfTest.notes.count, 1)
        XCTAssertTrue(selfTest.notes[0].contains("onednn"), selfTest.notes[0])
        let names = selfTest.plannedChecks.map(\.name)
        XCTAssertFalse(names.contains { $0.contains(" bf16") })
        XCTAssertTrue(names.contains("copy float32->bfloat16"))
    }

    /// oneDNN's float32 ops on widened bf16 inputs, outputs rounded once:
    /// the GPU's scheme with another summation order than the reference's,
    /// so rounding flips happen as they will on the GPU. Every bf16 row,
    /// the ResNet-18 step included, must pass.
    func testBFloat16TolerancesHoldForAnotherFloat32Implementation() throws {
        let base: OneDNNBackend
        do { base = try OneDNNBackend() } catch { throw XCTSkip("oneDNN is not available: \(error)") }
        let backend = WideningBackend(base)
        let report = BackendSelfTest(backend: backend, options: .init(seed: 11, quick: true, filter: " bf16")).run()
        XCTAssertGreaterThan(report.rows.count, 150)
        XCTAssertEqual(report.failures.map(SelfTestReport.tableLine), [], "seed \(report.seed)")
        let step = report.rows.filter { $0.check.hasPrefix("resnet18 step bf16") }
        XCTAssertEqual(step.count, 7)
        print(step.map(SelfTestReport.tableLine).joined(separator: "\n"))
    }
}

/// A float32 backend made to take bf16 arguments as the GPU does: each
/// bf16 input widened to float32, the base op run, each bf16 output rounded
/// (RNE) from a float32 scratch.
final class WideningBackend: Backend {
    let base: Backend
    init(_ base: Backend) { self.base = base }

    var name: String { "widened \(base.name)" }
    var device: Device { base.device }
    var details: String { "\(base.name) in float32 on widened bf16 arguments" }
    var supportsBFloat16: Bool { true }

    func makeTensor(_ shape: Shape, dtype: DType) throws -> Tensor { try base.makeTensor(shape, dtype: dtype) }
    func upload(_ source: Tensor, to destination: Tensor) { base.upload(source, to: destination) }
    func download(_ source: Tensor) -> Tensor { base.download(source) }
    func fill(_ tensor: Tensor, value: Float) { base.fill(tensor, value: value) }
    func copy(_ source: Tensor, to destination: Tensor) { base.copy(source, to: destination) }
    func synchronize() { base.synchronize() }

    /// `tensor` if float32, else a float32 copy.
    private func wide(_ tensor: Tensor) -> Tensor {
        guard tensor.dtype == .bfloat16 else { return tensor }
        let copy = try! base.makeTensor(tensor.shape)
        base.copy(tensor, to: copy)
        return copy
    }

    /// Runs `body` with float32 stand-ins for `outputs` (which may be inputs
    /// too: the stand-ins start with their values), then rounds them back.
    private func withOutputs(_ outputs: [Tensor], _ body: ([Tensor]) -> Void) {
        let stand = outputs.map(wide)
        body(stand)
        for (original, copy) in zip(outputs, stand) where original !== copy { base.copy(copy, to: original) }
    }

    func conv2dForward(output: Tensor, input: Tensor, weight: Tensor, geometry: Conv2dGeometry) {
        let (x, w) = (wide(input), wide(weight))
        withOutputs([output]) { base.conv2dForward(output: $0[0], input: x, weight: w, geometry: geometry) }
    }

    func conv2dBackwardData(dInput: Tensor, dOutput: Tensor, weight: Tensor, geometry: Conv2dGeometry) {
        let (dy, w) = (wide(dOutput), wide(weight))
        withOutputs([dInput]) { base.conv2dBackwardData(dInput: $0[0], dOutput: dy, weight: w, geometry: geometry) }
    }

    func conv2dBackwardWeight(dWeight: Tensor, input: Tensor, dOutput: Tensor, geometry: Conv2dGeometry) {
        let (x, dy) = (wide(input), wide(dOutput))
        withOutputs([dWeight]) { base.conv2dBackwardWeight(dWeight: $0[0], input: x, dOutput: dy, geometry: geometry) }
    }

    func batchNormForwardTraining(output: Tensor, input: Tensor, scale: Tensor, shift: Tensor,
                                  runningMean: Tensor, runningVar: Tensor, savedMean: Tensor, savedInvStd: Tensor,
                                  momentum: Float, epsilon: Float, fuseReLU: Bool) {
        let x = wide(input)
        withOutputs([output]) {
            base.batchNormForwardTraining(output: $0[0], input: x, scale: scale, shift: shift, runningMean: runningMean,
                                          runningVar: runningVar, savedMean: savedMean, savedInvStd: savedInvStd,
                                          momentum: momentum, epsilon: epsilon, fuseReLU: fuseReLU)
        }
    }

    func batchNormForwardInference(output: Tensor, input: Tensor, scale: Tensor, shift: Tensor,
                                   runningMean: Tensor, runningVar: Tensor, epsilon: Float, fuseReLU: Bool) {
        let x = wide(input)
        withOutputs([output]) {
            base.batchNormForwardInference(output: $0[0], input: x, scale: scale, shift: shift, runningMean: runningMean,
                                           runningVar: runningVar, epsilon: epsilon, fuseReLU: fuseReLU)
        }
    }

    func batchNormBackward(dInput: Tensor, dScale: Tensor, dShift: Tensor, dOutput: Tensor, input: Tensor,
                           output: Tensor, scale: Tensor, savedMean: Tensor, savedInvStd: Tensor, fuseReLU: Bool) {
        let (dy, x, y) = (wide(dOutput), wide(input), wide(output))
        withOutputs([dInput]) {
            base.batchNormBackward(dInput: $0[0], dScale: dScale, dShift: dShift, dOutput: dy, input: x, output: y,
                                   scale: scale, savedMean: savedMean, savedInvStd: savedInvStd, fuseReLU: fuseReLU)
        }
    }

    func reluForward(output: Tensor, input: Tensor) {
        let x = wide(input)
        withOutputs([output]) { base.reluForward(output: $0[0], input: x) }
    }

    func reluBackward(dInput: Tensor, dOutput: Tensor, output: Tensor) {
        let (dy, y) = (wide(dOutput), wide(output))
        withOutputs([dInput]) { base.reluBackward(dInput: $0[0], dOutput: dy, output: y) }
    }

    func add(output: Tensor, _ a: Tensor, _ b: Tensor, fuseReLU: Bool) {
        let (x, z) = (wide(a), wide(b))
        withOutputs([output]) { base.add(output: $0[0], x, z, fuseReLU: fuseReLU) }
    }

    func globalAveragePoolForward(output: Tensor, input: Tensor) {
        let x = wide(input)
        withOutputs([output]) { base.globalAveragePoolForward(output: $0[0], input: x) }
    }

    func globalAveragePoolBackward(dInput: Tensor, dOutput: Tensor) {
        let dy = wide(dOutput)
        withOutputs([dInput]) { base.globalAveragePoolBackward(dInput: $0[0], dOutput: dy) }
    }

    func linearForward(output: Tensor, input: Tensor, weight: Tensor, bias: Tensor) {
        let (x, w) = (wide(input), wide(weight))
        withOutputs([output]) { base.linearForward(output: $0[0], input: x, weight: w, bias: bias) }
    }

    func linearBackward(dInput: Tensor?, dWeight: Tensor, dBias: Tensor, dOutput: Tensor, input: Tensor, weight: Tensor) {
        let (dy, x, w) = (wide(dOutput), wide(input), wide(weight))
        withOutputs([dInput].compactMap { $0 }) {
            base.linearBackward(dInput: $0.first, dWeight: dWeight, dBias: dBias, dOutput: dy, input: x, weight: w)
        }
    }

    func softmaxCrossEntropyForward(loss: Tensor, probabilities: Tensor, correct: Tensor, logits: Tensor, labels: Tensor,
                                    labelSmoothing: Float) {
        base.softmaxCrossEntropyForward(loss: loss, probabilities: probabilities, correct: correct, logits: wide(logits),
                                        labels: labels, labelSmoothing: labelSmoothing)
    }

    func softmaxCrossEntropyBackward(dLogits: Tensor, probabilities: Tensor, labels: Tensor, labelSmoothing: Float) {
        withOutputs([dLogits]) {
            base.softmaxCrossEntropyBackward(dLogits: $0[0], probabilities: probabilities, labels: labels,
                                             labelSmoothing: labelSmoothing)
        }
    }

    func optimizerStep(parameters: Tensor, gradients: Tensor, momentumBuffer: Tensor, segments: [ParameterSegment],
                       configuration: OptimizerStepConfiguration) {
        base.optimizerStep(parameters: parameters, gradients: wide(gradients), momentumBuffer: momentumBuffer,
                           segments: segments, configuration: configuration)
    }
}
