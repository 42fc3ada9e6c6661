import CohortKernels
import CohortTensor

extension Tolerance {
    /// SGD: a few fp32 operations per element, the same formula on both sides.
    static let optimizer = Tolerance(1e-6, "a few fp32 operations per element (FMA contraction may differ)")
    /// LARS also scales by a trust ratio of two norms over a segment: fp32
    /// reductions in another order against the reference's Double.
    static let lars = Tolerance(1e-5, "LARS trust ratio: fp32 norms over up to 3,000 values vs Double")
}

/// `optimizerStep` over a flat buffer of four segments: weights (decayed and
/// adapted), a batch-norm-like segment exempt from both, one decayed but not
/// adapted, and another weight. Plain SGD, momentum on the first and on later
/// steps, dampening, Nesterov, weight decay, and LARS with and without
/// Nesterov. Parameters and the momentum buffer are updated in place, so
/// both backends start from the same values (nothing to poison).
extension BackendSelfTest {
    func optimizerChecks(_ gradientDType: DType) -> [SelfTestCheck] {
        let count = 4106
        let segments = [
            ParameterSegment(offset: 0, count: 3000),
            ParameterSegment(offset: 3000, count: 64, weightDecay: false, layerAdaptation: false),
            ParameterSegment(offset: 3064, count: 936, weightDecay: true, layerAdaptation: false),
            ParameterSegment(offset: 4000, count: 106),
        ]
        let configurations: [(String, OptimizerStepConfiguration)] = [
            ("sgd", OptimizerStepConfiguration(learningRate: 0.1)),
            ("sgd weight decay", OptimizerStepConfiguration(learningRate: 0.1, weightDecay: 5e-4)),
            ("momentum first step", OptimizerStepConfiguration(learningRate: 0.1, momentum: 0.9, weightDecay: 5e-4,
                                                               isFirstStep: true)),
            ("momentum dampening", OptimizerStepConfiguration(learningRate: 0.1, momentum: 0.9, dampening: 0.1,
                                                              weightDecay: 5e-4)),
            ("nesterov first step", OptimizerStepConfiguration(learningRate: 0.05, momentum: 0.9, weightDecay: 5e-4,
                                                               nesterov: true, isFirstStep: true)),
            ("nesterov", OptimizerStepConfiguration(learningRate: 0.05, momentum: 0.9, weightDecay: 5e-4, nesterov: true)),
            ("lars", OptimizerStepConfiguration(learningRate: 2, momentum: 0.9, weightDecay: 5e-5,
                                                larsTrustCoefficient: 0.001)),
            ("lars nesterov first step", OptimizerStepConfiguration(learningRate: 2, momentum: 0.9, weightDecay: 5e-5,
                                                                    nesterov: true, larsTrustCoefficient: 0.02,
                                                                    isFirstStep: true)),
        ]
        // bf16: Note [Widening in the optimizer]: bf16 gradients (an all-reduce's sums read in
        // place) scaled as they are read, with and without LARS's norms of them.
        var rows = configurations
        if gradientDType == .bfloat16 {
            rows = configurations.filter { ["nesterov", "lars"].contains($0.0) }
            for index in rows.indices {
                rows[index].0 += ", bf16 gradients x 1/4"
                rows[index].1.gradientScale = 0.25
            }
        }
        return rows.map { name, configuration in
            SelfTestCheck(name: "optimizerStep \(name)", shape: "[\(count)] in \(segments.count) segments") { c in
                let w = c.pair(c.uniform([count]))
                let g = c.pair(c.uniform([count], -0.01...0.01), gradientDType)
                let buffer = c.pair(c.uniform([count], -0.01...0.01))
                c.run { backend, side in
                    backend.optimizerStep(parameters: side(w), gradients: side(g), momentumBuffer: side(buffer),
                                          segments: segments, configuration: configuration)
                }
                let tolerance: Tolerance = configuration.larsTrustCoefficient == nil ? .optimizer : .lars
                c.compare("parameters", w, tolerance)
                // With momentum 0 the buffer must come back untouched.
                c.compare("momentumBuffer", buffer, configuration.momentum == 0 ? .exact : tolerance)
            }
        }
    }
}
