import CohortKernels
import CohortNN
import CohortTensor
import Foundation

/// A contiguous range of the flat gradient buffer that is all-reduced in one
/// call: a view, so reducing it reduces the parameters' gradients in place.
public struct GradientBucket: Sendable, Equatable {
    /// Position in the reduction order (0 is reduced first).
    public let index: Int
    /// Elements of the flat gradient buffer this bucket covers.
    public let range: Range<Int>
    /// The parameters (store entry indices) whose gradients it holds, in the
    /// order backward produces them.
    public let entries: [Int]

    public var byteCount: Int { range.count * MemoryLayout<Float>.stride }
}

/// Averages the gradients of every rank during backward, bucket by bucket,
/// in the manner of PyTorch DDP's reducer.
///
/// Note [Gradient bucketing]
/// - Layout: parameters are taken in reverse declaration order (the order
///   backward produces their gradients, see `ParameterStore.gradientReadyHandler`)
///   and cut into buckets of at most `bucketCap` bytes, the first at most
///   `firstBucketCap`. Parameters are consecutive in the flat buffer, so each
///   bucket is a contiguous range of it and is reduced through a view: no
///   copies into a staging buffer (PyTorch copies into bucket tensors because
///   its parameters are separate allocations; ours are not).
/// - Overlap: `gradientReadyHandler` counts each bucket's parameters down;
///   when a bucket's last gradient is written, its all-reduce starts at once
///   (`Communicator.startAllReduce`), while backward goes on to earlier
///   layers; `finishBackward` waits for all of them. On the CPU with MPI the
///   call is synchronous (backward waits for it). NCCL runs it on its
///   communication stream beside backward's kernels, and `finishBackward`
///   makes the compute stream wait before the optimizer step (Note
///   [Communication stream] in NCCLCommunicator.swift).
/// - bf16 gradients (`communicationDType: .bfloat16`, `--allreduce-dtype
///   bf16`, PyTorch's `bf16_compress_hook`): each bucket is rounded into a
///   bf16 copy, that copy is all-reduced (half the bytes), and widened back
///   into the float32 gradients. With a `NarrowingAllReduce` communicator
///   (NCCL) both conversions run on the communication stream, beside
///   backward (Note [bf16 all-reduce off the compute stream]); otherwise the
///   rounding runs on the compute stream before the call and the widening
///   after the wait. Each rank's gradient and the average carry bf16
///   rounding (2^-9 relative); the optimizer still updates float32 masters.
/// - Graphs: with a communicator that can be captured (NCCL) the handler
///   only enqueues device work on buffers that live as long as the model, so
///   the whole step, all-reduces included, is captured and replayed
///   (`ParameterStore.gradientReadyHandlerIsCapturable`).
/// - A parameter larger than the cap gets a bucket of its own; a bucket is
///   never split.
/// - Every rank builds the same buckets from the same model and fills them
///   in the same order (backward is deterministic), which the collective
///   contract requires (`Note [Communicator contract]`).
/// - `overlap: false` (`--no-overlap`) does one all-reduce of the whole
///   buffer after backward instead, to measure what overlapping saves.
public final class GradientReducer {
    /// 8 MB, where PyTorch DDP's `bucket_cap_mb` is 25: large enough that
    /// one call's latency (microseconds on a node, tens over a network) is
    /// amortised over megabytes; small enough that the last bucket, which
    /// cannot start before backward reaches the stem and so is never
    /// hidden, is small. With 25 MB ResNet-18's last bucket held 24 MB
    /// (layer4.0 down to the stem); with 8 MB it holds 2 MB. Measured on 2 x
    /// H200 (bf16, steps as CUDA graphs, 2026-11-27, binary 3a97443+):
    /// weak-scaling efficiency 85% -> 93% at batch 128 per GPU, 91% ->
    /// 100% (noise) at 32, unchanged (95%) at 512; 4 and 2 MB were no
    /// better than 8. `--bucket-cap-mb` sets it per run.
    public static let defaultBucketCap = 8 * 1024 * 1024
    /// PyTorch's `_DEFAULT_FIRST_BUCKET_BYTES` (1 MB): the first bucket
    /// fills from the last layers, which backward reaches first; keeping it
    /// small starts communication as early as possible instead of waiting
    /// for 25 MB of gradients.
    public static let defaultFirstBucketCap = 1024 * 1024

