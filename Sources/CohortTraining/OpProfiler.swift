import CohortKernels
import CohortTensor
import Foundation

/// A backend that runs every op on another backend and times it: it waits
/// for the device before and after each call, so each time is that op's own
/// device time (plus a synchronisation's latency, some microseconds). Slower
/// than the real step, and meant for finding where a step's time goes
/// (`cohort bench --profile-ops`), not for throughput figures. No graphs:
/// a replay would hide the ops.
public final class OpProfiler: Backend {
    public let inner: Backend
    public var name: String { inner.name }
    public var device: Device { inner.device }
    public var details: String { inner.details + " (op profiler)" }
    public var supportsBFloat16: Bool { inner.supportsBFloat16 }

    /// Accumulated seconds and calls per (op, shape) while `isRecording`.
    public struct Entry: Codable, Sendable {
        public var op: String
        public var shape: String
        public var calls: Int
        public var seconds: Double
    }

    private var entries: [String: Entry] = [:]
    public var isRecording = false

    public init(_ inner: Backend) { self.inner = inner }

    /// Entries, most time first.
    public var report: [Entry] { entries.values.sorted { $0.seconds > $1.seconds } }

    public func reset() { entries = [:] }

    private func measure(_ op: String, _ shape: @autoclosure () -> String, _ body: () -> Void) {
        guard isRecording else { return body() }
        inner.synchronize()
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        inner.synchronize()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let label = shape(), key = op + "|" + label
        entries[key, default: Entry(op: op, shape: label, calls: 0, seconds: 0)].calls += 1
        entries[key]!.seconds += seconds
    }

    // MARK: Memory (not timed: outside a step's work)

    public func makeTensor(_ shape: Shape, dtype: DType) throws -> Tensor { try inner.makeTensor(shape, dtype: dtype) }
    public func upload(_ source: Tensor, to destination: Tensor) { inner.upload(source, to: destination) }
    public func download(_ source: Tensor) -> Tensor { inner.download(source) }
    public func fill(_ tensor: Tensor, value: Float) { inner.fill(tensor, value: value) }
    public func synchronize() { inner.synchronize() }
    public func makeHostStagingTensor(_ shape: Shape, dtype: DType) throws -> Tensor {
        try inner.makeHostStagingTensor(shape, dtype: dtype)
    }
    public func waitForUploads(from host: Tensor) { inner.waitForUploads(from: host) }
    public func captureGraph(_ body: () throws -> Void) throws -> BackendGraph? { nil }
    public func makeTimestamp() -> DeviceTimestamp? { inner.makeTimestamp() }
    public func record(_ timestamp: DeviceTimestamp) { inner.record(timestamp) }
    public func seconds(from start: DeviceTimestamp, to end: DeviceTimestamp) -> Double? {
        inner.seconds(from: start, to: end)
    }

    public func copy(_ source: Tensor, to destination: Tensor) {
        measure("copy", "\(source.shape) \(source.dtype)->\(destination.dtype)") { inner.copy(source, to: destination) }
    }

    public func copy(_ source: Tensor, to destination: Tensor, scaledBy scale: Float) {
        measure("copy", "\(source.shape) \(source.dtype)->\(destination.dtype) x\(scale)") {
            inner.copy(source, to: destination, scaledBy: scale)
        }
    }

    // MARK: Ops

    public func conv2dForward(output: Tensor, input: Tensor, weight: Tensor, geometry: Conv2dGeometry) {
        measure("conv2dForward", "\(geometry) \(input.dtype)") {
            inner.conv2dForward(output: output, input: input, weight: weight, geometry: geometry)
        }
    }

    public func conv2dBackwardData(dInput: Tensor, dOutput: Tensor, weight: Tensor, geometry: Conv2dGeometry) {
        measure("conv2dBackwardData", "\(geometry) \(dOutput.dtype)") {
            inner.conv2dBackwardData(dInput: dInput, dOutput: dOutput, weight: weight, geometry: geometry)
        }
    }

    public func conv2dBackwardData(dInput: Tensor, dOutput: Tensor, weight: Tensor, geometry: Conv2dGeometry,
                                   weightAsInForward: Bool) {
        measure("conv2dBackwardData", "\(geometry) \(dOutput.dtype)") {
            inner.conv2dBackwardData(dInput: dInput, dOutput: dOutput, weight: weight, geometry: geometry,
                                     weightAsInForward: weightAsInForward)
        }
    }

    public func conv2dBackwardWeight(dWeight: Tensor, input: Tensor, dOutput: Tensor, geometry: Conv2dGeometry) {
        measure("conv2dBackwardWeight", "\(geometry) \(input.dtype)") {
            inner.conv2dBackwardWeight(dWeight: dWeight, input: input, dOutput: dOutput, geometry: geometry)
        }
    }

    public func batchNormForwardTraining(output: Tensor, input: Tensor, scale: Tensor, shift: Tensor,
                                         runningMean: Tensor, runningVar: Tensor, savedMean: Tensor, savedInvStd: Tensor,
                                         momentum: Float, epsilon: Float, fuseReLU: Bool) {
        measure("batchNormForwardTraining\(fuseReLU ? "+relu" : "")", "\(input.shape) \(input.dtype)") {
            inner.batchNormForwardTraining(output: output, input: input, scale: scale, shift: shift,
                                           runningMean: runningMean, runningVar: runningVar, savedMean: savedMean,
                                           savedInvStd: savedInvStd, momentum: momentum, epsilon: epsilon, fuseReLU: fuseReLU)
        }
    }

