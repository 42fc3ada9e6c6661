import Foundation

/// Inline SVG charts for the HTML report, drawn from scratch so the report
/// needs no script or external asset. Every chart is 760 × 420 user units,
/// scales to its container (viewBox), carries its title as `<title>` (read
/// by screen readers and by the report's DOM test) and as visible text, and
/// has a legend on the right.
public protocol SVGChart: Sendable {
    var title: String { get }
    var svg: String { get }
}

/// Colours of the series in order (Tableau 10), distinct in print and for most colour vision.
let chartPalette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                    "#7f7f7f", "#bcbd22"]

/// Plot geometry shared by the charts.
struct ChartFrame {
    static let width = 760.0, height = 420.0
    static let left = 70.0, right = 210.0, top = 44.0, bottom = 58.0
    static var plotWidth: Double { width - left - right }
    static var plotHeight: Double { height - top - bottom }
    static var plotRight: Double { width - right }
    static var plotBottom: Double { height - bottom }

    static func open(title: String, chartID: String) -> String {
        """
        <svg xmlns="http://www.w3.org/2000/svg" class="chart" id="\(chartID)" role="img" \
        aria-labelledby="\(chartID)-title" viewBox="0 0 \(n(width)) \(n(height))" \
        font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="12">
        <title id="\(chartID)-title">\(escapeXML(title))</title>
        <rect x="0" y="0" width="\(n(width))" height="\(n(height))" fill="#ffffff"/>
        <text x="\(n(width / 2))" y="24" text-anchor="middle" font-size="15" font-weight="600">\(escapeXML(title))</text>

        """
    }

    static func axisLabels(x: String, y: String) -> String {
        """
        <text x="\(n(left + plotWidth / 2))" y="\(n(height - 14))" text-anchor="middle" font-size="13">\(escapeXML(x))</text>
        <text transform="translate(18 \(n(top + plotHeight / 2))) rotate(-90)" text-anchor="middle" font-size="13">\(escapeXML(y))</text>

        """
    }

    /// Legend rows to the right of the plot: a swatch drawn by `swatch(y)` and the name.
    static func legend(_ entries: [(name: String, swatch: (Double) -> String)]) -> String {
        var out = ""
        for (index, entry) in entries.enumerated() {
            let y = top + 10 + Double(index) * 20
            out += entry.swatch(y)
            out += "<text x=\"\(n(plotRight + 44))\" y=\"\(n(y + 4))\">\(escapeXML(entry.name))</text>\n"
        }
        return out
    }

    /// A number for an SVG attribute: two decimals at most.
    static func n(_ value: Double) -> String {
        let rounded = (value * 100).rounded() / 100
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
    }
}

/// Round tick steps (1, 2 or 5 × 10^k) covering [0, maximum] in about five steps.
func niceTicks(upTo maximum: Double, count: Int = 5) -> [Double] {
    guard maximum > 0, maximum.isFinite else { return [0, 1] }
    let rough = maximum / Double(count)
    let magnitude = pow(10, floor(log10(rough)))
    let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= rough } ?? 10 * magnitude
    let top = (maximum / step - 1e-9).rounded(.up) * step
    return stride(from: 0, through: top + step / 2, by: step).map { $0 }
}

/// A tick label with the decimals its step needs: steps of 0.5 print 1.5, steps of 20 print 40.
func tickLabel(_ value: Double, step: Double) -> String {
    let decimals = step > 0 ? max(0, min(9, Int(-floor(log10(step) + 1e-9)))) : 0
    return String(format: "%.\(decimals)f", value)
}

/// One line of a `LineChart`.
public struct ChartSeries: Sendable {
    public var name: String
    public var points: [(x: Double, y: Double)]
    public var color: String
    /// Dashed line and hollow markers: the reference framework's series.
    public var dashed: Bool

    public init(name: String, points: [(x: Double, y: Double)], color: String, dashed: Bool = false) {
        self.name = name
        self.points = points.sorted { $0.x < $1.x }
        self.color = color
        self.dashed = dashed
    }
}

public struct LineChart: SVGChart {
    public enum XScale: Sendable { case linear, log2 }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var xScale: XScale
    /// Tick positions and labels on the x axis; an empty label draws a minor tick only.
    public var xTicks: [(value: Double, label: String)]
    public var series: [ChartSeries]
    /// A grey dashed reference line (e.g. ideal speedup), drawn under the series.
    public var reference: ChartSeries?
    /// Formats y tick labels; nil: as many decimals as the tick step needs (0, 0.5, 1.0 → 0, 0.5, 1).
    public var yTickFormat: (@Sendable (Double) -> String)?

