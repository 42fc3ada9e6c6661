import Foundation

/// The GPU suite's targets, read off the results (nothing here is measured
/// on its own): weak scaling on 4 GPUs, bf16 against PyTorch DDP, dp
/// against ddp, and the gradient all-reduce against the standalone sweep.
/// On a machine with fewer than 4 GPUs the scaling targets are read at the
/// largest count measured, and the row says so.
public enum ReportTargets {
    public struct Row: Equatable, Sendable {
        public var target: String
        public var configuration: String
        public var measured: String
        /// true: met, false: not met, nil: not measured.
        public var met: Bool?
    }

    public static func rows(_ results: ExperimentResults) -> [Row] {
        let q2 = results.q2.records.filter { $0.precision == results.q2.records.first?.precision }
        let cohortDDP = q2.filter { $0.framework == .cohort && $0.strategy == .ddp }
        let most = cohortDDP.map(\.gpus).filter { $0 > 1 }.max()
        let at = { (gpus: Int) in gpus == 4 ? "4 GPUs" : "\(gpus) GPUs (4 were not measured)" }
        var rows: [Row] = []

        func scaling(_ batches: (Int) -> Bool, bar: Double, _ name: String) {
            let target = "weak-scaling efficiency ≥ \(Format.percent(bar, decimals: 0)) \(name), DDP, 4 GPUs"
            guard let most else {
                rows.append(Row(target: target, configuration: "–", measured: "no multi-GPU run", met: nil))
                return
            }
            let chosen = cohortDDP.filter { $0.gpus == most && batches($0.perDeviceBatch) }
                .sorted { $0.perDeviceBatch < $1.perDeviceBatch }
            if chosen.isEmpty { rows.append(Row(target: target, configuration: at(most), measured: "not measured", met: nil)) }
            for r in chosen {
                rows.append(Row(target: target, configuration: "\(at(most)) × \(r.perDeviceBatch)",
                                measured: r.efficiency.map { Format.percent($0, decimals: 1) } ?? "no 1-GPU baseline",
                                met: r.efficiency.map { $0 >= bar }))
            }
        }
        scaling({ $0 >= 128 }, bar: 0.95, "at ≥ 128 per GPU")
        scaling({ $0 == 32 }, bar: 0.80, "at 32 per GPU")

        // Cohort's epoch at 512/GPU against PyTorch DDP's, same GPUs and precision.
        let halfTarget = "epoch ≤ half of PyTorch DDP's, \(results.q2.records.first?.precision.rawValue ?? "bf16"), 512 per GPU, 4 GPUs"
        if let most, let ours = cohortDDP.first(where: { $0.gpus == most && $0.perDeviceBatch == 512 }),
           let theirs = q2.first(where: { $0.framework == .pytorch && $0.strategy == .ddp && $0.gpus == most && $0.perDeviceBatch == 512 }) {
            let ratio = ours.epochSeconds / theirs.epochSeconds
            rows.append(Row(target: halfTarget, configuration: "\(at(most)) × 512",
                            measured: "\(Format.significant(ours.epochSeconds)) s vs \(Format.significant(theirs.epochSeconds)) s (\(Format.ratio(ratio)))",
                            met: ratio <= 0.5))
        } else {
            rows.append(Row(target: halfTarget, configuration: "–", measured: "needs Cohort's and PyTorch's DDP at 512 per GPU", met: nil))
        }

        // dp against ddp, every multi-GPU configuration both ran.
        let dpTarget = "dp epoch within 10% of ddp's"
        let pairs = q2.filter { $0.framework == .cohort && $0.strategy == .dp && $0.gpus > 1 }.compactMap { dp -> (Q2Record, Q2Record)? in
            cohortDDP.first { $0.gpus == dp.gpus && $0.perDeviceBatch == dp.perDeviceBatch }.map { (dp, $0) }
        }.sorted { ($0.0.gpus, $0.0.perDeviceBatch) < ($1.0.gpus, $1.0.perDeviceBatch) }
        if pairs.isEmpty { rows.append(Row(target: dpTarget, configuration: "–", measured: "needs dp and ddp runs", met: nil)) }
        for (dp, ddp) in pairs {
            let ratio = dp.epochSeconds / ddp.epochSeconds
            rows.append(Row(target: dpTarget, configuration: "\(dp.gpus) GPUs × \(dp.perDeviceBatch)",
                            measured: "dp/ddp \(Format.ratio(ratio))", met: ratio <= 1.1))
        }

        // Cohort's all-reduce of ResNet-18's gradients against NCCL alone (PyTorch's
        // torch.distributed all-reduce) at the same size, rank count and call. The
        // in-training figures of Q3 are not bandwidths (their busy time includes
        // waiting for the slowest rank) and stay out of this row.
        let busTarget = "gradient all-reduce (\(Format.bytes(GPUSuitePlan.resnet18GradientBytes))) busbw ≥ 90% of NCCL alone (PyTorch)"
        let sweep = results.allReduceSweep.records
        let counts = Set(sweep.map(\.ranks)).sorted()
        if counts.isEmpty { rows.append(Row(target: busTarget, configuration: "–", measured: "no all-reduce run", met: nil)) }
        for ranks in counts {
            let size = GPUSuitePlan.resnet18GradientBytes
            let ours = sweep.first { $0.ranks == ranks && $0.bytes == size && !$0.communicator.hasPrefix("pytorch") }
            let theirs = sweep.first { $0.ranks == ranks && $0.bytes == size && $0.communicator.hasPrefix("pytorch") }
            guard let ours, let theirs, theirs.busbwGBps > 0 else {
                rows.append(Row(target: busTarget, configuration: "\(ranks) GPUs",
                                measured: "needs Cohort's and PyTorch's all-reduce at that size", met: nil))
                continue
            }
            let share = ours.busbwGBps / theirs.busbwGBps
            rows.append(Row(target: busTarget, configuration: "\(ranks) GPUs",
                            measured: "\(Format.significant(ours.busbwGBps)) vs \(Format.significant(theirs.busbwGBps)) GB/s, \(Format.percent(share, decimals: 0))",
                            met: share >= 0.9))
        }
        // Q4: the best large-batch recipe closes at least half of the gap between
        // the plain large-batch run (a) and the small-batch reference.
        let q4 = results.q4.records.filter { $0.framework == .cohort }
        let final = { (r: Q4Record) in r.epochs.last?.testAccuracy }
        // Q4's baseline (batch 128, 5 epochs) at least matches PyTorch's with the same recipe on the same copy.
        let baselineTarget = "Q4 baseline ≥ PyTorch's with the same recipe"
        if let ours = q4.first(where: { $0.lrRule == .reference }).flatMap(final),
           let theirs = results.q4.records.first(where: { $0.framework == .pytorch }).flatMap(final) {
            rows.append(Row(target: baselineTarget, configuration: "1 GPU × \(q4.first { $0.lrRule == .reference }?.globalBatch ?? 0)",
                            measured: "\(Format.percent(ours, decimals: 2)) vs \(Format.percent(theirs, decimals: 2))",
                            met: ours >= theirs))
        } else {
            rows.append(Row(target: baselineTarget, configuration: "–", measured: "needs Cohort's and PyTorch's reference runs", met: nil))
        }
        let gapTarget = "best large-batch recipe closes ≥ 50% of the accuracy gap to the reference"
        if let reference = q4.first(where: { $0.lrRule == .reference }).flatMap(final),
           let plain = q4.first(where: { $0.lrRule == .same }).flatMap(final) {
            let remedies = q4.filter { $0.lrRule != .reference && $0.lrRule != .same }
            if let best = remedies.max(by: { (final($0) ?? 0) < (final($1) ?? 0) }), let bestAccuracy = final(best),
               reference > plain {
                let closed = (bestAccuracy - plain) / (reference - plain)
                rows.append(Row(target: gapTarget, configuration: best.label,
                                measured: "\(Format.percent(bestAccuracy, decimals: 1)) against \(Format.percent(plain, decimals: 1)) (a) and \(Format.percent(reference, decimals: 1)) reference: \(Format.percent(closed, decimals: 0)) of the gap",
                                met: closed >= 0.5))
            } else {
                rows.append(Row(target: gapTarget, configuration: "–", measured: "no remedy finished, or no gap", met: nil))
            }
        } else {
            rows.append(Row(target: gapTarget, configuration: "–", measured: "needs the reference and (a)", met: nil))
        }
        // Time to accuracy on 4 GPUs under 10 s of training.
        let ttaTarget = "time to 90% test accuracy on 4 GPUs < 10 s"
        let tta = results.timeToAccuracy.records.filter { $0.ranks == 4 && $0.targetAccuracy >= 0.9 }
        if tta.isEmpty { rows.append(Row(target: ttaTarget, configuration: "–", measured: "no 4-GPU run", met: nil)) }
        for r in tta {
            rows.append(Row(target: ttaTarget, configuration: r.label,
                            measured: r.secondsToTarget.map { "\(Format.significant($0)) s (\(r.epochsToTarget.map(String.init) ?? "?") epochs)" }
                                ?? "not reached (best \(Format.percent(r.bestTestAccuracy, decimals: 2)))",
                            met: r.secondsToTarget.map { $0 < 10 } ?? false))
        }
        return rows
    }
}

extension ReportSections {
    /// The GPU profile's targets: met, not met, or not measured.
    static func targets(_ results: ExperimentResults) -> ReportSection? {
        guard results.metadata.profile == .gpu else { return nil }
        let rows = ReportTargets.rows(results)
        let table = ReportTable(
            caption: "Targets", headers: ["Target", "Configuration", "Measured", "Verdict"],
            numeric: [false, false, false, false],
            rows: rows.map { [$0.target, $0.configuration, $0.measured, $0.met.map { $0 ? "met" : "NOT met" } ?? "not measured"] })
        return ReportSection(id: "targets", title: "Targets", intro: "The targets of the scaling study, read off the sections above (Cohort's figures against PyTorch's from the same call).",
                             tables: [table], charts: [], emptyMessage: nil)
    }
}
