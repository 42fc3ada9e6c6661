import Foundation

/// One section of the reports: a title, what it measured, its tables and
/// (in the HTML report) its charts; or, with no records, the reason.
public struct ReportSection: Sendable {
    public var id: String
    public var title: String
    public var intro: String
    public var tables: [ReportTable]
    public var charts: [any SVGChart]
    /// Set when the section has nothing to show.
    public var emptyMessage: String?
}

/// Builds the reports' sections from the results. Markdown and HTML both
/// render these; the shapes follow the seed tables (docs/benchmarks.md,
/// ../shared/DEVICE.md): Q1 rows = batch size; Q2 rows = per-GPU batch,
/// columns = GPU counts; Q3 rows = configuration; Q4 rows = epoch.
public enum ReportSections {
    public static func all(_ results: ExperimentResults) -> [ReportSection] {
        [q1(results), q2(results), q3(results), allReduceSweep(results), q4(results), timeToAccuracy(results),
         timelines(results)] + [targets(results)].compactMap { $0 }
    }

    static func section<R>(_ id: String, _ title: String, _ intro: String, _ records: Section<R>,
                           build: () -> (tables: [ReportTable], charts: [any SVGChart])) -> ReportSection {
        guard !records.records.isEmpty else {
            return ReportSection(id: id, title: title, intro: intro, tables: [], charts: [], emptyMessage: records.emptyMessage)
        }
        let (tables, charts) = build()
        var intro = intro
        if let reason = records.notRunReason { intro += " Partly run: \(reason)." }
        return ReportSection(id: id, title: title, intro: intro, tables: tables, charts: charts, emptyMessage: nil)
    }

    static func plural(_ count: Int, _ noun: String) -> String { "\(count) \(noun)\(count == 1 ? "" : "s")" }

    // MARK: Q1

    /// A Q1 line: one framework at one precision (and device, when several were measured).
    struct Q1Series: Hashable, Comparable {
        var framework: Framework
        var precision: Precision
        var device: String

        static func < (a: Q1Series, b: Q1Series) -> Bool {
            (a.framework, a.precision, a.device) < (b.framework, b.precision, b.device)
        }
    }

    static func q1(_ results: ExperimentResults) -> ReportSection {
        let records = results.q1.records
        let intro = "Training throughput on one device: seconds per epoch of \(Format.count(Double(results.metadata.imagesPerEpoch))) images, images per second and peak device memory, by batch size (median step after warm-up)."
        return section("q1", "Q1 · One device: time per epoch by batch size", intro, results.q1) {
            let manyDevices = Set(records.map(\.device)).count > 1
            let allSeries = Set(records.map { Q1Series(framework: $0.framework, precision: $0.precision, device: $0.device) }).sorted()
            func name(_ s: Q1Series) -> String {
                "\(s.framework.displayName) \(s.precision.rawValue)" + (manyDevices ? " \(s.device)" : "")
            }
            func record(_ s: Q1Series, _ batch: Int) -> Q1Record? {
                records.first { $0.framework == s.framework && $0.precision == s.precision && $0.device == s.device && $0.batchSize == batch }
            }
            let batches = Set(records.map(\.batchSize)).sorted()
            var headers = ["Batch"]
            for s in allSeries {
                headers += ["\(name(s)) s/epoch", "\(name(s)) images/s"]
                if records.contains(where: { Q1Series(framework: $0.framework, precision: $0.precision, device: $0.device) == s && $0.peakMemoryBytes != nil }) {
                    headers.append("\(name(s)) peak MiB")
                }
            }
            // Cohort against PyTorch where both measured the same precision on the same device.
            let ratioPairs = allSeries.filter { $0.framework == .cohort }.compactMap { cohort -> (Q1Series, Q1Series)? in
                var reference = cohort
                reference.framework = .pytorch
                return allSeries.contains(reference) ? (cohort, reference) : nil
            }
            headers += ratioPairs.map { "Cohort/PyTorch \($0.0.precision.rawValue)" + (manyDevices ? " \($0.0.device)" : "") }
            let rows = batches.map { batch -> [String] in
                var row = [String(batch)]
                for s in allSeries {
                    let r = record(s, batch)
                    row += [r.map { Format.significant($0.epochSeconds) } ?? Format.missing,
                            r.map { Format.count($0.imagesPerSecond) } ?? Format.missing]
                    if headers.contains("\(name(s)) peak MiB") {
                        row.append(r?.peakMemoryBytes.map { Format.count(Double($0) / 1_048_576) } ?? Format.missing)
                    }
                }
                for (cohort, reference) in ratioPairs {
                    if let a = record(cohort, batch), let b = record(reference, batch), b.imagesPerSecond > 0 {
                        row.append(Format.ratio(a.imagesPerSecond / b.imagesPerSecond))
                    } else {
                        row.append(Format.missing)
                    }
                }
                return row
            }
            let table = ReportTable(caption: "Q1: time per epoch and throughput by batch size", headers: headers, rows: rows)
            let chart = LineChart(
                title: "Time per epoch vs batch size", xLabel: "batch size (log scale)", yLabel: "seconds per epoch",
                xScale: .log2, xTicks: batches.map { (Double($0), String($0)) },
                series: allSeries.enumerated().map { index, s in
                    ChartSeries(name: name(s),
                                points: batches.compactMap { b in record(s, b).map { (Double(b), $0.epochSeconds) } },
                                color: chartPalette[index % chartPalette.count], dashed: s.framework == .pytorch)
                })
            return ([table], [chart])
        }
    }

