import CohortTensor
import Foundation

/// Why a collective of a `ThreadGroup` did not complete.
public enum ThreadGroupError: Error, CustomStringConvertible, Equatable {
    /// Replica `rank` failed (or aborted) with `reason`; every collective of the group throws this from then on.
    case replicaFailed(rank: Int, reason: String)
    /// Replica `rank` waited `seconds` in `call` for the replicas `missing`, which never arrived.
    case timedOut(call: String, rank: Int, seconds: Double, missing: [Int])
    /// The replicas called different collectives, or the same one with different sizes (a programmer error).
    case mismatch(call: String, detail: String)

    public var description: String {
        switch self {
        case .replicaFailed(let rank, let reason):
            return "replica \(rank) failed: \(reason)"
        case .timedOut(let call, let rank, let seconds, let missing):
            return "replica \(rank) waited \(describe(.milliseconds(Int(seconds * 1000)))) in \(call) for replica"
                + "\(missing.count == 1 ? "" : "s") \(missing.map(String.init).joined(separator: ", ")), which never arrived: "
                + "a replica stalled or skipped a collective"
        case .mismatch(let call, let detail):
            return "\(call): the replicas' calls do not match (\(detail)); every replica must call the same collectives in the same order"
        }
    }
}

/// The replicas of a single-process data-parallel run (`--strategy dp` on
/// the CPU), one thread each: the shared state their `ThreadGroupCommunicator`s
/// meet in.
///
/// Note [Thread-group collectives]
/// - Shared memory: every collective is a rendezvous. Each replica posts
///   its tensors' addresses and waits until all have (phase 1), then does
///   its share of the work reading the others' memory directly, then waits
///   again (phase 2) so no replica returns, and overwrites its tensor,
///   while another still reads it. No copies into staging buffers, no
///   messages: two condition-variable waits per call.
/// - All-reduce: replica r owns the r-th of `size` contiguous chunks of the
///   elements (a reduce-scatter and all-gather in one pass): it sums each
///   element over the replicas in index order 0, 1, ..., writes the result
///   into every replica's tensor, so the work is split between the threads
///   and the result is the same bits on every replica and on every run
///   (with two replicas also the bits MPI's sum gives: a + b = b + a).
///   Average scales the sum by 1/size afterwards, as `MPICommunicator` does.
/// - Broadcast: each replica copies the root's tensor into its own. All-gather:
///   each copies every input into its own output.
/// - Failures never hang a replica: `fail(rank:reason:)` (called when a
///   replica throws; `abort` too) makes every waiting and every later
///   collective throw `ThreadGroupError.replicaFailed` at once; a replica
///   that waits more than `timeout` in one collective marks the group failed
///   with `.timedOut`, naming the replicas that never arrived, and throws.
///   The limit covers one collective, as the MPI watchdog's does
///   (`Note [Distributed failures]`), but throws instead of ending the
///   process, so the caller can report which replica failed first.
/// - Calls that do not match (another collective, another element count)
///   throw `.mismatch` on every replica, rather than reading out of bounds.
public final class ThreadGroup: @unchecked Sendable {
    public let size: Int
    /// The longest one replica waits for the others in one collective.
    public let timeout: Duration

    /// What one replica brings to the current collective.
    private struct Contribution {
        var call: String
        var input: UnsafeMutableRawPointer
        var output: UnsafeMutableRawPointer
        var count: Int
    }

    private let condition = NSCondition()
    private var contributions: [Contribution?]
    private var present: [Bool]
    private var arrivals = 0
    private var generation = 0
    private var failure: ThreadGroupError?

    public init(size: Int, timeout: Duration = .seconds(30)) {
        precondition(size >= 1, "ThreadGroup: size \(size) must be at least 1")
        self.size = size
        self.timeout = timeout
        contributions = Array(repeating: nil, count: size)
        present = Array(repeating: false, count: size)
    }

