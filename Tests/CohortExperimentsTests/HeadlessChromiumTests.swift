import CohortExperiments
import Foundation
import XCTest

/// report.html as a browser sees it: headless Chromium (Debian's `chromium`,
/// installed by scripts/setup.sh) loads it, the DOM it builds holds every
/// chart with its title, and a screenshot is a real picture. Skipped where
/// Chromium is not installed.
final class HeadlessChromiumTests: XCTestCase {
    var directory: URL!
    var chromium: String!

    override func setUpWithError() throws {
        let candidates = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        guard let found = candidates.first(where: FileManager.default.isExecutableFile(atPath:)) else {
            throw XCTSkip("no chromium here (apt-get install chromium)")
        }
        chromium = found
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-chromium-\(UUID().uuidString)")
        try ReportWriter(results: SampleResults.make()).write(to: directory)
    }

    override func tearDownWithError() throws {
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    /// Runs Chromium headless on report.html with `arguments`; returns stdout. Killed after 90 s.
    func runChromium(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: chromium)
        let profile = directory.appendingPathComponent("profile-\(UUID().uuidString)")
        process.arguments = ["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--hide-scrollbars",
                             "--user-data-dir=\(profile.path)"] + arguments
            + [directory.appendingPathComponent("report.html").absoluteString]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let watchdog = DispatchWorkItem { if process.isRunning { process.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + 90, execute: watchdog)
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        watchdog.cancel()
        XCTAssertEqual(process.terminationReason, .exit, "chromium timed out")
        return String(decoding: data, as: UTF8.self)
    }

    func testTheDOMHoldsEveryChartWithItsTitle() throws {
        let dom = try runChromium(["--dump-dom"])
        let charts = ReportSections.all(SampleResults.make()).flatMap(\.charts)
        XCTAssertEqual(dom.components(separatedBy: "<svg ").count - 1, charts.count, "one <svg> per chart")
        for chart in charts {
            XCTAssertTrue(dom.contains(">\(escapeXML(chart.title))</title>"), "chart '\(chart.title)' missing from the DOM")
        }
        // Parsed as a page, not as text: Chromium rebuilt the tables and sections.
        XCTAssertGreaterThanOrEqual(dom.components(separatedBy: "<table").count - 1, 8)
        XCTAssertTrue(dom.contains("<section id=\"q4\">"))
        XCTAssertFalse(dom.contains("This page contains the following errors"), "Chromium reported a parse error")
    }

    func testTheScreenshotIsARealPicture() throws {
        let png = directory.appendingPathComponent("report.png")
        _ = try runChromium(["--screenshot=\(png.path)", "--window-size=1200,2000"])
        let data = try Data(contentsOf: png)
        let bytes = [UInt8](data)
        XCTAssertEqual(Array(bytes.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], "PNG signature")
        XCTAssertEqual(String(decoding: bytes[12..<16], as: UTF8.self), "IHDR")
        func bigEndian(_ offset: Int) -> Int { bytes[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) } }
        XCTAssertEqual(bigEndian(16), 1200, "width")
        XCTAssertEqual(bigEndian(20), 2000, "height")
        // A blank 1200 × 2000 page compresses to a few kilobytes; text, tables and charts do not.
        var offset = 8, compressed = 0
        while offset + 8 <= bytes.count {
            let length = bigEndian(offset)
            if String(decoding: bytes[offset + 4..<offset + 8], as: UTF8.self) == "IDAT" { compressed += length }
            offset += 12 + length
        }
        XCTAssertGreaterThan(compressed, 60_000, "the screenshot's image data is too small to hold the report")
    }
}
