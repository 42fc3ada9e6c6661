import CohortTensor

/// The operations a training step needs, as forward/backward pairs over
/// tensors that live on `device`.
///
/// Note [Backend contract]
/// - Layouts: activations NHWC, convolution weights OIHW, linear weights
///   `[out, in]` (see `Note [Layout]` in docs/design.md).
/// - Every call writes its outputs completely (no accumulation) unless it
///   says otherwise. Outputs never alias inputs unless the method allows it.
/// - Calls may run asynchronously (a GPU backend enqueues them on its
///   stream). Tensors passed in must stay alive until `synchronize()`; host
///   code reads results only through `download` or after `synchronize()`.
/// - Statistics (batch-norm saved mean and inverse std, running mean and
///   variance), losses and optimiser state are float32 on every backend.
/// - Implementations: `ReferenceBackend` (plain Swift, the test oracle),
///   `OneDNNBackend` (CPU), and later a CUDA one. A new backend is proven by
///   comparing every method with the reference on random inputs.
public protocol Backend: AnyObject {
    /// A short name printed when a run starts ("reference", "onednn", "cuda").
    var name: String { get }
    /// Where this backend's tensors live.
    var device: Device { get }
    /// What the backend found at start-up (library versions, ISA, threads).
    var details: String { get }
    /// Whether ops take bfloat16 activations and weights (`Note [Mixed precision]`).
    var supportsBFloat16: Bool { get }
    /// Restricts later ops to algorithms that give the same bits on every run
    /// (PyTorch's `torch.backends.cudnn.deterministic`): on CUDA, convolution
    /// algorithms cuDNN reports deterministic (no atomic accumulation), chosen
    /// and cached apart from the fastest ones. The self-test's replay checks use
    /// it, so a replay is compared with eager steps that differ from it only by
    /// how it was launched. Default: nothing (the host backends are deterministic).
    func setDeterministicAlgorithms(_ deterministic: Bool)

    // MARK: Memory

    /// A new uninitialised tensor on `device`.
    func makeTensor(_ shape: Shape, dtype: DType) throws -> Tensor
    /// Copies host `source` into `destination` (same shape and dtype).
    func upload(_ source: Tensor, to destination: Tensor)
    /// Copies `source` into a new host tensor, waiting for pending work.
    func download(_ source: Tensor) -> Tensor
    /// Sets every element to `value` (float32 or bfloat16 tensors).
    func fill(_ tensor: Tensor, value: Float)
    /// `destination = source`, converting between float32 and bfloat16 if their dtypes differ.
    func copy(_ source: Tensor, to destination: Tensor)
    /// float32 `destination = source * scale`, widening a bfloat16 `source`
    /// (how a summed bf16 all-reduce becomes an average: Note [Symmetric
    /// wire buffer]). Host backends share the default below.
    func copy(_ source: Tensor, to destination: Tensor, scaledBy scale: Float)
    /// Waits until every call issued so far has finished.
    func synchronize()

    // MARK: Convolution (no bias)

    /// output `[N,Ho,Wo,Co]` = conv(input `[N,H,W,Ci]`, weight `[Co,Ci,K,K]`).
    func conv2dForward(output: Tensor, input: Tensor, weight: Tensor, geometry: Conv2dGeometry)
    /// dInput `[N,H,W,Ci]` from dOutput `[N,Ho,Wo,Co]` and weight.
    func conv2dBackwardData(dInput: Tensor, dOutput: Tensor, weight: Tensor, geometry: Conv2dGeometry)
    /// The same, told whether `weight` still holds what it held at this backend's latest
    /// `conv2dForward` that read it (a layer's backward after its own forward, no optimizer step
    /// between): a backend may then reuse what that forward derived from it (the CUDA backend's
    /// KRSC copy, Note [KRSC weights kept for the data gradient]). Default: the call above.
    func conv2dBackwardData(dInput: Tensor, dOutput: Tensor, weight: Tensor, geometry: Conv2dGeometry,
                            weightAsInForward: Bool)
    /// dWeight `[Co,Ci,K,K]` from input and dOutput.
    func conv2dBackwardWeight(dWeight: Tensor, input: Tensor, dOutput: Tensor, geometry: Conv2dGeometry)

    // MARK: Batch normalisation over N, H, W of an NHWC tensor `[N,H,W,C]`