    public func batchNormForwardInference(output: Tensor, input: Tensor, scale: Tensor, shift: Tensor,
                                          runningMean: Tensor, runningVar: Tensor, epsilon: Float, fuseReLU: Bool) {
        measure("batchNormForwardInference", "\(input.shape) \(input.dtype)") {
            inner.batchNormForwardInference(output: output, input: input, scale: scale, shift: shift,
                                            runningMean: runningMean, runningVar: runningVar, epsilon: epsilon,
                                            fuseReLU: fuseReLU)
        }
    }

    public func batchNormBackward(dInput: Tensor, dScale: Tensor, dShift: Tensor, dOutput: Tensor, input: Tensor,
                                  output: Tensor, scale: Tensor, savedMean: Tensor, savedInvStd: Tensor, fuseReLU: Bool) {
        measure("batchNormBackward\(fuseReLU ? "+relu" : "")", "\(input.shape) \(input.dtype)") {
            inner.batchNormBackward(dInput: dInput, dScale: dScale, dShift: dShift, dOutput: dOutput, input: input,
                                    output: output, scale: scale, savedMean: savedMean, savedInvStd: savedInvStd,
                                    fuseReLU: fuseReLU)
        }
    }

    public func reluForward(output: Tensor, input: Tensor) {
        measure("reluForward", "\(input.shape) \(input.dtype)") { inner.reluForward(output: output, input: input) }
    }

    public func reluBackward(dInput: Tensor, dOutput: Tensor, output: Tensor) {
        measure("reluBackward", "\(dOutput.shape) \(dOutput.dtype)") {
            inner.reluBackward(dInput: dInput, dOutput: dOutput, output: output)
        }
    }

    public func add(output: Tensor, _ a: Tensor, _ b: Tensor, fuseReLU: Bool) {
        measure("add\(fuseReLU ? "+relu" : "")", "\(a.shape) \(a.dtype)") { inner.add(output: output, a, b, fuseReLU: fuseReLU) }
    }

    public func globalAveragePoolForward(output: Tensor, input: Tensor) {
        measure("globalAveragePoolForward", "\(input.shape) \(input.dtype)") {
            inner.globalAveragePoolForward(output: output, input: input)
        }
    }

    public func globalAveragePoolBackward(dInput: Tensor, dOutput: Tensor) {
        measure("globalAveragePoolBackward", "\(dInput.shape) \(dInput.dtype)") {
            inner.globalAveragePoolBackward(dInput: dInput, dOutput: dOutput)
        }
    }

    public func linearForward(output: Tensor, input: Tensor, weight: Tensor, bias: Tensor) {
        measure("linearForward", "\(input.shape) \(input.dtype)") {
            inner.linearForward(output: output, input: input, weight: weight, bias: bias)
        }
    }

    public func linearBackward(dInput: Tensor?, dWeight: Tensor, dBias: Tensor, dOutput: Tensor, input: Tensor, weight: Tensor) {
        measure("linearBackward", "\(input.shape) \(input.dtype)") {
            inner.linearBackward(dInput: dInput, dWeight: dWeight, dBias: dBias, dOutput: dOutput, input: input, weight: weight)
        }
    }

    public func softmaxCrossEntropyForward(loss: Tensor, probabilities: Tensor, correct: Tensor, logits: Tensor,
                                           labels: Tensor, labelSmoothing: Float) {
        measure("softmaxCrossEntropyForward", "\(logits.shape) \(logits.dtype)") {
            inner.softmaxCrossEntropyForward(loss: loss, probabilities: probabilities, correct: correct, logits: logits,
                                             labels: labels, labelSmoothing: labelSmoothing)
        }
    }

    public func softmaxCrossEntropyBackward(dLogits: Tensor, probabilities: Tensor, labels: Tensor, labelSmoothing: Float) {
        measure("softmaxCrossEntropyBackward", "\(dLogits.shape) \(dLogits.dtype)") {
            inner.softmaxCrossEntropyBackward(dLogits: dLogits, probabilities: probabilities, labels: labels,
                                              labelSmoothing: labelSmoothing)
        }
    }

    public func augmentImages(output: Tensor, images: Tensor, crops: Tensor, normalization: Tensor, padding: Int) {
        measure("augmentImages", "\(images.shape) ->\(output.dtype)") {
            inner.augmentImages(output: output, images: images, crops: crops, normalization: normalization, padding: padding)
        }
    }

    public func optimizerStep(parameters: Tensor, gradients: Tensor, momentumBuffer: Tensor,
                              segments: [ParameterSegment], configuration: OptimizerStepConfiguration) {
        measure("optimizerStep", "\(parameters.shape)") {
            inner.optimizerStep(parameters: parameters, gradients: gradients, momentumBuffer: momentumBuffer,
                                segments: segments, configuration: configuration)
        }
    }

    public func optimizerStep(parameters: Tensor, gradients: Tensor, momentumBuffer: Tensor,
                              segments: [ParameterSegment], configuration: OptimizerStepConfiguration,
                              learningRate: Tensor) {
        measure("optimizerStep", "\(parameters.shape)") {
            inner.optimizerStep(parameters: parameters, gradients: gradients, momentumBuffer: momentumBuffer,
                                segments: segments, configuration: configuration, learningRate: learningRate)
        }
    }
}
