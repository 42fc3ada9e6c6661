import Foundation

/// The learning rate at every step of a run: an optional linear warmup, then a
/// decay. Steps are optimiser steps counted from 0; the rate changes every
/// step (not every epoch), so warmup and cosine are smooth.
///
///     lr(t) = baseLR * warmup(t) * decay(t)
///
/// Warmup over the first `warmupSteps` = W steps follows PyTorch's
/// `LinearLR(start_factor: s, total_iters: W)`:
/// `warmup(t) = s + (1 - s) * t / W` for `t < W`, then 1. With the default
/// `s = 0` this is the warmup of Hugging Face's
/// `get_{linear,cosine}_schedule_with_warmup` (step 0 runs at rate 0, step W
/// at the full rate). Goyal et al. start from the unscaled rate:
/// `s = baseBatch / batch` under linear scaling.
///
/// Decays, over the remaining `totalSteps - W` steps where they run by steps
/// (`p = clamp((t - W) / (totalSteps - W), 0, 1)`, the fraction done):
/// - `constant`: 1.
/// - `cosine(finalFactor: f)`: `f + (1 - f) * (1 + cos(pi * p)) / 2`, PyTorch's
///   `CosineAnnealingLR` closed form with `T_max = totalSteps - W` and
///   `eta_min = f * baseLR`. It reaches `f` at `t = totalSteps`, just after
///   the last step, and stays there (PyTorch's form would rise again).
/// - `linear(finalFactor: f)`: `1 - (1 - f) * p`.
/// - `step(everyEpochs: k, gamma: g)` and `milestones(epochs:gamma:)`: `g^n`,
///   `n` the number of epoch boundaries `k, 2k, ...` (or milestones) reached,
///   by the epoch `t / stepsPerEpoch`. Epochs count from the start of the run,
///   warmup included, as in Goyal et al. ("divide by 10 at epochs 30, 60, 80"
///   with 5 warmup epochs): a milestone is the epoch the user sees in the log.
public struct LearningRateSchedule: Sendable, Codable, Hashable, CustomStringConvertible {
    /// The CLI's names for the decays (`--lr-schedule cosine`). `step` covers
    /// both `Decay.step` and `Decay.milestones`.
    public enum Name: String, Sendable, Codable, CaseIterable {
        case constant, step, cosine, linear
    }

    public enum Decay: Sendable, Codable, Hashable {
        case constant
        /// Multiply by `gamma` every `everyEpochs` epochs (PyTorch `StepLR`).
        case step(everyEpochs: Int, gamma: Float)
        /// Multiply by `gamma` at each of the (increasing) epochs (PyTorch `MultiStepLR`).
        case milestones(epochs: [Int], gamma: Float)
        /// Cosine annealing to `finalFactor * baseLR`.
        case cosine(finalFactor: Float)
        /// Linear decay to `finalFactor * baseLR`.
        case linear(finalFactor: Float)

        public var name: Name {
            switch self {
            case .constant: return .constant
            case .step, .milestones: return .step
            case .cosine: return .cosine
            case .linear: return .linear
            }
        }
    }

    /// The rate after warmup and before any decay (already scaled for the batch size).
    public let baseLR: Float
    public let decay: Decay
    /// Steps in the whole run, warmup included.
    public let totalSteps: Int
    public let stepsPerEpoch: Int
    public let warmupSteps: Int
    /// The fraction of `baseLR` the warmup starts from, in [0, 1].
    public let warmupStartFactor: Float

    /// Throws `LearningRateScheduleError` for settings that make no schedule
    /// (they come from the command line).
    public init(baseLR: Float, decay: Decay, totalSteps: Int, stepsPerEpoch: Int,
                warmupSteps: Int = 0, warmupStartFactor: Float = 0) throws {
        func check(_ condition: Bool, _ message: @autoclosure () -> String) throws {
            if !condition { throw LearningRateScheduleError(message: message()) }
        }
        try check(baseLR.isFinite && baseLR >= 0, "the learning rate must be a non-negative number, not \(baseLR)")
        try check(stepsPerEpoch >= 1, "steps per epoch must be at least 1, not \(stepsPerEpoch)")
        try check(totalSteps >= 1, "the run must have at least one step, not \(totalSteps)")
        try check(warmupSteps >= 0 && warmupSteps <= totalSteps,
                  "warmup (\(warmupSteps) steps) must fit in the run (\(totalSteps) steps)")
        try check(warmupStartFactor >= 0 && warmupStartFactor <= 1,
                  "the warmup start factor must be in [0, 1], not \(warmupStartFactor)")
        switch decay {
        case .constant:
            break
        case .step(let everyEpochs, let gamma):
            try check(everyEpochs >= 1, "step decay needs a period of at least 1 epoch, not \(everyEpochs)")
            try check(gamma.isFinite && gamma > 0, "the decay factor gamma must be positive, not \(gamma)")
        case .milestones(let epochs, let gamma):
            try check(zip(epochs, epochs.dropFirst()).allSatisfy { $0 < $1 } && epochs.allSatisfy { $0 >= 0 },
                      "milestones must be increasing epochs, not \(epochs)")
            try check(gamma.isFinite && gamma > 0, "the decay factor gamma must be positive, not \(gamma)")
        case .cosine(let finalFactor), .linear(let finalFactor):
            try check(finalFactor >= 0 && finalFactor <= 1, "the final factor must be in [0, 1], not \(finalFactor)")
        }
        self.baseLR = baseLR
        self.decay = decay
        self.totalSteps = totalSteps
        self.stepsPerEpoch = stepsPerEpoch
        self.warmupSteps = warmupSteps
        self.warmupStartFactor = warmupStartFactor
    }