    // MARK: Q2

    static func q2(_ results: ExperimentResults) -> ReportSection {
        let records = results.q2.records
        let unit = results.metadata.profile.replicaNoun
        let intro = "Weak scaling: the per-\(unit) batch stays fixed and the global batch grows with the \(unit)s; an epoch is the same \(Format.count(Double(results.metadata.imagesPerEpoch))) images. Each cell: seconds per epoch · speedup against 1 \(unit) · efficiency (speedup / \(unit)s)."
        return section("q2", "Q2 · Weak scaling: time and speedup by \(unit) count", intro, results.q2) {
            let gpuCounts = Set(records.map(\.gpus)).sorted()
            var tables: [ReportTable] = []
            var charts: [any SVGChart] = []
            for strategy in Set(records.map(\.strategy)).sorted() {
                let forStrategy = records.filter { $0.strategy == strategy }
                struct Line: Hashable, Comparable {
                    var batch: Int, framework: Framework, precision: Precision
                    static func < (a: Line, b: Line) -> Bool {
                        (a.batch, a.framework, a.precision) < (b.batch, b.framework, b.precision)
                    }
                }
                let lines = Set(forStrategy.map { Line(batch: $0.perDeviceBatch, framework: $0.framework, precision: $0.precision) }).sorted()
                func find(_ line: Line, _ gpus: Int) -> Q2Record? {
                    forStrategy.first { $0.perDeviceBatch == line.batch && $0.framework == line.framework && $0.precision == line.precision && $0.gpus == gpus }
                }
                let rows = lines.map { line -> [String] in
                    [String(line.batch), "\(line.framework.displayName) \(line.precision.rawValue)"] + gpuCounts.map { gpus in
                        guard let r = find(line, gpus) else { return Format.missing }
                        var cell = "\(Format.significant(r.epochSeconds)) s"
                        if let speedup = r.speedup { cell += " · \(Format.ratio(speedup))" }
                        if let efficiency = r.efficiency { cell += " · \(Format.percent(efficiency, decimals: 0))" }
                        return cell
                    }
                }
                tables.append(ReportTable(
                    caption: "Q2 \(strategy.displayName(per: unit)): seconds per epoch · speedup · efficiency",
                    headers: ["Per-\(unit) batch", "Framework"] + gpuCounts.map { plural($0, unit) },
                    numeric: [true, false] + gpuCounts.map { _ in true }, rows: rows))
                let batches = Set(lines.map(\.batch)).sorted()
                let maxGPUs = Double(gpuCounts.last ?? 1)
                charts.append(LineChart(
                    title: "Speedup vs \(unit)s, \(strategy.displayName(per: unit))", xLabel: "\(unit)s", yLabel: "speedup against 1 \(unit)",
                    xScale: .linear, xTicks: gpuCounts.map { (Double($0), String($0)) },
                    series: lines.compactMap { line in
                        let points = gpuCounts.compactMap { g in find(line, g)?.speedup.map { (Double(g), $0) } }
                        guard !points.isEmpty else { return nil }
                        let color = chartPalette[(batches.firstIndex(of: line.batch) ?? 0) % chartPalette.count]
                        return ChartSeries(name: "\(line.framework.displayName) \(line.precision.rawValue) · \(line.batch)/\(unit)",
                                           points: points, color: color, dashed: line.framework == .pytorch)
                    },
                    reference: ChartSeries(name: "ideal (speedup = \(unit)s)", points: [(1, 1), (maxGPUs, maxGPUs)], color: "#888")))
            }
            return (tables, charts)
        }
    }

