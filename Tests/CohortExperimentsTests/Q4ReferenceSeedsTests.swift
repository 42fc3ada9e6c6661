import CohortExperiments
import Foundation
import XCTest

/// Note [Q4 reference seeds]: the references run with several seeds, and the
/// baseline target compares the means, within seed noise where both sides
/// have two runs or more.
final class Q4ReferenceSeedsTests: XCTestCase {
    static let baseline = "Q4 baseline ≥ PyTorch's with the same recipe"

    /// A reference run of `epochs` epochs ending at `accuracy`.
    static func reference(_ framework: Framework, seed: Int?, _ accuracy: Double, epochs: Int = 5) -> Q4Record {
        Q4Record(label: Q4Record.referenceLabel(framework, seed: seed), recipe: "SGD", lrRule: .reference, ranks: 1,
                 globalBatch: 128, peakLearningRate: 0.1, warmupEpochs: 0, labelSmoothing: 0,
                 epochs: (1...epochs).map { epoch in
                     Q4Epoch(epoch: epoch, testAccuracy: epoch == epochs ? accuracy : accuracy * Double(epoch) / Double(epochs + 1),
                             testLoss: 0.84, trainLoss: 0.9, seconds: 2)
                 }, framework: framework, seed: seed)
    }

    /// Cohort's and PyTorch's references with these final accuracies, seeds 0, 1, ...
    static func results(cohort: [Double], pytorch: [Double], extra: [Q4Record] = []) -> ExperimentResults {
        var results = ExperimentResults(metadata: SampleResults.make().metadata)
        results.q4 = Section(records: cohort.enumerated().map { reference(.cohort, seed: $0.offset, $0.element) }
                             + pytorch.enumerated().map { reference(.pytorch, seed: $0.offset, $0.element) } + extra)
        return results
    }

    func baselineRow(_ results: ExperimentResults) throws -> ReportTargets.Row {
        let rows = ReportTargets.rows(results).filter { $0.target == Self.baseline }
        XCTAssertEqual(rows.count, 1)
        return try XCTUnwrap(rows.first)
    }

    // MARK: The verdict

    /// (a) One seed each: today's strict comparison of the two runs.
    func testOneSeedEachIsTheStrictSingleRunComparison() throws {
        // A 4 x H200 suite's figures, 70.23% against 70.44%: one run each, so the strict comparison says NOT met.
        let below = try baselineRow(Self.results(cohort: [0.7023], pytorch: [0.7044]))
        XCTAssertEqual(below.met, false)
        XCTAssertFalse(below.withinSeedNoise)
        XCTAssertEqual(below.verdict, "NOT met")
        XCTAssertEqual(below.measured, "70.23% (1 run) vs 70.44% (1 run)")
        XCTAssertEqual(below.configuration, "1 GPU × 128")

        let above = try baselineRow(Self.results(cohort: [0.7044], pytorch: [0.7023]))
        XCTAssertEqual(above.verdict, "met")
        let equal = try baselineRow(Self.results(cohort: [0.70], pytorch: [0.70]))
        XCTAssertEqual(equal.verdict, "met", "at least PyTorch's: equal is met")

        // One run on either side is strict too, however many the other has.
        let uneven = try baselineRow(Self.results(cohort: [0.7023, 0.6990, 0.7070], pytorch: [0.7044]))
        XCTAssertEqual(uneven.verdict, "NOT met")
        XCTAssertTrue(uneven.measured.hasSuffix("vs 70.44% (1 run)"), uneven.measured)
        XCTAssertFalse(uneven.measured.contains("standard error"), uneven.measured)
    }

    /// (b) Three seeds each, Cohort's mean slightly below PyTorch's but within one pooled standard error.
    func testThreeSeedsSlightlyBelowWithinNoiseAreMetWithinSeedNoise() throws {
        let cohort = [0.7023, 0.6990, 0.7070], pytorch = [0.7044, 0.7010, 0.7060]
        let row = try baselineRow(Self.results(cohort: cohort, pytorch: pytorch))
        XCTAssertEqual(row.met, true)
        XCTAssertTrue(row.withinSeedNoise)
        XCTAssertEqual(row.verdict, "met (within seed noise)")
        // Means 70.28% and 70.38%; sample deviations 0.40 and 0.26 points; the pooled standard error of the difference 0.27 points.
        XCTAssertEqual(row.measured, "70.28% ± 0.40 pp (3 runs) vs 70.38% ± 0.26 pp (3 runs); "
                       + "difference −0.10 pp, pooled standard error 0.27 pp")
        // The targets table shows the qualified verdict.
        let markdown = MarkdownReport.render(Self.results(cohort: cohort, pytorch: pytorch))
        XCTAssertTrue(markdown.contains("| met (within seed noise) |"), markdown)

        // Above PyTorch's mean: plainly met, with the difference shown.
        let above = try baselineRow(Self.results(cohort: pytorch, pytorch: cohort))
        XCTAssertEqual(above.verdict, "met")
        XCTAssertTrue(above.measured.contains("difference +0.10 pp"), above.measured)
    }

