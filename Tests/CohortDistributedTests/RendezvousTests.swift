import CohortDistributed
import CohortTensor
import Foundation
import XCTest

/// Ranks as threads of one process meeting at a loopback store.
final class RendezvousTests: XCTestCase {
    static func environment(rank: Int, worldSize: Int, port: Int) -> RankEnvironment {
        RankEnvironment(rank: rank, worldSize: worldSize, localRank: rank, localWorldSize: worldSize,
                        masterAddress: "127.0.0.1", masterPort: port, source: .torchrun)
    }

    /// Runs `body` for ranks 0..<worldSize on threads, rank 0 last (the others must wait for its store).
    func ranks(_ worldSize: Int, skipping skipped: Set<Int> = [],
               _ body: @escaping @Sendable (Int) throws -> String) -> [String] {
        let results = Failures()
        let group = DispatchGroup()
        for rank in (0..<worldSize).reversed() where !skipped.contains(rank) {
            group.enter()
            Thread.detachNewThread {
                do {
                    results.add("\(rank): " + (try body(rank)))
                } catch {
                    results.add("\(rank): \(error)")
                }
                group.leave()
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        group.wait()
        return results.all.sorted()
    }

    func testEveryRankMeetsAndReceivesRankZerosBlob() throws {
        let worldSize = 4
        let server = try TCPStoreServer(host: "127.0.0.1", port: 0, log: { _ in })
        defer { server.stop() }
        let blob = (0..<128).map { UInt8($0 ^ 0x5a) }  // the size of an NCCL unique id
        let port = server.port
        let results = ranks(worldSize) { rank in
            let rendezvous = try Rendezvous(environment: Self.environment(rank: rank, worldSize: worldSize, port: port),
                                            timeout: .seconds(5), server: rank == 0 ? server : nil,
                                            share: { blob })
            try rendezvous.barrier("after")
            return rendezvous.sharedBlob == blob ? "ok" : "wrong blob \(String(describing: rendezvous.sharedBlob))"
        }
        XCTAssertEqual(results, (0..<worldSize).map { "\($0): ok" })
    }

    func testRankZeroStartsTheStoreOnTheMasterEndpoint() throws {
        let port = try freePort()
        let results = ranks(2) { rank in
            let rendezvous = try Rendezvous(environment: Self.environment(rank: rank, worldSize: 2, port: port),
                                            timeout: .seconds(5))
            try rendezvous.barrier("end")
            rendezvous.close()
            return "\(rendezvous.server != nil) \(rendezvous.sharedBlob == nil)"
        }
        XCTAssertEqual(results, ["0: true true", "1: false true"])
    }

    func testAMissingRankIsNamedAfterTheTimeLimit() throws {
        // The store outlives rank 0's failure here (a launcher's store), so
        // every rank can report who is missing.
        let server = try TCPStoreServer(host: "127.0.0.1", port: 0, log: { _ in })
        defer { server.stop() }
        let port = server.port
        let started = Date()
        let results = ranks(3, skipping: [1]) { rank in
            let rendezvous = try Rendezvous(environment: Self.environment(rank: rank, worldSize: 3, port: port),
                                            timeout: .seconds(1), server: rank == 0 ? server : nil)
            _ = rendezvous
            return "met"
        }
        let prefix = "rendezvous at 127.0.0.1:\(port): rank 1 of 3 never arrived within 1"
        XCTAssertEqual(results.count, 2)
        for line in results {
            XCTAssertTrue(line.dropFirst(3).hasPrefix(prefix), line)
            XCTAssertTrue(line.hasSuffix("check MASTER_ADDR/MASTER_PORT and that every rank was started"), line)
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
    }

    func testMissingMasterVariablesAreNamed() {
        let environment = RankEnvironment(rank: 0, worldSize: 2, localRank: 0, localWorldSize: 2, source: .torchrun)
        XCTAssertThrowsError(try Rendezvous(environment: environment)) { error in
            XCTAssertEqual(error as? RankEnvironmentError, .missing(variable: "MASTER_ADDR", source: .torchrun))
        }
    }

    func testSingleProcessCommunicatorIsTheIdentity() throws {
        let communicator = SingleProcessCommunicator()
        let tensor = Tensor([1, 2, 3], shape: [3])
        try communicator.allReduce(tensor, op: .average)
        try communicator.broadcast(tensor, root: 0)
        let gathered = Tensor.zeros([3])
        try communicator.allGather(tensor, into: gathered)
        try communicator.barrier()
        XCTAssertEqual(tensor.toArray(), [1, 2, 3])
        XCTAssertEqual(gathered.toArray(), [1, 2, 3])
        XCTAssertEqual(communicator.worldSize, 1)
    }
}