    /// Note [Small buckets]
    /// - The greedy layout closes a bucket before a tensor that would take
    ///   it past the cap, and a tensor over the cap gets a bucket of its own.
    ///   In ResNet-18 the 9 MB convolutions of layer4 are over the 8 MB cap,
    ///   so the few kilobytes of batch-norm (and the classifier) between them
    ///   become all-reduces of their own: nine buckets, three of them 20 KB,
    ///   4 KB and 0.5 MB. Each costs a whole NCCL call, latency-bound: 0.02-
    ///   0.03 ms with 24 SMs resident (4 x H200, 508513d's timeline), about
    ///   a sixth of the step's NCCL residency for 1% of the bytes.
    /// - `mergesSmallBuckets` (`cohort train`'s default; `--no-merge-small-buckets`
    ///   and this initializer's default keep the plain layout): a tensor over
    ///   the cap joins the open bucket when that holds less than
    ///   `smallBucketBytes`, as PyTorch's layout would (it closes a bucket only
    ///   once it reaches the cap). ResNet-18: six buckets of 9.02, 9.0, 9.51,
    ///   6.76, 7.9 and 0.43 MB. The first bucket then waits for
    ///   layer4.1.conv2's gradient, which backward writes microseconds after
    ///   the classifier's.
    /// - Measured on 2 x H200 (e913420, device step against one GPU in the
    ///   same call, twice each): with symmetric windows (Note [Symmetric wire
    ///   buffer]) 93.4/93.6% against 93.0/93.2% at 128 per GPU, 97.1/96.6%
    ///   against 97.1/96.7% at 512; without them 92.3/92.2% against 92.2/92.2%
    ///   at 128: fewer latency-bound calls, a little.
    public static let smallBucketBytes = 1024 * 1024

    public let store: ParameterStore
    public let communicator: Communicator
    public let overlap: Bool
    public let buckets: [GradientBucket]
    /// The dtype gradients travel in: float32, or bfloat16 (half the bytes).
    public let communicationDType: DType
    /// The bf16 copy of the gradients that is all-reduced (bf16 mode only).
    private let lowPrecisionGradients: Tensor?

    /// What the last step's reduction cost.
    public struct StepStatistics: Sendable {
        /// Wall-clock seconds inside all-reduce calls (on the CPU, part of backward's time when overlapping).
        public var communicationSeconds = 0.0
        /// Seconds of each all-reduce call, in the order they ran.
        public var callSeconds: [Double] = []
        /// Bytes of each all-reduce call, in the order they ran.
        public var callBytes: [Int] = []
        /// Host waits for the backend before all-reduce calls: one per call
        /// for a host communicator (MPI), none for one on the device stream (NCCL).
        public var hostSynchronizations = 0
    }
    public private(set) var lastStep = StepStatistics()

    private var bucketOfEntry: [Int: Int] = [:]
    /// Note [Bucket release points]: store entry -> how many held buckets
    /// start once its gradient is written (nil: all of them).
    private var releasePoints: [Int: Int?] = [:]
    private var releasesPassed = 0
    /// Full buckets waiting for a release point, oldest first.
    private var held: [Int] = []
    private var pending: [Int] = []
    private var readyEntries: Set<Int> = []
    private var failure: Error?
    /// The range of the bucket started last in this backward.
    private var lastStarted: Range<Int>?
    /// How many buckets this backward has started.
    private var startedCount = 0

