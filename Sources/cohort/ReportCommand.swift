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
            measured again. Several results files of the same machine (a suite run in parts with \
            --only), oldest first, are merged into one results folder (the later file wins where \
            two measured the same thing); --out is then required.
            """)

    @Argument(help: ArgumentHelp("The results file(s) to render; several are merged, oldest first.", valueName: "results.json"))
    var results: [String]

    @Option(help: ArgumentHelp("Folder for the outputs (created if missing); default: the results file's folder.",
                               valueName: "dir"))
    var out: String?

    func validate() throws {
        guard !results.isEmpty else { throw ValidationError("name a results.json to render") }
        guard results.count == 1 || out != nil else {
            throw ValidationError("merging \(results.count) results files needs --out: the merged folder goes somewhere new")
        }
    }

    func run() throws {
        let input = URL(fileURLWithPath: results[0])
        // Errors name the file and what is wrong.
        let loaded = try ResultsMerge.merge(results.map { try ResultsFile.load(from: URL(fileURLWithPath: $0)) })
        let directory = out.map { URL(fileURLWithPath: $0) } ?? input.deletingLastPathComponent()
        // Rendering next to the input leaves the input as it is.
        let rendersInPlace = results.count == 1
            && directory.appendingPathComponent(ReportWriter.resultsFileName).standardizedFileURL.path
                == input.standardizedFileURL.path
        let written = try ReportWriter(results: loaded).write(
            to: directory, excluding: rendersInPlace ? [ReportWriter.resultsFileName] : [])
        print("report: wrote \(written.count) files to \(directory.path)")
        for url in written { print("  \(url.lastPathComponent)") }
    }
}
