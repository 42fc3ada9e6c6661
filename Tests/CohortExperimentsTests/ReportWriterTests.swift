import CohortExperiments
import Foundation
import XCTest
#if canImport(FoundationXML)
import FoundationXML
#endif

/// The writers on a realistic sample: every file appears, and what each says
/// agrees with results.json.
final class ReportWriterTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-report-\(UUID().uuidString)")
        try ReportWriter(results: SampleResults.make()).write(to: directory)
    }

    /// COHORT_KEEP_REPORTS=1 keeps the rendered sample (its folder is printed) to look at.
    override func tearDownWithError() throws {
        if ProcessInfo.processInfo.environment["COHORT_KEEP_REPORTS"] == "1" {
            print("sample reports kept in \(directory.path)")
        } else {
            try? FileManager.default.removeItem(at: directory)
        }
    }

    func read(_ name: String) throws -> String {
        try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
    }

    func testEveryFileIsWritten() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        XCTAssertEqual(names, ["allreduce-sweep.csv", "chart-allreduce-1.svg", "chart-q1-1.svg", "chart-q2-1.svg",
                               "chart-q2-2.svg", "chart-q3-1.svg", "chart-q4-1.svg", "chart-q4-2.svg",
                               "q1.csv", "q2.csv", "q3.csv", "q4.csv", "report.html", "report.md",
                               "results.json", "time-to-accuracy.csv", "trace.json"])
        // A chart file is a standalone SVG document: the chart report.html draws inline.
        let chart = try read("chart-q1-1.svg")
        XCTAssertTrue(chart.hasPrefix("<?xml"), chart)
        XCTAssertTrue(chart.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""), chart)
        XCTAssertTrue(try read("report.html").contains(chart.split(separator: "\n")[1]), "the same chart as the report's")
        XCTAssertNotNil(try XMLDocument(xmlString: chart, options: []))
    }

    func testJSONRoundTripsAndIsStable() throws {
        let data = try Data(contentsOf: directory.appendingPathComponent("results.json"))
        let decoded = try ResultsFile.decode(data)
        XCTAssertEqual(decoded, SampleResults.make())
        XCTAssertEqual(try ResultsFile.encode(decoded), data, "encoding is deterministic (sorted keys)")
        XCTAssertTrue(String(decoding: data, as: UTF8.self).contains("\n  \"allReduceSweep\" : {"), "pretty-printed, sorted")
    }

    func testCSVFilesHaveAHeaderAndOneRowPerRecord() throws {
        let sample = SampleResults.make()
        let expected = [
            "q1.csv": sample.q1.records.count, "q2.csv": sample.q2.records.count, "q3.csv": sample.q3.records.count,
            "allreduce-sweep.csv": sample.allReduceSweep.records.count,
            "q4.csv": sample.q4.records.reduce(0) { $0 + $1.epochs.count },
            "time-to-accuracy.csv": sample.timeToAccuracy.records.count,
        ]
        for (name, rows) in expected {
            let lines = try read(name).split(separator: "\n", omittingEmptySubsequences: false).dropLast()
            XCTAssertEqual(lines.count, rows + 1, name)
            let columns = lines[0].split(separator: ",").count
            for line in lines where !line.contains("\"") {
                XCTAssertEqual(line.split(separator: ",", omittingEmptySubsequences: false).count, columns, "\(name): \(line)")
            }
        }
        let q2 = try read("q2.csv").split(separator: "\n")
        XCTAssertEqual(q2[0], "framework,strategy,precision,gpus,per_device_batch,global_batch,epoch_seconds,speedup,efficiency")
    }

    // MARK: Markdown tables against the JSON

    /// The tables of report.md by caption: header cells and rows of cells.
    func markdownTables() throws -> [String: (headers: [String], rows: [[String]])] {
        var tables: [String: (headers: [String], rows: [[String]])] = [:]
        let lines = try read("report.md").components(separatedBy: "\n")
        var index = 0
        func cells(_ line: String) -> [String] {
            line.dropFirst(2).dropLast(2).components(separatedBy: " | ").map { $0.replacingOccurrences(of: "\\|", with: "|") }
        }
        while index < lines.count {
            let line = lines[index]
            if line.hasPrefix("**"), line.hasSuffix("**"), index + 3 < lines.count, lines[index + 2].hasPrefix("| ") {
                let caption = String(line.dropFirst(2).dropLast(2))
                let headers = cells(lines[index + 2])
                XCTAssertTrue(lines[index + 3].hasPrefix("| ---"), "separator row of \(caption)")
                var rows: [[String]] = []
                index += 4
                while index < lines.count, lines[index].hasPrefix("| ") {
                    let row = cells(lines[index])
                    XCTAssertEqual(row.count, headers.count, "\(caption): \(lines[index])")
                    rows.append(row)
                    index += 1
                }
                tables[caption] = (headers, rows)
            } else {
                index += 1
            }
        }
        return tables
    }

    /// A number as the reports print it: "38,294", "93.1%", "3.70×", "9.060 s".
    func number(_ text: some StringProtocol, file: StaticString = #filePath, line: UInt = #line) -> Double {
        let cleaned = text.replacingOccurrences(of: ",", with: "").replacingOccurrences(of: "%", with: "")
            .replacingOccurrences(of: "×", with: "").replacingOccurrences(of: " s", with: "")
            .trimmingCharacters(in: .whitespaces)
        guard let value = Double(cleaned) else {
            XCTFail("'\(text)' is not a number", file: file, line: line)
            return .nan
        }
        return value
    }

    /// `printed` is `value` at four significant digits.
    func assertSignificant(_ printed: some StringProtocol, _ value: Double, _ message: String,
                           file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(number(printed, file: file, line: line), value, accuracy: abs(value) * 5.1e-4 + 1e-12, message,
                       file: file, line: line)
    }

    func column(_ table: (headers: [String], rows: [[String]]), _ header: String,
                file: StaticString = #filePath, line: UInt = #line) -> Int {
        guard let index = table.headers.firstIndex(of: header) else {
            XCTFail("no column '\(header)' in \(table.headers)", file: file, line: line)
            return 0
        }
        return index
    }

    func testMarkdownTablesMatchTheJSON() throws {
        let results = try ResultsFile.load(from: directory.appendingPathComponent("results.json"))
        let tables = try markdownTables()
        var checked = 0

        let q1 = try XCTUnwrap(tables["Q1: time per epoch and throughput by batch size"])
        for r in results.q1.records {
            let row = try XCTUnwrap(q1.rows.first { $0[0] == String(r.batchSize) })
            let series = "\(r.framework.displayName) \(r.precision.rawValue)"
            assertSignificant(row[column(q1, "\(series) s/epoch")], r.epochSeconds, "Q1 \(series) \(r.batchSize)")
            XCTAssertEqual(number(row[column(q1, "\(series) images/s")]), r.imagesPerSecond, accuracy: 0.5)
            if let peak = r.peakMemoryBytes {
                XCTAssertEqual(number(row[column(q1, "\(series) peak MiB")]), Double(peak) / 1_048_576, accuracy: 0.5)
            }
            checked += 1
        }

        for strategy in Strategy.allCases {
            let q2 = try XCTUnwrap(tables["Q2 \(strategy.displayName): seconds per epoch · speedup · efficiency"])
            for r in results.q2.records where r.strategy == strategy {
                let row = try XCTUnwrap(q2.rows.first {
                    $0[0] == String(r.perDeviceBatch) && $0[1] == "\(r.framework.displayName) \(r.precision.rawValue)"
                })
                let parts = row[column(q2, r.gpus == 1 ? "1 GPU" : "\(r.gpus) GPUs")].components(separatedBy: " · ")
                XCTAssertEqual(parts.count, 3, "time · speedup · efficiency")
                assertSignificant(parts[0], r.epochSeconds, "Q2 epoch seconds")
                XCTAssertEqual(number(parts[1]), try XCTUnwrap(r.speedup), accuracy: 0.0051)
                XCTAssertEqual(number(parts[2]) / 100, try XCTUnwrap(r.efficiency), accuracy: 0.0051)
                checked += 1
            }
        }

        let q3 = try XCTUnwrap(tables["Q3: per-step compute and communication, gradient all-reduce bandwidth"])
        for r in results.q3.records {
            let row = try XCTUnwrap(q3.rows.first { $0[0] == r.label })
            assertSignificant(row[column(q3, "Step ms")], r.stepSeconds * 1000, "step")
            assertSignificant(row[column(q3, "Compute ms")], r.computeSeconds * 1000, "compute")
            assertSignificant(row[column(q3, "Comm busy ms")], r.communicationBusySeconds * 1000, "busy")
            assertSignificant(row[column(q3, "Exposed comm ms")], r.exposedCommunicationSeconds * 1000, "exposed")
            XCTAssertEqual(number(row[column(q3, "Overlap")]) / 100, r.overlapFraction, accuracy: 0.0051)
            assertSignificant(row[column(q3, "All-reduced MB/step")], Double(r.bytesPerStep) / 1e6, "bytes")
            assertSignificant(row[column(q3, "algbw GB/s")], r.algbwGBps, "algbw")
            assertSignificant(row[column(q3, "busbw GB/s")], r.busbwGBps, "busbw")
            let sweep = try XCTUnwrap(results.allReduceSweep.records.nearest(ranks: r.gpus, bytes: r.bytesPerStep))
            assertSignificant(row[column(q3, "Sweep busbw GB/s")], sweep.busbwGBps, "sweep busbw")
            checked += 1
        }

        let sweep = try XCTUnwrap(tables["All-reduce sweep: time and bandwidth by message size (columns: communicator, ranks)"])
        for r in results.allReduceSweep.records {
            let row = try XCTUnwrap(sweep.rows.first { $0[1] == String(r.bytes) })
            let prefix = "\(r.communicator) \(r.ranks)"
            assertSignificant(row[column(sweep, "\(prefix) µs")], r.seconds * 1e6, "sweep time")
            assertSignificant(row[column(sweep, "\(prefix) algbw GB/s")], r.algbwGBps, "sweep algbw")
            assertSignificant(row[column(sweep, "\(prefix) busbw GB/s")], r.busbwGBps, "sweep busbw")
            checked += 1
        }

        let accuracy = try XCTUnwrap(tables["Q4: test accuracy after each epoch"])
        let loss = try XCTUnwrap(tables["Q4: test loss after each epoch"])
        for run in results.q4.records {
            for epoch in run.epochs {
                let accuracyRow = try XCTUnwrap(accuracy.rows.first { $0[0] == String(epoch.epoch) })
                XCTAssertEqual(number(accuracyRow[column(accuracy, run.label)]) / 100, epoch.testAccuracy, accuracy: 5.1e-5)
                let lossRow = try XCTUnwrap(loss.rows.first { $0[0] == String(epoch.epoch) })
                assertSignificant(lossRow[column(loss, run.label)], epoch.testLoss, "test loss")
                checked += 1
            }
        }

        let timeToAccuracy = try XCTUnwrap(tables["Time to accuracy"])
        for r in results.timeToAccuracy.records {
            let row = try XCTUnwrap(timeToAccuracy.rows.first { $0[0] == r.label })
            if let seconds = r.secondsToTarget {
                assertSignificant(row[column(timeToAccuracy, "Seconds to target")], seconds, "time to accuracy")
            } else {
                XCTAssertEqual(row[column(timeToAccuracy, "Seconds to target")], "not reached")
            }
            XCTAssertEqual(number(row[column(timeToAccuracy, "Best test accuracy")]) / 100, r.bestTestAccuracy, accuracy: 5.1e-5)
            checked += 1
        }
        let q4Epochs = results.q4.records.reduce(0) { $0 + $1.epochs.count }
        XCTAssertEqual(checked, results.q1.records.count + results.q2.records.count + results.q3.records.count
                       + results.allReduceSweep.records.count + q4Epochs + results.timeToAccuracy.records.count)
    }

    func testMarkdownCarriesTheStamp() throws {
        let markdown = try read("report.md")
        let metadata = SampleResults.make().metadata
        for text in [metadata.card!, metadata.driver!, "CUDA 13.0", "cuDNN 9.14.0", "NCCL 2.28.3", "Open MPI 4.1.6",
                     "PyTorch 2.11.0", metadata.commit, metadata.date, metadata.command, "gpu", "synthetic",
                     "Environment", "NCCL_NVLS_ENABLE=0"] {
            XCTAssertTrue(markdown.contains(text), "stamp lacks \(text)")
        }
    }

    /// On the CPU profile a replica is an MPI rank, not a GPU: Q2 and Q3 say so.
    func testCPUProfileNamesRanksNotGPUs() throws {
        var results = SampleResults.make()
        results.metadata.profile = .cpuScaledDown
        let cpuDirectory = directory.appendingPathComponent("cpu")
        try ReportWriter(results: results).write(to: cpuDirectory)
        let markdown = try String(contentsOf: cpuDirectory.appendingPathComponent("report.md"), encoding: .utf8)
        let fromQ2 = try XCTUnwrap(markdown.range(of: "## Q2").map { markdown[$0.lowerBound...] })
        let scaling = String(fromQ2[..<(fromQ2.range(of: "## All-reduce")?.lowerBound ?? fromQ2.endIndex)])
        for text in ["Q2 · Weak scaling: time and speedup by rank count", "| Per-rank batch |", "| 1 rank |", "4 ranks",
                     "Q2 one process per rank (DDP)", "DDP 2 ranks × 128"] {
            XCTAssertTrue(scaling.contains(text), "CPU report lacks \(text)")
        }
        XCTAssertFalse(scaling.contains("GPU"), scaling)
        // The GPU profile keeps its words.
        let gpuMarkdown = try read("report.md")
        XCTAssertTrue(gpuMarkdown.contains("| Per-GPU batch |"))
        XCTAssertTrue(gpuMarkdown.contains("DDP 2 GPUs × 128"))
    }

    // MARK: HTML and SVG

    func testHTMLIsSelfContainedWellFormedAndHasTheCharts() throws {
        let html = try read("report.html")
        let results = SampleResults.make()
        let charts = ReportSections.all(results).flatMap(\.charts)
        XCTAssertEqual(charts.count, 7, "Q1 time, Q2 speedup ×2, Q3 bars, sweep, Q4 accuracy and loss")
        XCTAssertEqual(html.components(separatedBy: "<svg ").count - 1, charts.count)
        for chart in charts {
            XCTAssertTrue(html.contains(">\(escapeXML(chart.title))</title>"), chart.title)
        }
        for external in ["<script", "src=", "href=\"http", "@import", "url("] {
            XCTAssertFalse(html.contains(external), "report.html must be self-contained: found \(external)")
        }
        XCTAssertTrue(html.contains("stroke-dasharray=\"6 4\""), "the ideal speedup line is dashed")
        #if canImport(FoundationXML)
        let document = try XMLDocument(data: Data(html.utf8), options: [])
        let svgs = try document.nodes(forXPath: "//*[local-name()='svg']")
        XCTAssertEqual(svgs.count, charts.count)
        for svg in svgs {
            XCTAssertEqual(try svg.nodes(forXPath: "@viewBox").first?.stringValue, "0 0 760 420")
            XCTAssertFalse(try svg.nodes(forXPath: "*[local-name()='title']").isEmpty, "every chart has a <title>")
            XCTAssertGreaterThan(try svg.nodes(forXPath: ".//*[local-name()='text']").count, 8, "axes, ticks, legend")
        }
        #else
        throw XCTSkip("FoundationXML is not available here; the chart checks above still ran")
        #endif
    }

    func testEmptySectionsSayWhyInsteadOfBreaking() throws {
        var results = SampleResults.make()
        results.q2 = .notRun("one GPU on this machine")
        results.q3 = .notRun("one GPU on this machine")
        results.q4 = .notRun("--skip-accuracy was given")
        results.timelines = .notRun("no multi-GPU configuration")
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-report-empty-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: empty) }
        try ReportWriter(results: results).write(to: empty)
        let markdown = try String(contentsOf: empty.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(markdown.contains("Not run on this machine (one GPU on this machine)."))
        XCTAssertTrue(markdown.contains("Not run on this machine (--skip-accuracy was given)."))
        let html = try String(contentsOf: empty.appendingPathComponent("report.html"), encoding: .utf8)
        XCTAssertTrue(html.contains("<p class=\"not-run\">Not run on this machine (one GPU on this machine).</p>"))
        XCTAssertEqual(html.components(separatedBy: "<svg ").count - 1, 2, "Q1 and the sweep charts remain")
        let q2 = try String(contentsOf: empty.appendingPathComponent("q2.csv"), encoding: .utf8)
        XCTAssertEqual(q2.split(separator: "\n").count, 1, "header only")
        let trace = try JSONSerialization.jsonObject(with: Data(contentsOf: empty.appendingPathComponent("trace.json"))) as? [String: Any]
        XCTAssertEqual((trace?["traceEvents"] as? [Any])?.count, 0)
    }

    // MARK: Trace

    func testTraceIsChromeTraceJSON() throws {
        let data = try Data(contentsOf: directory.appendingPathComponent("trace.json"))
        let trace = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(trace["displayTimeUnit"] as? String, "ms")
        let events = try XCTUnwrap(trace["traceEvents"] as? [[String: Any]])
        let complete = events.filter { $0["ph"] as? String == "X" }
        let timelines = SampleResults.make().timelines.records
        XCTAssertEqual(complete.count, timelines.reduce(0) { $0 + $1.intervals.count })
        for event in complete {
            XCTAssertNotNil(event["name"] as? String)
            XCTAssertNotNil(event["pid"] as? Int)
            let tid = try XCTUnwrap(event["tid"] as? Int)
            XCTAssertTrue([1, 2].contains(tid))
            let ts = try XCTUnwrap((event["ts"] as? NSNumber)?.doubleValue)
            let dur = try XCTUnwrap((event["dur"] as? NSNumber)?.doubleValue)
            XCTAssertGreaterThanOrEqual(ts, 0)
            XCTAssertGreaterThan(dur, 0)
            XCTAssertNotNil((event["args"] as? [String: Any])?["rank"] as? Int)
        }
        // The first interval, in microseconds, on rank 0's compute thread of the first configuration.
        let first = timelines[0].intervals[0]
        let event = try XCTUnwrap(complete.first { $0["name"] as? String == first.name })
        XCTAssertEqual(event["pid"] as? Int, ChromeTrace.processID(configuration: 0, rank: 0))
        XCTAssertEqual((event["dur"] as? NSNumber)?.doubleValue ?? 0, first.durationSeconds * 1e6, accuracy: 1e-3)
        // Every (configuration, rank) is a named process with named compute and communication threads.
        let names = events.filter { $0["name"] as? String == "process_name" }
        XCTAssertEqual(names.count, timelines.reduce(0) { $0 + $1.ranks })
        let threads = Set(events.filter { $0["name"] as? String == "thread_name" }
            .compactMap { ($0["args"] as? [String: Any])?["name"] as? String })
        XCTAssertEqual(threads, ["compute", "communication"])
    }

    // MARK: Reading results files

    func testMissingAndMalformedFilesGiveClearErrors() throws {
        let missing = directory.appendingPathComponent("nope.json")
        XCTAssertThrowsError(try ResultsFile.load(from: missing)) { error in
            XCTAssertTrue("\(error)".contains("no such file"), "\(error)")
        }
        let broken = directory.appendingPathComponent("broken.json")
        try Data("{\"schemaVersion\": 1, ".utf8).write(to: broken)
        XCTAssertThrowsError(try ResultsFile.load(from: broken)) { error in
            XCTAssertTrue("\(error)".contains("not valid JSON"), "\(error)")
        }
        var object = try XCTUnwrap(try JSONSerialization.jsonObject(
            with: Data(contentsOf: directory.appendingPathComponent("results.json"))) as? [String: Any])
        var q1 = try XCTUnwrap(object["q1"] as? [String: Any])
        var records = try XCTUnwrap(q1["records"] as? [[String: Any]])
        records[2]["epochSeconds"] = "fast"
        q1["records"] = records
        object["q1"] = q1
        let wrongType = directory.appendingPathComponent("wrong.json")
        try JSONSerialization.data(withJSONObject: object).write(to: wrongType)
        XCTAssertThrowsError(try ResultsFile.load(from: wrongType)) { error in
            XCTAssertTrue("\(error)".contains("q1.records[2].epochSeconds"), "\(error)")
        }
    }
}
