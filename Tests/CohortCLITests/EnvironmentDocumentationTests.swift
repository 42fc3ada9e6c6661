import CohortTestSupport
import Foundation
import XCTest

/// The `COHORT_*` variables: every one the sources read is documented in
/// docs/environment.md and known to `cohort info` (Note [Environment
/// switches]), and `cohort info` names the ones that are set.
final class EnvironmentDocumentationTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The `"COHORT_..."` string literals of the Swift sources: the variables read.
    func variablesTheSourcesRead() throws -> Set<String> {
        let literal = try NSRegularExpression(pattern: "\"(COHORT_[A-Z0-9_]+)\"")
        var names = Set<String>()
        let sources = Self.root.appendingPathComponent("Sources")
        let files = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)!
        for case let file as URL in files where file.pathExtension == "swift" {
            let text = try String(contentsOf: file, encoding: .utf8)
            for match in literal.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                names.insert(String(text[Range(match.range(at: 1), in: text)!]))
            }
        }
        return names
    }

    func testEveryVariableIsDocumentedAndKnown() throws {
        let names = try variablesTheSourcesRead()
        XCTAssertTrue(names.isSuperset(of: ["COHORT_PDL", "COHORT_ALLREDUCE_DRY", "COHORT_RESTART_COUNT"]), "\(names.sorted())")
        let documentation = try String(contentsOf: Self.root.appendingPathComponent("docs/environment.md"), encoding: .utf8)
        let catalogue = try String(contentsOf: Self.root.appendingPathComponent("Sources/cohort/EnvironmentSettings.swift"),
                                   encoding: .utf8)
        for name in names.sorted() {
            XCTAssertTrue(documentation.contains("`\(name)`"), "\(name) is read but not in docs/environment.md")
            XCTAssertTrue(catalogue.contains("\"\(name)\": ."), "\(name) is read but not in EnvironmentSettings.variables")
        }
    }

    func testInfoNamesTheSettingsThatAreSet() throws {
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("COHORT_") }
        environment["COHORT_PDL"] = "off"
        environment["COHORT_ALLREDUCE_DRY"] = "tiny"
        environment["COHORT_PLD"] = "on"
        let (status, output) = try runExecutable(try BuiltExecutables.url(of: "cohort"), ["info"], environment: environment)
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("environment COHORT_PDL=off: a measurement switch: changes how fast"), output)
        XCTAssertTrue(output.contains("environment COHORT_ALLREDUCE_DRY=tiny: a measurement switch that changes what is computed"), output)
        XCTAssertTrue(output.contains("environment COHORT_PLD=on: not a variable Cohort reads: misspelt?"), output)

        environment = environment.filter { !$0.key.hasPrefix("COHORT_") }
        let (_, quiet) = try runExecutable(try BuiltExecutables.url(of: "cohort"), ["info"], environment: environment)
        XCTAssertFalse(quiet.contains("environment COHORT_"), quiet)
    }
}

extension EnvironmentDocumentationTests {
    /// A run's header records the measurement switches and NCCL's variables it
    /// ran under, and leaves out the file settings.
    func testRunHeaderRecordsTheSwitches() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-env-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("COHORT_") && !$0.key.hasPrefix("NCCL_") }
        environment["COHORT_FIND_ROUNDS"] = "1"
        environment["NCCL_DEBUG"] = "WARN"
        environment["COHORT_KERNEL_CACHE"] = "off"
        let (status, output) = try runExecutable(try BuiltExecutables.url(of: "cohort"),
                                                 ["train", "--dataset", "synthetic", "--model", "smallcnn", "--epochs", "1",
                                                  "--steps-per-epoch", "1", "--batch-size", "8", "--eval-limit", "16",
                                                  "--no-progress", "--run-dir", folder.path], environment: environment)
        XCTAssertEqual(status, 0, output)
        let metrics = try String(contentsOf: folder.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        let header = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(metrics.split(separator: "\n")[0].utf8)) as? [String: Any])
        XCTAssertEqual(header["environment"] as? String, "COHORT_FIND_ROUNDS=1 NCCL_DEBUG=WARN", "\(header)")
    }
}