    // MARK: Q3

    static func q3(_ results: ExperimentResults) -> ReportSection {
        let records = results.q3.records.sorted {
            ($0.strategy, $0.gpus, $0.perDeviceBatch, $0.precision) < ($1.strategy, $1.gpus, $1.perDeviceBatch, $1.precision)
        }
        let sweep = results.allReduceSweep.records
        let exposedMeaning = results.metadata.profile == .gpu
            ? "exposed communication (the compute stream's measured wait for the last all-reduce; the notes say which steps were timed)"
            : "exposed communication (the step minus the same step with communication off)"
        let intro = "Where a step's time goes, per Q2 configuration (rank 0, per step): compute and communication busy time, \(exposedMeaning) and the share of communication hidden behind compute; the gradient all-reduce's bandwidth beside the all-reduce sweep's busbw at the same size (nccl-tests' definitions: busbw = algbw × 2(n−1)/n)."
        return section("q3", "Q3 · Compute and communication per step", intro, results.q3) {
            let manyPrecisions = Set(records.map(\.precision)).count > 1
            func label(_ r: Q3Record) -> String {
                r.label(replica: results.metadata.profile.replicaNoun) + (manyPrecisions ? " \(r.precision.rawValue)" : "")
            }
            let ms = { (seconds: Double) in Format.significant(seconds * 1000) }
            let rows = records.map { r -> [String] in
                let reference = sweep.nearest(ranks: r.gpus, bytes: r.bytesPerStep)
                return [label(r), ms(r.stepSeconds), ms(r.computeSeconds), ms(r.communicationBusySeconds),
                        ms(r.exposedCommunicationSeconds), Format.percent(r.overlapFraction, decimals: 0),
                        Format.significant(Double(r.bytesPerStep) / 1e6), Format.significant(r.algbwGBps),
                        Format.significant(r.busbwGBps),
                        reference.map { Format.significant($0.busbwGBps) } ?? Format.missing,
                        reference.map { Format.bytes($0.bytes) } ?? Format.missing]
            }
            let table = ReportTable(
                caption: "Q3: per-step compute and communication, gradient all-reduce bandwidth",
                headers: ["Configuration", "Step ms", "Compute ms", "Comm busy ms", "Exposed comm ms", "Overlap",
                          "All-reduced MB/step", "algbw GB/s", "busbw GB/s", "Sweep busbw GB/s", "Sweep size"],
                rows: rows)
            let chart = StackedBarChart(
                title: "Step time: compute and exposed communication", valueLabel: "milliseconds per step",
                categories: records.map(label),
                segments: [
                    .init(name: "compute", color: chartPalette[0], values: records.map { $0.computeSeconds * 1000 }),
                    .init(name: "other (host, gaps)", color: "#b7c4cf",
                          values: records.map { max(0, $0.stepSecondsWithoutCommunication - $0.computeSeconds) * 1000 }),
                    .init(name: "exposed communication", color: chartPalette[1],
                          values: records.map { $0.exposedCommunicationSeconds * 1000 }),
                ])
            return ([table], [chart])
        }
    }