    /// (c) Three seeds each, Cohort's mean clearly below: NOT met.
    func testThreeSeedsClearlyBelowAreNotMet() throws {
        let row = try baselineRow(Self.results(cohort: [0.660, 0.661, 0.659], pytorch: [0.704, 0.703, 0.705]))
        XCTAssertEqual(row.met, false)
        XCTAssertFalse(row.withinSeedNoise)
        XCTAssertEqual(row.verdict, "NOT met")
        XCTAssertEqual(row.measured, "66.00% ± 0.10 pp (3 runs) vs 70.40% ± 0.10 pp (3 runs); "
                       + "difference −4.40 pp, pooled standard error 0.08 pp")
    }

    /// Runs that stopped before their side's last epoch (cut by the time limit) are no samples; none of one side: not measured.
    func testOnlyFinishedReferencesCount() throws {
        let stopped = Self.reference(.cohort, seed: 2, 0.40, epochs: 3)
        let row = try baselineRow(Self.results(cohort: [0.7024, 0.6990], pytorch: [0.7044, 0.7010], extra: [stopped]))
        XCTAssertTrue(row.measured.hasPrefix("70.07% ± 0.24 pp (2 runs) vs 70.27% ± 0.24 pp (2 runs)"), row.measured)
        XCTAssertEqual(row.verdict, "met (within seed noise)")

        let none = try baselineRow(Self.results(cohort: [0.70], pytorch: []))
        XCTAssertNil(none.met)
        XCTAssertEqual(none.verdict, "not measured")
        // The large-batch runs are no references.
        var withLargeBatch = Self.results(cohort: [0.70], pytorch: [0.69])
        withLargeBatch.q4.records += SampleResults.q4().filter { $0.lrRule != .reference }
        XCTAssertEqual(try baselineRow(withLargeBatch).measured, "70.00% (1 run) vs 69.00% (1 run)")
    }

    func testSeedSummaryFigures() throws {
        let two = try XCTUnwrap(ReportTargets.SeedSummary([0.70, 0.72]))
        XCTAssertEqual(two.mean, 0.71, accuracy: 1e-12)
        XCTAssertEqual(two.standardDeviation, 0.02 / 2.0.squareRoot(), accuracy: 1e-12)
        let three = try XCTUnwrap(ReportTargets.SeedSummary([0.60, 0.62, 0.64]))
        XCTAssertEqual(three.standardDeviation, 0.02, accuracy: 1e-12)
        // s_p² = (1 · 0.0002 + 2 · 0.0004) / 3; SE = s_p · sqrt(1/2 + 1/3).
        let expected = ((0.0002 + 2 * 0.0004) / 3 * (1.0 / 2 + 1.0 / 3)).squareRoot()
        XCTAssertEqual(try XCTUnwrap(ReportTargets.SeedSummary.pooledStandardError(two, three)), expected, accuracy: 1e-12)
        XCTAssertNil(ReportTargets.SeedSummary.pooledStandardError(two, try XCTUnwrap(ReportTargets.SeedSummary([0.7]))))
        XCTAssertNil(ReportTargets.SeedSummary([]))
        XCTAssertEqual(ReportTargets.SeedSummary([0.7])?.text, "70.00% (1 run)")
    }

    // MARK: The report

