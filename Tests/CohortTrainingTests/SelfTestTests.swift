import CohortKernels
import CohortOneDNN
import CohortTensor
import CohortTraining
import Foundation
import XCTest

/// The self-test passes a correct backend and catches broken ones: a
/// perturbed ReLU (wrong values) and a convolution that leaves part of its
/// output unwritten (caught by the NaN poison).
final class SelfTestTests: XCTestCase {
    func testOneDNNPasses() throws {
        let backend: OneDNNBackend
        do {
            backend = try OneDNNBackend()
        } catch {
            throw XCTSkip("oneDNN is not available: \(error)")
        }
        let report = BackendSelfTest(backend: backend, options: .init(quick: true, bfloat16: true)).run()
        XCTAssertEqual(report.failedCount, 0, "seed \(report.seed):\n" + report.failures.map(SelfTestReport.tableLine).joined(separator: "\n"))
        XCTAssertGreaterThan(report.passedCount, 200)
        XCTAssertEqual(report.backend, "onednn")

        let json = try JSONSerialization.jsonObject(with: report.json()) as? [String: Any]
        XCTAssertEqual(json?["backend"] as? String, "onednn")
        XCTAssertEqual(json?["seed"] as? UInt64, report.seed)
        XCTAssertEqual(json?["failed"] as? Int, 0)
        XCTAssertEqual((json?["rows"] as? [Any])?.count, report.rows.count)
        XCTAssertNotNil(json?["date"] as? String)
    }

    /// Every check the run plans covers a method of `Backend`; the model step ends the run.
    func testEveryBackendMethodHasACheck() {
        let names = Set(BackendSelfTest(backend: ReferenceBackend(), options: .init(quick: true, bfloat16: true))
            .plannedChecks.map(\.name))
        let methods = ["upload", "download", "fill", "copy", "conv2dForward", "conv2dBackwardData", "conv2dBackwardWeight",
                       "batchNormForwardTraining", "batchNormForwardInference", "batchNormBackward", "reluForward",
                       "reluBackward", "add", "globalAveragePoolForward", "globalAveragePoolBackward", "linearForward",
                       "linearBackward", "softmaxCrossEntropyForward", "softmaxCrossEntropyBackward", "optimizerStep",
                       "bfloat16", "resnet18 step"]
        for method in methods {
            XCTAssertTrue(names.contains { $0.contains(method) }, "no check for \(method)")
        }
    }

    func testPerturbedReLUFailsOnlyTheReLUChecks() {
        let broken = PerturbedBackend(.reluOutputOffByOneThousandth)
        let report = BackendSelfTest(backend: broken, options: .init(quick: true)).run()
        let relu = report.rows.filter { $0.check.hasPrefix("reluForward") }
        XCTAssertEqual(relu.count, 6)
        for row in relu {
            XCTAssertFalse(row.passed, "\(row.check) \(row.shape) should fail")
            XCTAssertGreaterThan(row.maxRelativeError, 1e-4)
        }
        let others = report.rows.filter { !$0.check.hasPrefix("reluForward") }
        XCTAssertGreaterThan(others.count, 200)
        XCTAssertEqual(others.filter { !$0.passed }.map(\.check), [])
        XCTAssertEqual(report.failedCount, relu.count)
    }

    func testUnwrittenConvolutionOutputIsCaught() {
        let broken = PerturbedBackend(.convolutionSkipsLastImage)
        let convolutions = BackendSelfTest(backend: broken, options: .init(quick: true, filter: "conv2dForward")).run()
        XCTAssertEqual(convolutions.rows.count, 24)
        for row in convolutions.rows {
            XCTAssertFalse(row.passed, "\(row.shape) should fail")
            XCTAssertTrue(row.maxRelativeError.isNaN)
            XCTAssertTrue(row.note?.contains("NaN") ?? false, row.note ?? "no note")
        }
        let model = BackendSelfTest(backend: broken, options: .init(quick: true, filter: "resnet18")).run()
        XCTAssertFalse(model.rows.first { $0.check == "resnet18 step.logits" }?.passed ?? true)
    }
}

/// `ReferenceBackend` with one op broken on purpose.
final class PerturbedBackend: Backend {
    enum Fault {
        /// reluForward adds 1e-3 to every output element.
        case reluOutputOffByOneThousandth
        /// conv2dForward writes every image of the batch but the last.
        case convolutionSkipsLastImage
    }

    let fault: Fault
    let base = ReferenceBackend()
    init(_ fault: Fault) { self.fault = fault }

    var name: String { "perturbed" }
    var device: Device { base.device }
    var details: String { "the reference with \(fault)" }

    func makeTensor(_ shape: Shape, dtype: DType) throws -> Tensor { try base.makeTensor(shape, dtype: dtype) }
    func upload(_ source: Tensor, to destination: Tensor) { base.upload(source, to: destination) }
    func download(_ source: Tensor) -> Tensor { base.download(source) }
    func fill(_ tensor: Tensor, value: Float) { base.fill(tensor, value: value) }
    func copy(_ source: Tensor, to destination: Tensor) { base.copy(source, to: destination) }
    func synchronize() { base.synchronize() }

