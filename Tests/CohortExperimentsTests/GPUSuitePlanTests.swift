import CohortExperiments
import Foundation
import XCTest

/// The GPU profile's commands for 1, 2 and 4 GPUs, checked without running
/// them, and the results built from files such runs write.
final class GPUSuitePlanTests: XCTestCase {
    func plan(gpus: [Int], parts: Set<SuitePart> = Set(SuitePart.allCases), data: String? = "/data/cifar",
              python: String? = "python3", configure: (inout GPUSuiteSettings) -> Void = { _ in }) -> GPUSuitePlan {
        var settings = GPUSuiteSettings()
        settings.gpuCounts = gpus
        settings.parts = parts
        settings.dataDirectory = data
        settings.python = python
        settings.q4.ranks = min(4, gpus.max() ?? 1)
        configure(&settings)
        return GPUSuitePlan(settings: settings, executable: "/bin/cohort", outputDirectory: "/out")
    }

    func command(_ run: PlannedRun) -> String { run.arguments.joined(separator: " ") }

    func testOneGPUPlansNoCommunication() {
        let plan = plan(gpus: [1])
        let kinds = plan.runs.map(\.kind)
        XCTAssertFalse(kinds.contains(.allReduceSweep))
        XCTAssertEqual(kinds.filter { $0 == .q2Cohort }.count, 4, "one graph run per per-GPU batch")
        XCTAssertEqual(kinds.filter { $0 == .q3Cohort }.count, 4, "one eager run per per-GPU batch (the Q3 baseline)")
        XCTAssertEqual(kinds.filter { $0 == .q2PyTorch }.count, 1)
        for run in plan.runs where run.arguments.first == "/bin/cohort" {
            XCTAssertFalse(run.arguments.contains("launch"), command(run))
            XCTAssertFalse(run.arguments.contains("--strategy"), command(run))
        }
        // Q4 on one GPU: the large batch is 8192 on that GPU, labelled by its rank count.
        let linear = plan.runs.first { $0.kind == .q4 && $0.lrRule == .linear }!
        XCTAssertEqual(linear.gpus, 1)
        XCTAssertEqual(linear.perDeviceBatch, 8192)
        XCTAssertEqual(plan.runs.filter { $0.kind == .timeToAccuracy }.map(\.gpus), [1])
    }

