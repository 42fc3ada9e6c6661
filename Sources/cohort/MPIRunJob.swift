import Foundation

/// One run of mpirun for `cohort launch`: its output passes through line by
/// line while `RankFailureReport` reads it for failed ranks; SIGINT and
/// SIGTERM to the launcher go on to mpirun, which stops every rank.
struct MPIRunJob {
    var arguments: [String]
    var environment: [String: String]

    struct Result {
        var status: Int32
        var failure: RankFailureReport.Failure?
    }

    func run() throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        process.environment = environment
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        let report = RankFailureReport()
        try process.run()
        let signals = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { kill(process.processIdentifier, number) }
            source.resume()
            return source
        }
        defer {
            for (source, number) in zip(signals, [SIGINT, SIGTERM]) {
                source.cancel()
                signal(number, SIG_DFL)
            }
        }
        let group = DispatchGroup()
        for (pipe, destination) in [(output, FileHandle.standardOutput), (errors, FileHandle.standardError)] {
            DispatchQueue.global().async(group: group) {
                forwardLines(from: pipe.fileHandleForReading, to: destination, report: report)
            }
        }
        group.wait()
        process.waitUntilExit()
        let status = process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        return Result(status: status, failure: report.firstFailure)
    }
}

/// Copies `source` to `destination` as it arrives, showing each complete line to `report`.
private func forwardLines(from source: FileHandle, to destination: FileHandle, report: RankFailureReport) {
    var pending = Data()
    while true {
        let chunk = source.availableData
        if chunk.isEmpty { break }
        destination.write(chunk)
        pending.append(chunk)
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            report.read(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
            pending.removeSubrange(pending.startIndex...newline)
        }
    }
    if !pending.isEmpty { report.read(String(decoding: pending, as: UTF8.self)) }
}

/// Finds, in the output of mpirun and its ranks, which rank failed first and why.
///
/// A dead rank is the cause; an error reported by a rank whose collective
/// broke because a peer died is a consequence. So, strongest first:
/// 1. mpirun's "process rank N ... exited on signal S (Name)": N died;
/// 2. mpirun's "Process name: [[job,1],N]" / "Exit code: C": N exited
///    with C without calling MPI_Abort;
/// 3. "MPI_ABORT was invoked on rank N": N stopped the job on an error;
/// 4. a rank's own "cohort rank N: <error>" line (written before it aborts).
/// Within a kind the earliest line wins; the error text comes from rank N's
/// own line when it wrote one.
final class RankFailureReport: @unchecked Sendable {
    struct Failure: CustomStringConvertible {
        var rank: Int
        var cause: String
        var error: String?

        var description: String {
            "rank \(rank) failed first: \(cause)" + (error.map { "; its error: \($0)" } ?? "")
        }
    }

    private let lock = NSLock()
    /// The first failure of each kind, by strength (index 0 strongest).
    private var firstOfKind: [Failure?] = [nil, nil, nil, nil]
    private var rankErrors: [Int: String] = [:]
    private var processNameRank: Int?

    func read(_ line: String) {
        lock.lock()
        defer { lock.unlock() }
        let text = line.trimmingCharacters(in: .whitespaces)
        if let match = text.firstMatch(of: /process rank (\d+) with PID \d+ on node \S+ exited on signal (\d+) \(([^)]*)\)/) {
            note(kind: 0, Failure(rank: Int(match.1)!, cause: "killed by signal \(match.2) (\(match.3))"))
        } else if let match = text.firstMatch(of: /^Process name: \[\[\d+,\d+\],(\d+)\]/) {
            processNameRank = Int(match.1)
        } else if let match = text.firstMatch(of: /^Exit code:\s+(\d+)/), let rank = processNameRank {
            note(kind: 1, Failure(rank: rank, cause: "exited with status \(match.1)"))
            processNameRank = nil
        } else if let match = text.firstMatch(of: /MPI_ABORT was invoked on rank (\d+)/) {
            note(kind: 2, Failure(rank: Int(match.1)!, cause: "stopped the job (MPI_Abort) after an error"))
        } else if let match = text.firstMatch(of: /^cohort rank (\d+): (.*)$/) {
            let rank = Int(match.1)!
            if rankErrors[rank] == nil { rankErrors[rank] = String(match.2) }
            note(kind: 3, Failure(rank: rank, cause: "reported an error"))
        }
    }

    var firstFailure: Failure? {
        lock.lock()
        defer { lock.unlock() }
        guard var failure = firstOfKind.compactMap({ $0 }).first else { return nil }
        failure.error = rankErrors[failure.rank]
        return failure
    }

    private func note(kind: Int, _ failure: Failure) {
        if firstOfKind[kind] == nil { firstOfKind[kind] = failure }
    }
}