    func conv2dForward(output: Tensor, input: Tensor, weight: Tensor, geometry: Conv2dGeometry) {
        guard fault == .convolutionSkipsLastImage else {
            return base.conv2dForward(output: output, input: input, weight: weight, geometry: geometry)
        }
        let full = try! base.makeTensor(geometry.outputShape)
        base.conv2dForward(output: full, input: input, weight: weight, geometry: geometry)
        let imageSize = full.elementCount / geometry.batch
        let written: Shape = [full.elementCount - imageSize]
        base.copy(full.view(elementOffset: 0, shape: written), to: output.view(elementOffset: 0, shape: written))
    }

    func conv2dBackwardData(dInput: Tensor, dOutput: Tensor, weight: Tensor, geometry: Conv2dGeometry) {
        base.conv2dBackwardData(dInput: dInput, dOutput: dOutput, weight: weight, geometry: geometry)
    }

    func conv2dBackwardWeight(dWeight: Tensor, input: Tensor, dOutput: Tensor, geometry: Conv2dGeometry) {
        base.conv2dBackwardWeight(dWeight: dWeight, input: input, dOutput: dOutput, geometry: geometry)
    }

    func batchNormForwardTraining(output: Tensor, input: Tensor, scale: Tensor, shift: Tensor,
                                  runningMean: Tensor, runningVar: Tensor, savedMean: Tensor, savedInvStd: Tensor,
                                  momentum: Float, epsilon: Float, fuseReLU: Bool) {
        base.batchNormForwardTraining(output: output, input: input, scale: scale, shift: shift,
                                      runningMean: runningMean, runningVar: runningVar, savedMean: savedMean,
                                      savedInvStd: savedInvStd, momentum: momentum, epsilon: epsilon, fuseReLU: fuseReLU)
    }

    func batchNormForwardInference(output: Tensor, input: Tensor, scale: Tensor, shift: Tensor,
                                   runningMean: Tensor, runningVar: Tensor, epsilon: Float, fuseReLU: Bool) {
        base.batchNormForwardInference(output: output, input: input, scale: scale, shift: shift, runningMean: runningMean,
                                       runningVar: runningVar, epsilon: epsilon, fuseReLU: fuseReLU)
    }

    func batchNormBackward(dInput: Tensor, dScale: Tensor, dShift: Tensor, dOutput: Tensor, input: Tensor,
                           output: Tensor, scale: Tensor, savedMean: Tensor, savedInvStd: Tensor, fuseReLU: Bool) {
        base.batchNormBackward(dInput: dInput, dScale: dScale, dShift: dShift, dOutput: dOutput, input: input,
                               output: output, scale: scale, savedMean: savedMean, savedInvStd: savedInvStd,
                               fuseReLU: fuseReLU)
    }

    func reluForward(output: Tensor, input: Tensor) {
        base.reluForward(output: output, input: input)
        guard fault == .reluOutputOffByOneThousandth else { return }
        for index in output.floats.indices { output.floats[index] += 1e-3 }
    }

    func reluBackward(dInput: Tensor, dOutput: Tensor, output: Tensor) {
        base.reluBackward(dInput: dInput, dOutput: dOutput, output: output)
    }

    func add(output: Tensor, _ a: Tensor, _ b: Tensor, fuseReLU: Bool) { base.add(output: output, a, b, fuseReLU: fuseReLU) }
    func globalAveragePoolForward(output: Tensor, input: Tensor) { base.globalAveragePoolForward(output: output, input: input) }
    func globalAveragePoolBackward(dInput: Tensor, dOutput: Tensor) { base.globalAveragePoolBackward(dInput: dInput, dOutput: dOutput) }

    func linearForward(output: Tensor, input: Tensor, weight: Tensor, bias: Tensor) {
        base.linearForward(output: output, input: input, weight: weight, bias: bias)
    }

    func linearBackward(dInput: Tensor?, dWeight: Tensor, dBias: Tensor, dOutput: Tensor, input: Tensor, weight: Tensor) {
        base.linearBackward(dInput: dInput, dWeight: dWeight, dBias: dBias, dOutput: dOutput, input: input, weight: weight)
    }

    func softmaxCrossEntropyForward(loss: Tensor, probabilities: Tensor, correct: Tensor, logits: Tensor, labels: Tensor,
                                    labelSmoothing: Float) {
        base.softmaxCrossEntropyForward(loss: loss, probabilities: probabilities, correct: correct, logits: logits,
                                        labels: labels, labelSmoothing: labelSmoothing)
    }

    func softmaxCrossEntropyBackward(dLogits: Tensor, probabilities: Tensor, labels: Tensor, labelSmoothing: Float) {
        base.softmaxCrossEntropyBackward(dLogits: dLogits, probabilities: probabilities, labels: labels,
                                         labelSmoothing: labelSmoothing)
    }

    func optimizerStep(parameters: Tensor, gradients: Tensor, momentumBuffer: Tensor, segments: [ParameterSegment],
                       configuration: OptimizerStepConfiguration) {
        base.optimizerStep(parameters: parameters, gradients: gradients, momentumBuffer: momentumBuffer,
                           segments: segments, configuration: configuration)
    }
}
