import Foundation

/// A results file that could not be read, saying which and why.
public struct ResultsFileError: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var reason: String

    public var description: String { "\(path): \(reason)" }
}

/// results.json: pretty-printed with sorted keys, so two runs diff line by line.
public enum ResultsFile {
    public static func encode(_ results: ExperimentResults) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(results)
    }

    public static func decode(_ data: Data, path: String = "results.json") throws -> ExperimentResults {
        let results: ExperimentResults
        do {
            results = try JSONDecoder().decode(ExperimentResults.self, from: data)
        } catch let error as DecodingError {
            throw ResultsFileError(path: path, reason: describe(error))
        } catch {
            throw ResultsFileError(path: path, reason: "not valid JSON (\(error.localizedDescription))")
        }
        guard results.schemaVersion <= ExperimentResults.currentSchemaVersion else {
            throw ResultsFileError(path: path, reason: "schema version \(results.schemaVersion) is newer than this cohort reads (\(ExperimentResults.currentSchemaVersion)); update cohort")
        }
        return results
    }

    public static func load(from url: URL) throws -> ExperimentResults {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw ResultsFileError(path: url.path, reason: "no such file; pass the results.json that `cohort experiments` wrote")
        }
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ResultsFileError(path: url.path, reason: "cannot be read (\(error.localizedDescription))")
        }
        return try decode(data, path: url.path)
    }

    /// A decoding error as "at q2.records[3].epochSeconds: expected a number".
    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return keys.isEmpty ? "the top level" : String(keys.drop { $0 == "." })
        }
        switch error {
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                return context.underlyingError.map { "not valid JSON (\($0))" } ?? "not valid JSON"
            }
            return "at \(path(context)): \(context.debugDescription)"
        case .keyNotFound(let key, let context):
            return "at \(path(context)): missing key '\(key.stringValue)'"
        case .typeMismatch(let type, let context):
            return "at \(path(context)): expected \(type) (\(context.debugDescription))"
        case .valueNotFound(let type, let context):
            return "at \(path(context)): expected \(type), found null"
        @unknown default:
            return "\(error)"
        }
    }
}

/// Writes every output of a results folder from one `ExperimentResults`:
/// results.json, one CSV per section, report.md, report.html and trace.json.
public struct ReportWriter {
    public static let resultsFileName = "results.json"
    public static let markdownFileName = "report.md"
    public static let htmlFileName = "report.html"
    public static let traceFileName = "trace.json"

    public var results: ExperimentResults

    public init(results: ExperimentResults) {
        self.results = results
    }

    /// Every file's name and bytes, in the order they are written.
    public func files() throws -> [(name: String, contents: Data)] {
        var files: [(name: String, contents: Data)] = [(Self.resultsFileName, try ResultsFile.encode(results))]
        files += CSVExport.files(results).map { ($0.name, Data($0.contents.utf8)) }
        files.append((Self.markdownFileName, Data(MarkdownReport.render(results).utf8)))
        files.append((Self.htmlFileName, Data(HTMLReport.render(results).utf8)))
        files.append((Self.traceFileName, try ChromeTrace.encode(results.timelines.records)))
        // Each chart of report.html also as a file of its own, for pages that
        // embed images (the README) rather than a whole report.
        for section in ReportSections.all(results) {
            for (index, chart) in section.charts.enumerated() {
                let svg = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + chart.svg + "\n"
                files.append(("chart-\(section.id)-\(index + 1).svg", Data(svg.utf8)))
            }
        }
        return files
    }

    /// Writes the files into `directory` (created if missing), replacing older ones, except
    /// those named in `excluding`; returns their URLs.
    @discardableResult
    public func write(to directory: URL, excluding: Set<String> = []) throws -> [URL] {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return try files().filter { !excluding.contains($0.name) }.map { file in
            let url = directory.appendingPathComponent(file.name)
            try file.contents.write(to: url, options: .atomic)
            return url
        }
    }
}
