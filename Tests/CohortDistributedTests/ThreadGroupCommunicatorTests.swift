import CohortDistributed
import CohortTensor
import Foundation
import XCTest

/// The collectives of replica threads (`Note [Thread-group collectives]`):
/// each op against values computed here, the same bits on every replica,
/// and every failure path ending in an error, never a hang.
final class ThreadGroupCommunicatorTests: XCTestCase {
    func testAllReduceSumsInReplicaOrderAndEveryReplicaGetsTheSameBits() throws {
        // 10 elements over 3 replicas: chunks of 4, 4 and 2.
        let count = 10
        let inputs = (0..<3).map { rank in (0..<count).map { Float($0 * 10 + rank) * 0.1 } }
        // Order matters in float32: 1e8 + 1 - 1e8 is 0, (1e8 - 1e8) + 1 is 1.
        let ordered: [[Float]] = [[1e8], [1], [-1e8]]
        let results = try onReplicaThreads(3) { rank, communicator -> [[Float]] in
            let tensor = Tensor(inputs[rank], shape: [count])
            try communicator.allReduce(tensor, op: .sum)
            let average = Tensor(inputs[rank], shape: [count])
            try communicator.allReduce(average, op: .average)
            let sensitive = Tensor(ordered[rank], shape: [1])
            try communicator.allReduce(sensitive, op: .sum)
            return [tensor.toArray(), average.toArray(), sensitive.toArray()]
        }
        let sum = (0..<count).map { index in (inputs[0][index] + inputs[1][index]) + inputs[2][index] }
        for (rank, result) in results.enumerated() {
            XCTAssertEqual(result[0], sum, "replica \(rank): sum")
            XCTAssertEqual(result[1], sum.map { $0 * (1 / Float(3)) }, "replica \(rank): average (sum, then scaled)")
            XCTAssertEqual(result[2], [(Float(1e8) + 1) + -1e8], "replica \(rank): summed in replica order")
        }
    }

    func testBroadcastAllGatherAndBarrier() throws {
        let arrivedBeforeBarrier = Counter()
        let results = try onReplicaThreads(3) { rank, communicator -> [[Float]] in
            let broadcast = Tensor([Float(rank), Float(rank) + 0.5], shape: [2])
            try communicator.broadcast(broadcast, root: 1)
            let gathered = Tensor.zeros([6])
            try communicator.allGather(Tensor([Float(rank), -Float(rank)], shape: [2]), into: gathered)
            arrivedBeforeBarrier.increment()
            try communicator.barrier()
            return [broadcast.toArray(), gathered.toArray(), [Float(arrivedBeforeBarrier.value)]]
        }
        for (rank, result) in results.enumerated() {
            XCTAssertEqual(result[0], [1, 1.5], "replica \(rank): broadcast from replica 1")
            XCTAssertEqual(result[1], [0, -0, 1, -1, 2, -2], "replica \(rank): inputs in replica order")
            XCTAssertEqual(result[2], [3], "replica \(rank) left the barrier before every replica reached it")
        }
    }

    /// Many collectives in a row with replicas running at different speeds:
    /// a replica that leaves one call early must not disturb a slow one still reading it.
    func testBackToBackCollectivesStayInStep() throws {
        let rounds = 300
        let results = try onReplicaThreads(4) { rank, communicator -> [Float] in
            var totals: [Float] = []
            for round in 0..<rounds {
                if (round + rank) % 7 == 0 { usleep(50) }
                let tensor = Tensor([Float(rank + round)], shape: [1])
                try communicator.allReduce(tensor, op: .sum)
                totals.append(tensor.toArray()[0])
            }
            return totals
        }
        let expected = (0..<rounds).map { Float(4 * $0 + 6) }
        for result in results { XCTAssertEqual(result, expected) }
    }