    /// One communicator per replica, rank i for thread i.
    public func makeCommunicators() -> [ThreadGroupCommunicator] {
        (0..<size).map { ThreadGroupCommunicator(group: self, rank: $0) }
    }

    /// The error every collective throws once the group has failed; nil while it is healthy.
    public var failureReason: ThreadGroupError? {
        condition.lock()
        defer { condition.unlock() }
        return failure
    }

    /// Marks the group failed because of replica `rank`: every replica
    /// waiting in a collective, and every later call, throws at once. The
    /// first failure is kept (it is the cause; later ones are its echoes).
    public func fail(rank: Int, reason: String) {
        condition.lock()
        defer { condition.unlock() }
        if failure == nil { failure = .replicaFailed(rank: rank, reason: reason) }
        condition.broadcast()
    }

    /// Runs one collective for replica `rank`: posts its contribution, waits
    /// for every replica's, runs `work` with all of them (index = rank), and
    /// waits until every replica's work is done.
    fileprivate func collective(rank: Int, call: String, input: UnsafeMutableRawPointer, output: UnsafeMutableRawPointer,
                                count: Int, work: ([UnsafeMutableRawPointer], [UnsafeMutableRawPointer]) -> Void) throws {
        let posted = try rendezvous(rank: rank, call: call,
                                    contribution: Contribution(call: call, input: input, output: output, count: count))
        for (other, posting) in posted.enumerated() where posting.call != call || posting.count != count {
            // Every replica sees the same postings, so each throws here; the
            // group is failed so that no later collective runs out of step.
            let error = ThreadGroupError.mismatch(call: call, detail: "replica \(rank): \(call) of \(count) elements, "
                                                  + "replica \(other): \(posting.call) of \(posting.count)")
            condition.lock()
            if failure == nil { failure = error }
            condition.broadcast()
            condition.unlock()
            throw error
        }
        work(posted.map(\.input), posted.map(\.output))
        _ = try rendezvous(rank: rank, call: call + " (completion)", contribution: nil)
    }

    /// A barrier that also exchanges contributions: returns every replica's
    /// (when given) once all have arrived. Throws the group's failure, or
    /// `.timedOut` after `timeout`.
    private func rendezvous(rank: Int, call: String, contribution: Contribution?) throws -> [Contribution] {
        condition.lock()
        defer { condition.unlock() }
        if let failure { throw failure }
        let arrivedIn = generation
        // The completion barrier posts nothing: a replica still waking from
        // phase 1 reads every contribution after a faster one arrived here.
        if let contribution { contributions[rank] = contribution }
        present[rank] = true
        arrivals += 1
        if arrivals == size {
            arrivals = 0
            present = Array(repeating: false, count: size)
            generation += 1
            condition.broadcast()
        } else {
            let started = ContinuousClock.now
            let deadline = Date(timeIntervalSinceNow: seconds(timeout))
            while generation == arrivedIn && failure == nil {
                if !condition.wait(until: deadline) && generation == arrivedIn && failure == nil {
                    let missing = present.indices.filter { !present[$0] }
                    failure = .timedOut(call: call, rank: rank, seconds: seconds(ContinuousClock.now - started),
                                        missing: missing)
                    condition.broadcast()
                }
            }
            // The barrier completed before any failure: this collective succeeded.
            if generation == arrivedIn, let failure { throw failure }
        }
        guard contribution != nil else { return [] }
        // Read under the lock; no replica posts again before the completion barrier.
        return contributions.map { $0! }
    }
}

/// One replica's view of a `ThreadGroup`: collectives over the host float32
/// tensors of the replicas of one process (`Note [Thread-group collectives]`).
/// Each replica's thread uses its own communicator (`Note [Communicator contract]`).
public final class ThreadGroupCommunicator: Communicator, @unchecked Sendable {
    public let group: ThreadGroup
    public let rank: Int
    public var worldSize: Int { group.size }
    public let name = "threads"
    private var finished = false

