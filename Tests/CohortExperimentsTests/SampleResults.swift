import CohortExperiments
import Foundation

/// A realistic results file for a 4-GPU machine: the shapes `cohort
/// experiments` will produce, with numbers in the range of the H200 figures in
/// docs/benchmarks.md and ../shared/DEVICE.md (made up, but plausible).
enum SampleResults {
    static let imagesPerEpoch = 50_000
    static let gradientBytes = 11_173_962 * 4

    static func make() -> ExperimentResults {
        let metadata = RunMetadata(
            machine: "gpu-host-7, AMD EPYC 9534 (64 cores)", card: "NVIDIA H200", deviceCount: 4,
            driver: "580.159.04",
            libraries: LibraryVersions(cuda: "13.0", cudnn: "9.14.0", nccl: "2.28.3", mpi: "Open MPI 4.1.6",
                                       pytorch: "2.11.0"),
            commit: "af0e7e0", date: "2026-11-28T09:15:00Z",
            command: "cohort experiments --profile gpu --data /tmp/cifar --out results/2026-11-28-h200x4",
            environment: "NCCL_NVLS_ENABLE=0", profile: .gpu, syntheticData: true, imagesPerEpoch: imagesPerEpoch,
            notes: ["Q1–Q3 on synthetic images already on the device; Q4 on CIFAR-10."])
        return ExperimentResults(
            metadata: metadata, q1: Section(records: q1()), q2: Section(records: q2()), q3: Section(records: q3()),
            allReduceSweep: Section(records: sweep()), q4: Section(records: q4()),
            timeToAccuracy: Section(records: timeToAccuracy()), timelines: Section(records: timelines()))
    }

    static func q1() -> [Q1Record] {
        let cohort: [(Int, Double, Int)] = [(32, 6325, 900), (128, 20_276, 2_150), (512, 33_212, 6_800), (2048, 38_294, 25_400)]
        let pytorchFP32: [(Int, Double)] = [(32, 9.06), (128, 3.00), (512, 2.27), (2048, 2.18)]
        let pytorchBF16: [(Int, Double)] = [(32, 11.98), (128, 2.91), (512, 0.886), (2048, 0.749)]
        var records = cohort.map { batch, imagesPerSecond, megabytes in
            Q1Record(framework: .cohort, device: "cuda:0", precision: .fp32, batchSize: batch,
                     epochSeconds: Double(imagesPerEpoch) / imagesPerSecond, imagesPerSecond: imagesPerSecond,
                     peakMemoryBytes: megabytes * 1_048_576)
        }
        for (precision, figures) in [(Precision.fp32, pytorchFP32), (.bf16, pytorchBF16)] {
            records += figures.map { batch, seconds in
                Q1Record(framework: .pytorch, device: "cuda:0", precision: precision, batchSize: batch,
                         epochSeconds: seconds, imagesPerSecond: Double(imagesPerEpoch) / seconds)
            }
        }
        return records
    }

    static func q2() -> [Q2Record] {
        let batches = [32, 128, 512, 1024]
        // One-GPU seconds per epoch and the parallel efficiency at 2 and 4 GPUs, per batch.
        let cohortOneGPU = [7.905, 2.466, 1.506, 1.352]
        let pytorchOneGPU = [9.06, 3.00, 2.27, 2.20]
        let efficiency: [Strategy: [Double]] = [.ddp: [0.62, 0.84, 0.93, 0.96], .dp: [0.11, 0.19, 0.36, 0.55]]
        var records: [Q2Record] = []
        for (framework, oneGPU) in [(Framework.cohort, cohortOneGPU), (.pytorch, pytorchOneGPU)] {
            for strategy in Strategy.allCases {
                for (index, batch) in batches.enumerated() {
                    for gpus in [1, 2, 4] {
                        let e = gpus == 1 ? 1 : pow(efficiency[strategy]![index], gpus == 2 ? 0.6 : 1)
                        let penalty = framework == .pytorch ? 0.97 : 1
                        records.append(Q2Record(framework: framework, strategy: strategy, precision: .fp32, gpus: gpus,
                                                perDeviceBatch: batch,
                                                epochSeconds: oneGPU[index] / (Double(gpus) * e * (gpus == 1 ? 1 : penalty))))
                    }
                }
            }
        }
        return records.withDerivedScaling()
    }

    static func q3() -> [Q3Record] {
        var records: [Q3Record] = []
        let computePerImage = [32: 148e-6, 128: 46e-6, 512: 29e-6, 1024: 27e-6]
        for strategy in Strategy.allCases {
            for gpus in [2, 4] {
                for batch in [32, 128, 512, 1024] {
                    let compute = computePerImage[batch]! * Double(batch)
                    let other = strategy == .dp ? 0.35 * compute : 0.04 * compute
                    let busbw = gpus == 4 ? 300.0 : 240.0
                    let busy = Double(gradientBytes) / (busbw * Double(gpus) / Double(2 * (gpus - 1)) * 1e9)
                    let exposed = strategy == .dp ? busy * 1.4 : busy * (batch <= 128 ? 0.55 : 0.2)
                    records.append(Q3Record(strategy: strategy, precision: .fp32, gpus: gpus, perDeviceBatch: batch,
                                            stepSeconds: compute + other + exposed,
                                            stepSecondsWithoutCommunication: compute + other,
                                            computeSeconds: compute, communicationBusySeconds: busy,
                                            bytesPerStep: gradientBytes))
                }
            }
        }
        return records
    }

