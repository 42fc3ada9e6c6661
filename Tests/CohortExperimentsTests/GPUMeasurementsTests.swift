import CohortExperiments
import Foundation
import XCTest

/// Q2, Q3, timelines and Q4 figures out of `cohort train` metrics lines, as
/// the Trainer writes them on GPUs (keys of Trainer.swift's step, epoch and
/// eval records), and PyTorch's JSON.
final class GPUMeasurementsTests: XCTestCase {
    /// A graph run's rank-0 log: a step record every 5 steps, images/s per window.
    static let graphRun = """
        {"event":"run","world_size":"2","batch_size":"128","precision":"bf16","time":1795780296.8}
        {"event":"step","epoch":1,"step":5,"global_step":5,"steps_timed":5,"images_per_second":900,"device_step_seconds":0.02}
        {"event":"step","epoch":1,"step":10,"global_step":10,"steps_timed":5,"graph_replayed_steps":4,"images_per_second":30000,"device_step_seconds":0.0040}
        {"event":"step","epoch":1,"step":15,"global_step":15,"steps_timed":5,"graph_replayed_steps":5,"images_per_second":40000,"device_step_seconds":0.0031}
        {"event":"step","epoch":1,"step":20,"global_step":20,"steps_timed":5,"graph_replayed_steps":5,"images_per_second":42000,"device_step_seconds":0.0030}
        {"event":"step","epoch":1,"step":25,"global_step":25,"steps_timed":5,"graph_replayed_steps":5,"images_per_second":41000,"device_step_seconds":0.0032}
        {"event":"epoch","epoch":1,"global_step":25,"train_loss":2.3,"train_accuracy":0.1,"seconds":0.5}
        {"event":"eval","epoch":1,"global_step":25,"test_loss":2.31,"test_accuracy":0.1,"test_images":1000}
        {"torn line
        """

    func testEpochTimeIsExtrapolatedFromTheMedianWindowAfterWarmUp() throws {
        let log = TrainingLog(text: Self.graphRun)
        XCTAssertEqual(log.header["world_size"], "2")
        XCTAssertEqual(log.steps.count, 5)
        XCTAssertEqual(log.epochs.count, 1)
        XCTAssertEqual(log.evaluations.first?.testAccuracy, 0.1)
        // Warm-up 10: the windows ending at 15, 20, 25 (40000, 42000, 41000); median 41000 images/s per GPU.
        XCTAssertEqual(log.timedSteps(afterWarmup: 10).map(\.globalStep), [15, 20, 25])
        // A window that starts inside the warm-up is left out: warm-up 12 keeps 20 and 25.
        XCTAssertEqual(log.timedSteps(afterWarmup: 12).map(\.globalStep), [20, 25])
        let seconds = try XCTUnwrap(GPUMeasurements.epochSeconds(log, gpus: 2, warmupSteps: 10, imagesPerEpoch: 50_000))
        XCTAssertEqual(seconds, 50_000 / (2 * 41_000.0), accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(GPUMeasurements.deviceStepSeconds(log, warmupSteps: 10)), 0.0031, accuracy: 1e-12)
        XCTAssertNil(GPUMeasurements.epochSeconds(log, gpus: 2, warmupSteps: 25, imagesPerEpoch: 50_000))
    }

    /// An eager step record of a 4-rank run with every device field.
    static func eagerStep(_ step: Int, forward: Double, backward: Double, exposed: Double, optimizer: Double,
                          busy: [Double], starts: [Double]) -> String {
        let total = forward + backward + exposed + optimizer
        func list(_ values: [Double]) -> String { "[" + values.map { "\($0)" }.joined(separator: ",") + "]" }
        return """
            {"event":"step","epoch":1,"step":\(step),"global_step":\(step),"steps_timed":1,"images_per_second":20000,\
            "allreduce_bytes":[24616,19410944,25260288],"device_step_seconds":\(total),"device_forward_seconds":\(forward),\
            "device_backward_seconds":\(backward),"device_exposed_communication_seconds":\(exposed),\
            "device_optimizer_seconds":\(optimizer),"device_allreduce_seconds":\(list(busy)),\
            "device_communication_busy_seconds":\(busy.reduce(0, +)),"device_allreduce_start_seconds":\(list(starts))}
            """
    }

    static func eagerRun(exposedScale: Double = 1) -> String {
        (1...5).map { step in
            eagerStep(step, forward: 0.002, backward: 0.004 + Double(step) * 1e-5, exposed: 0.0005 * exposedScale,
                      optimizer: 0.0003, busy: [0.00002, 0.0004, 0.0006], starts: [0.0025, 0.0040, 0.0052])
        }.joined(separator: "\n")
    }

