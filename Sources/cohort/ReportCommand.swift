import ArgumentParser
import CohortExperiments
import Foundation

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Render the reports of an experiments results file again (CSV, Markdown, HTML, trace).",
        discussion: """
            Reads the results.json that `cohort experiments` wrote and writes, into --out: q1.csv, \
            q2.csv, q3.csv, allreduce-sweep.csv, q4.csv, time-to-accuracy.csv, \
            report.md, report.html (charts as inline SVG, no external assets) and trace.json (open in \
            ui.perfetto.dev), and a copy of results.json when --out is another folder. Nothing is \
            measured again.
            """)

    @Argument(help: ArgumentHelp("The results file to render.", valueName: "results.json"))
    var results: String

    @Option(help: ArgumentHelp("Folder for the outputs (created if missing); default: the results file's folder.",
                               valueName: "dir"))
    var out: String?

    func run() throws {
        let input = URL(fileURLWithPath: results)
        let loaded = try ResultsFile.load(from: input)  // its errors name the file and what is wrong
        let directory = out.map { URL(fileURLWithPath: $0) } ?? input.deletingLastPathComponent()
        // Rendering next to the input leaves the input as it is.
        let rendersInPlace = directory.appendingPathComponent(ReportWriter.resultsFileName).standardizedFileURL.path
            == input.standardizedFileURL.path
        let written = try ReportWriter(results: loaded).write(
            to: directory, excluding: rendersInPlace ? [ReportWriter.resultsFileName] : [])
        print("report: wrote \(written.count) files to \(directory.path)")
        for url in written { print("  \(url.lastPathComponent)") }
    }
}