    func testFourGPUsPlanEveryStrategyAndCount() throws {
        let plan = plan(gpus: [1, 2, 4])
        let runs = plan.runs
        // Q2 graph runs: 1 GPU (shared baseline) + {2, 4} GPUs x {ddp, dp}, each x 4 batches; Q3 the same, eager.
        XCTAssertEqual(runs.filter { $0.kind == .q2Cohort }.count, 4 + 2 * 2 * 4)
        XCTAssertEqual(runs.filter { $0.kind == .q3Cohort }.count, 4 + 2 * 2 * 4)
        XCTAssertEqual(Set(runs.map(\.id)).count, runs.count, "every run has its own folder")

        let ddp = try XCTUnwrap(runs.first { $0.id == "q2-ddp-4gpus-b512" })
        XCTAssertEqual(Array(ddp.arguments.prefix(7)), ["/bin/cohort", "launch", "--nproc-per-node", "4", "--master-port",
                                                        ddp.arguments[5], "--"])
        XCTAssertEqual(Array(ddp.arguments[7...8]), ["/bin/cohort", "train"])
        XCTAssertTrue(command(ddp).contains("--batch-size 512 "), command(ddp))
        XCTAssertTrue(command(ddp).contains("--dataset synthetic"), command(ddp))
        XCTAssertTrue(command(ddp).contains("--steps-per-epoch 60 --log-every 5"), command(ddp))
        XCTAssertTrue(command(ddp).hasSuffix("--run-dir /out/runs/q2-ddp-4gpus-b512"), command(ddp))
        XCTAssertFalse(ddp.arguments.contains("--no-graphs"))

        let timed = try XCTUnwrap(runs.first { $0.id == "q3-ddp-4gpus-b512" })
        XCTAssertTrue(command(timed).contains("--steps-per-epoch 26 --log-every 2"), command(timed))
        XCTAssertTrue(timed.arguments.contains("--time-graph-phases"))

        let dp = try XCTUnwrap(runs.first { $0.id == "q2-dp-2gpus-b32" })
        XCTAssertEqual(Array(dp.arguments.prefix(6)), ["/bin/cohort", "train", "--strategy", "dp", "--replicas", "2"])
        XCTAssertEqual(dp.strategy, .dp)

        // Every cohort launch has its own rendezvous port.
        let ports = runs.compactMap { run in run.arguments.firstIndex(of: "--master-port").map { run.arguments[$0 + 1] } }
        XCTAssertEqual(Set(ports).count, ports.count)

        // The sweep, on each multi-GPU count, plus the gradients' exact size.
        let sweeps = runs.filter { $0.kind == .allReduceSweep }
        XCTAssertEqual(sweeps.map(\.gpus), [2, 4])
        XCTAssertTrue(command(sweeps[1]).contains("launch --nproc-per-node 4"))
        XCTAssertTrue(command(sweeps[1]).contains("bench allreduce --device cuda --min-bytes 1024 --max-bytes 1073741824"))
        let exact = try XCTUnwrap(runs.first { $0.kind == .allReduceAtGradientSize && $0.gpus == 4 })
        XCTAssertTrue(command(exact).contains("--min-bytes 44695848 --max-bytes 44695848"), command(exact))

        // PyTorch: torchrun for DDP, one process for DataParallel, no wrapper on one GPU.
        let pytorch = runs.filter { $0.kind == .q2PyTorch }.map(command)
        XCTAssertEqual(pytorch.count, 5)
        XCTAssertTrue(pytorch.contains { $0.hasPrefix("python3 -m torch.distributed.run --standalone --nproc-per-node 4 benchmarks/pytorch_ddp.py --gpus 4") })
        XCTAssertTrue(pytorch.contains { $0.hasPrefix("python3 benchmarks/pytorch_ddp.py --dataparallel --gpus 4") })
        XCTAssertTrue(pytorch.contains { $0.hasPrefix("python3 benchmarks/pytorch_ddp.py --gpus 1 --precision bf16 --channels-last") })
        let q1 = try XCTUnwrap(runs.first { $0.kind == .q1PyTorch })
        XCTAssertTrue(command(q1).contains("pytorch_resnet18.py --device cuda --precision bf16 --channels-last --batch-sizes 32 128 512 2048"))

        // Q4: reference 1 x 128; (a)-(d) on 4 GPUs x 2048 with the rules' learning rates; (e) with label smoothing
        // (the reference's repeats with other seeds: testReferenceSeedsRepeatBothReferencesWithTheirSeedsLast).
        let q4 = runs.filter { $0.kind == .q4 && ($0.seed ?? 0) == 0 }
        XCTAssertEqual(q4.compactMap(\.lrRule), [.reference, .same, .linear, .sqrt, .lars, .linear])
        XCTAssertEqual(q4.map(\.gpus), [1, 4, 4, 4, 4, 4])
        XCTAssertEqual(q4.map(\.perDeviceBatch), [128, 2048, 2048, 2048, 2048, 2048])
        func lr(_ run: PlannedRun) -> String? { run.arguments.firstIndex(of: "--lr").map { run.arguments[$0 + 1] } }
        XCTAssertEqual(q4.map(lr), ["0.1", "0.1", "6.4", "0.8", "6.4", "6.4"])
        XCTAssertTrue(command(q4[4]).contains("--optimizer lars --lars-eta 0.001"))
        XCTAssertTrue(command(q4[2]).contains("--warmup-epochs 2"))
        XCTAssertTrue(command(q4[1]).contains("--warmup-epochs 0"))
        XCTAssertTrue(q4[5].isBestOfQ4)
        XCTAssertTrue(command(q4[5]).contains("--label-smoothing 0.1"))
        XCTAssertTrue(command(q4[0]).contains("--data /data/cifar"))

        // Time to accuracy: 1 GPU x 1024 and 4 GPUs x 256 (the same global batch), stopping at the target.
        let tta = runs.filter { $0.kind == .timeToAccuracy }
        XCTAssertEqual(tta.map(\.gpus), [1, 4])
        XCTAssertEqual(tta.map(\.perDeviceBatch), [1024, 256])
        XCTAssertTrue(command(tta[1]).contains("--lr 0.8 "), command(tta[1]))
        XCTAssertTrue(command(tta[1]).contains("--target-accuracy 0.9"))

        // Order: dp comes last, after time to accuracy, so a time limit cuts it first.
        let lastTTA = try XCTUnwrap(runs.lastIndex { $0.kind == .timeToAccuracy })
        let firstDP = try XCTUnwrap(runs.firstIndex { $0.strategy == .dp })
        XCTAssertGreaterThan(firstDP, lastTTA)
        XCTAssertEqual(runs.first?.kind, .q1Cohort)
    }