    /// Note [Optimizer beside the last all-reduce]
    /// - The last bucket (the stem and layer1 in ResNet-18, 0.43 MB) can
    ///   only start when backward has written its last gradient, so its
    ///   all-reduce (tens of microseconds, mostly latency) is the step's
    ///   exposed communication: the optimizer waited for it.
    /// - With `defersLastBucket`, the reducer marks the communication stream
    ///   before starting the last bucket; `finishBackward` waits only for the
    ///   buckets before the mark and leaves `deferredRange`, the last one's
    ///   elements. The trainer updates every other parameter first
    ///   (`Optimizer.step(learningRate:deferring:between:)`), then
    ///   `finishDeferredBucket` waits for the rest, then those parameters
    ///   update: the last all-reduce runs beside most of the optimizer step.
    ///   The update is elementwise per tensor, so the parameters are the
    ///   same as with one update (tested on the reference backend).
    /// - An experiment, off by default (`cohort train --overlap-optimizer`):
    ///   measured on 2 x H200 (e913420, device step against one GPU in the
    ///   same call, twice each), 92.0/92.1% against 92.2/92.2% at 128 per
    ///   GPU and 96.5/96.3% against 96.4/96.1% at 512: no gain, the last
    ///   bucket's 0.03 ms is within the runs' spread.
    public var defersLastBucket = false
    /// The elements whose all-reduce `finishBackward` left pending (nil: none).
    public private(set) var deferredRange: Range<Int>?

    /// Lays out the buckets (`Note [Gradient bucketing]`) and, with `overlap`,
    /// installs the store's `gradientReadyHandler`.
    public init(store: ParameterStore, communicator: Communicator, overlap: Bool = true,
                bucketCap: Int = GradientReducer.defaultBucketCap,
                firstBucketCap: Int = GradientReducer.defaultFirstBucketCap,
                communicationDType: DType = .float32, mergesSmallBuckets: Bool = false) throws {
        precondition(store.isAllocated, "GradientReducer: allocate the parameter store first")
        precondition(bucketCap > 0 && firstBucketCap > 0, "GradientReducer: bucket caps must be positive")
        switch communicationDType {
        case .float32:
            lowPrecisionGradients = nil
        case .bfloat16:
            guard communicator.reducesBFloat16 else {
                throw GradientReducerError(description: "the \(communicator.name) communicator has no bfloat16 all-reduce "
                    + "(MPI defines no bfloat16 sum); use --allreduce-dtype fp32, or GPUs with NCCL")
            }
            guard store.backend.supportsBFloat16 else {
                throw GradientReducerError(description: "the \(store.backend.name) backend has no bfloat16 tensors")
            }
            let count = store.gradients.elementCount
            if let narrowing = communicator as? NarrowingAllReduce, let wire = try narrowing.makeWireBuffer(elementCount: count) {
                lowPrecisionGradients = wire
            } else {
                lowPrecisionGradients = try store.backend.makeTensor([count], dtype: .bfloat16)
            }
        default:
            throw GradientReducerError(description: "gradients are all-reduced in float32 or bfloat16, not \(communicationDType)")
        }
        self.communicationDType = communicationDType
        self.store = store
        self.communicator = communicator
        self.overlap = overlap
        let trainable = store.entries.indices.filter { store.entries[$0].kind == .trainable }
        var buckets: [GradientBucket] = []
        var current: [Int] = []
        var currentBytes = 0
        func close() {
            guard let last = current.last, let first = current.first else { return }
            // Reverse order: the bucket starts at its last entry's offset.
            let start = store.entries[last].offset
            let end = store.entries[first].offset + store.entries[first].shape.elementCount
            buckets.append(GradientBucket(index: buckets.count, range: start..<end, entries: current))
            current = []
            currentBytes = 0
        }
        for entry in trainable.reversed() {
            let bytes = store.entries[entry].shape.elementCount * MemoryLayout<Float>.stride
            let cap = buckets.isEmpty ? firstBucketCap : bucketCap
            // Note [Small buckets]: a tensor over the cap joins a small open bucket instead of closing it.
            let joinsSmallBucket = mergesSmallBuckets && bytes > cap && currentBytes < Self.smallBucketBytes
            if !current.isEmpty && currentBytes + bytes > cap && !joinsSmallBucket { close() }
            current.append(entry)
            currentBytes += bytes
        }
        close()
        self.buckets = buckets
        for bucket in buckets {
            for entry in bucket.entries { bucketOfEntry[entry] = bucket.index }
        }
        pending = buckets.map(\.entries.count)
        if overlap {
            store.gradientReadyHandler = { [unowned self] reference in self.gradientReady(reference.index) }
            store.gradientReadyHandlerIsCapturable = communicator.supportsGraphCapture
        }
    }