    /// The per-epoch tables keep one column per recipe (seed 0); the runs table and a seeds table show every seed.
    func testTheQ4SectionShowsSeedZeroPerEpochAndEverySeedsFinalAccuracy() throws {
        let stopped = Self.reference(.pytorch, seed: 2, 0.41, epochs: 2)
        let results = Self.results(cohort: [0.7023, 0.6990, 0.7070], pytorch: [0.7044, 0.7010], extra: [stopped])
        let section = try XCTUnwrap(ReportSections.all(results).first { $0.id == "q4" })
        let runs = try XCTUnwrap(section.tables.first { $0.caption == "Q4 runs" })
        XCTAssertEqual(runs.rows.map { $0[0] }, ["reference", "reference seed 1", "reference seed 2", "PyTorch reference",
                                                 "PyTorch reference seed 1", "PyTorch reference seed 2"])
        XCTAssertEqual(runs.rows[2][8], "70.70%")
        let accuracy = try XCTUnwrap(section.tables.first { $0.caption == "Q4: test accuracy after each epoch" })
        XCTAssertEqual(accuracy.headers, ["Epoch", "reference", "PyTorch reference"])
        XCTAssertEqual(accuracy.rows.last, ["5", "70.23%", "70.44%"])
        let loss = try XCTUnwrap(section.tables.first { $0.caption == "Q4: test loss after each epoch" })
        XCTAssertEqual(loss.headers.count, 3)
        let seeds = try XCTUnwrap(section.tables.first { $0.caption.hasPrefix("Q4: the references' final test accuracy by seed") })
        XCTAssertEqual(seeds.headers, ["Seed", "Cohort", "PyTorch"])
        XCTAssertEqual(seeds.rows, [["0", "70.23%", "70.44%"], ["1", "69.90%", "70.10%"],
                                    ["2", "70.70%", "41.00% (stopped after epoch 2)"],
                                    ["mean ± sd", "70.28% ± 0.40 pp (3 runs)", "70.27% ± 0.24 pp (2 runs)"]])
        // The charts draw seed 0 only.
        XCTAssertEqual(section.charts.count, 2)
        XCTAssertFalse(section.charts.contains { $0.svg.contains("seed 1") })

        // Without repeats the section is as before: no seeds table.
        let single = Self.results(cohort: [0.7023], pytorch: [0.7044])
        let plain = try XCTUnwrap(ReportSections.all(single).first { $0.id == "q4" })
        XCTAssertEqual(plain.tables.map(\.caption), ["Q4 runs", "Q4: test accuracy after each epoch", "Q4: test loss after each epoch"])
    }

    // MARK: Results files

