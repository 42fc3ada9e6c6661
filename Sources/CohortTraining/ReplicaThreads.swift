import Foundation

/// A value made on one thread and handed to exactly one replica thread,
/// which alone uses it from then on (the thread that made it does not touch
/// it again until that replica's thread has finished).
///
/// Backends, communicators and trainers are classes without locks (one
/// thread at a time may call a backend, `CUDABackend`'s note), so they are
/// not `Sendable`; handing one over whole, never sharing it, is what makes
/// crossing the thread boundary safe, and this box states that promise
/// where the compiler cannot check it.
public struct ReplicaOwned<Value>: @unchecked Sendable {
    public let value: Value
    public init(_ value: Value) { self.value = value }
}

/// Runs the replicas of a single-process data-parallel run, one thread each.
///
/// Note [Replica threads]
/// `--strategy dp` is the one-process-per-device strategy with the ranks
/// as threads: replica r runs the same `Trainer` a rank runs, with rank r
/// of a communicator of `count` (thread-group collectives on the CPU, NCCL
/// on GPUs), its own backend and device, its own data loader on shard r of
/// each epoch, so for the same seed and global batch both strategies follow
/// the same trajectory. What the process shares: the loaded data set
/// (immutable), the run folder (replica 0 prints and checkpoints; each
/// replica writes `metrics-rank<r>.jsonl`) and the standard output.
/// - Threads: `Foundation.Thread`s, not Swift concurrency tasks: a replica
///   blocks for whole steps in collectives and oneDNN/CUDA calls, which
///   would starve the cooperative pool; each thread is named
///   `cohort-replica-<r>` for debuggers and profilers.
/// - Failures: the first replica to throw is the run's error. `stopOthers`
///   runs at once on that replica's thread, so the others' collectives
///   fail instead of waiting for it (`ThreadGroup.fail`, or NCCL's abort,
///   which ends the process); `run` then waits up to `grace` for the rest
///   and throws `ReplicaFailure` naming the replica and its error. A
///   replica stuck outside any collective is left behind after `grace`
///   (the process is about to exit with the error).
public enum ReplicaThreads {
    /// The first replica that failed, and why.
    public struct ReplicaFailure: Error, CustomStringConvertible {
        public var rank: Int
        public var replicaCount: Int
        public var error: Error
        public var description: String { "replica \(rank) of \(replicaCount) failed: \(error)" }
    }

    /// Calls `body(r)` for r in 0..<count, each on a thread of its own, and
    /// returns the results in replica order once every call has returned.
    public static func run<Result: Sendable>(
        count: Int, grace: Duration,
        stopOthers: @escaping @Sendable (_ rank: Int, _ error: Error) -> Void,
        _ body: @escaping @Sendable (_ rank: Int) throws -> Result
    ) throws -> [Result] {
        precondition(count >= 1, "ReplicaThreads.run: \(count) replicas")
        let state = RunState<Result>(count: count)
        for rank in 0..<count {
            let thread = Thread {
                do {
                    state.finish(rank, with: .success(try body(rank)))
                } catch {
                    let isFirst = state.recordFailure(rank, error)
                    if isFirst { stopOthers(rank, error) }
                    state.finish(rank, with: .failure(error))
                }
            }
            thread.name = "cohort-replica-\(rank)"
            thread.start()
        }
        return try state.wait(grace: grace)
    }
}

/// What the replica threads report to the thread that waits for them.
private final class RunState<Result: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var outcomes: [Swift.Result<Result, Error>?]
    private var finished = 0
    private var firstFailure: (rank: Int, error: Error, at: ContinuousClock.Instant)?

    init(count: Int) { outcomes = Array(repeating: nil, count: count) }

    /// Keeps the first failure; true when this is it.
    func recordFailure(_ rank: Int, _ error: Error) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard firstFailure == nil else { return false }
        firstFailure = (rank, error, .now)
        condition.broadcast()
        return true
    }

    func finish(_ rank: Int, with outcome: Swift.Result<Result, Error>) {
        condition.lock()
        defer { condition.unlock() }
        outcomes[rank] = outcome
        finished += 1
        condition.broadcast()
    }

    /// Every result, or the first failure once every replica has finished or `grace` has passed since it.
    func wait(grace: Duration) throws -> [Result] {
        condition.lock()
        defer { condition.unlock() }
        while finished < outcomes.count {
            if let failure = firstFailure {
                let left = grace - (ContinuousClock.now - failure.at)
                if left <= .zero { break }
                _ = condition.wait(until: Date(timeIntervalSinceNow: Double(left.components.seconds)
                                               + Double(left.components.attoseconds) * 1e-18))
            } else {
                condition.wait()
            }
        }
        if let failure = firstFailure {
            throw ReplicaThreads.ReplicaFailure(rank: failure.rank, replicaCount: outcomes.count, error: failure.error)
        }
        return outcomes.map { try! $0!.get() }
    }
}