    /// Training mode: normalises with the batch's mean and biased variance,
    /// writes `savedMean` and `savedInvStd = 1/sqrt(var + epsilon)` (`[C]`)
    /// for the backward, and updates the running statistics as PyTorch does:
    /// `running = (1 - momentum) * running + momentum * batchStat`, with the
    /// unbiased variance (`var * n / (n - 1)`, n = N*H*W) for `runningVar`.
    /// With `fuseReLU` the output is `max(0, bn(x))`.
    func batchNormForwardTraining(output: Tensor, input: Tensor, scale: Tensor, shift: Tensor,
                                  runningMean: Tensor, runningVar: Tensor,
                                  savedMean: Tensor, savedInvStd: Tensor,
                                  momentum: Float, epsilon: Float, fuseReLU: Bool)
    /// Evaluation mode: normalises with the running statistics.
    func batchNormForwardInference(output: Tensor, input: Tensor, scale: Tensor, shift: Tensor,
                                   runningMean: Tensor, runningVar: Tensor, epsilon: Float, fuseReLU: Bool)
    /// Gradients of training-mode batch norm. With `fuseReLU`, `output` is
    /// the forward's (post-ReLU) output and `dOutput` is masked where it is
    /// not positive; without it `output` is ignored.
    func batchNormBackward(dInput: Tensor, dScale: Tensor, dShift: Tensor, dOutput: Tensor,
                           input: Tensor, output: Tensor, scale: Tensor,
                           savedMean: Tensor, savedInvStd: Tensor, fuseReLU: Bool)

    // MARK: Elementwise

    /// output = max(0, input). `output` may alias `input`.
    func reluForward(output: Tensor, input: Tensor)
    /// dInput = dOutput where output > 0, else 0 (ReLU'(0) = 0). May alias dOutput.
    func reluBackward(dInput: Tensor, dOutput: Tensor, output: Tensor)
    /// output = a + b, optionally followed by ReLU (the end of a residual
    /// block). `output` may alias `a` or `b`.
    func add(output: Tensor, _ a: Tensor, _ b: Tensor, fuseReLU: Bool)

    // MARK: Pooling and the classifier

    /// output `[N,C]` = mean over H and W of input `[N,H,W,C]`.
    func globalAveragePoolForward(output: Tensor, input: Tensor)
    /// dInput `[N,H,W,C]` = dOutput `[N,C]` / (H*W), broadcast.
    func globalAveragePoolBackward(dInput: Tensor, dOutput: Tensor)
    /// output `[N,out]` = input `[N,in]` x weight `[out,in]`^T + bias `[out]`.
    func linearForward(output: Tensor, input: Tensor, weight: Tensor, bias: Tensor)
    /// dInput `[N,in]` (skipped when nil), dWeight `[out,in]`, dBias `[out]`.
    func linearBackward(dInput: Tensor?, dWeight: Tensor, dBias: Tensor,
                        dOutput: Tensor, input: Tensor, weight: Tensor)

    // MARK: Loss

    /// Mean softmax cross-entropy of logits `[N,K]` against int32 labels
    /// `[N]` with label smoothing `s` (targets `(1-s)*onehot + s/K`, as
    /// `torch.nn.CrossEntropyLoss(label_smoothing:)`). Writes `loss` `[1]`,
    /// `probabilities` `[N,K]` for the backward, and `correct` `[1]`: the
    /// number of rows whose arg-max equals the label (ties: the lowest index).
    func softmaxCrossEntropyForward(loss: Tensor, probabilities: Tensor, correct: Tensor,
                                    logits: Tensor, labels: Tensor, labelSmoothing: Float)
    /// dLogits `[N,K]` = (probabilities - targets) / N: the gradient of the mean loss.
    func softmaxCrossEntropyBackward(dLogits: Tensor, probabilities: Tensor, labels: Tensor, labelSmoothing: Float)

    // MARK: Input pipeline

    /// Builds normalised, augmented NHWC images from raw ones, as
    /// torchvision's RandomCrop(padding) + RandomHorizontalFlip + ToTensor +
    /// Normalize do: for image n with `crops[n] = (top, left, flip)` (crop
    /// corner in the zero-padded image, flip 0 or 1),
    ///     output[n, y, x, c] = normalization[c * 256 + v]
    ///     v = images[n, y + top - padding, x' + left - padding, c], x' = flip ? W - 1 - x : x
    /// and v = 0 where that falls outside the image (torchvision pads with
    /// zeros before normalising). images: uint8 `[N,H,W,C]`; crops: int32
    /// `[N,3]`; normalization: float32 `[C*256]`, the normalised value of
    /// every byte per channel (so every backend gives bit-identical results);
    /// output: float32 or bfloat16 `[N,H,W,C]`. Lets a GPU upload a quarter
    /// of the bytes and augment on the device.
    func augmentImages(output: Tensor, images: Tensor, crops: Tensor, normalization: Tensor, padding: Int)

    // MARK: Optimiser

