import CohortTestSupport
import Foundation
import XCTest

/// The executables these tests start (CohortTestSupport finds them, or skips).
enum Executables {
    static var cohort: URL { get throws { try BuiltExecutables.url(of: "cohort") } }
    static var mpirun: URL { get throws { try BuiltExecutables.mpirun() } }
}

/// Runs `cohort arguments` on `ranks` MPI ranks (`mpirunOptions` before the
/// command, e.g. `-x OMP_NUM_THREADS=1`); returns the exit status and the output.
func runUnderMPIRun(ranks: Int, _ arguments: [String], mpirunOptions: [String] = [],
                    limit: TimeInterval = 120) throws -> (status: Int32, output: String) {
    try runExecutable(Executables.mpirun, ["--allow-run-as-root", "--oversubscribe", "-np", String(ranks)] + mpirunOptions
                          + [try Executables.cohort.path] + arguments, limit: limit)
}

/// Runs `cohort arguments` in one process with `environment` added to this
/// one's; returns the exit status and the output.
func runCohort(_ arguments: [String], environment: [String: String] = [:],
               limit: TimeInterval = 120) throws -> (status: Int32, output: String) {
    try runExecutable(Executables.cohort, arguments,
                      environment: ProcessInfo.processInfo.environment.merging(environment) { $1 }, limit: limit)
}