    /// Note [Bucket release points]
    /// - An experiment on where in backward the all-reduces run. ResNet-18's
    ///   gradients are front-loaded: layer4 holds 75% of the parameters but
    ///   its backward, at 4x4 pixels, is a small part of the time, so about
    ///   34 of the 45 MB are ready in the first third of backward and all-reduce
    ///   there beside small convolution grids (4 x H200, 2026-11-27, 4563868's
    ///   timeline: six buckets between 0.04 and 0.6 ms into a 1.75 ms
    ///   backward, then none for 0.7 ms). The guess was that those grids lose
    ///   whole waves to the NCCL kernels' SMs.
    /// - Measured (508513d, docs/results/2026-11-27-4xh200-bf16-wire): moving
    ///   them to layer2 and layer1 left backward's extra time at 128 per GPU
    ///   where it was and cost 1-3 points at 512, where the buckets' own time
    ///   grows beside the large convolutions. The guess was wrong: what
    ///   backward loses follows how long NCCL's kernels are resident.
    /// - `holdBuckets(releasingAt:)` keeps full buckets back and starts them
    ///   when backward has written the gradient of a named parameter ("name*k":
    ///   at most k of the held buckets there, oldest first); buckets that fill
    ///   after the last point start at once, and anything still held starts
    ///   at `finishBackward`. Every rank holds and releases the same buckets
    ///   in the same order (the collective contract holds).
    /// - Off unless asked (`cohort train --bucket-release`).
    public func holdBuckets(releasingAt points: [(parameter: String, count: Int?)]) throws {
        var resolved: [Int: Int?] = [:]
        for point in points {
            guard let entry = store.entries.indices.first(where: { store.entries[$0].name == point.parameter }),
                  store.entries[entry].kind == .trainable else {
                let names = store.entries.filter { $0.kind == .trainable }.map(\.name)
                throw GradientReducerError(description: "--bucket-release: \(point.parameter) is not a trainable parameter "
                    + "of this model (\(names.prefix(4).joined(separator: ", ")), ... \(names.count) in all)")
            }
            guard point.count.map({ $0 > 0 }) ?? true else {
                throw GradientReducerError(description: "--bucket-release: \(point.parameter)*\(point.count!) must release at least one bucket")
            }
            guard resolved.updateValue(point.count, forKey: entry) == nil else {
                throw GradientReducerError(description: "--bucket-release: \(point.parameter) is named twice")
            }
        }
        releasePoints = resolved
    }

    /// Whether a whole step with this reducer can be captured as a graph.
    public var isCapturable: Bool { communicator.supportsGraphCapture }

    /// Makes every rank's parameters and running statistics rank 0's: at the
    /// start of a run (DDP's initial broadcast), so ranks that built their
    /// model differently, or resumed, start identical.
    public func broadcastInitialState() throws {
        store.backend.synchronize()
        try communicator.broadcast(store.parameters, root: 0)
        if store.statisticCount > 0 { try communicator.broadcast(store.statistics, root: 0) }
        store.refreshComputeParameters()
    }

    /// Makes every rank's running statistics rank 0's (`Note [Batch norm across ranks]`).
    public func broadcastStatistics() throws {
        guard store.statisticCount > 0 else { return }
        store.backend.synchronize()
        try communicator.broadcast(store.statistics, root: 0)
    }

    /// Call before each backward: resets the countdown. `timed`: time this
    /// step's all-reduces on the device (`deviceSeconds()` after the step).
    public func prepareForBackward(timed: Bool = false) {
        pending = buckets.map(\.entries.count)
        readyEntries.removeAll(keepingCapacity: true)
        held.removeAll(keepingCapacity: true)
        releasesPassed = 0
        lastStarted = nil
        startedCount = 0
        deferredRange = nil
        lastStep = StepStatistics()
        failure = nil
        if timed { communicator.beginCollectiveTiming() }
    }