    func testQ3ComesFromTheEagerStepsDeviceTimings() throws {
        let log = TrainingLog(text: Self.eagerRun())
        let record = try XCTUnwrap(GPUMeasurements.q3(log, strategy: .ddp, precision: .bf16, gpus: 4, perDeviceBatch: 128,
                                                      warmupSteps: 2, withoutCommunication: 0.0062))
        // Timed steps 3, 4, 5: backward 0.00403, 0.00404, 0.00405 -> median 0.00404.
        XCTAssertEqual(record.computeSeconds, 0.002 + 0.00404 + 0.0003, accuracy: 1e-12)
        XCTAssertEqual(record.stepSeconds, 0.002 + 0.00404 + 0.0005 + 0.0003, accuracy: 1e-12)
        XCTAssertEqual(record.exposedCommunicationSeconds, 0.0005, accuracy: 1e-12)
        XCTAssertEqual(record.communicationBusySeconds, 0.00102, accuracy: 1e-12)
        XCTAssertEqual(record.stepSecondsWithoutCommunication, 0.0062)
        XCTAssertEqual(record.bytesPerStep, 24616 + 19_410_944 + 25_260_288)
        XCTAssertEqual(record.overlapFraction, 1 - 0.0005 / 0.00102, accuracy: 1e-12)
        let algbw = Double(record.bytesPerStep) / 0.00102 / 1e9
        XCTAssertEqual(record.algbwGBps, algbw, accuracy: 1e-9)
        XCTAssertEqual(record.busbwGBps, algbw * 2 * 3 / 4, accuracy: 1e-9, "busbw = algbw × 2(n−1)/n")

        // Without a 1-GPU baseline the step without communication is the run's own compute.
        let fallback = try XCTUnwrap(GPUMeasurements.q3(log, strategy: .ddp, precision: .bf16, gpus: 4, perDeviceBatch: 128,
                                                        warmupSteps: 2, withoutCommunication: nil))
        XCTAssertEqual(fallback.stepSecondsWithoutCommunication, fallback.computeSeconds)
        // A graph run has no eager split: no Q3 record from it.
        XCTAssertNil(GPUMeasurements.q3(TrainingLog(text: Self.graphRun), strategy: .ddp, precision: .bf16, gpus: 2,
                                        perDeviceBatch: 128, warmupSteps: 10, withoutCommunication: nil))
    }