    static func allReduceSweep(_ results: ExperimentResults) -> ReportSection {
        let records = results.allReduceSweep.records
        let intro = "`cohort bench allreduce` on the same machine: float32 all-reduce of each size, median time; algbw = bytes / time, busbw = algbw × 2(n−1)/n."
        return section("allreduce", "All-reduce sweep", intro, results.allReduceSweep) {
            struct Key: Hashable, Comparable {
                var ranks: Int, communicator: String
                static func < (a: Key, b: Key) -> Bool { (a.ranks, a.communicator) < (b.ranks, b.communicator) }
            }
            let keys = Set(records.map { Key(ranks: $0.ranks, communicator: $0.communicator) }).sorted()
            let sizes = Set(records.map(\.bytes)).sorted()
            func find(_ key: Key, _ bytes: Int) -> AllReduceSweepRecord? {
                records.first { $0.ranks == key.ranks && $0.communicator == key.communicator && $0.bytes == bytes }
            }
            func name(_ key: Key) -> String { "\(key.communicator) \(key.ranks)" }
            let headers = ["Size", "Bytes"] + keys.flatMap { ["\(name($0)) µs", "\(name($0)) algbw GB/s", "\(name($0)) busbw GB/s"] }
            let rows = sizes.map { bytes in
                [Format.bytes(bytes), String(bytes)] + keys.flatMap { key -> [String] in
                    guard let r = find(key, bytes) else { return [Format.missing, Format.missing, Format.missing] }
                    return [Format.significant(r.seconds * 1e6), Format.significant(r.algbwGBps), Format.significant(r.busbwGBps)]
                }
            }
            let table = ReportTable(caption: "All-reduce sweep: time and bandwidth by message size (columns: communicator, ranks)",
                                    headers: headers, rows: rows)
            let ticks = sizes.map { bytes -> (value: Double, label: String) in
                let isLabelled = bytes.nonzeroBitCount == 1 && bytes.trailingZeroBitCount % 10 == 0
                return (Double(bytes), isLabelled || sizes.count <= 8 ? Format.bytes(bytes) : "")
            }
            let chart = LineChart(
                title: "All-reduce bus bandwidth vs message size", xLabel: "message size (log scale)", yLabel: "busbw (GB/s)",
                xScale: .log2, xTicks: ticks,
                series: keys.enumerated().map { index, key in
                    ChartSeries(name: "\(key.communicator), \(plural(key.ranks, "rank"))",
                                points: sizes.compactMap { b in find(key, b).map { (Double(b), $0.busbwGBps) } },
                                color: chartPalette[index % chartPalette.count])
                })
            return ([table], [chart])
        }
    }

    // MARK: Q4

    static func q4(_ results: ExperimentResults) -> ReportSection {
        let all = results.q4.records
        // The per-epoch tables and charts: one column and line per recipe, its seed-0 run
        // (Note [Q4 reference seeds]); every run, repeats too, is a row of the runs table.
        let runs = all.filter(\.isFirstSeed)
        let intro = "Test accuracy and loss after each epoch on CIFAR-10: the small-batch reference on one device against the large global batch under each learning-rate rule."
        return section("q4", "Q4 · Large-batch accuracy per epoch", intro, results.q4) {
            let recipes = ReportTable(
                caption: "Q4 runs",
                headers: ["Run", "Recipe", "LR rule", "Ranks", "Global batch", "Peak LR", "Warm-up epochs",
                          "Label smoothing", "Final test accuracy", "Training s"],
                numeric: [false, false, false, true, true, true, true, true, true, true],
                rows: all.map { r in
                    [r.label, r.recipe, r.lrRule.rawValue, String(r.ranks), String(r.globalBatch),
                     Format.compact(r.peakLearningRate), Format.compact(r.warmupEpochs), Format.compact(r.labelSmoothing),
                     r.finalTestAccuracy.map { Format.percent($0, decimals: 2) } ?? Format.missing,
                     Format.significant(r.totalSeconds)]
                })
            let epochs = Set(runs.flatMap { $0.epochs.map(\.epoch) }).sorted()
            func table(_ caption: String, _ cell: (Q4Epoch) -> String) -> ReportTable {
                ReportTable(caption: caption, headers: ["Epoch"] + runs.map(\.label), rows: epochs.map { epoch in
                    [String(epoch)] + runs.map { run in run.epochs.first { $0.epoch == epoch }.map(cell) ?? Format.missing }
                })
            }
            let accuracy = table("Q4: test accuracy after each epoch") { Format.percent($0.testAccuracy, decimals: 2) }
            let loss = table("Q4: test loss after each epoch") { Format.significant($0.testLoss) }
            func chart(_ title: String, _ yLabel: String, _ value: @escaping (Q4Epoch) -> Double) -> LineChart {
                LineChart(title: title, xLabel: "epoch", yLabel: yLabel, xScale: .linear,
                          xTicks: epochs.map { (Double($0), String($0)) },
                          series: runs.enumerated().map { index, run in
                              ChartSeries(name: run.label, points: run.epochs.map { (Double($0.epoch), value($0)) },
                                          color: chartPalette[index % chartPalette.count], dashed: run.lrRule == .reference)
                          })
            }
            return ([recipes] + q4Seeds(all) + [accuracy, loss], [
                chart("Test accuracy per epoch", "test accuracy (%)") { $0.testAccuracy * 100 },
                chart("Test loss per epoch", "test loss") { $0.testLoss },
            ])
        }
    }