    /// Device seconds each all-reduce of the last timed step was busy (in
    /// the order they ran), waiting for the device; nil where the
    /// communicator does not time on the device (MPI: see `lastStep`).
    public func deviceSeconds() -> [Double]? { communicator.collectiveSeconds() }

    /// Device seconds from `origin` to the start of each all-reduce
    /// `deviceSeconds()` timed (call after it); nil as there.
    public func deviceStartSeconds(since origin: DeviceTimestamp) -> [Double]? {
        communicator.collectiveStartSeconds(since: origin)
    }

    /// Call after backward: without overlap, all-reduces the whole buffer;
    /// with it, checks every bucket was reduced. Throws the first failed
    /// collective's error. The gradients are then every rank's average.
    public func finishBackward() throws {
        deferredRange = nil
        if !overlap, let start = buckets.map(\.range.lowerBound).min(), let end = buckets.map(\.range.upperBound).max() {
            reduce(start..<end)  // every trainable gradient in one call
        }
        if overlap { release(held.count) }
        if overlap, failure == nil, let unfinished = pending.firstIndex(where: { $0 > 0 }) {
            let missing = buckets[unfinished].entries.filter { !readyEntries.contains($0) }
                .map { store.entries[$0].name }
            preconditionFailure("""
                GradientReducer: backward finished but bucket \(unfinished) is still waiting for the gradients of \
                \(missing.joined(separator: ", ")); every parameter must take part in every step
                """)
        }
        if let failure { throw failure }
        if let lastStarted, defersLastBucket && overlap && buckets.count > 1 {
            // Note [Optimizer beside the last all-reduce]: every bucket but the last one started.
            try communicator.waitForMarkedCollectives()
            widen(buckets.map(\.range).filter { $0 != lastStarted })
            deferredRange = lastStarted
            return
        }
        try communicator.waitForCollectives()
        widen(buckets.map(\.range))
    }

    /// After `finishBackward` left `deferredRange` pending: waits for its
    /// all-reduce too (Note [Optimizer beside the last all-reduce]).
    public func finishDeferredBucket() throws {
        guard let range = deferredRange else { return }
        deferredRange = nil
        try communicator.waitForCollectives()
        widen([range])
    }

