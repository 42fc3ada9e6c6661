import Foundation

/// A table as both reports show it: header, rows of formatted cells. The
/// Markdown and the HTML report render the same `ReportTable`s, so they
/// cannot disagree.
public struct ReportTable: Equatable, Sendable {
    /// A line above the table naming what it shows.
    public var caption: String
    public var headers: [String]
    /// Per column: numbers align right.
    public var numeric: [Bool]
    public var rows: [[String]]

    public init(caption: String, headers: [String], numeric: [Bool]? = nil, rows: [[String]]) {
        precondition(rows.allSatisfy { $0.count == headers.count }, "every row of '\(caption)' needs \(headers.count) cells")
        self.caption = caption
        self.headers = headers
        self.numeric = numeric ?? headers.indices.map { $0 > 0 }
        self.rows = rows
    }

    /// GitHub-flavoured Markdown, numbers right-aligned.
    public var markdown: String {
        func line(_ cells: [String]) -> String {
            "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |"
        }
        var lines = ["**\(caption)**", "", line(headers), line(numeric.map { $0 ? "---:" : "---" })]
        lines += rows.map(line)
        return lines.joined(separator: "\n")
    }

    public var html: String {
        var out = "<table>\n<caption>\(escapeXML(caption))</caption>\n<thead><tr>"
        for (header, isNumber) in zip(headers, numeric) {
            out += "<th\(isNumber ? " class=\"num\"" : "")>\(escapeXML(header))</th>"
        }
        out += "</tr></thead>\n<tbody>\n"
        for row in rows {
            out += "<tr>"
            for (cell, isNumber) in zip(row, numeric) {
                out += "<td\(isNumber ? " class=\"num\"" : "")>\(escapeXML(cell))</td>"
            }
            out += "</tr>\n"
        }
        return out + "</tbody>\n</table>"
    }
}

/// Escapes text for XML and HTML content and attribute values.
public func escapeXML(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.count)
    for character in text {
        switch character {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.append(character)
        }
    }
    return out
}

/// How figures are printed in the reports. The JSON and CSV keep full precision;
/// these round for reading, and the tests parse them back against the JSON.
public enum Format {
    /// Four significant digits, never an exponent: 9.060, 20.96, 0.2180, 0.0002230.
    public static func significant(_ value: Double, digits: Int = 4) -> String {
        guard value != 0, value.isFinite else { return value.isFinite ? "0" : "\(value)" }
        let magnitude = Int(floor(log10(abs(value))))
        let decimals = min(9, max(0, digits - 1 - magnitude))
        return String(format: "%.\(decimals)f", value)
    }

    /// Settings as written on a command line: 0.1, 6.4, 2, 0.0005.
    public static func compact(_ value: Double) -> String { String(format: "%.6g", value) }

    /// Whole numbers with thousands separators: 38,294.
    public static func count(_ value: Double) -> String {
        let digits = String(Int(value.rounded()).magnitude)
        var grouped = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { grouped += "," }
            grouped.append(digit)
        }
        return (value < -0.5 ? "-" : "") + grouped
    }

    /// 3.70×
    public static func ratio(_ value: Double) -> String { String(format: "%.2f×", value) }

    /// A fraction as a percentage: 0.9312 → 93.1%.
    public static func percent(_ fraction: Double, decimals: Int = 1) -> String {
        String(format: "%.\(decimals)f%%", fraction * 100)
    }

    /// Sizes: exact binary multiples as KiB/MiB/GiB (the sweep's powers of two),
    /// anything else in decimal MB (10^6 bytes), as gradient sizes usually are.
    public static func bytes(_ bytes: Int) -> String {
        let units = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
        for (size, unit) in units where bytes >= size && bytes % size == 0 {
            return "\(bytes / size) \(unit)"
        }
        if bytes < 1000 { return "\(bytes) B" }
        return "\(significant(Double(bytes) / 1e6)) MB"
    }

    /// Placeholder for a cell with no figure.
    public static let missing = "–"
}