    /// --q4-reference-seeds N: the reference and PyTorch's each run with seeds 0..N-1, seed 0 under
    /// the ids results folders already use, the repeats last (a time limit cuts them first).
    func testReferenceSeedsRepeatBothReferencesWithTheirSeedsLast() throws {
        func seed(_ run: PlannedRun) -> String? { run.arguments.firstIndex(of: "--seed").map { run.arguments[$0 + 1] } }
        for count in [1, 3, 4] {
            let runs = plan(gpus: [1, 2, 4]) { $0.q4.referenceSeeds = count }.runs
            XCTAssertEqual(Set(runs.map(\.id)).count, runs.count, "every run has its own folder")
            let cohort = runs.filter { $0.kind == .q4 && $0.lrRule == .reference }
            let pytorch = runs.filter { $0.kind == .q4PyTorch }
            XCTAssertEqual(cohort.compactMap(seed), (0..<count).map(String.init))
            XCTAssertEqual(pytorch.compactMap(seed), (0..<count).map(String.init))
            XCTAssertEqual(cohort.map(\.seed), (0..<count).map { $0 })
            XCTAssertEqual(pytorch.map(\.seed), (0..<count).map { $0 })
            XCTAssertEqual(cohort.map(\.id), ["q4-reference"] + (1..<count).map { "q4-reference-seed\($0)" })
            XCTAssertEqual(pytorch.map(\.id), ["q4-pytorch-reference"] + (1..<count).map { "q4-pytorch-reference-seed\($0)" })
            for run in cohort {
                XCTAssertTrue(run.arguments.contains("--run-dir") && command(run).hasSuffix("--run-dir /out/runs/\(run.id)"))
                XCTAssertEqual(run.gpus, 1)
                XCTAssertEqual(run.perDeviceBatch, 128)
            }
            for run in pytorch {
                XCTAssertTrue(command(run).contains("pytorch_train_cifar.py --data /data/cifar --epochs 5 --batch-size 128"), command(run))
                XCTAssertTrue(command(run).hasSuffix("--seed \(run.seed!) --json /out/runs/\(run.id)/pytorch.json"), command(run))
            }
            // Only the references take a seed.
            XCTAssertFalse(runs.contains { $0.lrRule != .reference && $0.arguments.contains("--seed") })
            // Seed 0 keeps its place; the repeats come after everything else (dp included), Cohort's and PyTorch's in turn.
            let repeats = runs.indices.filter { (runs[$0].seed ?? 0) > 0 }
            XCTAssertEqual(repeats, Array(runs.count - 2 * (count - 1)..<runs.count))
            XCTAssertEqual(repeats.map { runs[$0].seed! }, (1..<count).flatMap { [$0, $0] })
            XCTAssertEqual(repeats.map { runs[$0].kind }, (1..<count).flatMap { _ in [PlannedRun.Kind.q4, .q4PyTorch] })
            let firstReference = try XCTUnwrap(runs.firstIndex { $0.kind == .q4 && $0.lrRule == .reference })
            XCTAssertEqual(runs[firstReference + 1].lrRule, .same, "(a) follows the seed-0 reference as before")
            XCTAssertLessThan(try XCTUnwrap(runs.firstIndex { $0.kind == .q4PyTorch }),
                              try XCTUnwrap(runs.firstIndex { $0.kind == .timeToAccuracy }))
        }
        // Without PyTorch only Cohort's reference repeats.
        let alone = plan(gpus: [1], python: nil).runs
        XCTAssertEqual(alone.filter { $0.lrRule == .reference }.map(\.id), ["q4-reference", "q4-reference-seed1", "q4-reference-seed2"])
    }

