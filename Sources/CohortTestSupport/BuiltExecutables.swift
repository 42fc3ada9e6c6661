import Foundation
import XCTest

/// Where tests find the executables the package builds (`cohort`,
/// `CohortMPIProbe`) and Open MPI's `mpirun`, for tests that run them as a
/// user would. Only test targets depend on this module.
public enum BuiltExecutables {
    /// The folders searched, in order: beside the test runner (SwiftPM puts
    /// every product of a configuration in one folder), then the package's
    /// `.build/release`.
    public static var folders: [URL] {
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        return [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(), Bundle.main.bundleURL,
                packageRoot.appendingPathComponent(".build/release")]
    }

    /// The built executable called `name`; skips the test when it was not built.
    public static func url(of name: String) throws -> URL {
        for folder in folders {
            let url = folder.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw XCTSkip("no \(name) executable in \(folders.map(\.path)); build it first (swift build -c release --build-tests)")
    }

    /// `mpirun` on the PATH; skips the test where Open MPI is not installed.
    public static func mpirun() throws -> URL {
        let candidates = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
            .map { URL(fileURLWithPath: String($0)).appendingPathComponent("mpirun") }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw XCTSkip("mpirun not installed (apt-get install openmpi-bin libopenmpi-dev)")
        }
        return found
    }
}

/// Runs the built `cohort` with `arguments` (and `environment` added to this
/// process's, less the rank variables a test runner may have set); returns the
/// exit status and what it printed (stdout and stderr together). Killed after
/// `limit` seconds, so a hung command fails its test instead of the suite.
public func cohort(_ arguments: [String], environment: [String: String] = [:],
                   limit: Double = 120) throws -> (status: Int32, output: String) {
    var variables = ProcessInfo.processInfo.environment
    for name in ["RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"] {
        variables[name] = nil
    }
    return try runExecutable(BuiltExecutables.url(of: "cohort"), arguments,
                             environment: variables.merging(environment) { $1 }, limit: limit)
}

/// Runs `executable` with `arguments` (in `environment`, else this process's),
/// killed after `limit` seconds; returns the exit status and its output.
public func runExecutable(_ executable: URL, _ arguments: [String], environment: [String: String]? = nil,
                          limit: Double = 120) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    if let environment { process.environment = environment }
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
