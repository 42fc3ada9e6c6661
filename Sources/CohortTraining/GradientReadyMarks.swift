import CohortKernels
import CohortNN

/// Note [Backward progress marks]
/// - A diagnostic (`cohort train --time-gradient-marks`, beside the phase
///   timing of `--time-graph-phases` or eager steps): a device timestamp on
///   the compute stream as each convolution's weight gradient is written,
///   so that backward's segments between consecutive marks can be compared
///   between one GPU, N GPUs without communication and N GPUs with it. Why:
///   at 4 x 128 backward is 0.15 ms longer beside NCCL's all-reduces, and the
///   phase split cannot say which convolutions pay
///   (docs/results/2026-11-27-symmetric-windows).
/// - The marks wrap the store's gradient-ready handler (the reducer's, where
///   there is one): the reducer sees each parameter first, as without marks.
///   A mark is recorded right after its layer's weight-gradient kernel is
///   enqueued, so it stamps when that kernel finished.
/// - Off by default: each mark is one more node in a captured step (about
///   twenty for ResNet-18), which costs a replay some microseconds.
final class GradientReadyMarks {
    /// The marked parameters' names, in the order backward writes them.
    private(set) var names: [String] = []
    private var timestamps: [DeviceTimestamp] = []
    private var slot: [ParameterReference: Int] = [:]
    private var written: [Int] = []
    private let backend: Backend

    /// Marks every four-dimensional (convolution) weight of `store`; nil where
    /// `backend` has no device timestamps (host backends).
    init?(store: ParameterStore, backend: Backend) {
        self.backend = backend
        let marked = store.entries.filter { $0.kind == .trainable && $0.shape.rank == 4 }
            .compactMap { store.reference(named: $0.name) }
        for reference in marked {
            guard let timestamp = backend.makeTimestamp() else { return nil }
            slot[reference] = timestamps.count
            timestamps.append(timestamp)
        }
        let previous = store.gradientReadyHandler
        // Recording events is device work a captured step can hold; a reducer's handler says for itself.
        if previous == nil { store.gradientReadyHandlerIsCapturable = true }
        store.gradientReadyHandler = { [unowned self] reference in
            previous?(reference)
            guard let index = slot[reference] else { return }
            self.backend.record(timestamps[index])
            if names.count < slot.count && !written.contains(index) {
                written.append(index)
                names.append(store.entry(reference).name)
            }
        }
    }

    /// Seconds from `start` to each mark, in backward's order (nil until
    /// every mark has been recorded and read back).
    func seconds(since start: DeviceTimestamp) -> [Double]? {
        guard written.count == timestamps.count else { return nil }
        var result: [Double] = []
        for index in written {
            guard let seconds = backend.seconds(from: start, to: timestamps[index]) else { return nil }
            result.append(seconds)
        }
        return result
    }
}