    /// PyTorch's DataParallel times a third of the steps DDP does (it is slow to start and to run).
    func testPyTorchDataParallelTimesFewerSteps() throws {
        let runs = plan(gpus: [1, 4]).runs.filter { $0.kind == .q2PyTorch }
        func value(_ run: PlannedRun, _ flag: String) -> String? {
            run.arguments.firstIndex(of: flag).map { run.arguments[$0 + 1] }
        }
        let dp = try XCTUnwrap(runs.first { $0.strategy == .dp })
        let ddp = try XCTUnwrap(runs.first { $0.strategy == .ddp })
        XCTAssertEqual(value(ddp, "--warmup"), "15")
        XCTAssertEqual(value(ddp, "--steps"), "45")
        XCTAssertEqual(value(dp, "--warmup"), "5")
        XCTAssertEqual(value(dp, "--steps"), "15")
        XCTAssertTrue(dp.arguments.contains("--dataparallel"))
    }

    /// Q3's steps are replayed from graphs and timed inside by default; --no-q3-replayed-steps makes them eager.
    func testQ3StepsAreEagerOrReplayedAndTimedInside() {
        XCTAssertTrue(GPUSuiteSettings().q3ReplayedSteps)
        for replayed in [false, true] {
            let runs = plan(gpus: [1, 4]) { $0.q3ReplayedSteps = replayed }.runs
                .filter { $0.kind == .q3Cohort || $0.kind == .q3NoCommunication }
            XCTAssertFalse(runs.isEmpty)
            for run in runs {
                XCTAssertEqual(run.arguments.contains("--no-graphs"), !replayed, run.label)
                XCTAssertEqual(run.arguments.contains("--time-graph-phases"), replayed, run.label)
                XCTAssertTrue(run.label.contains(replayed ? "graphs" : "eager"), run.label)
                // Replayed: 5 warm-up + 2 x 10 steps rounded up to even, every second one logged.
                let at = { (flag: String) in run.arguments.firstIndex(of: flag).map { run.arguments[$0 + 1] } }
                XCTAssertEqual(at("--log-every"), replayed ? "2" : "1", run.label)
                XCTAssertEqual(at("--steps-per-epoch"), replayed ? "26" : "15", run.label)
            }
        }
        // Q2 replays graphs either way, untimed inside.
        for run in plan(gpus: [1, 4]) { $0.q3ReplayedSteps = true }.runs where run.kind == .q2Cohort {
            XCTAssertFalse(run.arguments.contains("--time-graph-phases") || run.arguments.contains("--no-graphs"), run.label)
        }
    }

    /// --q4-zero-init-residual reaches the large-batch runs (and their recipe text), not the reference.
    func testZeroInitResidualReachesTheLargeBatchRunsOnly() {
        let zeroed = plan(gpus: [1, 4]) { $0.q4.zeroInitResidual = true; $0.q4.recalibrationBatches = 20 }
        let q4 = zeroed.runs.filter { $0.kind == .q4 }
        XCTAssertFalse(q4.isEmpty)
        for run in q4 {
            XCTAssertEqual(run.arguments.contains("--zero-init-residual"), run.lrRule != .reference, run.label)
            XCTAssertEqual(run.arguments.contains("--bn-recalibration-batches"), run.lrRule != .reference, run.label)
        }
        XCTAssertTrue(zeroed.q4Recipe(rule: .lars, labelSmoothing: 0).contains("zero-init residual"))
        XCTAssertFalse(plan(gpus: [1, 4]).runs.contains { $0.arguments.contains("--zero-init-residual") })
        // Batch-norm recalibration is on by default for the large-batch runs only.
        for run in plan(gpus: [1, 4]).runs where run.kind == .q4 {
            XCTAssertEqual(run.arguments.contains("--bn-recalibration-batches"), run.lrRule != .reference, run.label)
        }
    }