    public init(title: String, xLabel: String, yLabel: String, xScale: XScale, xTicks: [(value: Double, label: String)],
                series: [ChartSeries], reference: ChartSeries? = nil, yTickFormat: (@Sendable (Double) -> String)? = nil) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.xScale = xScale
        self.xTicks = xTicks
        self.series = series
        self.reference = reference
        self.yTickFormat = yTickFormat
    }

    public var svg: String {
        typealias F = ChartFrame
        let n = F.n
        let allPoints = (series + (reference.map { [$0] } ?? [])).flatMap(\.points)
        let transform: (Double) -> Double = xScale == .log2 ? { log2($0) } : { $0 }
        let xs = (allPoints.map(\.x) + xTicks.map(\.value)).map(transform)
        var (xLow, xHigh) = (xs.min() ?? 0, xs.max() ?? 1)
        if xHigh - xLow < 1e-12 { (xLow, xHigh) = (xLow - 1, xHigh + 1) }
        let pad = (xHigh - xLow) * 0.04
        (xLow, xHigh) = (xLow - pad, xHigh + pad)
        let yTicks = niceTicks(upTo: allPoints.map(\.y).max() ?? 1)
        let yHigh = yTicks.last ?? 1
        func px(_ x: Double) -> Double { F.left + (transform(x) - xLow) / (xHigh - xLow) * F.plotWidth }
        func py(_ y: Double) -> Double { F.plotBottom - y / yHigh * F.plotHeight }

        var out = F.open(title: title, chartID: chartID(title))
        // Grid and y ticks.
        for tick in yTicks {
            out += "<line x1=\"\(n(F.left))\" y1=\"\(n(py(tick)))\" x2=\"\(n(F.plotRight))\" y2=\"\(n(py(tick)))\" stroke=\"#e3e3e3\"/>\n"
            let label = yTickFormat?(tick) ?? tickLabel(tick, step: yTicks.count > 1 ? yTicks[1] - yTicks[0] : 1)
            out += "<text x=\"\(n(F.left - 8))\" y=\"\(n(py(tick) + 4))\" text-anchor=\"end\">\(escapeXML(label))</text>\n"
        }
        // X ticks.
        for tick in xTicks {
            let x = px(tick.value)
            let length = tick.label.isEmpty ? 4.0 : 7.0
            out += "<line x1=\"\(n(x))\" y1=\"\(n(F.plotBottom))\" x2=\"\(n(x))\" y2=\"\(n(F.plotBottom + length))\" stroke=\"#333\"/>\n"
            if !tick.label.isEmpty {
                out += "<text x=\"\(n(x))\" y=\"\(n(F.plotBottom + 21))\" text-anchor=\"middle\">\(escapeXML(tick.label))</text>\n"
            }
        }
        // Axes.
        out += "<path d=\"M\(n(F.left)) \(n(F.top)) V\(n(F.plotBottom)) H\(n(F.plotRight))\" fill=\"none\" stroke=\"#333\"/>\n"
        out += F.axisLabels(x: xLabel, y: yLabel)

        func path(_ s: ChartSeries) -> String {
            s.points.enumerated().map { "\($0.offset == 0 ? "M" : "L")\(n(px($0.element.x))) \(n(py($0.element.y)))" }
                .joined(separator: " ")
        }
        if let reference {
            out += "<path class=\"reference\" d=\"\(path(reference))\" fill=\"none\" stroke=\"#888\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n"
        }
        for s in series {
            out += "<g class=\"series\" data-name=\"\(escapeXML(s.name))\">\n"
            out += "<path d=\"\(path(s))\" fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"2\"\(s.dashed ? " stroke-dasharray=\"5 3\"" : "")/>\n"
            for point in s.points {
                out += "<circle cx=\"\(n(px(point.x)))\" cy=\"\(n(py(point.y)))\" r=\"3.5\" fill=\"\(s.dashed ? "#ffffff" : s.color)\" stroke=\"\(s.color)\" stroke-width=\"1.5\"/>\n"
            }
            out += "</g>\n"
        }
        var entries: [(name: String, swatch: (Double) -> String)] = series.map { s in
            (s.name, { y in
                "<line x1=\"\(n(F.plotRight + 12))\" y1=\"\(n(y))\" x2=\"\(n(F.plotRight + 38))\" y2=\"\(n(y))\" stroke=\"\(s.color)\" stroke-width=\"2\"\(s.dashed ? " stroke-dasharray=\"5 3\"" : "")/><circle cx=\"\(n(F.plotRight + 25))\" cy=\"\(n(y))\" r=\"3.5\" fill=\"\(s.dashed ? "#ffffff" : s.color)\" stroke=\"\(s.color)\" stroke-width=\"1.5\"/>\n"
            })
        }
        if let reference {
            entries.append((reference.name, { y in
                "<line x1=\"\(n(F.plotRight + 12))\" y1=\"\(n(y))\" x2=\"\(n(F.plotRight + 38))\" y2=\"\(n(y))\" stroke=\"#888\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n"
            }))
        }
        out += F.legend(entries)
        return out + "</svg>"
    }
}