    func testAFailedReplicaReleasesTheOthersAtOnce() throws {
        let group = ThreadGroup(size: 3, timeout: .seconds(60))
        let started = ContinuousClock.now
        let outcomes = try onReplicaThreads(group: group) { rank, communicator -> String in
            if rank == 2 {
                usleep(100_000)
                group.fail(rank: 2, reason: "out of memory")
                return "failed"
            }
            do {
                try communicator.allReduce(Tensor.zeros([4]), op: .sum)
                return "completed"
            } catch {
                return "\(error)"
            }
        }
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(10), "waited for the time-out instead of the failure")
        XCTAssertEqual(outcomes, ["replica 2 failed: out of memory", "replica 2 failed: out of memory", "failed"])
        XCTAssertThrowsError(try group.makeCommunicators()[0].barrier(), "a failed group must refuse later calls") { error in
            XCTAssertEqual(error as? ThreadGroupError, .replicaFailed(rank: 2, reason: "out of memory"))
        }
    }

    func testAReplicaThatNeverArrivesTimesOutNamingIt() throws {
        let group = ThreadGroup(size: 3, timeout: .milliseconds(300))
        let started = ContinuousClock.now
        let outcomes = try onReplicaThreads(group: group) { rank, communicator -> String in
            guard rank != 1 else { return "skipped" }
            do {
                try communicator.allReduce(Tensor.zeros([2]), op: .average)
                return "completed"
            } catch {
                return "\(error)"
            }
        }
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(10))
        XCTAssertEqual(outcomes[1], "skipped")
        for rank in [0, 2] {
            XCTAssertTrue(outcomes[rank].contains("in allReduce(average) for replica 1, which never arrived"), outcomes[rank])
        }
        guard case .timedOut(_, _, let seconds, let missing) = group.failureReason else {
            return XCTFail("expected a time-out, got \(String(describing: group.failureReason))")
        }
        XCTAssertEqual(missing, [1])
        XCTAssertGreaterThanOrEqual(seconds, 0.29)
    }

    func testMismatchedCallsFailOnEveryReplica() throws {
        let outcomes = try onReplicaThreads(2) { rank, communicator -> String in
            do {
                try communicator.allReduce(Tensor.zeros([rank == 0 ? 4 : 5]), op: .sum)
                return "completed"
            } catch {
                return "\(error)"
            }
        }
        for outcome in outcomes {
            XCTAssertTrue(outcome.contains("the replicas' calls do not match"), outcome)
        }
    }

    func testOneReplicaIsTheIdentity() throws {
        let communicator = ThreadGroup(size: 1).makeCommunicators()[0]
        let tensor = Tensor([1, 2, 3], shape: [3])
        try communicator.allReduce(tensor, op: .average)
        try communicator.broadcast(tensor, root: 0)
        try communicator.barrier()
        XCTAssertEqual(tensor.toArray(), [1, 2, 3])
        XCTAssertEqual(communicator.name, "threads")
        try communicator.shutdown()
        try communicator.shutdown()
    }

    // MARK: Helpers

    /// Runs `body` on `count` threads, one per replica of a new group; fails the test rather than hang.
    func onReplicaThreads<T: Sendable>(_ count: Int,
                                       _ body: @escaping @Sendable (Int, ThreadGroupCommunicator) throws -> T) throws -> [T] {
        try onReplicaThreads(group: ThreadGroup(size: count, timeout: .seconds(20)), body)
    }

    func onReplicaThreads<T: Sendable>(group: ThreadGroup,
                                       _ body: @escaping @Sendable (Int, ThreadGroupCommunicator) throws -> T) throws -> [T] {
        let communicators = group.makeCommunicators()
        let results = Results<T>(count: group.size)
        let done = DispatchGroup()
        for rank in 0..<group.size {
            done.enter()
            Thread {
                results.set(rank, Result { try body(rank, communicators[rank]) })
                done.leave()
            }.start()
        }
        guard done.wait(timeout: .now() + 60) == .success else {
            XCTFail("the replica threads did not finish within 60 s")
            throw XCTSkip("hung")
        }
        return try results.values.map { try $0!.get() }
    }
}

/// Results written by several threads.
private final class Results<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [Result<T, Error>?]
    init(count: Int) { storage = Array(repeating: nil, count: count) }
    func set(_ index: Int, _ result: Result<T, Error>) { lock.withLock { storage[index] = result } }
    var values: [Result<T, Error>?] { lock.withLock { storage } }
}

private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