    /// The same with the run and the warmup given in whole epochs.
    public init(baseLR: Float, decay: Decay, epochs: Int, stepsPerEpoch: Int,
                warmupEpochs: Int = 0, warmupStartFactor: Float = 0) throws {
        try self.init(baseLR: baseLR, decay: decay, totalSteps: epochs * stepsPerEpoch, stepsPerEpoch: stepsPerEpoch,
                      warmupSteps: warmupEpochs * stepsPerEpoch, warmupStartFactor: warmupStartFactor)
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(baseLR: container.decode(Float.self, forKey: .baseLR),
                      decay: container.decode(Decay.self, forKey: .decay),
                      totalSteps: container.decode(Int.self, forKey: .totalSteps),
                      stepsPerEpoch: container.decode(Int.self, forKey: .stepsPerEpoch),
                      warmupSteps: container.decode(Int.self, forKey: .warmupSteps),
                      warmupStartFactor: container.decode(Float.self, forKey: .warmupStartFactor))
    }

    /// The learning rate for step `step` (0-based). Steps past `totalSteps`
    /// keep the final rate.
    public func learningRate(atStep step: Int) -> Float {
        Float(Double(baseLR) * factor(atStep: step))
    }

    /// `learningRate(atStep:) / baseLR`.
    public func factor(atStep step: Int) -> Double {
        precondition(step >= 0, "negative step \(step)")
        let start = Double(warmupStartFactor)
        let warmup = step < warmupSteps ? start + (1 - start) * Double(step) / Double(warmupSteps) : 1
        let decaySteps = totalSteps - warmupSteps
        let progress = decaySteps == 0
            ? (step >= warmupSteps ? 1 : 0)
            : min(1, Double(max(0, step - warmupSteps)) / Double(decaySteps))
        let epoch = step / stepsPerEpoch
        switch decay {
        case .constant:
            return warmup
        case .step(let everyEpochs, let gamma):
            return warmup * pow(Double(gamma), Double(epoch / everyEpochs))
        case .milestones(let epochs, let gamma):
            return warmup * pow(Double(gamma), Double(epochs.filter { $0 <= epoch }.count))
        case .cosine(let finalFactor):
            let final = Double(finalFactor)
            return warmup * (final + (1 - final) * (1 + cos(Double.pi * progress)) / 2)
        case .linear(let finalFactor):
            return warmup * (1 - (1 - Double(finalFactor)) * progress)
        }
    }

    /// For logs: `lr 0.4, linear warmup 5 epochs from 0 -> cosine to 0 over 85 epochs`.
    public var description: String {
        var text = "lr \(baseLR), "
        if warmupSteps > 0 {
            text += "linear warmup \(duration(warmupSteps)) from \(warmupStartFactor) -> "
        }
        let rest = duration(totalSteps - warmupSteps)
        switch decay {
        case .constant:
            text += "constant"
        case .step(let everyEpochs, let gamma):
            text += "step decay x\(gamma) every \(everyEpochs) epoch\(everyEpochs == 1 ? "" : "s")"
        case .milestones(let epochs, let gamma):
            text += "step decay x\(gamma) at epoch\(epochs.count == 1 ? "" : "s") "
                + epochs.map(String.init).joined(separator: ", ")
        case .cosine(let finalFactor):
            text += "cosine to \(finalFactor) over \(rest)"
        case .linear(let finalFactor):
            text += "linear decay to \(finalFactor) over \(rest)"
        }
        return text
    }

    private func duration(_ steps: Int) -> String {
        if steps % stepsPerEpoch == 0 {
            let epochs = steps / stepsPerEpoch
            return "\(epochs) epoch\(epochs == 1 ? "" : "s")"
        }
        return "\(steps) step\(steps == 1 ? "" : "s")"
    }
}

/// A schedule setting that makes no sense; the message says which and why.
public struct LearningRateScheduleError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public var description: String { message }
}