    /// Widens reduced bf16 ranges into the float32 gradients, where the
    /// communicator did not (Note [Gradient bucketing]).
    private func widen(_ ranges: [Range<Int>]) {
        guard let lowPrecisionGradients, !convertsOnCommunicationStream else { return }
        // Adjacent buckets (all of them after a whole backward) widen in one kernel.
        var merged: [Range<Int>] = []
        for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = merged.last, last.upperBound == range.lowerBound {
                merged[merged.count - 1] = last.lowerBound..<range.upperBound
            } else {
                merged.append(range)
            }
        }
        for range in merged {
            let (wire, gradients) = (view(lowPrecisionGradients, range), view(store.gradients, range))
            if summedOnTheWire {
                store.backend.copy(wire, to: gradients, scaledBy: 1 / Float(communicator.worldSize))
            } else {
                store.backend.copy(wire, to: gradients)
            }
        }
    }

    /// Whether the bf16 rounding and widening run on the communicator's stream
    /// (Note [bf16 all-reduce off the compute stream]).
    private var convertsOnCommunicationStream: Bool {
        communicator is NarrowingAllReduce && !convertsOnComputeStream
    }
    /// An experiment, measured and left off (`cohort train --wire-conversions-on-compute-stream`;
    /// docs/results/2026-11-27-fixed-step-tax): round each bucket on the compute
    /// stream and widen after the wait, in one kernel for adjacent buckets, even
    /// with a `NarrowingAllReduce` communicator (into its wire buffer; summing
    /// where it `sumsOnly(through:)` the wire, and dividing while widening), so
    /// only the collectives run beside backward. On 2 x H200 (2026-11-27, a5e4e22's
    /// COHORT_ALLREDUCE_DRY, against 1 GPU in the same call) a branch beside backward
    /// holding only the two conversions' kernels added 0.14 ms to a 2.75 ms step at
    /// 128 per GPU, the whole all-reduce 0.24 ms, the same kernels on one element
    /// 0.14 ms: the kernels' presence costs, not what they move. Measured
    /// (4 x H200, 2026-11-28, 1eb65d8, against the default in the same call,
    /// docs/results/2026-11-28-graph-gaps): 2.731/2.735 ms at 4 x 128 against
    /// 2.719/2.716, 6.524/6.533 at 4 x 512 against 6.489/6.484: the
    /// conversions on the compute stream cost more than twelve fewer kernels
    /// on the branch save.
    public var convertsOnComputeStream = false
    /// Note [Widening in the optimizer]
    /// - With bf16 on the wire and the conversions on the communication stream
    ///   (Note [bf16 all-reduce off the compute stream]), each bucket ran three
    ///   kernels beside backward: the rounding into the wire, the all-reduce
    ///   and the widening back into the float32 gradients, which the optimizer
    ///   then read. The widening is a pass over the gradients (bf16 in, float32
    ///   out: 67 MB a ResNet-18 step) that only feeds the optimizer's own pass.
    /// - With `widensInOptimizer` the all-reduce's result stays in the wire
    ///   (`NarrowingAllReduce.startAllReduce(_:through:op:widens:)` with
    ///   `widens: false`) and `reducedGradients` hands the optimizer the wire
    ///   and its scale (1/ranks where the wire was summed, Note [Symmetric wire
    ///   buffer]); the optimizer reads `scale * g` from bf16 in its own pass
    ///   (`OptimizerStepConfiguration.gradientScale`). One kernel fewer per
    ///   bucket beside backward, one fewer in the last bucket's path before the
    ///   optimizer, and the step moves 89 MB less; the arithmetic is the
    ///   widening's (one float32 product, kept apart from the add after it), so
    ///   parameters come out bit for bit the same.
    /// - The store's float32 gradients then keep this rank's own (unaveraged)
    ///   gradients; only the optimizer reads gradients after backward.
    /// - Used where the wire exists and its conversions are the communicator's
    ///   (a bf16 wire on NCCL); `cohort train --no-widen-in-optimizer` keeps
    ///   the widening, for A/B runs.
    public var widensInOptimizer = false
    /// Whether the optimizer reads the wire (`widensInOptimizer` where it applies).
    public var optimizerReadsWire: Bool {
        widensInOptimizer && lowPrecisionGradients != nil && convertsOnCommunicationStream
    }
    /// What the optimizer reads after `finishBackward` (and `finishDeferredBucket`):
    /// the wire and its scale where `optimizerReadsWire`, else the store's gradients.
    public var reducedGradients: ScaledGradients {
        if optimizerReadsWire, let wire = lowPrecisionGradients {
            return ScaledGradients(values: wire, scale: summedOnTheWire ? 1 / Float(communicator.worldSize) : 1)
        }
        return ScaledGradients(values: store.gradients, scale: 1)
    }

    /// With the conversions here: the wire's all-reduce sums (a communicator
    /// that `sumsOnly(through:)` it) and the widening divides by the ranks.
    private var summedOnTheWire: Bool {
        guard let lowPrecisionGradients, let narrowing = communicator as? NarrowingAllReduce else { return false }
        return narrowing.sumsOnly(through: lowPrecisionGradients)
    }

    private func view(_ tensor: Tensor, _ range: Range<Int>) -> Tensor {
        tensor.view(elementOffset: range.lowerBound, shape: [range.count])
    }

    /// Called by layers (through the store) as each gradient is written.
    private func gradientReady(_ entry: Int) {
        guard let bucket = bucketOfEntry[entry] else { return }
        precondition(readyEntries.insert(entry).inserted,
                     "GradientReducer: \(store.entries[entry].name)'s gradient was marked ready twice in one backward")
        pending[bucket] -= 1
        if pending[bucket] == 0 {
            if releasesPassed < releasePoints.count { held.append(bucket) } else { reduce(buckets[bucket].range) }
        }
        if let count = releasePoints[entry] {
            releasesPassed += 1
            release(releasesPassed == releasePoints.count ? held.count : min(count ?? held.count, held.count))
        }
    }

    /// Starts the `count` oldest held buckets (Note [Bucket release points]).
    private func release(_ count: Int) {
        let starting = held.prefix(count)
        held.removeFirst(starting.count)
        for bucket in starting { reduce(buckets[bucket].range) }
    }

    /// Starts the all-reduce (averaging) of the gradients in `range`,
    /// recording its host time and size; after a failure, later calls are
    /// skipped (the collective state is unknown).
    private func reduce(_ range: Range<Int>) {
        guard failure == nil else { return }
        var gradients = view(store.gradients, range)
        var wire: Tensor?
        if let lowPrecisionGradients {
            wire = view(lowPrecisionGradients, range)
            if !convertsOnCommunicationStream {
                store.backend.copy(gradients, to: wire!)
                gradients = wire!
            }
        }
        // The backend may still be writing these gradients (an in-order
        // stream); a host-side communicator reads them now. NCCL forks its
        // stream from the compute stream with an event, so its all-reduce
        // is ordered after those writes already: waiting here would only
        // stall the host (Note [Communication stream]).
        if !communicator.runsOnDeviceStream {
            store.backend.synchronize()
            lastStep.hostSynchronizations += 1
        }
        // Note [Optimizer beside the last all-reduce]: the buckets before this one can be waited for alone.
        if defersLastBucket && overlap && startedCount == buckets.count - 1 { communicator.markCollectives() }
        startedCount += 1
        lastStarted = range
        let started = ContinuousClock.now
        do {
            if let wire, convertsOnCommunicationStream, let narrowing = communicator as? NarrowingAllReduce {
                try narrowing.startAllReduce(gradients, through: wire, op: .average, widens: !optimizerReadsWire)
            } else {
                try communicator.startAllReduce(gradients, op: wire != nil && summedOnTheWire ? .sum : .average)
            }
        } catch {
            failure = error
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        lastStep.communicationSeconds += seconds
        lastStep.callSeconds.append(seconds)
        lastStep.callBytes.append(wire?.byteCount ?? gradients.byteCount)
    }
}