    /// One SGD (or LARS) step over every segment of the flat buffers, in
    /// place: for each segment, with g its gradient and w its weights,
    ///     d = g + weightDecay * w                      (if segment.weightDecay)
    ///     d = d * trust                                (LARS, if segment.layerAdaptation)
    ///         trust = eta * |w| / (|g| + weightDecay * |w| + eps), 1 if |w| or |g| is 0
    ///     buf = d                                      (first step)
    ///     buf = momentum * buf + (1 - dampening) * d   (later steps)
    ///     d = d + momentum * buf (nesterov) or d = buf (if momentum != 0)
    ///     w = w - learningRate * d
    /// In a segment exempt from weight decay, the trust ratio's `weightDecay`
    /// is 0 too. With momentum 0 the momentum buffer is neither read nor written.
    /// `parameters`, `gradients` and `momentumBuffer` are flat tensors of equal
    /// length, float32; `gradients` may be bfloat16 where the backend
    /// `supportsBFloat16`. Every gradient is read as `configuration.gradientScale * g`
    /// (in float32), so the step can read an all-reduce's bf16 sums in place.
    func optimizerStep(parameters: Tensor, gradients: Tensor, momentumBuffer: Tensor,
                       segments: [ParameterSegment], configuration: OptimizerStepConfiguration)
    /// The same step with the learning rate read from `learningRate`, a
    /// float32 `[1]` tensor on this device, when the step runs (a captured
    /// graph reads the value current at each replay); `configuration.learningRate`
    /// is ignored. Default: reads the tensor back and calls the method above.
    func optimizerStep(parameters: Tensor, gradients: Tensor, momentumBuffer: Tensor,
                       segments: [ParameterSegment], configuration: OptimizerStepConfiguration,
                       learningRate: Tensor)

    // MARK: Graphs and host staging (optional; defaults in BackendGraph.swift)

    /// Records the device work `body` enqueues, without running it, as a
    /// graph to replay; nil (and `body` not called) where the backend has no
    /// graphs, and the caller runs its step eagerly. See `Note [Graph capture]`
    /// in docs/design.md for what `body` may do.
    func captureGraph(_ body: () throws -> Void) throws -> BackendGraph?
    /// Inside `captureGraph`'s body: ends the graph recorded so far and
    /// starts the next, so the returned graph replays as several launches
    /// in order (Note [Split step graphs]). Work forked onto another stream
    /// must have joined back first. Default (and outside a capture): nothing.
    func splitGraphCapture() throws
    /// A host tensor to fill and `upload` from: page-locked on a GPU, so the
    /// upload is a true asynchronous copy. Default: an ordinary host tensor.
    func makeHostStagingTensor(_ shape: Shape, dtype: DType) throws -> Tensor
    /// Returns once every upload issued so far from `host` has read it, so the
    /// host may write `host` again. Default: returns at once (uploads that
    /// copy, or stage, the bytes before they return).
    func waitForUploads(from host: Tensor)

    // MARK: Device timing (optional; defaults in DeviceTimestamp.swift)

    /// A reusable timestamp for this backend's stream (Note [Device timing]); nil on host backends.
    func makeTimestamp() -> DeviceTimestamp?
    /// Marks the point the stream has reached: the device stamps it when it gets there.
    func record(_ timestamp: DeviceTimestamp)
    /// Device seconds between two recorded timestamps, waiting for `end`; nil
    /// when either was not recorded (never, or during a graph capture).
    func seconds(from start: DeviceTimestamp, to end: DeviceTimestamp) -> Double?
    /// Whether a timestamp recorded during a graph capture stamps every
    /// replay (CUDA with `COHORT_GRAPH_TIMING=1`, Note [Timing inside graphs]).
    var recordsTimestampsInsideGraphs: Bool { get }
    /// `source` on the host once the device has passed `timestamp` (recorded
    /// after the last write to `source`), without waiting for work queued
    /// after it, so the device keeps running (Note [Deferred step reads] in
    /// DeferredStepReads.swift). Default: `download`, which waits for everything.
    func download(_ source: Tensor, after timestamp: DeviceTimestamp) -> Tensor
}

extension Backend {
    public var supportsBFloat16: Bool { false }
    public func setDeterministicAlgorithms(_ deterministic: Bool) {}

    public func conv2dBackwardData(dInput: Tensor, dOutput: Tensor, weight: Tensor, geometry: Conv2dGeometry,
                                   weightAsInForward: Bool) {
        conv2dBackwardData(dInput: dInput, dOutput: dOutput, weight: weight, geometry: geometry)
    }

    /// On the host: the conversion, then one float32 multiply per element.
    public func copy(_ source: Tensor, to destination: Tensor, scaledBy scale: Float) {
        precondition(device.isHost, "\(name): copy(_:to:scaledBy:) needs a device implementation")
        precondition(destination.dtype == .float32, "copy(_:to:scaledBy:) writes float32, got \(destination)")
        copy(source, to: destination)
        let values = destination.floats
        for index in values.indices { values[index] *= scale }
    }

    /// A new tensor on this backend holding a host tensor's values.
    public func makeTensor(copying host: Tensor) throws -> Tensor {
        let tensor = try makeTensor(host.shape, dtype: host.dtype)
        upload(host, to: tensor)
        return tensor
    }

    public func makeTensor(_ shape: Shape) throws -> Tensor { try makeTensor(shape, dtype: .float32) }
}
