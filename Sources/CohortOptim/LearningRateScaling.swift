/// How the learning rate follows the global batch size.
///
/// A recipe states its learning rate for a reference batch (`baseBatch`);
/// training at another global batch (per-rank batch times world size) scales it:
///
/// - `linear`: `lr * batch / baseBatch`, the linear scaling rule of Goyal et
///   al., "Accurate, Large Minibatch SGD" (arXiv:1706.02677), for SGD with
///   momentum. It needs a warmup at large batch; the paper ramps from the
///   unscaled rate, i.e. a warmup start factor of `baseBatch / batch`.
/// - `squareRoot`: `lr * sqrt(batch / baseBatch)`, which keeps the gradient
///   noise scale (Krizhevsky, "One weird trick", arXiv:1404.5997); usual for
///   adaptive optimisers.
/// - `none`: the rate as given.
///
/// The raw values are the CLI's spellings: `none`, `linear`, `sqrt`.
public enum LearningRateScaling: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case none
    case linear
    case squareRoot = "sqrt"

    /// The factor the rate is multiplied by.
    public func factor(baseBatch: Int, batch: Int) -> Double {
        precondition(baseBatch > 0 && batch > 0, "batch sizes must be positive (base \(baseBatch), batch \(batch))")
        let ratio = Double(batch) / Double(baseBatch)
        switch self {
        case .none: return 1
        case .linear: return ratio
        case .squareRoot: return ratio.squareRoot()
        }
    }

    /// `baseLR`, stated for `baseBatch`, scaled for a global batch of `batch`.
    public func scaled(baseLR: Float, baseBatch: Int, batch: Int) -> Float {
        Float(Double(baseLR) * factor(baseBatch: baseBatch, batch: batch))
    }

    public var description: String {
        switch self {
        case .none: return "no scaling"
        case .linear: return "linear scaling"
        case .squareRoot: return "square-root scaling"
        }
    }
}
