import CohortKernels
import Foundation

/// The outcome of a self-test: which backend, with what seed, and a row per
/// compared output. Prints as an aligned table and encodes as JSON.
public struct SelfTestReport: Codable, Sendable {
    public var backend: String
    public var details: String
    public var device: String
    /// ISO 8601, UTC.
    public var date: String
    /// Rerun with `--seed <seed>` to draw the same inputs.
    public var seed: UInt64
    public var matrixPrecision: MatrixPrecision
    public var quick: Bool
    public var bfloat16: Bool
    public var rows: [SelfTestRow]

    init(backend: Backend, options: BackendSelfTest.Options, rows: [SelfTestRow]) {
        self.backend = backend.name
        details = backend.details
        device = backend.device.description
        date = ISO8601DateFormatter().string(from: Date())
        seed = options.seed
        matrixPrecision = options.matrixPrecision
        quick = options.quick
        bfloat16 = options.bfloat16
        self.rows = rows
    }

    public var passedCount: Int { rows.filter(\.passed).count }
    public var failedCount: Int { rows.count - passedCount }
    public var failures: [SelfTestRow] { rows.filter { !$0.passed } }

    /// `N passed, M failed`.
    public var summary: String { "\(passedCount) passed, \(failedCount) failed" }

    /// The report as JSON: every row and the metadata, NaN written as "nan".
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf",
                                                                       nan: "nan")
        var object = try JSONSerialization.jsonObject(with: encoder.encode(self)) as! [String: Any]
        object["passed"] = passedCount
        object["failed"] = failedCount
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    }
}

// MARK: Text

extension SelfTestReport {
    static let columns: [(title: String, width: Int)] = [("check", 46), ("shape", 34), ("max rel err", 11), ("normwise rel err", 16),
                          ("tolerance", 11), ("result", 6)]

    /// The table's header and rule.
    public static var tableHeader: String {
        let titles = columns.enumerated().map { index, column in
            index < 2 ? column.title.padding(column.width) : column.title.leftPadding(column.width)
        }
        return titles.joined(separator: "  ") + "\n" + String(repeating: "-", count: titles.joined(separator: "  ").count)
    }

    /// One row as a table line; a note follows on the same line.
    public static func tableLine(_ row: SelfTestRow) -> String {
        let cells = [row.check.padding(columns[0].width), row.shape.padding(columns[1].width),
                     format(row.maxRelativeError).leftPadding(columns[2].width),
                     format(row.normwiseRelativeError).leftPadding(columns[3].width),
                     row.tolerance.leftPadding(columns[4].width),
                     (row.passed ? "PASS" : "FAIL").leftPadding(columns[5].width)]
        return cells.joined(separator: "  ") + (row.note.map { "  " + $0 } ?? "")
    }

    /// The whole table, the tolerances' reasons, the failures again and the summary line last.
    public var text: String {
        var lines = [Self.tableHeader] + rows.map(Self.tableLine)
        lines.append("")
        lines.append(contentsOf: toleranceLegend)
        if failedCount > 0 {
            lines.append("")
            lines.append("failed:")
            lines.append(contentsOf: failures.map(Self.tableLine))
        }
        lines.append(summary)
        return lines.joined(separator: "\n")
    }

    /// Each tolerance used, once, with its reason.
    public var toleranceLegend: [String] {
        var seen = Set<String>()
        var lines = ["tolerances (normwise and max-abs relative error; a/b: normwise a, max-abs b):"]
        for row in rows where seen.insert("\(row.tolerance) \(row.toleranceReason)").inserted {
            lines.append("  \(row.tolerance.leftPadding(11))  \(row.toleranceReason)")
        }
        return lines
    }

    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value == 0 { return "0" }
        return String(format: "%.2e", value)
    }
}

private extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
    func leftPadding(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