/// A reducer that cannot be built as asked (bad option for this communicator or backend).
public struct GradientReducerError: Error, CustomStringConvertible {
    public let description: String
}

/// `--allreduce-dtype`: the dtype gradients travel in.
///
/// Note [All-reduce dtype]
/// - `auto` (the default) is bf16 when the model trains in bf16 and the
///   communicator has a bf16 sum (NCCL), else fp32. In bf16 training most
///   convolution weight gradients come out of cuDNN as bf16 values (Note
///   [bf16 convolutions]): the float32 buffer they are widened into holds
///   nothing a bf16 wire loses. What bf16 does round is the gradients made
///   in float32 (convolutions on the GEMM paths, batch norm, the linear
///   layer) and each all-reduce's partial sums (2^-9 relative, as PyTorch's
///   `bf16_compress_hook`); the real-data loss curves with it end within
///   the seeds' spread (docs/results/2026-11-27-4xh200-suite-5).
/// - Why: half the bytes, with the conversions off the compute stream
///   (Note [bf16 all-reduce off the compute stream]). 4 x H200, 2026-11-27,
///   710341c, device step against one GPU in the same call, twice each:
///   96.3/96.1% (bf16, 16 NCCL blocks) and 95.9/95.8% (bf16, 8) against
///   95.2/95.0% (fp32, 8) at 512 per GPU; 91.3/91.2% against 90.7/90.9% at
///   128. A second machine (508513d): 96.0/95.7% against 95.2/95.0% at 512,
///   92.2/91.9% against 91.5/91.4% at 128.
/// - fp32 everywhere else: float32 training (its gradients are float32
///   values), MPI (no bf16 sum), and whenever asked (`--allreduce-dtype fp32`).
public enum AllReduceDType: String, CaseIterable, Sendable {
    case auto
    case float32 = "fp32"
    case bfloat16 = "bf16"

    /// The dtype a run with this setting all-reduces in.
    public func resolved(trainingDType: DType, reducesBFloat16: Bool) -> DType {
        switch self {
        case .float32: return .float32
        case .bfloat16: return .bfloat16
        case .auto: return trainingDType == .bfloat16 && reducesBFloat16 ? .bfloat16 : .float32
        }
    }
}