    /// The references' final test accuracy by seed, and each side's mean ± sample standard
    /// deviation over the runs that finished: what the baseline target compares. None
    /// where no reference was repeated.
    static func q4Seeds(_ records: [Q4Record]) -> [ReportTable] {
        let references = records.filter { $0.lrRule == .reference }
        guard references.contains(where: { !$0.isFirstSeed }) else { return [] }
        let frameworks = Set(references.map(\.framework)).sorted()
        let seeds = Set(references.map { $0.seed ?? 0 }).sorted()
        func cell(_ framework: Framework, _ seed: Int) -> String {
            guard let run = references.first(where: { $0.framework == framework && ($0.seed ?? 0) == seed }),
                  let accuracy = run.finalTestAccuracy else { return Format.missing }
            let text = Format.percent(accuracy, decimals: 2)
            return ReportTargets.referenceFinished(run, among: records) ? text
                : text + " (stopped after epoch \(run.epochs.last?.epoch ?? 0))"
        }
        let rows = seeds.map { seed in [String(seed)] + frameworks.map { cell($0, seed) } }
            + [["mean ± sd"] + frameworks.map { ReportTargets.referenceSummary(records, $0)?.text ?? Format.missing }]
        return [ReportTable(caption: "Q4: the references' final test accuracy by seed (mean ± sample standard deviation over the runs that finished)",
                            headers: ["Seed"] + frameworks.map(\.displayName),
                            numeric: [false] + frameworks.map { _ in true }, rows: rows)]
    }

    static func timeToAccuracy(_ results: ExperimentResults) -> ReportSection {
        let intro = "Training wall time until the test accuracy (evaluated after each epoch) first reaches the target."
        return section("time-to-accuracy", "Q4 · Time to accuracy", intro, results.timeToAccuracy) {
            let table = ReportTable(
                caption: "Time to accuracy",
                headers: ["Run", "Ranks", "Global batch", "Target", "Seconds to target", "Epochs to target",
                          "Best test accuracy", "Training s"],
                rows: results.timeToAccuracy.records.map { r in
                    [r.label, String(r.ranks), String(r.globalBatch), Format.percent(r.targetAccuracy, decimals: 1),
                     r.secondsToTarget.map { Format.significant($0) } ?? "not reached",
                     r.epochsToTarget.map(String.init) ?? "not reached",
                     Format.percent(r.bestTestAccuracy, decimals: 2), Format.significant(r.totalSeconds)]
                })
            return ([table], [])
        }
    }

    static func timelines(_ results: ExperimentResults) -> ReportSection {
        let intro = "trace.json holds these steps per rank, with compute and communication as separate tracks: open it in ui.perfetto.dev or chrome://tracing."
        return section("timelines", "Step timelines", intro, results.timelines) {
            let table = ReportTable(
                caption: "Recorded timelines",
                headers: ["Configuration", "Ranks", "Steps", "Compute intervals", "Communication intervals", "Span ms"],
                rows: results.timelines.records.map { t in
                    let span = (t.intervals.map { $0.startSeconds + $0.durationSeconds }.max() ?? 0)
                        - (t.intervals.map(\.startSeconds).min() ?? 0)
                    return [t.configuration, String(t.ranks), String(Set(t.intervals.map(\.step)).count),
                            String(t.intervals.filter { $0.stream == .compute }.count),
                            String(t.intervals.filter { $0.stream == .communication }.count),
                            Format.significant(span * 1000)]
                })
            return ([table], [])
        }
    }
}
