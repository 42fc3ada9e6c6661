import Foundation

/// The derived figures of the suite, each defined once.
///
/// Bandwidths follow nccl-tests (`doc/PERFORMANCE.md` there): algbw is the
/// message size over the time, and for all-reduce busbw = algbw × 2(n−1)/n,
/// the rate each link must carry in a ring, which makes the figure comparable
/// across rank counts and with the hardware's link bandwidth.
public enum ScalingFigures {
    /// T(1 GPU) / T(n GPUs) for the same amount of work (one epoch).
    public static func speedup(baselineSeconds: Double, seconds: Double) -> Double {
        precondition(seconds > 0, "a measured time must be positive")
        return baselineSeconds / seconds
    }

    /// speedup / devices: 1 is perfect scaling.
    public static func efficiency(speedup: Double, devices: Int) -> Double {
        precondition(devices > 0, "a run uses at least one device")
        return speedup / Double(devices)
    }

    /// nccl-tests' algbw in GB/s (10^9 bytes per second): bytes / seconds.
    public static func algbw(bytes: Int, seconds: Double) -> Double {
        seconds > 0 ? Double(bytes) / seconds / 1e9 : 0
    }

    /// nccl-tests' all-reduce busbw: algbw × 2(n−1)/n. One rank moves nothing: 0.
    public static func allReduceBusbw(algbw: Double, ranks: Int) -> Double {
        precondition(ranks > 0, "an all-reduce has at least one rank")
        return algbw * 2 * Double(ranks - 1) / Double(ranks)
    }

    /// Step time with communication minus the same step without it, never below 0
    /// (timing noise can make the difference slightly negative when everything is hidden).
    public static func exposedCommunication(stepSeconds: Double, withoutCommunication: Double) -> Double {
        max(0, stepSeconds - withoutCommunication)
    }

    /// The share of communication hidden behind compute: 1 − exposed / busy, clamped to [0, 1];
    /// 1 when there was no communication.
    public static func overlapFraction(busySeconds: Double, exposedSeconds: Double) -> Double {
        guard busySeconds > 0 else { return 1 }
        return min(1, max(0, 1 - exposedSeconds / busySeconds))
    }
}

extension Array where Element == Q2Record {
    /// The records with speedup and efficiency filled in against the 1-GPU
    /// record of the same framework, strategy, precision and per-GPU batch
    /// (or, lacking one, the other strategy's: on one GPU DDP and DP run the
    /// same step). Records without any 1-GPU baseline keep nil.
    public func withDerivedScaling() -> [Q2Record] {
        map { record in
            let candidates = filter {
                $0.gpus == 1 && $0.framework == record.framework && $0.precision == record.precision
                    && $0.perDeviceBatch == record.perDeviceBatch
            }
            guard let baseline = candidates.first(where: { $0.strategy == record.strategy }) ?? candidates.first else {
                return record
            }
            var derived = record
            let speedup = ScalingFigures.speedup(baselineSeconds: baseline.epochSeconds, seconds: record.epochSeconds)
            derived.speedup = speedup
            derived.efficiency = ScalingFigures.efficiency(speedup: speedup, devices: record.gpus)
            return derived
        }
    }
}

extension Array where Element == AllReduceSweepRecord {
    /// The sweep's record for `ranks` at `bytes`, or the one nearest in log size when the
    /// sweep did not run that exact size; nil when the sweep has no record for `ranks`.
    /// Cohort's record of `ranks` ranks nearest to `bytes` in size (PyTorch's reference rows left out).
    public func nearest(ranks: Int, bytes: Int) -> AllReduceSweepRecord? {
        filter { $0.ranks == ranks && $0.bytes > 0 && !$0.communicator.hasPrefix("pytorch") }.min { a, b in
            abs(log(Double(a.bytes) / Double(bytes))) < abs(log(Double(b.bytes) / Double(bytes)))
        }
    }
}
