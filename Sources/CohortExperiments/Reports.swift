import Foundation

/// The stamp every report opens with: where, when and how the figures were measured.
public enum ReportStamp {
    public static func rows(_ metadata: RunMetadata) -> [(key: String, value: String)] {
        var rows: [(String, String)] = [
            ("Machine", metadata.machine),
            ("Card", metadata.card.map { "\($0) × \(metadata.deviceCount)" } ?? "none (CPU)"),
            ("Driver", metadata.driver ?? "none"),
            ("Libraries", metadata.libraries.loaded.map { "\($0.name) \($0.version)" }.joined(separator: ", ")),
            ("Commit", metadata.commit),
            ("Date", metadata.date),
            ("Command", metadata.command),
            ("Profile", metadata.profile.rawValue),
            ("Data", metadata.syntheticData ? "synthetic (random images)" : "CIFAR-10"),
            ("Images per epoch", Format.count(Double(metadata.imagesPerEpoch))),
        ]
        if rows[3].1.isEmpty { rows[3].1 = "none loaded" }
        if let environment = metadata.environment { rows.insert(("Environment", environment), at: 7) }
        rows += metadata.notes.map { ("Note", $0) }
        return rows
    }

    public static func title(_ metadata: RunMetadata) -> String {
        "Cohort experiments: \(metadata.card ?? "CPU"), \(metadata.date)"
    }
}

/// report.md: the stamp, then one part per section with its tables.
public enum MarkdownReport {
    public static func render(_ results: ExperimentResults) -> String {
        var out = "# \(ReportStamp.title(results.metadata))\n\n"
        out += ReportTable(caption: "Measured on", headers: ["", ""], numeric: [false, false],
                           rows: ReportStamp.rows(results.metadata).map { [$0.key, "`\($0.value)`"] }).markdown
        out += "\n\nCharts: report.html. Every figure: results.json and the CSV files beside this report.\n"
        for section in ReportSections.all(results) {
            out += "\n## \(section.title)\n\n"
            if let empty = section.emptyMessage {
                out += "\(empty)\n"
                continue
            }
            out += "\(section.intro)\n"
            for table in section.tables { out += "\n\(table.markdown)\n" }
        }
        return out
    }
}

/// report.html: one self-contained page (inline CSS and SVG, no script, no
/// external asset) that is also well-formed XML, so it can be checked by a parser.
public enum HTMLReport {
    public static func render(_ results: ExperimentResults) -> String {
        let title = ReportStamp.title(results.metadata)
        var out = """
            <!DOCTYPE html>
            <html xmlns="http://www.w3.org/1999/xhtml" lang="en">
            <head>
            <meta charset="utf-8"/>
            <meta name="viewport" content="width=device-width, initial-scale=1"/>
            <title>\(escapeXML(title))</title>
            <style>\(style)</style>
            </head>
            <body>
            <h1>\(escapeXML(title))</h1>
            <table class="stamp">
            <tbody>

            """
        for row in ReportStamp.rows(results.metadata) {
            out += "<tr><th>\(escapeXML(row.key))</th><td><code>\(escapeXML(row.value))</code></td></tr>\n"
        }
        out += "</tbody>\n</table>\n<nav>"
        let sections = ReportSections.all(results)
        out += sections.map { "<a href=\"#\($0.id)\">\(escapeXML($0.title))</a>" }.joined(separator: " ")
        out += "</nav>\n"
        for section in sections {
            out += "<section id=\"\(section.id)\">\n<h2>\(escapeXML(section.title))</h2>\n"
            if let empty = section.emptyMessage {
                out += "<p class=\"not-run\">\(escapeXML(empty))</p>\n</section>\n"
                continue
            }
            out += "<p>\(escapeXML(section.intro))</p>\n"
            if !section.charts.isEmpty {
                out += "<div class=\"charts\">\n"
                for chart in section.charts { out += "<figure>\n\(chart.svg)\n</figure>\n" }
                out += "</div>\n"
            }
            for table in section.tables { out += "<div class=\"table\">\n\(table.html)\n</div>\n" }
            out += "</section>\n"
        }
        return out + "</body>\n</html>\n"
    }