    func testPartsDataAndPyTorchNarrowThePlan() {
        let noData = plan(gpus: [1, 2], data: nil, python: nil)
        XCTAssertFalse(noData.runs.contains { $0.kind == .q4 || $0.kind == .timeToAccuracy })
        XCTAssertFalse(noData.runs.contains { $0.kind == .q1PyTorch || $0.kind == .q2PyTorch })
        let onlySweep = plan(gpus: [1, 2], parts: [.allreduce])
        XCTAssertEqual(onlySweep.runs.map(\.kind), [.allReduceSweep, .allReduceAtGradientSize, .allReducePyTorch])
        let onlyQ3 = plan(gpus: [1, 2], parts: [.q3], python: "python3")
        XCTAssertTrue(onlyQ3.runs.allSatisfy { $0.kind == .q3Cohort || $0.kind == .q3NoCommunication })
        // Each multi-GPU Q3 configuration has its twin without communication.
        let nocomm = onlyQ3.runs.filter { $0.kind == .q3NoCommunication }
        XCTAssertEqual(nocomm.count, onlyQ3.runs.filter { $0.kind == .q3Cohort && $0.gpus > 1 }.count)
        XCTAssertTrue(nocomm.allSatisfy { $0.gpus > 1 && $0.arguments.contains("--no-communication")
                                          && $0.arguments.contains("--time-graph-phases") })
        let ddpOnly = plan(gpus: [1, 2]) { $0.strategies = [.ddp] }
        XCTAssertFalse(ddpOnly.runs.contains { $0.strategy == .dp })
        // Q4 on 2 GPUs: the same global batch, 4096 each.
        let two = plan(gpus: [1, 2])
        XCTAssertEqual(two.runs.first { $0.kind == .q4 && $0.lrRule == .sqrt }?.perDeviceBatch, 4096)
        XCTAssertEqual(two.q4Recipe(rule: .sqrt, labelSmoothing: 0),
                       "SGD, momentum 0.9 Nesterov, weight decay 0.0005, LR 0.8 after 2 warm-up epochs, linear decay over 5 epochs, "
                       + "batch-norm statistics recomputed over 4 batches before evaluating, bf16")
    }

    // MARK: Results from the runs' files

    /// Writes what a 1- and 2-GPU suite's runs would write, and reads the results back.
    func testResultsAreBuiltFromTheRunsFilesAndNameWhatIsMissing() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-gpu-suite-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        var settings = GPUSuiteSettings()
        settings.gpuCounts = [1, 2]
        settings.q2Batches = [128]
        settings.strategies = [.ddp, .dp]
        settings.warmupSteps = 10
        settings.eagerWarmupSteps = 2
        settings.python = "python3"
        settings.dataDirectory = "/data"
        settings.q4.ranks = 2
        settings.parts = [.q1, .q2, .q3, .allreduce, .q4]
        let plan = GPUSuitePlan(settings: settings, executable: "/bin/cohort", outputDirectory: out.path)

