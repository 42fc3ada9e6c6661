import CohortKernels
import CohortNN
import CohortTensor

/// Note [Deferred step reads]
/// A logged step's loss, correct count and device time are read on the
/// host. Read at once, the read waits for the device to finish that step;
/// nothing is queued behind it, so the GPU then idles while the host
/// prepares and launches the next step (its batch, staging, the replay).
/// On 4 x H200 that idling made the wall rate 2.5-4.5% lower than the
/// device rate with a read every 10 steps (4563868, gpu-ddp-check), and Q2
/// reads every 5 (after the change, 79cadb6's Q2 runs: 1.0-1.2%). So on a
/// device backend the trainer reads one window late:
/// a logged step copies its loss and correct count into one of two slots
/// and stamps the slot (`finish`); the next logged step (or the epoch's
/// end) reads it (`takeReady`) with `Backend.download(_:after:)`, which waits
/// for that stamp alone while later steps keep running. Two slots suffice:
/// a slot written at step k is read at the next logged step, before the one
/// after that writes it again. The step record is written then, with the
/// step's own figures, one window later; the divergence check moves with it.
/// Not used where the step's marks are re-stamped by every replay (phases
/// timed inside the graph): those are read at once, as on host backends.
final class DeferredStepReads {
    /// A logged step's figures on the host.
    struct Read {
        var record: [String: Any]
        var epoch: Int
        var step: Int
        var learningRate: Float
        var images: Int
        var loss: Double
        var correct: Double
        /// Device seconds from the step's start to its end; nil if the backend could not time it.
        var deviceStepSeconds: Double?
    }

    private struct Slot {
        let loss: Tensor
        let correct: Tensor
        let start: DeviceTimestamp
        let end: DeviceTimestamp
        let ready: DeviceTimestamp
    }

    let backend: Backend
    private let slots: [Slot]
    /// Finished logged steps whose slot is not read yet: the figures the host has, and the slot.
    private var pending: [(slot: Int, read: Read)] = []
    private var nextSlot = 0

    /// Nil on a backend without device timestamps (the host ones: they read at once).
    init?(backend: Backend, loss: Tensor, correct: Tensor) throws {
        guard backend.makeTimestamp() != nil else { return nil }
        self.backend = backend
        slots = try (0..<2).map { _ in
            guard let start = backend.makeTimestamp(), let end = backend.makeTimestamp(),
                  let ready = backend.makeTimestamp() else { throw BackendUnavailable(description: "no device timestamps") }
            return Slot(loss: try backend.makeTensor(loss.shape, dtype: loss.dtype),
                        correct: try backend.makeTensor(correct.shape, dtype: correct.dtype),
                        start: start, end: end, ready: ready)
        }
    }

    /// The mark to record before a logged step's work (its start).
    var startMark: DeviceTimestamp { slots[nextSlot].start }

    /// After a logged step's work: stamps its end, snapshots `loss` and
    /// `correct` into the slot and stamps that; `record` is completed when read.
    func finish(loss: Tensor, correct: Tensor, record: [String: Any], epoch: Int, step: Int, learningRate: Float,
                images: Int) {
        precondition(pending.count < slots.count, "DeferredStepReads: a slot was written before it was read")
        let slot = slots[nextSlot]
        backend.record(slot.end)
        backend.copy(loss, to: slot.loss)
        backend.copy(correct, to: slot.correct)
        backend.record(slot.ready)
        pending.append((nextSlot, Read(record: record, epoch: epoch, step: step, learningRate: learningRate,
                                       images: images, loss: .nan, correct: .nan, deviceStepSeconds: nil)))
        nextSlot = (nextSlot + 1) % slots.count
    }

    /// The pending reads in step order, all of them (`keepingLatest: false`,
    /// at the epoch's end) or all but the one just finished (at a logged step).
    func takeReady(keepingLatest: Bool) -> [Read] {
        let count = keepingLatest ? max(pending.count - 1, 0) : pending.count
        let taken = pending.prefix(count)
        pending.removeFirst(count)
        return taken.map { item in
            let slot = slots[item.slot]
            var read = item.read
            read.loss = Double(backend.download(slot.loss, after: slot.ready).toArray()[0])
            read.correct = Double(backend.download(slot.correct, after: slot.ready).toArray()[0])
            read.deviceStepSeconds = backend.seconds(from: slot.start, to: slot.end)
            return read
        }
    }
}
