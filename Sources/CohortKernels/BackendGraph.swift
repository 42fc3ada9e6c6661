import CohortTensor

/// A training step recorded by `Backend.captureGraph`: the same device work,
/// replayed by one call, with the addresses, shapes and kernel arguments of
/// the capture (see `Note [Graph capture]` in docs/design.md).
public protocol BackendGraph: AnyObject {
    /// Enqueues one replay on the backend's stream (asynchronous, as any op).
    func launch() throws
    /// False once memory the graph may read or write could belong to
    /// another tensor: any device allocation or release since the capture.
    /// A caller replays only a valid graph, and captures again otherwise.
    var isValid: Bool { get }
    /// What the capture recorded, for logs ("312 nodes").
    var summary: String { get }
}

/// Defaults for backends without graphs, pinned memory or asynchronous uploads
/// (`ReferenceBackend`, `OneDNNBackend`): everything runs eagerly.
extension Backend {
    public func optimizerStep(parameters: Tensor, gradients: Tensor, momentumBuffer: Tensor,
                              segments: [ParameterSegment], configuration: OptimizerStepConfiguration,
                              learningRate: Tensor) {
        precondition(learningRate.dtype == .float32 && learningRate.elementCount == 1,
                     "optimizerStep: the learning rate must be a float32 [1] tensor, got \(learningRate)")
        var settings = configuration
        settings.learningRate = download(learningRate).toArray()[0]
        optimizerStep(parameters: parameters, gradients: gradients, momentumBuffer: momentumBuffer,
                      segments: segments, configuration: settings)
    }

    public func captureGraph(_ body: () throws -> Void) throws -> BackendGraph? { nil }

    public func splitGraphCapture() throws {}

    public func makeHostStagingTensor(_ shape: Shape, dtype: DType) throws -> Tensor {
        try Tensor(shape: shape, dtype: dtype, allocator: HostAllocator.shared)
    }

    public func waitForUploads(from host: Tensor) {}
}