    /// The seed round-trips, a record from before it reads as nil (seed 0), and the schema allows it.
    func testTheSeedRoundTripsAndMatchesTheSchema() throws {
        let results = Self.results(cohort: [0.70, 0.71], pytorch: [0.69, 0.70])
        let data = try ResultsFile.encode(results)
        XCTAssertEqual(try ResultsFile.decode(data), results)
        XCTAssertEqual(try ResultsFile.decode(data).q4.records.map(\.seed), [0, 1, 0, 1])
        let schema = try JSONSerialization.jsonObject(with: Data(contentsOf: SchemaTests.schemaURL))
        let errors = StructuralValidator(root: schema).validate(try JSONSerialization.jsonObject(with: data))
        XCTAssertEqual(errors, [], errors.joined(separator: "\n"))

        var object = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(results.q4.records[1])) as? [String: Any])
        XCTAssertEqual(object["seed"] as? Int, 1)
        object.removeValue(forKey: "seed")
        let old = try JSONDecoder().decode(Q4Record.self, from: JSONSerialization.data(withJSONObject: object))
        XCTAssertNil(old.seed)
        XCTAssertTrue(old.isFirstSeed)
    }

    /// Note [Merging results]: the repeats of one call join the seed-0 runs of another (ids and keys stay unique).
    func testMergingJoinsTheSeedsOfSeveralCalls() throws {
        // Call 1: before seeds existed (no seed field) or with --q4-reference-seeds 1.
        var first = Self.results(cohort: [0.7023], pytorch: [0.7044])
        first.q4.records = first.q4.records.map { var r = $0; r.seed = nil; return r }
        // Call 2: --only q4 with three seeds each; its seed 0 replaces call 1's.
        var second = Self.results(cohort: [0.7030, 0.6990, 0.7070], pytorch: [0.7050, 0.7010, 0.7060])
        second.metadata.commit = "bbbbbbb"
        let merged = try ResultsMerge.merge([first, second])
        let references = merged.q4.records.filter { $0.lrRule == .reference }
        XCTAssertEqual(references.count, 6)
        XCTAssertEqual(Set(references.map { "\($0.framework) \($0.label)" }).count, 6, "unique labels")
        XCTAssertEqual(references.first { $0.framework == .cohort && $0.isFirstSeed }?.finalTestAccuracy, 0.7030,
                       "the later call's seed 0 wins")
        XCTAssertTrue(try baselineRow(merged).measured.contains("(3 runs) vs"))
        XCTAssertEqual(try ResultsFile.decode(ResultsFile.encode(merged)), merged)

        // The other way round: a later seed-0-only call keeps the earlier call's repeats.
        let back = try ResultsMerge.merge([second, first])
        XCTAssertEqual(back.q4.records.filter { $0.lrRule == .reference }.count, 6)
        XCTAssertEqual(back.q4.records.first { $0.framework == .pytorch && $0.isFirstSeed }?.finalTestAccuracy, 0.7044)
    }

    /// The suite's results, built from the files the seeded runs write.
    func testResultsAreBuiltFromEverySeedsRunFolder() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-q4-seeds-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        var settings = GPUSuiteSettings()
        settings.gpuCounts = [1]
        settings.parts = [.q4]
        settings.dataDirectory = "/data"
        settings.python = "python3"
        settings.q4.ranks = 1
        settings.q4.epochs = 2
        settings.q4.referenceSeeds = 3
        let plan = GPUSuitePlan(settings: settings, executable: "/bin/cohort", outputDirectory: out.path)
        func write(_ id: String, _ file: String, _ text: String) throws {
            let folder = out.appendingPathComponent("runs/\(id)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try text.write(to: folder.appendingPathComponent(file), atomically: true, encoding: .utf8)
        }
        for (seed, suffix) in [(0, ""), (1, "-seed1"), (2, "-seed2")] {
            let accuracy = 0.70 + 0.002 * Double(seed)
            try write("q4-reference" + suffix, "metrics.jsonl", """
                {"event":"epoch","epoch":1,"train_loss":1.6,"train_accuracy":0.4,"seconds":2.0}
                {"event":"eval","epoch":1,"test_loss":1.3,"test_accuracy":0.52}
                {"event":"epoch","epoch":2,"train_loss":0.9,"train_accuracy":0.7,"seconds":2.0}
                {"event":"eval","epoch":2,"test_loss":0.84,"test_accuracy":\(accuracy)}
                """)
            guard seed < 2 else { continue }
            try write("q4-pytorch-reference" + suffix, "pytorch.json", """
                {"framework": "pytorch", "version": "2.11.0", "epochs": [
                  {"epoch": 1, "test_accuracy": 0.5, "test_loss": 1.3, "train_loss": 1.6, "seconds": 3.0},
                  {"epoch": 2, "test_accuracy": \(accuracy + 0.001), "test_loss": 0.84, "train_loss": 0.9, "seconds": 3.0}]}
                """)
        }
        let executed = plan.runs.map { run in
            ExecutedRun(run: run, outcome: run.id == "q4-pytorch-reference-seed2" ? .skipped(reason: "out of time")
                        : run.kind == .q4 && run.lrRule != .reference ? .skipped(reason: "not this test")
                        : .finished(seconds: 5))
        }
        var assembly = GPUSuiteResults(plan: plan, executed: executed)
        let metadata = RunMetadata(machine: "test", card: "NVIDIA H200", deviceCount: 1, commit: "abc", date: "2026-11-27T00:00:00Z",
                                   command: "cohort experiments", profile: .gpu, syntheticData: true, imagesPerEpoch: 50_000)
        let results = assembly.assemble(metadata: metadata)
        let references = results.q4.records.filter { $0.lrRule == .reference }
        XCTAssertEqual(references.map(\.label), ["reference", "reference seed 1", "reference seed 2",
                                                 "PyTorch reference", "PyTorch reference seed 1"])
        XCTAssertEqual(references.map(\.seed), [0, 1, 2, 0, 1])
        XCTAssertTrue(results.q4.notRunReason?.contains("Q4 PyTorch reference seed 2, 1 GPU × 128: out of time") ?? false,
                      results.q4.notRunReason ?? "")
        XCTAssertTrue(results.metadata.notes.contains { $0.contains("seeds 0-2") }, "\(results.metadata.notes)")
        let row = try baselineRow(results)
        XCTAssertTrue(row.measured.hasPrefix("70.20% ± 0.20 pp (3 runs) vs 70.20% ± 0.14 pp (2 runs)"), row.measured)
    }
}
