import Foundation
import XCTest

/// Finds the built `cohort` and Open MPI's `mpirun` for tests that start
/// ranks; skips (XCTSkip) where either is missing.
enum Executables {
    static var cohort: URL {
        get throws {
            let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .deletingLastPathComponent().deletingLastPathComponent()
            let folders = [
                URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
                Bundle.main.bundleURL,
                packageRoot.appendingPathComponent(".build/release"),
            ]
            for folder in folders {
                let url = folder.appendingPathComponent("cohort")
                if FileManager.default.isExecutableFile(atPath: url.path) { return url }
            }
            throw XCTSkip("no cohort executable in \(folders.map(\.path)); build it first (swift build -c release --build-tests)")
        }
    }

    static var mpirun: URL {
        get throws {
            let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
                .map { URL(fileURLWithPath: String($0)).appendingPathComponent("mpirun") }
                .first { FileManager.default.isExecutableFile(atPath: $0.path) }
            guard let path else { throw XCTSkip("mpirun not installed (apt-get install openmpi-bin libopenmpi-dev)") }
            return path
        }
    }
}

/// Runs `cohort arguments` on `ranks` MPI ranks; returns the exit status and the output.
func runUnderMPIRun(ranks: Int, _ arguments: [String], limit: TimeInterval = 120) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = try Executables.mpirun
    process.arguments = ["--allow-run-as-root", "--oversubscribe", "-np", String(ranks), try Executables.cohort.path] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let killer = DispatchWorkItem { process.terminate() }
    DispatchQueue.global().asyncAfter(deadline: .now() + limit, execute: killer)
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    killer.cancel()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}