    static let style = """
        body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1560px; \
        padding: 0 24px; color: #222; }
        h1 { font-size: 24px; margin-bottom: 8px; }
        h2 { font-size: 19px; margin-top: 36px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
        nav a { margin-right: 14px; font-size: 13px; }
        table { border-collapse: collapse; font-size: 13px; margin: 8px 0 16px; }
        caption { text-align: left; font-weight: 600; padding-bottom: 4px; }
        th, td { border: 1px solid #ddd; padding: 3px 8px; }
        th { background: #f4f6f8; }
        td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
        td:first-child { white-space: nowrap; }
        table.stamp th { text-align: left; }
        table.stamp code { white-space: pre-wrap; }
        .charts { display: flex; flex-wrap: wrap; gap: 16px; }
        figure { margin: 0; flex: 0 1 740px; border: 1px solid #e5e5e5; }
        figure svg { width: 100%; height: auto; display: block; }
        .table { overflow-x: auto; }
        .not-run { color: #8a5a00; background: #fff6e0; padding: 8px 12px; border-left: 3px solid #e0a000; }
        """
}

/// One CSV file per section: a header, then one row per record (Q4: per run and epoch),
/// full-precision numbers, empty cells for absent values.
public enum CSVExport {
    public static func files(_ results: ExperimentResults) -> [(name: String, contents: String)] {
        [
            ("q1.csv", csv(["framework", "device", "precision", "batch_size", "epoch_seconds", "images_per_second",
                            "peak_memory_bytes"],
                           results.q1.records.map { r in
                               [r.framework.rawValue, r.device, r.precision.rawValue, "\(r.batchSize)", number(r.epochSeconds),
                                number(r.imagesPerSecond), r.peakMemoryBytes.map(String.init) ?? ""]
                           })),
            ("q2.csv", csv(["framework", "strategy", "precision", "gpus", "per_device_batch", "global_batch",
                            "epoch_seconds", "speedup", "efficiency"],
                           results.q2.records.map { r in
                               [r.framework.rawValue, r.strategy.rawValue, r.precision.rawValue, "\(r.gpus)",
                                "\(r.perDeviceBatch)", "\(r.globalBatch)", number(r.epochSeconds),
                                r.speedup.map(number) ?? "", r.efficiency.map(number) ?? ""]
                           })),
            ("q3.csv", csv(["strategy", "precision", "gpus", "per_device_batch", "step_seconds",
                            "step_seconds_without_communication", "compute_seconds", "communication_busy_seconds",
                            "exposed_communication_seconds", "overlap_fraction", "bytes_per_step", "algbw_gbps", "busbw_gbps"],
                           results.q3.records.map { r in
                               [r.strategy.rawValue, r.precision.rawValue, "\(r.gpus)", "\(r.perDeviceBatch)",
                                number(r.stepSeconds), number(r.stepSecondsWithoutCommunication), number(r.computeSeconds),
                                number(r.communicationBusySeconds), number(r.exposedCommunicationSeconds),
                                number(r.overlapFraction), "\(r.bytesPerStep)", number(r.algbwGBps), number(r.busbwGBps)]
                           })),
            ("allreduce-sweep.csv", csv(["communicator", "ranks", "bytes", "seconds", "algbw_gbps", "busbw_gbps"],
                                        results.allReduceSweep.records.map { r in
                                            [r.communicator, "\(r.ranks)", "\(r.bytes)", number(r.seconds),
                                             number(r.algbwGBps), number(r.busbwGBps)]
                                        })),
            ("q4.csv", csv(["run", "lr_rule", "ranks", "global_batch", "peak_learning_rate", "warmup_epochs",
                            "label_smoothing", "epoch", "test_accuracy", "test_loss", "train_loss", "seconds"],
                           results.q4.records.flatMap { r in
                               r.epochs.map { e in
                                   [r.label, r.lrRule.rawValue, "\(r.ranks)", "\(r.globalBatch)", number(r.peakLearningRate),
                                    number(r.warmupEpochs), number(r.labelSmoothing), "\(e.epoch)", number(e.testAccuracy),
                                    number(e.testLoss), number(e.trainLoss), number(e.seconds)]
                               }
                           })),
            ("time-to-accuracy.csv", csv(["run", "ranks", "global_batch", "target_accuracy", "seconds_to_target",
                                          "epochs_to_target", "best_test_accuracy", "total_seconds"],
                                         results.timeToAccuracy.records.map { r in
                                             [r.label, "\(r.ranks)", "\(r.globalBatch)", number(r.targetAccuracy),
                                              r.secondsToTarget.map(number) ?? "", r.epochsToTarget.map(String.init) ?? "",
                                              number(r.bestTestAccuracy), number(r.totalSeconds)]
                                         })),
        ]
    }

    /// RFC 4180: fields with a comma, quote or line break are quoted, quotes doubled.
    static func csv(_ header: [String], _ rows: [[String]]) -> String {
        func field(_ text: String) -> String {
            text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
        }
        return ([header] + rows).map { $0.map(field).joined(separator: ",") + "\n" }.joined()
    }

    /// The shortest text that reads back as the same Double.
    static func number(_ value: Double) -> String { "\(value)" }
}
