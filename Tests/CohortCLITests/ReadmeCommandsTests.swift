import CohortTestSupport
import Foundation
import XCTest

/// The README's commands against this binary's options: a flag renamed or
/// removed fails here, not in a user's shell. The options come from the
/// binary itself (`cohort --experimental-dump-help`, swift-argument-parser's
/// description of every command); nothing is run.
final class ReadmeCommandsTests: XCTestCase {
    static let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("README.md")

    /// One command of the binary: its options (long names, whether each
    /// takes a value and which values it allows) and subcommands.
    struct CommandInfo {
        var options: [String: (takesValue: Bool, allowed: [String]?)] = [:]
        var subcommands: [String: CommandInfo] = [:]
        var defaultSubcommand: String?

        init(_ json: [String: Any]) {
            for argument in json["arguments"] as? [[String: Any]] ?? [] {
                let takesValue = argument["kind"] as? String == "option"
                for name in argument["names"] as? [[String: Any]] ?? [] where name["kind"] as? String == "long" {
                    options["--" + (name["name"] as? String ?? "")] = (takesValue, argument["allValues"] as? [String])
                }
            }
            for subcommand in json["subcommands"] as? [[String: Any]] ?? [] {
                subcommands[subcommand["commandName"] as? String ?? ""] = CommandInfo(subcommand)
            }
            defaultSubcommand = json["defaultSubcommand"] as? String
        }

        /// Every long option of this command and those under it.
        var allOptions: Set<String> {
            subcommands.values.reduce(Set(options.keys)) { $0.union($1.allOptions) }
        }

        /// What is wrong with `arguments` for this command, if anything: an
        /// unknown subcommand or option, or a value an option does not allow.
        /// Words after `--` are the command a launcher runs and are checked
        /// as a command of their own when they run `cohort`.
        func problems(_ arguments: [String]) -> [String] {
            var command = self, words = arguments[...]
            while let word = words.first, let subcommand = command.subcommands[word] {
                command = subcommand; words = words.dropFirst()
            }
            if let name = command.defaultSubcommand, let subcommand = command.subcommands[name] { command = subcommand }
            var problems: [String] = []
            while let word = words.popFirst() {
                if word == "--" {
                    if let inner = ReadmeCommandsTests.cohortArguments(words.joined(separator: " ")) {
                        problems += ReadmeCommandsTests.root.problems(inner)
                    }
                    break
                }
                guard word.hasPrefix("--") else { continue }
                let name = word.split(separator: "=", maxSplits: 1).first.map(String.init) ?? word
                guard let option = command.options[name] else { problems.append("unknown option \(name)"); continue }
                guard option.takesValue, !word.contains("=") else { continue }
                if let value = words.popFirst(), let allowed = option.allowed, !value.hasPrefix("<"), !allowed.contains(value) {
                    problems.append("\(name) \(value): not one of \(allowed.joined(separator: ", "))")
                }
            }
            return problems
        }
    }

    nonisolated(unsafe) static var root = CommandInfo([:])