/// Horizontal bars, one per category, each split into stacked segments.
public struct StackedBarChart: SVGChart {
    public struct Segment: Sendable {
        public var name: String
        public var color: String
        /// One value per category.
        public var values: [Double]

        public init(name: String, color: String, values: [Double]) {
            self.name = name
            self.color = color
            self.values = values
        }
    }

    public var title: String
    public var valueLabel: String
    public var categories: [String]
    public var segments: [Segment]
    /// Formats the totals at the bars' ends and in their tooltips.
    public var valueFormat: @Sendable (Double) -> String

    public init(title: String, valueLabel: String, categories: [String], segments: [Segment],
                valueFormat: @escaping @Sendable (Double) -> String = { Format.significant($0, digits: 3) }) {
        precondition(segments.allSatisfy { $0.values.count == categories.count }, "one value per category and segment")
        self.title = title
        self.valueLabel = valueLabel
        self.categories = categories
        self.segments = segments
        self.valueFormat = valueFormat
    }

    public var svg: String {
        typealias F = ChartFrame
        let n = F.n
        let labelWidth = 130.0  // category names sit left of the bars
        let left = F.left + labelWidth - 40
        let plotWidth = F.plotRight - left
        let totals = categories.indices.map { index in segments.reduce(0) { $0 + max(0, $1.values[index]) } }
        let ticks = niceTicks(upTo: totals.max() ?? 1)
        let high = ticks.last ?? 1
        let band = F.plotHeight / Double(max(1, categories.count))
        let barHeight = min(28, band * 0.7)
        func px(_ value: Double) -> Double { left + value / high * plotWidth }

        var out = F.open(title: title, chartID: chartID(title))
        for tick in ticks {
            out += "<line x1=\"\(n(px(tick)))\" y1=\"\(n(F.top))\" x2=\"\(n(px(tick)))\" y2=\"\(n(F.plotBottom))\" stroke=\"#e3e3e3\"/>\n"
            out += "<text x=\"\(n(px(tick)))\" y=\"\(n(F.plotBottom + 21))\" text-anchor=\"middle\">\(escapeXML(tickLabel(tick, step: ticks.count > 1 ? ticks[1] - ticks[0] : 1)))</text>\n"
        }
        for (index, category) in categories.enumerated() {
            let y = F.top + band * (Double(index) + 0.5)
            out += "<text x=\"\(n(left - 8))\" y=\"\(n(y + 4))\" text-anchor=\"end\">\(escapeXML(category))</text>\n"
            var start = 0.0
            for segment in segments {
                let value = max(0, segment.values[index])
                guard value > 0 else { continue }
                out += "<rect class=\"bar\" x=\"\(n(px(start)))\" y=\"\(n(y - barHeight / 2))\" width=\"\(n(px(start + value) - px(start)))\" height=\"\(n(barHeight))\" fill=\"\(segment.color)\"><title>\(escapeXML("\(category): \(segment.name) \(valueFormat(value))"))</title></rect>\n"
                start += value
            }
            out += "<text x=\"\(n(px(start) + 5))\" y=\"\(n(y + 4))\" fill=\"#444\">\(escapeXML(valueFormat(totals[index])))</text>\n"
        }
        out += "<path d=\"M\(n(left)) \(n(F.top)) V\(n(F.plotBottom)) H\(n(F.plotRight))\" fill=\"none\" stroke=\"#333\"/>\n"
        out += "<text x=\"\(n(left + plotWidth / 2))\" y=\"\(n(F.height - 14))\" text-anchor=\"middle\" font-size=\"13\">\(escapeXML(valueLabel))</text>\n"
        out += F.legend(segments.map { segment in
            (segment.name, { y in
                "<rect x=\"\(n(F.plotRight + 16))\" y=\"\(n(y - 6))\" width=\"20\" height=\"12\" fill=\"\(segment.color)\"/>\n"
            })
        })
        return out + "</svg>"
    }
}

/// An element id from a title: "Speedup vs GPUs (DDP)" → "chart-speedup-vs-gpus-ddp".
func chartID(_ title: String) -> String {
    let words = title.lowercased().split { !($0.isASCII && ($0.isLetter || $0.isNumber)) }
    return "chart-" + words.joined(separator: "-")
}
