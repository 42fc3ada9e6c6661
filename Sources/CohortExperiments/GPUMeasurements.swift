import Foundation

/// Q2, Q3 and timeline figures out of `cohort train` metrics on GPUs.
///
/// Two kinds of run per configuration (`GPUSuitePlan`):
/// - graph runs (the default `cohort train`: after warm-up every step is a
///   CUDA graph replay): Q2's time. Rank 0's step records carry its images
///   per second over each logging window, host wall clock (data loading,
///   replays and the loss read that ends each window included); the epoch
///   time is the images per epoch over GPUs x the median window rate.
/// - eager runs (`--no-graphs --log-every 1`): Q3's split. Each logged step
///   is bracketed by device timestamps: forward, backward, the compute
///   stream's wait for the last all-reduce (exposed communication) and the
///   optimizer on the compute stream, each bucket all-reduce's busy time
///   and start on the communication stream. Eager steps issue kernels one
///   by one, so at small batches their compute time includes the device
///   waiting for the host; the report says the split is from eager steps.
public enum GPUMeasurements {
    /// The median of `values`; nil when empty (the upper median for an even count, as elsewhere in the suite).
    public static func median(_ values: [Double]) -> Double? {
        values.isEmpty ? nil : values.sorted()[values.count / 2]
    }

    /// Seconds per epoch of `imagesPerEpoch` images from a graph run's rank-0 log:
    /// imagesPerEpoch / (gpus x median images per second per rank), over the step
    /// records after warm-up; nil when none has a rate.
    public static func epochSeconds(_ log: TrainingLog, gpus: Int, warmupSteps: Int, imagesPerEpoch: Int) -> Double? {
        let rates = log.timedSteps(afterWarmup: warmupSteps).compactMap(\.imagesPerSecond).filter { $0 > 0 }
        guard let rate = median(rates) else { return nil }
        return Double(imagesPerEpoch) / (Double(gpus) * rate)
    }

    /// The median device step time of the timed steps; nil when the log has no device timing.
    public static func deviceStepSeconds(_ log: TrainingLog, warmupSteps: Int) -> Double? {
        median(log.timedSteps(afterWarmup: warmupSteps).compactMap(\.deviceStepSeconds))
    }

    /// The bytes a step all-reduces according to the run header: the buckets'
    /// float32 sizes (`bucket_bytes`), halved when gradients travel in bf16.
    /// Replayed steps need it: their host side records no all-reduce calls.
    public static func bucketBytesPerStep(_ header: [String: String]) -> Int? {
        guard let list = header["bucket_bytes"] else { return nil }
        let bytes = list.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.reduce(0, +)
        return header["allreduce_dtype"] == "bf16" ? bytes / 2 : bytes
    }

    /// Q3 for one configuration from its eager run's rank-0 log.
    /// - Parameters:
    ///   - withoutCommunication: the same per-GPU batch's eager step on one GPU
    ///     (no communication at all); nil falls back to this run's own compute
    ///     time (forward + backward + optimizer), which `GPUSuite` notes.
    /// - Returns: nil when the log has no eager device timing (an older binary, or a failed run).
    public static func q3(_ log: TrainingLog, strategy: Strategy, precision: Precision, gpus: Int, perDeviceBatch: Int,
                          warmupSteps: Int, withoutCommunication: Double?) -> Q3Record? {
        let steps = log.timedSteps(afterWarmup: warmupSteps).filter { $0.deviceComputeSeconds != nil }
        guard let step = median(steps.compactMap(\.deviceStepSeconds)),
              let compute = median(steps.compactMap(\.deviceComputeSeconds)) else { return nil }
        let busy = median(steps.compactMap(\.deviceCommunicationBusySeconds)) ?? 0
        let exposed = median(steps.compactMap(\.deviceExposedCommunicationSeconds)) ?? 0
        let bytes = steps.last(where: { !$0.allReduceBytes.isEmpty })?.allReduceBytes.reduce(0, +)
            ?? bucketBytesPerStep(log.header) ?? 0
        let algbw = ScalingFigures.algbw(bytes: bytes, seconds: busy)
        return Q3Record(strategy: strategy, precision: precision, gpus: gpus, perDeviceBatch: perDeviceBatch,
                        stepSeconds: step, stepSecondsWithoutCommunication: withoutCommunication ?? compute,
                        computeSeconds: compute, communicationBusySeconds: busy, exposedCommunicationSeconds: exposed,
                        overlapFraction: ScalingFigures.overlapFraction(busySeconds: busy, exposedSeconds: exposed),
                        bytesPerStep: bytes, algbwGBps: algbw,
                        busbwGBps: ScalingFigures.allReduceBusbw(algbw: algbw, ranks: gpus))
    }

    /// A few eager steps of one configuration, per rank, as compute and
    /// communication intervals from the device timings: forward, backward,
    /// the wait for the all-reduces and the optimizer back to back on the
    /// compute stream; each bucket's all-reduce at its recorded start on the
    /// communication stream (left out where the binary did not record
    /// starts). Each rank's device clock is its own, so every rank's first
    /// step starts at 0, and the recorded steps are laid end to end (the host
    /// time between logged steps is not shown).
    /// - Parameter logs: each rank's log, by rank.
    public static func timeline(configuration: String, logs: [Int: TrainingLog], warmupSteps: Int,
                                steps count: Int) -> StepTimeline? {
        var intervals: [TimelineInterval] = []
        for (rank, log) in logs.sorted(by: { $0.key < $1.key }) {
            var origin = 0.0
            let steps = log.timedSteps(afterWarmup: warmupSteps).filter { $0.deviceComputeSeconds != nil }.prefix(count)
            for (index, step) in steps.enumerated() {
                guard let forward = step.deviceForwardSeconds, let backward = step.deviceBackwardSeconds,
                      let optimizer = step.deviceOptimizerSeconds else { continue }
                let exposed = step.deviceExposedCommunicationSeconds ?? 0
                var at = origin
                for (name, seconds) in [("forward", forward), ("backward", backward),
                                        ("wait for all-reduce", exposed), ("optimizer", optimizer)] where seconds > 0 {
                    intervals.append(TimelineInterval(rank: rank, stream: .compute, name: name, step: index,
                                                      startSeconds: at, durationSeconds: seconds))
                    at += seconds
                }
                if let busy = step.deviceAllReduceSeconds, let starts = step.deviceAllReduceStartSeconds,
                   starts.count == busy.count {
                    for (bucket, (start, seconds)) in zip(starts, busy).enumerated() {
                        intervals.append(TimelineInterval(
                            rank: rank, stream: .communication, name: "all-reduce bucket \(bucket)", step: index,
                            startSeconds: origin + max(0, start), durationSeconds: seconds,
                            bytes: bucket < step.allReduceBytes.count ? step.allReduceBytes[bucket] : nil))
                    }
                }
                origin += max(step.deviceStepSeconds ?? 0, at - origin)
            }
        }
        guard !intervals.isEmpty else { return nil }
        return StepTimeline(configuration: configuration, ranks: max(logs.count, 1), intervals: intervals)
    }
}