    static func sweep() -> [AllReduceSweepRecord] {
        var records: [AllReduceSweepRecord] = []
        for ranks in [2, 4] {
            let peakBusbw = ranks == 4 ? 320e9 : 250e9
            let sizes = (10...30).map { 1 << $0 } + [gradientBytes]
            for bytes in sizes.sorted() {
                let busBytes = Double(bytes) * 2 * Double(ranks - 1) / Double(ranks)
                records.append(AllReduceSweepRecord(communicator: "nccl", ranks: ranks, bytes: bytes,
                                                    seconds: 9e-6 + busBytes / peakBusbw))
            }
        }
        return records
    }

    static func q4() -> [Q4Record] {
        let runs: [(String, String, LearningRateRule, Int, Int, Double, Double, Double, [Double])] = [
            ("1×128 reference", "SGD momentum 0.9 Nesterov, LR 0.1, 1 warm-up epoch, cosine decay, weight decay 5e-4",
             .reference, 1, 128, 0.1, 1, 0, [0.512, 0.668, 0.741, 0.802, 0.836]),
            ("(a) same LR", "LR 0.1 unchanged at batch 8192", .same, 4, 8192, 0.1, 1, 0, [0.198, 0.287, 0.341, 0.379, 0.402]),
            ("(b) linear + warmup", "LR 0.1 × 64 = 6.4, 2 warm-up epochs", .linear, 4, 8192, 6.4, 2, 0,
             [0.214, 0.305, 0.462, 0.588, 0.664]),
            ("(c) sqrt + warmup", "LR 0.1 × 8 = 0.8, 2 warm-up epochs", .sqrt, 4, 8192, 0.8, 2, 0,
             [0.286, 0.421, 0.538, 0.631, 0.692]),
            ("(d) LARS", "LARS, trust 0.001, LR 9.0, 2 warm-up epochs", .lars, 4, 8192, 9.0, 2, 0,
             [0.301, 0.452, 0.561, 0.648, 0.705]),
            ("(e) LARS + smoothing", "(d) with label smoothing 0.1", .lars, 4, 8192, 9.0, 2, 0.1,
             [0.309, 0.463, 0.577, 0.659, 0.718]),
        ]
        return runs.map { label, recipe, rule, ranks, batch, lr, warmup, smoothing, accuracies in
            let seconds = ranks == 1 ? 2.9 : 0.42
            return Q4Record(label: label, recipe: recipe, lrRule: rule, ranks: ranks, globalBatch: batch,
                            peakLearningRate: lr, warmupEpochs: warmup, labelSmoothing: smoothing,
                            epochs: accuracies.enumerated().map { index, accuracy in
                                Q4Epoch(epoch: index + 1, testAccuracy: accuracy, testLoss: 2.6 * (1 - accuracy) + 0.21,
                                        trainLoss: 2.4 * (1 - accuracy) + 0.3, seconds: seconds + 0.01 * Double(index))
                            })
        }
    }

    static func timeToAccuracy() -> [TimeToAccuracyRecord] {
        [
            TimeToAccuracyRecord(label: "1 GPU × 128", ranks: 1, globalBatch: 128, targetAccuracy: 0.8,
                                 secondsToTarget: 11.73, epochsToTarget: 4, bestTestAccuracy: 0.836, totalSeconds: 14.6),
            TimeToAccuracyRecord(label: "4 GPUs × 512, LARS", ranks: 4, globalBatch: 2048, targetAccuracy: 0.8,
                                 secondsToTarget: 4.41, epochsToTarget: 7, bestTestAccuracy: 0.871, totalSeconds: 6.3),
            TimeToAccuracyRecord(label: "4 GPUs × 2048, LARS", ranks: 4, globalBatch: 8192, targetAccuracy: 0.8,
                                 secondsToTarget: nil, epochsToTarget: nil, bestTestAccuracy: 0.718, totalSeconds: 2.1),
        ]
    }

    /// Three DDP steps per configuration: forward, backward with bucketed all-reduces overlapping it, optimizer.
    static func timelines() -> [StepTimeline] {
        [(2, 128), (4, 128)].map { ranks, batch in
            var intervals: [TimelineInterval] = []
            let forward = 0.0021, backward = 0.0042, optimizer = 0.0004
            let buckets = 4
            let bucketBytes = gradientBytes / buckets
            for rank in 0..<ranks {
                var t = 0.0001 * Double(rank)  // ranks start a little apart
                for step in 0..<3 {
                    intervals.append(.init(rank: rank, stream: .compute, name: "forward", step: step, startSeconds: t, durationSeconds: forward))
                    t += forward
                    intervals.append(.init(rank: rank, stream: .compute, name: "backward", step: step, startSeconds: t, durationSeconds: backward))
                    var commEnd = t
                    for bucket in 0..<buckets {
                        let ready = t + backward * Double(bucket + 1) / Double(buckets)
                        let start = max(ready, commEnd)
                        let duration = Double(bucketBytes) / 200e9 * (ranks == 4 ? 1.2 : 1)
                        intervals.append(.init(rank: rank, stream: .communication, name: "all-reduce bucket \(bucket)", step: step,
                                               startSeconds: start, durationSeconds: duration, bytes: bucketBytes))
                        commEnd = start + duration
                    }
                    t = max(t + backward, commEnd)
                    intervals.append(.init(rank: rank, stream: .compute, name: "optimizer", step: step, startSeconds: t, durationSeconds: optimizer))
                    t += optimizer + 0.0001
                }
            }
            return StepTimeline(configuration: "DDP \(ranks) GPUs × \(batch)", ranks: ranks, intervals: intervals)
        }
    }
}