    /// Replayed steps timed inside their graph record no all-reduce calls on
    /// the host: the bytes come from the header's buckets (halved in bf16).
    func testQ3OfReplayedStepsTakesItsBytesFromTheBuckets() throws {
        let header = #"{"event":"run","world_size":"4","bucket_bytes":"24616,19410944,25260288","allreduce_dtype":"fp32"}"#
        let replayed = Self.eagerRun().replacingOccurrences(of: #""allreduce_bytes":[24616,19410944,25260288],"#, with: "")
        let record = try XCTUnwrap(GPUMeasurements.q3(TrainingLog(text: header + "\n" + replayed), strategy: .ddp,
                                                      precision: .bf16, gpus: 4, perDeviceBatch: 128, warmupSteps: 2,
                                                      withoutCommunication: 0.0062))
        XCTAssertEqual(record.bytesPerStep, 24616 + 19_410_944 + 25_260_288)
        XCTAssertEqual(record.algbwGBps, Double(record.bytesPerStep) / 0.00102 / 1e9, accuracy: 1e-9)
        XCTAssertEqual(GPUMeasurements.bucketBytesPerStep(["bucket_bytes": "100,300", "allreduce_dtype": "bf16"]), 200)
        XCTAssertNil(GPUMeasurements.bucketBytesPerStep([:]))
    }

    func testTimelineLaysOutComputeAndCommunicationPerRank() throws {
        let logs = [0: TrainingLog(text: Self.eagerRun()), 1: TrainingLog(text: Self.eagerRun(exposedScale: 0))]
        let timeline = try XCTUnwrap(GPUMeasurements.timeline(configuration: "DDP 2 GPUs × 128", logs: logs,
                                                              warmupSteps: 2, steps: 2))
        XCTAssertEqual(timeline.ranks, 2)
        XCTAssertEqual(Set(timeline.intervals.map(\.step)), [0, 1])
        let rank0 = timeline.intervals.filter { $0.rank == 0 && $0.step == 0 }
        XCTAssertEqual(rank0.filter { $0.stream == .compute }.map(\.name), ["forward", "backward", "wait for all-reduce", "optimizer"])
        // Compute intervals are back to back from 0.
        let compute = rank0.filter { $0.stream == .compute }
        XCTAssertEqual(compute[0].startSeconds, 0)
        for (a, b) in zip(compute, compute.dropFirst()) {
            XCTAssertEqual(a.startSeconds + a.durationSeconds, b.startSeconds, accuracy: 1e-12)
        }
        let buckets = rank0.filter { $0.stream == .communication }
        XCTAssertEqual(buckets.map(\.startSeconds), [0.0025, 0.0040, 0.0052])
        XCTAssertEqual(buckets.map(\.bytes), [24616, 19_410_944, 25_260_288])
        // Rank 1 waited for nothing: no wait interval. Step 1 starts where step 0's device time ended.
        XCTAssertFalse(timeline.intervals.contains { $0.rank == 1 && $0.name == "wait for all-reduce" })
        let step1 = try XCTUnwrap(timeline.intervals.first { $0.rank == 0 && $0.step == 1 && $0.name == "forward" })
        XCTAssertEqual(step1.startSeconds, 0.002 + 0.00403 + 0.0005 + 0.0003, accuracy: 1e-12)
        // Chrome trace: one process per rank, both streams named.
        let events = ChromeTrace.events(for: [timeline])
        XCTAssertEqual(events.filter { $0["ph"] as? String == "X" }.count, timeline.intervals.count)
        XCTAssertNil(GPUMeasurements.timeline(configuration: "graphs", logs: [0: TrainingLog(text: Self.graphRun)],
                                              warmupSteps: 0, steps: 3))
    }

    func testQ4EpochsAndTimeToAccuracy() throws {
        let text = """
            {"event":"epoch","epoch":1,"train_loss":1.9,"train_accuracy":0.3,"seconds":1.5}
            {"event":"eval","epoch":1,"test_loss":1.5,"test_accuracy":0.45}
            {"event":"epoch","epoch":2,"train_loss":1.2,"train_accuracy":0.55,"seconds":1.25}
            {"event":"eval","epoch":2,"test_loss":1.0,"test_accuracy":0.66}
            {"event":"epoch","epoch":3,"train_loss":0.9,"train_accuracy":0.7,"seconds":1.0}
            {"event":"eval","epoch":3,"test_loss":0.8,"test_accuracy":0.74,"target_accuracy":0.7,"training_seconds_to_target":3.75}
            """
        let log = TrainingLog(text: text)
        XCTAssertEqual(log.q4Epochs, [
            Q4Epoch(epoch: 1, testAccuracy: 0.45, testLoss: 1.5, trainLoss: 1.9, seconds: 1.5),
            Q4Epoch(epoch: 2, testAccuracy: 0.66, testLoss: 1.0, trainLoss: 1.2, seconds: 1.25),
            Q4Epoch(epoch: 3, testAccuracy: 0.74, testLoss: 0.8, trainLoss: 0.9, seconds: 1.0),
        ])
        XCTAssertEqual(log.timeTo(accuracy: 0.6)?.epoch, 2)
        XCTAssertEqual(log.timeTo(accuracy: 0.6)?.seconds ?? 0, 2.75, accuracy: 1e-12)
        XCTAssertEqual(log.timeTo(accuracy: 0.7)?.seconds ?? 0, 3.75, accuracy: 1e-12)
        XCTAssertEqual(log.evaluations.last?.trainingSecondsToTarget, 3.75)
        XCTAssertNil(log.timeTo(accuracy: 0.9))
    }

    func testPyTorchJSONBecomesRecords() throws {
        let bench = """
            [{"framework":"pytorch","version":"2.11.0","device":"cuda:0","precision":"bf16","channels_last":true,
              "batch_size":512,"median_step_seconds":0.00985,"images_per_second":51986.0,"epoch_seconds":0.96,
              "peak_memory_bytes":4294967296},
             {"framework":"pytorch","version":"2.11.0","device":"cuda:0","precision":"bf16","channels_last":true,
              "batch_size":32,"median_step_seconds":0.00714,"images_per_second":4480.0,"epoch_seconds":11.2,
              "peak_memory_bytes":null}]
            """
        let q1 = try PyTorchResults.q1(from: Data(bench.utf8))
        XCTAssertEqual(q1.version, "2.11.0")
        XCTAssertEqual(q1.records.map(\.batchSize), [512, 32])
        XCTAssertEqual(q1.records[0].framework, .pytorch)
        XCTAssertEqual(q1.records[0].precision, .bf16)
        XCTAssertEqual(q1.records[0].epochSeconds, 50_000 / 51_986.0, accuracy: 1e-12)
        XCTAssertEqual(q1.records[0].peakMemoryBytes, 4_294_967_296)
        XCTAssertNil(q1.records[1].peakMemoryBytes)

        func scaling(_ mode: String, gpus: Int) -> Data {
            Data("""
                {"framework":"pytorch","version":"2.11.0","mode":"\(mode)","gpus":\(gpus),"device":"cuda","precision":"bf16",
                 "channels_last":true,"warmup_steps":15,"timed_steps":45,
                 "results":[{"per_gpu_batch":128,"global_batch":\(128 * gpus),"median_step_seconds":0.01,
                             "images_per_second":\(12800 * gpus),"epoch_seconds":\(50_000.0 / Double(128 * gpus) * 0.01)}]}
                """.utf8)
        }
        let single = try PyTorchResults.q2(from: scaling("single", gpus: 1)).records
        let ddp = try PyTorchResults.q2(from: scaling("ddp", gpus: 4)).records
        let dp = try PyTorchResults.q2(from: scaling("dataparallel", gpus: 4)).records
        XCTAssertEqual(single.first?.strategy, .ddp)
        XCTAssertEqual(ddp.first?.strategy, .ddp)
        XCTAssertEqual(dp.first?.strategy, .dp)
        XCTAssertEqual(ddp.first?.gpus, 4)
        XCTAssertEqual(ddp.first?.perDeviceBatch, 128)
        // Weak scaling against the single-GPU run: both took 0.01 s a step, so 4 GPUs are 4x faster per epoch.
        let derived = (single + ddp + dp).withDerivedScaling()
        XCTAssertEqual(derived[1].speedup ?? 0, 4, accuracy: 1e-9)
        XCTAssertEqual(derived[1].efficiency ?? 0, 1, accuracy: 1e-9)
        XCTAssertEqual(derived[2].efficiency ?? 0, 1, accuracy: 1e-9, "DataParallel's baseline is the same single GPU")

        XCTAssertThrowsError(try PyTorchResults.q2(from: scaling("fsdp", gpus: 2))) { error in
            XCTAssertTrue("\(error)".contains("unknown mode"), "\(error)")
        }
        XCTAssertThrowsError(try PyTorchResults.q1(from: Data("{}".utf8))) { error in
            XCTAssertTrue("\(error)".contains("pytorch_resnet18.py"), "\(error)")
        }
    }

    /// pytorch_train_cifar.py's JSON becomes Q4's PyTorch reference, which the targets compare with Cohort's.
    func testPyTorchTrainingBecomesTheQ4Reference() throws {
        let json = """
            {"framework": "pytorch", "version": "2.11.0", "epochs": [
              {"epoch": 1, "test_accuracy": 0.35, "test_loss": 1.8, "train_loss": 1.9, "seconds": 3.1},
              {"epoch": 2, "test_accuracy": 0.62, "test_loss": 1.1, "train_loss": 1.2, "seconds": 2.9}]}
            """
        let record = try PyTorchResults.q4Reference(from: Data(json.utf8), recipe: "SGD", batch: 128, learningRate: 0.1)
        XCTAssertEqual(record.framework, .pytorch)
        XCTAssertEqual(record.lrRule, .reference)
        XCTAssertEqual(record.finalTestAccuracy, 0.62)
        XCTAssertEqual(record.epochs.map(\.trainLoss), [1.9, 1.2])
        XCTAssertTrue(record.recipe.contains("PyTorch 2.11.0"))
        // Older files without the field read as Cohort's; the field round-trips.
        let encoded = try JSONEncoder().encode(record)
        XCTAssertEqual(try JSONDecoder().decode(Q4Record.self, from: encoded), record)
        var object = try XCTUnwrap(JSONSerialization.jsonObject(with: encoded) as? [String: Any])
        object.removeValue(forKey: "framework")
        let old = try JSONDecoder().decode(Q4Record.self, from: JSONSerialization.data(withJSONObject: object))
        XCTAssertEqual(old.framework, .cohort)

        let ours = Q4Record(label: "reference", recipe: "SGD", lrRule: .reference, ranks: 1, globalBatch: 128,
                            peakLearningRate: 0.1, warmupEpochs: 0, labelSmoothing: 0,
                            epochs: [Q4Epoch(epoch: 1, testAccuracy: 0.64, testLoss: 1, trainLoss: 1, seconds: 1)])
        var results = ExperimentResults(metadata: SampleResults.make().metadata)
        results.q4 = Section(records: [ours, record])
        let row = try XCTUnwrap(ReportTargets.rows(results).first { $0.target.contains("baseline") })
        XCTAssertEqual(row.met, true, row.measured)
        XCTAssertEqual(row.measured, "64.00% (1 run) vs 62.00% (1 run)", "one run each: the strict comparison")
    }
}