        func write(_ id: String, _ file: String, _ text: String) throws {
            let folder = out.appendingPathComponent("runs/\(id)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try text.write(to: folder.appendingPathComponent(file), atomically: true, encoding: .utf8)
        }
        try write("q1-cohort", "bench.json", """
            [{"model":"resnet18","backend":"cuda","precision":"bf16","batchSize":512,"warmupSteps":5,"timedSteps":20,
              "medianStepSeconds":0.00817,"imagesPerSecond":62665,"epochSeconds":0.8,"graphs":true,"graphNote":"graph",
              "peakMemoryBytes":3221225472}]
            """)
        // A graph run per configuration: the 1-GPU rate 40,000 and the 2-GPU rate 39,000 per GPU.
        func graphRun(rate: Int) -> String {
            (1...4).map { """
                {"event":"step","global_step":\($0 * 5),"steps_timed":5,"graph_replayed_steps":\(rate == 40_000 ? 0 : 5),"images_per_second":\($0 <= 2 ? 100 : rate)}
                """ }.joined(separator: "\n")
        }
        try write("q2-1gpu-b128", "metrics.jsonl", graphRun(rate: 40_000))
        try write("q2-ddp-2gpus-b128", "metrics-rank0.jsonl", graphRun(rate: 39_000))
        try write("q3-1gpu-b128", "metrics.jsonl", """
            {"event":"step","global_step":3,"steps_timed":1,"device_step_seconds":0.0061,"device_forward_seconds":0.002,"device_backward_seconds":0.0038,"device_optimizer_seconds":0.0003}
            """)
        try write("q3-ddp-2gpus-b128", "metrics-rank0.jsonl", GPUMeasurementsTests.eagerRun())
        try write("q3-ddp-2gpus-b128", "metrics-rank1.jsonl", GPUMeasurementsTests.eagerRun(exposedScale: 0))
        try write("allreduce-2gpus", "allreduce.json", """
            [{"communicator":"nccl","ranks":2,"bytes":1024,"seconds":0.00002,"algbwGBps":0.0512,"busbwGBps":0.0512}]
            """)
        try write("allreduce-2gpus-gradients", "allreduce.json", """
            [{"communicator":"nccl","ranks":2,"bytes":44695848,"seconds":0.000191,"algbwGBps":234.0,"busbwGBps":234.0}]
            """)
        try write("q2-pytorch-ddp-2gpus", "pytorch.json", """
            {"framework":"pytorch","version":"2.11.0","mode":"ddp","gpus":2,"precision":"bf16",
             "results":[{"per_gpu_batch":128,"epoch_seconds":1.2}]}
            """)
        try write("q4-reference", "metrics.jsonl", """
            {"event":"epoch","epoch":1,"train_loss":1.6,"train_accuracy":0.4,"seconds":2.0}
            {"event":"eval","epoch":1,"test_loss":1.3,"test_accuracy":0.52}
            """)
        try write("q4-linear", "metrics-rank0.jsonl", """
            {"event":"epoch","epoch":1,"train_loss":2.2,"train_accuracy":0.2,"seconds":0.5}
            {"event":"eval","epoch":1,"test_loss":2.0,"test_accuracy":0.25}
            """)

        var executed: [ExecutedRun] = []
        for run in plan.runs {
            let outcome: RunOutcome
            switch run.id {
            case "q1-pytorch": outcome = .failed(reason: "exit status 1: ModuleNotFoundError: No module named 'torch'")
            case let id where id.contains("dp-2gpus") && !id.contains("ddp"):
                outcome = .failed(reason: "exit status 64: Error: Unknown option '--strategy'")
            case "q4-linear": outcome = .failed(reason: "exit status 1: training diverged")
            case "q2-pytorch-1gpu": outcome = .skipped(reason: "out of time")
            case let id where id.hasPrefix("q4-") && id != "q4-reference": outcome = .skipped(reason: "out of time")
            default: outcome = .finished(seconds: 5)
            }
            executed.append(ExecutedRun(run: run, outcome: outcome))
        }
        var assembly = GPUSuiteResults(plan: plan, executed: executed)
        let metadata = RunMetadata(machine: "test", card: "NVIDIA H200", deviceCount: 2, commit: "abc", date: "2026-11-27T00:00:00Z",
                                   command: "cohort experiments", profile: .gpu, syntheticData: true, imagesPerEpoch: 50_000)
        let results = assembly.assemble(metadata: metadata)

        XCTAssertEqual(results.q1.records.count, 1)
        XCTAssertEqual(results.q1.records.first?.peakMemoryBytes, 3_221_225_472)
        XCTAssertEqual(results.q1.records.first?.epochSeconds ?? 0, 50_000 / 62_665.0, accuracy: 1e-12)
        XCTAssertTrue(results.q1.notRunReason?.contains("No module named 'torch'") ?? false, "\(results.q1)")

        let cohort2 = try XCTUnwrap(results.q2.records.first { $0.framework == .cohort && $0.gpus == 2 })
        XCTAssertEqual(cohort2.epochSeconds, 50_000 / (2 * 39_000.0), accuracy: 1e-12)
        XCTAssertEqual(cohort2.efficiency ?? 0, 39_000.0 / 40_000, accuracy: 1e-12)
        let pytorch2 = try XCTUnwrap(results.q2.records.first { $0.framework == .pytorch })
        XCTAssertNil(pytorch2.speedup, "PyTorch's 1-GPU run was skipped: no baseline, no made-up speedup")
        XCTAssertTrue(results.q2.notRunReason?.contains("Unknown option '--strategy'") ?? false)
        XCTAssertTrue(results.q2.notRunReason?.contains("Q2 PyTorch 1 GPU: out of time") ?? false)
        XCTAssertTrue(results.q2.notRunReason?.contains("Q2 1 GPU × 128 (graphs): measured, but its timed steps ran eagerly") ?? false,
                      "a graph run without replays says so")
        XCTAssertFalse(results.q2.notRunReason?.contains("Q2 DDP 2 GPUs × 128 (graphs): measured") ?? true)

        let q3 = try XCTUnwrap(results.q3.records.first)
        XCTAssertEqual(results.q3.records.count, 1)
        XCTAssertEqual(q3.stepSecondsWithoutCommunication, 0.0061,
                       "no run without communication: the 1-GPU eager step at the same batch stands in")

        // With the same configuration run without communication, that run is the baseline.
        try write("q3-ddp-2gpus-b128-nocomm", "metrics-rank0.jsonl", """
            {"event":"step","global_step":3,"steps_timed":1,"device_step_seconds":0.0064,"device_forward_seconds":0.002,"device_backward_seconds":0.0041,"device_optimizer_seconds":0.0003}
            """)
        var again = GPUSuiteResults(plan: plan, executed: executed)
        let rebuilt = try XCTUnwrap(again.assemble(metadata: metadata).q3.records.first)
        XCTAssertEqual(rebuilt.stepSecondsWithoutCommunication, 0.0064, "the same 2-GPU step with communication off")
        XCTAssertEqual(q3.gpus, 2)
        XCTAssertEqual(results.allReduceSweep.records.map(\.bytes), [1024, 44_695_848])
        XCTAssertEqual(results.timelines.records.first?.ranks, 2)
        XCTAssertEqual(results.timelines.records.first?.configuration, "DDP 2 GPUs × 128")

        // Q4: the reference, and (b)'s epoch before it diverged; (e) has no candidate that finished.
        XCTAssertEqual(results.q4.records.map(\.lrRule), [.reference, .linear])
        XCTAssertEqual(results.q4.records[1].globalBatch, 8192)
        XCTAssertEqual(results.q4.records[1].peakLearningRate, 6.4, accuracy: 1e-12)
        XCTAssertTrue(results.q4.notRunReason?.contains("stopped after epoch 1: exit status 1: training diverged") ?? false,
                      results.q4.notRunReason ?? "")
        XCTAssertEqual(results.timeToAccuracy.notRunReason, "not requested (--only)")
        XCTAssertTrue(results.metadata.notes.contains { $0.contains("EXTRAPOLATED") })
        XCTAssertEqual(results.metadata.libraries.pytorch, "2.11.0")

        // The reports render, with the targets read off the records.
        let targets = ReportTargets.rows(results)
        // Cohort's all-reduce at the gradient size ran, PyTorch's did not: that row is not measured.
        XCTAssertTrue(targets.contains { $0.target.contains("busbw") && $0.met == nil && $0.measured.contains("PyTorch") })
        var withReference = results
        withReference.allReduceSweep.records.append(AllReduceSweepRecord(
            communicator: "pytorch nccl", ranks: 2, bytes: 44_695_848, seconds: 1, algbwGBps: 1, busbwGBps: 1e9))
        XCTAssertTrue(ReportTargets.rows(withReference).contains { $0.target.contains("busbw") && $0.met == false })
        // Q4 ran the reference and (b) only: the gap cannot be read without (a); no time-to-accuracy run.
        XCTAssertTrue(targets.contains { $0.target.contains("accuracy gap") && $0.met == nil && $0.measured.contains("(a)") })
        XCTAssertTrue(targets.contains { $0.target.contains("time to 90%") && $0.met == nil })
        XCTAssertTrue(targets.contains { $0.target.contains("≥ 95%") && $0.configuration.contains("2 GPUs (4 were not measured) × 128") && $0.met == true })
        XCTAssertTrue(targets.contains { $0.target.contains("dp epoch") && $0.met == nil })
        let markdown = MarkdownReport.render(results)
        XCTAssertTrue(markdown.contains("## Targets"), markdown)
        XCTAssertTrue(ReportSections.all(results).contains { $0.id == "targets" })
    }
}
