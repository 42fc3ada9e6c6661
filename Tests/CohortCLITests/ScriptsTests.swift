import CohortTestSupport
import Foundation
import XCTest

/// The scripts that run on the GPU machine cannot run here (no GPU, no
/// static binary), and a mistake in one costs device time to find: each must
/// at least parse, and each GPU script must start the same way.
final class ScriptsTests: XCTestCase {
    static let scripts = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts")

    func shellScripts() throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: Self.scripts, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "sh" }.sorted { $0.path < $1.path }
    }

    func testEveryScriptParses() throws {
        let scripts = try shellScripts()
        XCTAssertGreaterThan(scripts.count, 8)
        for script in scripts {
            let (status, output) = try runExecutable(URL(fileURLWithPath: "/bin/bash"), ["-n", script.path], limit: 30)
            XCTAssertEqual(status, 0, "\(script.lastPathComponent) does not parse:\n\(output)")
        }
    }

    /// Every GPU script starts from the carried binary, under `set -u` and `pipefail`.
    func testGPUScriptsUnpackTheCarriedBinaryUnderStrictMode() throws {
        let gpuScripts = try shellScripts().filter { $0.lastPathComponent.hasPrefix("gpu-") && $0.lastPathComponent != "gpu-common.sh" }
        XCTAssertFalse(gpuScripts.isEmpty)
        for script in gpuScripts {
            let text = try String(contentsOf: script, encoding: .utf8)
            XCTAssertTrue(text.contains("source scripts/gpu-common.sh"), "\(script.lastPathComponent) does not source gpu-common.sh")
            XCTAssertTrue(text.contains("unpack_cohort"), "\(script.lastPathComponent) does not unpack the binary")
            XCTAssertTrue(text.contains("set -uo pipefail") || text.contains("set -euo pipefail"),
                          "\(script.lastPathComponent) runs without set -u/pipefail")
        }
    }
}
