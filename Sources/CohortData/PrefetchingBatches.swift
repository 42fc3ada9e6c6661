import CohortTensor
import Foundation

/// One epoch's batches, built ahead of the consumer on a background thread
/// and handed over through a bounded queue (`DataLoader.prefetchDepth`
/// batches), so the training step does not wait for augmentation.
///
/// Use it as a sequence (`for batch in loader.batches(epoch: e) { ... }`) or
/// call `next()`. `cancel()` stops mid-epoch: the producer thread finishes
/// the batch in hand and exits before `cancel()` returns; dropping the
/// object cancels too. `dataWaitSeconds` is how long `next()` waited for a
/// batch, the data-loading stall to report in metrics.
///
/// Batches are identical to `DataLoader.batch(epoch:index:)`'s, whatever the
/// timing (see `Note [Augmentation randomness]`). One thread consumes it.
public final class PrefetchingBatches: Sequence, IteratorProtocol, @unchecked Sendable {
    public let epoch: Int
    /// The first batch index produced.
    public let start: Int
    private let loader: DataLoader
    private let queue: BatchQueue
    /// Consumer-side state, touched only by the consuming thread.
    private var nextIndex: Int
    private var indices: [Int]?
    private var waitNanoseconds: UInt64 = 0

    init(loader: DataLoader, epoch: Int, start: Int) {
        precondition(start >= 0 && start <= loader.batchesPerEpoch,
                     "start batch \(start) outside 0...\(loader.batchesPerEpoch)")
        self.loader = loader
        self.epoch = epoch
        self.start = start
        self.nextIndex = start
        self.queue = BatchQueue(capacity: Swift.max(loader.prefetchDepth, 1))
        if loader.prefetchDepth > 0 && start < loader.batchesPerEpoch {
            let queue = self.queue
            let thread = Thread { [loader] in
                Self.produce(loader: loader, epoch: epoch, start: start, into: queue)
            }
            thread.name = "cohort-data-prefetch"
            queue.producerStarted()
            thread.start()
        }
    }

    deinit { cancel() }

    /// Total seconds `next()` spent waiting for batches that were not ready yet.
    public var dataWaitSeconds: Double { Double(waitNanoseconds) / 1e9 }

    /// The index of the batch `next()` returns next (what a checkpoint saves).
    public var position: Int { nextIndex }

    /// The next batch, or nil at the end of the epoch or after `cancel()`.
    public func next() -> Batch? {
        guard nextIndex < loader.batchesPerEpoch, !queue.isCancelled else { return nil }
        let began = DispatchTime.now().uptimeNanoseconds
        defer { waitNanoseconds += DispatchTime.now().uptimeNanoseconds - began }
        let batch: Batch?
        if loader.prefetchDepth == 0 {
            if indices == nil { indices = loader.sampler.indices(epoch: epoch) }
            // Host allocation failing is out of memory, as for Array.
            batch = try! loader.batch(epoch: epoch, index: nextIndex, indices: indices!)
        } else {
            batch = queue.pop()
        }
        if let batch { nextIndex = batch.index + 1 }
        return batch
    }

    /// Stops producing, waits for the producer thread to exit, and drops
    /// queued batches. Idempotent; `next()` returns nil afterwards.
    public func cancel() { queue.cancel() }

    private static func produce(loader: DataLoader, epoch: Int, start: Int, into queue: BatchQueue) {
        defer { queue.producerFinished() }
        let indices = loader.sampler.indices(epoch: epoch)
        for index in start..<loader.batchesPerEpoch {
            guard queue.waitForRoom() else { return }
            // Host allocation failing is out of memory, as for Array.
            let batch = try! loader.batch(epoch: epoch, index: index, indices: indices)
            guard queue.push(batch) else { return }
        }
    }
}

/// The bounded hand-over between the producer thread and the consumer: a
/// FIFO under one condition variable, with cancellation and a flag telling
/// the consumer when the producer has exited.
final class BatchQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private let capacity: Int
    private var items: [Batch] = []
    private var cancelled = false
    private var producerRunning = false

    init(capacity: Int) { self.capacity = capacity }

    var isCancelled: Bool {
        condition.lock()
        defer { condition.unlock() }
        return cancelled
    }

    func producerStarted() {
        condition.lock()
        producerRunning = true
        condition.unlock()
    }

    func producerFinished() {
        condition.lock()
        producerRunning = false
        condition.broadcast()
        condition.unlock()
    }

    /// Blocks while the queue is full; false once cancelled.
    func waitForRoom() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while items.count >= capacity && !cancelled { condition.wait() }
        return !cancelled
    }

    /// Appends a batch; false (dropping it) once cancelled.
    func push(_ batch: Batch) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !cancelled else { return false }
        items.append(batch)
        condition.broadcast()
        return true
    }

    /// The oldest batch; waits for one while the producer runs. Nil when the
    /// producer has exited with nothing queued, or after cancellation.
    func pop() -> Batch? {
        condition.lock()
        defer { condition.unlock() }
        while items.isEmpty && producerRunning && !cancelled { condition.wait() }
        guard !cancelled, !items.isEmpty else { return nil }
        let batch = items.removeFirst()
        condition.broadcast()
        return batch
    }

    func cancel() {
        condition.lock()
        defer { condition.unlock() }
        cancelled = true
        items.removeAll()
        condition.broadcast()
        while producerRunning { condition.wait() }
    }
}