    fileprivate init(group: ThreadGroup, rank: Int) {
        precondition((0..<group.size).contains(rank), "ThreadGroupCommunicator: rank \(rank) is not in 0..<\(group.size)")
        self.group = group
        self.rank = rank
    }

    public func allReduce(_ tensor: Tensor, op: ReduceOperation) throws {
        checkHostFloat(tensor, "allReduce")
        precondition(!finished, "allReduce after shutdown()")
        let size = group.size
        let (rank, count) = (rank, tensor.elementCount)
        try group.collective(rank: rank, call: "allReduce(\(op))", input: tensor.rawPointer, output: tensor.rawPointer,
                             count: count) { inputs, _ in
            let buffers = inputs.map { $0.assumingMemoryBound(to: Float.self) }
            let scale = 1 / Float(size)
            // This replica's chunk of the elements (Note [Thread-group collectives]).
            let chunk = (count + size - 1) / size
            let start = min(count, rank * chunk), end = min(count, start + chunk)
            for index in start..<end {
                var sum = buffers[0][index]
                for other in 1..<size { sum += buffers[other][index] }
                if op == .average && size > 1 { sum *= scale }
                for buffer in buffers { buffer[index] = sum }
            }
        }
    }

    public func broadcast(_ tensor: Tensor, root: Int) throws {
        checkHostFloat(tensor, "broadcast")
        precondition((0..<worldSize).contains(root), "broadcast: root \(root) is not a rank of \(worldSize)")
        precondition(!finished, "broadcast after shutdown()")
        let (rank, byteCount) = (rank, tensor.byteCount)
        try group.collective(rank: rank, call: "broadcast(root \(root))", input: tensor.rawPointer,
                             output: tensor.rawPointer, count: tensor.elementCount) { inputs, _ in
            if rank != root { inputs[rank].copyMemory(from: inputs[root], byteCount: byteCount) }
        }
    }

    public func allGather(_ input: Tensor, into output: Tensor) throws {
        checkHostFloat(input, "allGather")
        checkHostFloat(output, "allGather")
        precondition(output.elementCount == input.elementCount * worldSize,
                     "allGather: output has \(output.elementCount) elements, expected \(input.elementCount) x \(worldSize)")
        precondition(!finished, "allGather after shutdown()")
        let (rank, byteCount) = (rank, input.byteCount)
        let ownSlot = output.rawPointer + rank * byteCount
        precondition(input.rawPointer == ownSlot || input.rawPointer + byteCount <= output.rawPointer
                        || input.rawPointer >= output.rawPointer + output.byteCount,
                     "allGather: the input overlaps the output other than at this replica's own slot")
        try group.collective(rank: rank, call: "allGather", input: input.rawPointer, output: output.rawPointer,
                             count: input.elementCount) { inputs, outputs in
            for (other, source) in inputs.enumerated() {
                let target = outputs[rank] + other * byteCount
                if target != source { target.copyMemory(from: source, byteCount: byteCount) }
            }
        }
    }

    public func barrier() throws {
        precondition(!finished, "barrier after shutdown()")
        var token: Float = 0
        try withUnsafeMutableBytes(of: &token) { bytes in
            try group.collective(rank: rank, call: "barrier", input: bytes.baseAddress!, output: bytes.baseAddress!,
                                 count: 0) { _, _ in }
        }
    }

    /// Fails the group (every replica's collectives throw), prints `reason`
    /// and ends the process: the contract's "stops every rank". The
    /// single-process trainer reports a replica's error without this
    /// (`ReplicaThreads` calls `group.fail` and returns the error).
    public func abort(reason: String) -> Never {
        group.fail(rank: rank, reason: reason)
        FileHandle.standardError.write(Data("cohort replica \(rank): \(reason)\n".utf8))
        _exit(1)
    }

    /// Local: the group has nothing to tear down. Safe to call twice.
    public func shutdown() throws {
        finished = true
    }
}
