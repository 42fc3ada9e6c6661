import CohortDistributed
import XCTest

/// Every launcher's variables, the precedence between them, and each error.
final class RankEnvironmentTests: XCTestCase {
    func parse(_ variables: [String: String]) throws -> RankEnvironment {
        try RankEnvironment(parsing: variables)
    }

    func error(_ variables: [String: String]) -> RankEnvironmentError? {
        do {
            _ = try RankEnvironment(parsing: variables)
            return nil
        } catch {
            return error
        }
    }

    func testNoVariablesIsASingleProcess() throws {
        XCTAssertEqual(try parse(["HOME": "/root"]), .single)
    }

    func testTorchrun() throws {
        let environment = try parse(["RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                                     "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"])
        XCTAssertEqual(environment, RankEnvironment(rank: 3, worldSize: 8, localRank: 1, localWorldSize: 2,
                                                    masterAddress: "10.0.0.1", masterPort: 29500, source: .torchrun))
        XCTAssertEqual(try environment.masterEndpoint().port, 29500)
        XCTAssertTrue(environment.isDistributed)
    }

    func testTorchrunLocalVariablesDefaultToOneNode() throws {
        let environment = try parse(["RANK": "1", "WORLD_SIZE": "2"])
        XCTAssertEqual(environment.localRank, 1)
        XCTAssertEqual(environment.localWorldSize, 2)
        XCTAssertEqual(try? environment.masterEndpoint().address, nil)
        XCTAssertEqual(error(["RANK": "1", "WORLD_SIZE": "2", "MASTER_PORT": "1"]), nil)
    }

    func testOpenMPI() throws {
        let environment = try parse(["OMPI_COMM_WORLD_RANK": "5", "OMPI_COMM_WORLD_SIZE": "6",
                                     "OMPI_COMM_WORLD_LOCAL_RANK": "2", "OMPI_COMM_WORLD_LOCAL_SIZE": "3"])
        XCTAssertEqual(environment, RankEnvironment(rank: 5, worldSize: 6, localRank: 2, localWorldSize: 3, source: .openMPI))
    }

    func testSlurm() throws {
        let base = ["SLURM_PROCID": "4", "SLURM_NTASKS": "7", "SLURM_LOCALID": "0"]
        XCTAssertEqual(try parse(base.merging(["SLURM_NTASKS_PER_NODE": "2"]) { $1 }),
                       RankEnvironment(rank: 4, worldSize: 7, localRank: 0, localWorldSize: 2, source: .slurm))
        // "2(x3),1": nodes 0-2 run 2 tasks, node 3 runs 1.
        let list = base.merging(["SLURM_TASKS_PER_NODE": "2(x3),1"]) { $1 }
        XCTAssertEqual(try parse(list.merging(["SLURM_NODEID": "2"]) { $1 }).localWorldSize, 2)
        XCTAssertEqual(try parse(list.merging(["SLURM_NODEID": "3"]) { $1 }).localWorldSize, 1)
        XCTAssertEqual(try parse(list).localWorldSize, 2)
        XCTAssertEqual(try parse(base).localWorldSize, 7)
    }

    func testPrecedenceTorchrunThenOpenMPIThenSlurm() throws {
        let slurm = ["SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_LOCALID": "0"]
        let openMPI = ["OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2",
                       "OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "2"]
        let torchrun = ["RANK": "2", "WORLD_SIZE": "3"]
        XCTAssertEqual(try parse(slurm).source, .slurm)
        XCTAssertEqual(try parse(slurm.merging(openMPI) { $1 }).source, .openMPI)
        XCTAssertEqual(try parse(slurm.merging(openMPI) { $1 }.merging(torchrun) { $1 }).rank, 2)
        // The master endpoint is read whatever the source.
        XCTAssertEqual(try parse(slurm.merging(["MASTER_ADDR": "node1", "MASTER_PORT": "1234"]) { $1 }).masterAddress, "node1")
    }

    func testErrorsNameTheVariableAndValue() {
        XCTAssertEqual(error(["RANK": "0"]), .missing(variable: "WORLD_SIZE", source: nil))
        XCTAssertEqual(error(["RANK": "one", "WORLD_SIZE": "2"]),
                       .malformed(variable: "RANK", value: "one", expected: "an integer"))
        XCTAssertEqual(error(["RANK": "2", "WORLD_SIZE": "2"]),
                       .outOfRange(variable: "RANK", value: 2, expected: "0..<2 (WORLD_SIZE is 2)"))
        XCTAssertEqual(error(["RANK": "0", "WORLD_SIZE": "0"]),
                       .outOfRange(variable: "WORLD_SIZE", value: 0, expected: "at least 1"))
        XCTAssertEqual(error(["RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "2"]),
                       .outOfRange(variable: "LOCAL_RANK", value: 2, expected: "0..<2 (LOCAL_WORLD_SIZE is 2)"))
        XCTAssertEqual(error(["RANK": "0", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "3"]),
                       .outOfRange(variable: "LOCAL_WORLD_SIZE", value: 3, expected: "1...2"))
        XCTAssertEqual(error(["RANK": "0", "WORLD_SIZE": "2", "MASTER_PORT": "70000"]),
                       .outOfRange(variable: "MASTER_PORT", value: 70000, expected: "1...65535"))
        XCTAssertEqual(error(["RANK": "0", "WORLD_SIZE": "2", "MASTER_PORT": "http"]),
                       .malformed(variable: "MASTER_PORT", value: "http", expected: "an integer"))
        XCTAssertEqual(error(["RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": ""]),
                       .malformed(variable: "MASTER_ADDR", value: "", expected: "a host name or IP address"))
        XCTAssertEqual(error(["OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_LOCAL_RANK": "0"]),
                       .missing(variable: "OMPI_COMM_WORLD_LOCAL_SIZE", source: nil))
        XCTAssertEqual(error(["SLURM_PROCID": "3", "SLURM_NTASKS": "2"]),
                       .outOfRange(variable: "SLURM_PROCID", value: 3, expected: "0..<2 (SLURM_NTASKS is 2)"))
        XCTAssertEqual(error(["SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_TASKS_PER_NODE": "2(3)"]),
                       .malformed(variable: "SLURM_TASKS_PER_NODE", value: "2(3)", expected: "counts like \"2(x3),1\""))
        XCTAssertEqual(error(["SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_TASKS_PER_NODE": "1", "SLURM_NODEID": "1"]),
                       .outOfRange(variable: "SLURM_NODEID", value: 1, expected: "a node listed in SLURM_TASKS_PER_NODE=1"))
    }

    func testMessagesReadWell() {
        let missing = RankEnvironmentError.missing(variable: "MASTER_PORT", source: .torchrun)
        XCTAssertEqual(missing.description,
                       "MASTER_PORT is not set (ranks came from torchrun variables); set it, as torchrun, mpirun or srun would")
        XCTAssertEqual(RankEnvironmentError.malformed(variable: "RANK", value: "x", expected: "an integer").description,
                       "RANK=\"x\" is not an integer")
    }
}
