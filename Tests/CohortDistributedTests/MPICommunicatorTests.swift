import CohortTestSupport
import CohortDistributed
import Foundation
import XCTest

/// MPICommunicator across two real processes: `mpirun -np 2 CohortMPIProbe
/// <mode>`. Skipped where Open MPI's mpirun is not installed.
final class MPICommunicatorTests: XCTestCase {
    var probe: URL { get throws { try BuiltExecutables.url(of: "CohortMPIProbe") } }
    var mpirun: URL { get throws { try BuiltExecutables.mpirun() } }

    /// Runs the probe on 2 ranks; returns the exit status, the output and the seconds taken.
    func runProbe(_ mode: String, limit: TimeInterval = 60) throws -> (status: Int32, output: String, seconds: Double) {
        let process = Process()
        process.executableURL = try mpirun
        process.arguments = ["--allow-run-as-root", "--oversubscribe", "-np", "2", try probe.path, mode]
        var environment = ProcessInfo.processInfo.environment
        environment["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let started = Date()
        try process.run()
        let killer = DispatchWorkItem { process.terminate() }
        DispatchQueue.global().asyncAfter(deadline: .now() + limit, execute: killer)
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        killer.cancel()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self), Date().timeIntervalSince(started))
    }

    func testCollectivesAcrossTwoRanks() throws {
        let (status, output, _) = try runProbe("collectives")
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("rank 0 of 2: collectives ok"), output)
        XCTAssertTrue(output.contains("rank 1 of 2: collectives ok"), output)
    }

    func testARankThatDiesStopsTheOthers() throws {
        let (status, output, seconds) = try runProbe("die", limit: 45)
        XCTAssertNotEqual(status, 0, output)
        XCTAssertLessThan(seconds, 30, output)
        XCTAssertFalse(output.contains("barriers returned"), output)
    }

    func testAStalledRankTripsTheWatchdog() throws {
        let (status, output, seconds) = try runProbe("stall", limit: 45)
        XCTAssertNotEqual(status, 0, output)
        XCTAssertLessThan(seconds, 30, output)
        XCTAssertTrue(output.contains("watchdog: MPI_Barrier has not finished after 2"), output)
    }

    func testWithoutMPIRunTheCommunicatorSaysHowToLaunch() {
        XCTAssertThrowsError(try MPICommunicator(environment: .single)) { error in
            XCTAssertTrue("\(error)".contains("mpirun -np N"), "\(error)")
        }
    }
}