    override class func setUp() {
        super.setUp()
        guard let executable = try? BuiltExecutables.url(of: "cohort"),
              let (status, output) = try? runExecutable(executable, ["--experimental-dump-help"]), status == 0,
              let json = try? JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any],
              let command = json["command"] as? [String: Any] else { return }
        root = CommandInfo(command)
    }

    /// The `cohort` commands of the README: each line of a shell code block,
    /// and each inline code span, that runs `cohort` (as `cohort`, or by a
    /// path ending in `/cohort`), with its arguments up to a comment.
    static func readmeCommands() throws -> [(line: Int, arguments: [String])] {
        let text = try String(contentsOf: readme, encoding: .utf8)
        var commands: [(Int, [String])] = []
        var inShellBlock = false, inOtherBlock = false
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("```") {
                if inShellBlock || inOtherBlock {
                    inShellBlock = false; inOtherBlock = false
                } else {
                    let language = trimmed.dropFirst(3)
                    if language.isEmpty || language == "sh" || language == "bash" { inShellBlock = true } else { inOtherBlock = true }
                }
                continue
            }
            if inOtherBlock { continue }
            if inShellBlock {
                if let arguments = cohortArguments(trimmed) { commands.append((index + 1, arguments)) }
            } else {
                for span in inlineCode(trimmed) where span.hasPrefix("cohort ") {
                    if let arguments = cohortArguments(span) { commands.append((index + 1, arguments)) }
                }
            }
        }
        return commands
    }

    static func inlineCode(_ line: String) -> [String] {
        line.split(separator: "`", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) }
    }

    /// The arguments after the first word that names `cohort`, without a
    /// trailing comment or `...` placeholder; nil when the line runs no `cohort`.
    static func cohortArguments(_ line: String) -> [String]? {
        let code = line.components(separatedBy: " #").first!.trimmingCharacters(in: .whitespaces)
        if code.hasPrefix("#") { return nil }
        let words = code.split(separator: " ").map(String.init)
        guard let start = words.firstIndex(where: { $0 == "cohort" || $0.hasSuffix("/cohort") }) else { return nil }
        let arguments = words[(start + 1)...].filter { $0 != "..." && $0 != "…" }
        return arguments.isEmpty ? nil : Array(arguments)
    }

    func testEveryReadmeCommandUsesOptionsTheBinaryHas() throws {
        XCTAssertNotNil(Self.root.subcommands["train"], "cohort --experimental-dump-help gave no commands")
        let commands = try Self.readmeCommands()
        XCTAssertGreaterThan(commands.count, 20, "the README's commands were not found")
        for (line, arguments) in commands {
            let problems = Self.root.problems(arguments)
            XCTAssertTrue(problems.isEmpty, "README.md:\(line): cohort \(arguments.joined(separator: " ")): \(problems)")
        }
    }

    /// Flags the README names in inline code that are not `cohort`'s: the
    /// Swift compiler's, and a family written as a prefix (`--q4-*`).
    static let foreignFlags: Set<String> = ["--static-swift-stdlib", "--q4-"]

    /// Every `--flag` the README names in inline code (`--deterministic`) is an
    /// option of some `cohort` command.
    func testEveryFlagTheReadmeNamesExists() throws {
        let options = Self.root.allOptions
        XCTAssertTrue(options.contains("--nproc-per-node") && options.contains("--batch-sizes"), "\(options.sorted())")
        let text = try String(contentsOf: Self.readme, encoding: .utf8)
        let flag = try NSRegularExpression(pattern: "(?<![\\w-])--[a-z][a-z0-9-]*")
        var named = 0
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            for code in Self.inlineCode(String(line)) {
                for match in flag.matches(in: code, range: NSRange(code.startIndex..., in: code)) {
                    let name = String(code[Range(match.range, in: code)!])
                    named += 1
                    XCTAssertTrue(options.contains(name) || Self.foreignFlags.contains(name),
                                  "README.md:\(index + 1): `\(code)` names \(name), which no cohort command has")
                }
            }
        }
        XCTAssertGreaterThan(named, 30, "the README's flags were not found")
    }

    /// The checker itself, on commands that must pass and fail.
    func testTheCheckerFindsWhatIsWrong() {
        XCTAssertEqual(Self.cohortArguments(".build/release/cohort bench --batch-sizes 32 128   # images/s"),
                       ["bench", "--batch-sizes", "32", "128"])
        XCTAssertEqual(Self.cohortArguments("mpirun -np 2 .build/release/cohort train --device cpu ...   # or srun"),
                       ["train", "--device", "cpu"])
        XCTAssertNil(Self.cohortArguments("# two machines (node 0 starts every rank through mpirun):"))
        XCTAssertNil(Self.cohortArguments("swift build -c release"))
        let root = Self.root
        XCTAssertEqual(root.problems(["bench", "--batch-sizes", "32"]), [])
        XCTAssertEqual(root.problems(["bench", "--batch-size", "32"]), ["unknown option --batch-size"])
        XCTAssertEqual(root.problems(["train", "--precision", "fp16"]).count, 1)
        XCTAssertEqual(root.problems(["train", "--precision=bf16", "--deterministic"]), [])
        XCTAssertEqual(root.problems(["launch", "--nproc-per-node", "2", "--", "cohort", "train", "--strategy", "dp"]), [])
        XCTAssertEqual(root.problems(["launch", "--nproc-per-node", "2", "--", "cohort", "train", "--nproc-per-node", "2"]),
                       ["unknown option --nproc-per-node"])
    }
}
