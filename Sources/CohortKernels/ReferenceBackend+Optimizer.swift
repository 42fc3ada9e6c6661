import CohortTensor

/// `torch.optim.SGD` (momentum, dampening, Nesterov, L2 weight decay), with
/// LARS's per-tensor trust ratio (You et al. 2017, "Large Batch Training of
/// Convolutional Networks") when a trust coefficient is set.
extension ReferenceBackend {
    public func optimizerStep(parameters: Tensor, gradients: Tensor, momentumBuffer: Tensor,
                              segments: [ParameterSegment], configuration: OptimizerStepConfiguration) {
        let op = "optimizerStep"
        precondition(parameters.shape.rank == 1, "\(op): parameters must be flat, got \(parameters.shape)")
        checkShape(op, parameters, parameters.shape)
        precondition(gradients.dtype == .float32 || gradients.dtype == .bfloat16,
                     "\(op): gradients must be float32 or bfloat16, got \(gradients)")
        precondition(gradients.shape == parameters.shape,
                     "\(op): gradients \(gradients.shape) do not match the parameters' \(parameters.shape)")
        checkShape(op, momentumBuffer, parameters.shape)
        let c = configuration
        let w = parameters.floats, buffer = momentumBuffer.floats
        // Each gradient as the step reads it: scaled, widened from bf16 where it is bf16.
        let g = gradients.toArray().map { c.gradientScale * $0 }
        for segment in segments {
            precondition(segment.offset >= 0 && segment.count >= 0 && segment.offset + segment.count <= w.count,
                         "\(op): segment \(segment.offset)..<\(segment.offset + segment.count) outside \(w.count) parameters")
            let range = segment.offset..<(segment.offset + segment.count)
            let weightDecay = segment.weightDecay ? c.weightDecay : 0
            var trust: Float = 1
            if let eta = c.larsTrustCoefficient, segment.layerAdaptation {
                let weightNorm = norm(w, range), gradientNorm = norm(g, range)
                if weightNorm > 0 && gradientNorm > 0 {
                    trust = Float(Double(eta) * weightNorm
                                  / (gradientNorm + Double(weightDecay) * weightNorm + Double(c.larsEpsilon)))
                }
            }
            for index in range {
                var step = (g[index] + weightDecay * w[index]) * trust
                if c.momentum != 0 {
                    buffer[index] = c.isFirstStep ? step : c.momentum * buffer[index] + (1 - c.dampening) * step
                    step = c.nesterov ? step + c.momentum * buffer[index] : buffer[index]
                }
                w[index] -= c.learningRate * step
            }
        }
    }

    /// The Euclidean norm of `values[range]`, summed in Double.
    private func norm<Values: RandomAccessCollection<Float>>(_ values: Values, _ range: Range<Int>) -> Double
        where Values.Index == Int {
        var sumOfSquares = 0.0
        for index in range { sumOfSquares += Double(values[index]) * Double(values[index]) }
        return sumOfSquares.squareRoot()
    }
}
