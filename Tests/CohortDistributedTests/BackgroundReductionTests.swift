import CohortDistributed
import CohortKernels
import CohortNN
import CohortOptim
import CohortTensor
import Foundation
import XCTest

/// A communicator of two pretend ranks whose background all-reduces take
/// effect only at `waitForCollectives` (as NCCL's on its own stream), and
/// that reduces bf16 tensors: it halves each started tensor then.
final class DeferringCommunicator: Communicator {
    let rank = 0
    let worldSize = 2
    let name = "deferring"
    var runsOnDeviceStream: Bool { true }
    var supportsGraphCapture: Bool { true }
    var reducesBFloat16: Bool { true }
    private(set) var started: [Tensor] = []
    private(set) var waits = 0
    /// Called at each start (tests log the order of starts and gradients).
    var onStart: ((Tensor) -> Void)?
    private(set) var startedDTypes: [DType] = []

    func startAllReduce(_ tensor: Tensor, op: ReduceOperation) throws {
        started.append(tensor)
        startedDTypes.append(tensor.dtype)
        events.append("start")
        onStart?(tensor)
    }

    func waitForCollectives() throws {
        waits += 1
        events.append("wait")
        for tensor in started { try allReduce(tensor, op: .average) }
        started = []
    }

    func resetEvents() { events = [] }

    /// How many started collectives the last mark covers (nil: no mark).
    private var marked: Int?
    /// "start", "mark", "wait marked" and "wait", in call order.
    private(set) var events: [String] = []

    func markCollectives() {
        marked = started.count
        events.append("mark")
    }

    func waitForMarkedCollectives() throws {
        events.append("wait marked")
        let count = marked ?? started.count
        for tensor in started.prefix(count) { try allReduce(tensor, op: .average) }
        started.removeFirst(count)
        marked = nil
    }

    func allReduce(_ tensor: Tensor, op: ReduceOperation) throws {
        var values = tensor.toArray()
        for index in values.indices { values[index] *= 0.5 }
        let halved = Tensor(values, shape: tensor.shape)
        if tensor.dtype == .float32 {
            tensor.rawPointer.copyMemory(from: halved.rawPointer, byteCount: tensor.byteCount)
        } else {
            ReferenceBackend().copy(halved, to: tensor)
        }
    }
    func broadcast(_ tensor: Tensor, root: Int) throws {}
    func allGather(_ input: Tensor, into output: Tensor) throws {}
    func barrier() throws {}
    func abort(reason: String) -> Never { fatalError(reason) }
    func shutdown() throws {}
}

/// Like `DeferringCommunicator`, but rounds, reduces and widens bf16 buckets
/// itself (`NarrowingAllReduce`, as NCCL does on its stream). After widening
/// it zeroes the wire, so a reducer that widened a second time would leave
/// zero gradients.
final class NarrowingCommunicator: NarrowingAllReduce {
    let rank = 0
    let worldSize = 2
    let name = "narrowing"
    var runsOnDeviceStream: Bool { true }
    var supportsGraphCapture: Bool { true }
    var reducesBFloat16: Bool { true }
    private(set) var plainStarts = 0
    private(set) var narrowed: [(tensor: Tensor, wire: Tensor, widens: Bool)] = []

    /// Plain all-reduces (of the wire, when the reducer converts itself), as
    /// if the other rank held zeros: an average halves at the wait, a sum keeps.
    private var plainPending: [(tensor: Tensor, op: ReduceOperation)] = []
    private(set) var plainOperations: [ReduceOperation] = []
    func startAllReduce(_ tensor: Tensor, op: ReduceOperation) throws {
        plainStarts += 1
        plainPending.append((tensor, op))
        plainOperations.append(op)
    }
    /// Answers `sumsOnly(through:)`, as NCCL does for a symmetric window.
    var wireSumsOnly = false
    func sumsOnly(through wire: Tensor) -> Bool { wireSumsOnly }

    /// The wire buffer it handed the reducer (as NCCL hands out a symmetric window).
    private(set) var providedWire: Tensor?
    func makeWireBuffer(elementCount: Int) throws -> Tensor? {
        providedWire = try ReferenceBackend().makeTensor([elementCount], dtype: .bfloat16)
        return providedWire
    }

    func startAllReduce(_ tensor: Tensor, through wire: Tensor, op: ReduceOperation, widens: Bool) throws {
        narrowed.append((tensor, wire, widens))
    }

    func waitForCollectives() throws {
        let backend = ReferenceBackend()
        for (tensor, wire, widens) in narrowed {
            backend.copy(tensor, to: wire)
            guard widens else {
                // The result stays in the wire: summed with the other rank's zeros, or averaged.
                if !wireSumsOnly { backend.copy(Tensor(wire.toArray().map { $0 * 0.5 }, shape: wire.shape), to: wire) }
                continue
            }
            backend.copy(Tensor(wire.toArray().map { $0 * 0.5 }, shape: wire.shape), to: wire)
            backend.copy(wire, to: tensor)
            backend.fill(wire, value: 0)
        }
        narrowed = []
        for (tensor, op) in plainPending where op == .average {
            backend.copy(Tensor(tensor.toArray().map { $0 * 0.5 }, shape: tensor.shape), to: tensor)
        }
        plainPending = []
    }

    func allReduce(_ tensor: Tensor, op: ReduceOperation) throws {}
    func broadcast(_ tensor: Tensor, root: Int) throws {}
    func allGather(_ input: Tensor, into output: Tensor) throws {}
    func barrier() throws {}
    func abort(reason: String) -> Never { fatalError(reason) }
    func shutdown() throws {}
}

/// SmallCNN on the reference backend with a fixed two-image batch.
private struct Fixture {
    let backend = ReferenceBackend()
    let images = Tensor((0..<(2 * 32 * 32 * 3)).map { Float($0 % 11) / 11 }, shape: [2, 32, 32, 3])
    let labels = Tensor.int32([4, 9])
    let criterion: SoftmaxCrossEntropy
    let model: SmallCNN

    init(seed: UInt64) throws {
        criterion = try SoftmaxCrossEntropy(backend: backend)
        model = try SmallCNN(backend: backend, classCount: 10, seed: seed)
    }

    /// Forward and backward of the batch, `reducer`'s countdown reset first.
    func backward(_ reducer: GradientReducer?) {
        criterion(logits: model.forward(images, mode: .training), labels: labels)
        reducer?.prepareForBackward()
        model.backward(criterion.backward())
    }
}

final class BackgroundReductionTests: XCTestCase {
    /// The gradients of one backward without a reducer (what every test's average halves).
    private func gradients(seed: UInt64) throws -> [Float] {
        let fixture = try Fixture(seed: seed)
        fixture.backward(nil)
        return fixture.model.store.gradients.toArray()
    }

    /// Buckets started during backward are waited for once, in finishBackward,
    /// and only then hold the average.
    func testBackgroundAllReducesFinishAtTheWait() throws {
        let plain = try gradients(seed: 3)
        let fixture = try Fixture(seed: 3)
        let model = fixture.model
        let communicator = DeferringCommunicator()
        let reducer = try GradientReducer(store: model.store, communicator: communicator,
                                          bucketCap: 40_000, firstBucketCap: 4_000)
        XCTAssertTrue(reducer.isCapturable)
        XCTAssertTrue(model.store.gradientReadyHandlerIsCapturable)
        fixture.backward(reducer)
        XCTAssertEqual(communicator.started.count, reducer.buckets.count, "every bucket started during backward")
        XCTAssertEqual(model.store.gradients.toArray(), plain, "nothing reduced before the wait")
        try reducer.finishBackward()
        XCTAssertEqual(communicator.waits, 1)
        XCTAssertEqual(model.store.gradients.toArray(), plain.map { $0 * 0.5 })
    }

    /// bf16 mode all-reduces a bf16 copy of each bucket and widens the
    /// result back: the gradients are the halved bf16 roundings of the originals.
    func testBFloat16AllReduceRoundsEachGradientOnce() throws {
        let plain = try gradients(seed: 4)
        let fixture = try Fixture(seed: 4)
        let (backend, model) = (fixture.backend, fixture.model)
        XCTAssertTrue(backend.supportsBFloat16)
        let communicator = DeferringCommunicator()
        let reducer = try GradientReducer(store: model.store, communicator: communicator,
                                          bucketCap: 40_000, firstBucketCap: 4_000, communicationDType: .bfloat16)
        XCTAssertEqual(reducer.communicationDType, .bfloat16)
        fixture.backward(reducer)
        XCTAssertEqual(Set(communicator.startedDTypes), [.bfloat16])
        try reducer.finishBackward()
        let rounded = Tensor(plain, shape: [plain.count])
        let bf16 = try backend.makeTensor([plain.count], dtype: .bfloat16)
        backend.copy(rounded, to: bf16)
        let expected = bf16.toArray().map { $0 * 0.5 }
        XCTAssertEqual(model.store.gradients.toArray(), expected)
        // Rounding is visible (the test would not see a float32 path otherwise).
        XCTAssertNotEqual(expected, plain.map { $0 * 0.5 })
    }

    /// A reducer of the fixture's model in bf16 through a `NarrowingCommunicator`.
    fileprivate func narrowingReducer(_ fixture: Fixture) throws -> (GradientReducer, NarrowingCommunicator) {
        let communicator = NarrowingCommunicator()
        let reducer = try GradientReducer(store: fixture.model.store, communicator: communicator,
                                          bucketCap: 40_000, firstBucketCap: 4_000, communicationDType: .bfloat16)
        return (reducer, communicator)
    }

    /// What two ranks' average through a bf16 wire gives when both hold `plain`: its halved roundings.
    func halvedBFloat16Roundings(_ plain: [Float], on backend: Backend) throws -> [Float] {
        let bf16 = try backend.makeTensor([plain.count], dtype: .bfloat16)
        backend.copy(Tensor(plain, shape: [plain.count]), to: bf16)
        return bf16.toArray().map { $0 * 0.5 }
    }

    /// `convertsOnComputeStream`: a `NarrowingAllReduce` communicator's wire
    /// buffer is still used, but the reducer rounds into it and widens out of
    /// it itself, and the communicator gets plain all-reduces of the wire:
    /// the same halved bf16 roundings.
    /// Where the wire can only be summed (a symmetric window), the reducer asks
    /// for sums and divides while widening: the same values.
    func testBFloat16ConversionsOnTheComputeStreamUseTheCommunicatorsWire() throws {
        let plain = try gradients(seed: 4)
        for sumsOnly in [false, true] {
            let fixture = try Fixture(seed: 4)
            let (reducer, communicator) = try narrowingReducer(fixture)
            reducer.convertsOnComputeStream = true
            communicator.wireSumsOnly = sumsOnly
            XCTAssertGreaterThan(reducer.buckets.count, 1)
            fixture.backward(reducer)
            XCTAssertEqual(communicator.narrowed.count, 0)
            XCTAssertEqual(communicator.plainStarts, reducer.buckets.count)
            XCTAssertEqual(Set(communicator.plainOperations), [sumsOnly ? .sum : .average])
            try reducer.finishBackward()
            XCTAssertEqual(fixture.model.store.gradients.toArray(), try halvedBFloat16Roundings(plain, on: fixture.backend),
                           "sums only: \(sumsOnly)")
        }
    }

    /// A `NarrowingAllReduce` communicator gets each bucket's float32 view
    /// and its bf16 wire, and the reducer neither rounds nor widens itself:
    /// the same halved bf16 roundings as above.
    func testBFloat16ConversionsAreLeftToANarrowingCommunicator() throws {
        let plain = try gradients(seed: 4)
        let fixture = try Fixture(seed: 4)
        let model = fixture.model
        let (reducer, communicator) = try narrowingReducer(fixture)
        fixture.backward(reducer)
        XCTAssertEqual(communicator.plainStarts, 0)
        XCTAssertEqual(communicator.narrowed.count, reducer.buckets.count)
        XCTAssertEqual(Set(communicator.narrowed.map(\.tensor.dtype)), [.float32])
        XCTAssertEqual(Set(communicator.narrowed.map(\.wire.dtype)), [.bfloat16])
        XCTAssertEqual(communicator.narrowed.map(\.wire.byteCount), reducer.lastStep.callBytes,
                       "the bytes on the wire are bf16's")
        let provided = try XCTUnwrap(communicator.providedWire)
        XCTAssertTrue(communicator.narrowed.allSatisfy { $0.wire.storage === provided.storage },
                      "every bucket is a view of the communicator's wire buffer")
        XCTAssertEqual(model.store.gradients.toArray(), plain, "nothing converted on the compute stream before the wait")
        try reducer.finishBackward()
        XCTAssertEqual(model.store.gradients.toArray(), try halvedBFloat16Roundings(plain, on: fixture.backend))
    }

    /// Note [Widening in the optimizer]: the communicator is asked not to
    /// widen, the store's gradients stay this rank's own, and the reducer hands
    /// the optimizer the wire with the scale that makes it the average (1/2
    /// where the wire was summed); an optimizer step reading it updates the
    /// parameters exactly as one reading the widened float32 average.
    func testTheOptimizerCanReadTheWireInPlaceOfTheWidenedGradients() throws {
        let plain = try gradients(seed: 6)
        for sumsOnly in [false, true] {
            var updated: [[Float]] = []
            for widensInOptimizer in [false, true] {
                let fixture = try Fixture(seed: 6)
                let (reducer, communicator) = try narrowingReducer(fixture)
                communicator.wireSumsOnly = sumsOnly
                reducer.widensInOptimizer = widensInOptimizer
                XCTAssertEqual(reducer.optimizerReadsWire, widensInOptimizer)
                let optimizer = try Optimizer(store: fixture.model.store,
                                              configuration: OptimizerConfiguration(momentum: 0.9, weightDecay: 5e-4))
                optimizer.gradientSource = { reducer.reducedGradients }
                fixture.backward(reducer)
                XCTAssertEqual(communicator.narrowed.map(\.widens), Array(repeating: !widensInOptimizer,
                                                                          count: reducer.buckets.count))
                try reducer.finishBackward()
                let source = reducer.reducedGradients
                let halved = try halvedBFloat16Roundings(plain, on: fixture.backend)
                if widensInOptimizer {
                    XCTAssertEqual(fixture.model.store.gradients.toArray(), plain, "the float32 gradients stay the rank's own")
                    XCTAssertEqual(source.values.dtype, .bfloat16)
                    XCTAssertEqual(source.scale, sumsOnly ? 0.5 : 1)
                    XCTAssertEqual(source.values.toArray().map { $0 * source.scale }, halved, "sums only: \(sumsOnly)")
                } else {
                    XCTAssertEqual(fixture.model.store.gradients.toArray(), halved)
                    XCTAssertEqual(source.scale, 1)
                    XCTAssertTrue(source.values.storage === fixture.model.store.gradients.storage)
                }
                optimizer.step(learningRate: 0.1)
                updated.append(fixture.model.store.parameters.toArray())
            }
            XCTAssertEqual(updated[0], updated[1], "sums only: \(sumsOnly)")
        }
    }

    /// Without a narrowing communicator (float32, or MPI) the optimizer reads the store's gradients.
    func testWideningInTheOptimizerNeedsANarrowingCommunicator() throws {
        let fixture = try Fixture(seed: 6)
        let reducer = try GradientReducer(store: fixture.model.store, communicator: DeferringCommunicator(),
                                          communicationDType: .bfloat16)
        reducer.widensInOptimizer = true
        XCTAssertFalse(reducer.optimizerReadsWire)
        XCTAssertTrue(reducer.reducedGradients.values.storage === fixture.model.store.gradients.storage)
    }

    /// Note [Bucket release points]: full buckets wait for the named
    /// parameters' gradients ("name*k" releases at most k, oldest first), later
    /// buckets start at once, and the averages are those of an unheld run.
    func testHeldBucketsStartAtTheirReleasePoints() throws {
        let plain = try gradients(seed: 5)
        let fixture = try Fixture(seed: 5)
        let model = fixture.model
        let communicator = DeferringCommunicator()
        let reducer = try GradientReducer(store: model.store, communicator: communicator, bucketCap: 1, firstBucketCap: 1)
        let store = model.store
        let trainable = store.entries.indices.filter { store.entries[$0].kind == .trainable }
        XCTAssertEqual(reducer.buckets.count, trainable.count, "one bucket per parameter at a 1-byte cap")
        // Backward writes gradients in reverse declaration order: release 2 held buckets at the
        // fourth gradient, the rest at the sixth, then start each bucket as it fills.
        let order = trainable.reversed().map { store.entries[$0].name }
        try reducer.holdBuckets(releasingAt: [(order[3], 2), (order[5], nil)])
        var log: [String] = []
        let installed = store.gradientReadyHandler!
        store.gradientReadyHandler = { reference in
            log.append("ready \(store.entries[reference.index].name)")
            installed(reference)
        }
        communicator.onStart = { _ in log.append("start") }
        fixture.backward(reducer)
        var expected: [String] = []
        for (index, name) in order.enumerated() {
            expected.append("ready \(name)")
            if index == 3 { expected += ["start", "start"] }  // buckets 0 and 1; 2 and 3 stay held
            if index == 5 { expected += Array(repeating: "start", count: 4) }  // 2, 3, 4 and 5
            if index > 5 { expected.append("start") }
        }
        XCTAssertEqual(log, expected)
        try reducer.finishBackward()
        XCTAssertEqual(model.store.gradients.toArray(), plain.map { $0 * 0.5 })
        // A second backward holds and releases the same way.
        log = []
        fixture.backward(reducer)
        XCTAssertEqual(log, expected)
        try reducer.finishBackward()
    }

    /// A release point that names no trainable parameter is refused with names that exist.
    func testReleasePointsMustNameTrainableParameters() throws {
        let model = try SmallCNN(backend: ReferenceBackend(), classCount: 10, seed: 0)
        let reducer = try GradientReducer(store: model.store, communicator: DeferringCommunicator())
        XCTAssertThrowsError(try reducer.holdBuckets(releasingAt: [("layer9.conv.weight", nil)])) { error in
            XCTAssertTrue("\(error)".contains("not a trainable parameter"), "\(error)")
            XCTAssertTrue("\(error)".contains("conv1.weight"), "\(error)")
        }
        XCTAssertThrowsError(try reducer.holdBuckets(releasingAt: [("fc.bias", nil), ("fc.bias", 1)]))
    }

    /// Note [All-reduce dtype]: auto is bf16 only for bf16 training on a
    /// communicator with a bf16 sum; explicit settings are kept.
    func testAutoAllReduceDTypeFollowsTheTrainingPrecision() {
        XCTAssertEqual(AllReduceDType.auto.resolved(trainingDType: .bfloat16, reducesBFloat16: true), .bfloat16)
        XCTAssertEqual(AllReduceDType.auto.resolved(trainingDType: .bfloat16, reducesBFloat16: false), .float32)
        XCTAssertEqual(AllReduceDType.auto.resolved(trainingDType: .float32, reducesBFloat16: true), .float32)
        XCTAssertEqual(AllReduceDType.float32.resolved(trainingDType: .bfloat16, reducesBFloat16: true), .float32)
        XCTAssertEqual(AllReduceDType.bfloat16.resolved(trainingDType: .float32, reducesBFloat16: true), .bfloat16)
    }

    /// Note [Symmetric wire buffer]: auto registers only on NCCL with
    /// windows, one machine and a bf16 wire; on fails with the reason where
    /// it cannot register; off never registers.
    func testSymmetricWindowPolicyResolution() throws {
        let auto = SymmetricWindowPolicy.auto
        XCTAssertTrue(try auto.resolved(windowsAvailable: true, ranksShareOneMachine: true, wireIsBFloat16: true))
        XCTAssertFalse(try auto.resolved(windowsAvailable: true, ranksShareOneMachine: false, wireIsBFloat16: true))
        XCTAssertFalse(try auto.resolved(windowsAvailable: true, ranksShareOneMachine: true, wireIsBFloat16: false))
        XCTAssertFalse(try auto.resolved(windowsAvailable: false, ranksShareOneMachine: true, wireIsBFloat16: true))
        XCTAssertFalse(try auto.resolved(windowsAvailable: nil, ranksShareOneMachine: true, wireIsBFloat16: true))
        XCTAssertTrue(try SymmetricWindowPolicy.on.resolved(windowsAvailable: true, ranksShareOneMachine: false, wireIsBFloat16: true))
        XCTAssertFalse(try SymmetricWindowPolicy.off.resolved(windowsAvailable: true, ranksShareOneMachine: true, wireIsBFloat16: true))
        let failures: [(Bool?, Bool, String)] = [(nil, true, "not NCCL's"), (false, true, "NCCL 2.27 or newer"), (true, false, "fp32")]
        for (available, bf16, reason) in failures {
            XCTAssertThrowsError(try SymmetricWindowPolicy.on.resolved(windowsAvailable: available, ranksShareOneMachine: true,
                                                                      wireIsBFloat16: bf16)) { error in
                XCTAssertTrue("\(error)".contains(reason), "\(error)")
            }
        }
    }

    /// Note [Optimizer beside the last all-reduce]: the reducer marks the
    /// collectives before starting the last bucket, `finishBackward` waits
    /// for the marked ones only and leaves the last bucket's range pending,
    /// and `finishDeferredBucket` waits for the rest.
    func testTheLastBucketCanBeWaitedForAfterTheOthers() throws {
        let plain = try gradients(seed: 6)
        let fixture = try Fixture(seed: 6)
        let model = fixture.model
        let communicator = DeferringCommunicator()
        let reducer = try GradientReducer(store: model.store, communicator: communicator,
                                          bucketCap: 40_000, firstBucketCap: 4_000)
        reducer.defersLastBucket = true
        let count = reducer.buckets.count
        XCTAssertGreaterThan(count, 2)
        for _ in 0..<2 {
            communicator.resetEvents()
            fixture.backward(reducer)
            try reducer.finishBackward()
            XCTAssertEqual(communicator.events, Array(repeating: "start", count: count - 1) + ["mark", "start", "wait marked"])
            let last = try XCTUnwrap(reducer.deferredRange)
            XCTAssertEqual(last, reducer.buckets[count - 1].range, "backward fills the first tensors' bucket last")
            var expected = plain.map { $0 * 0.5 }
            for index in last { expected[index] = plain[index] }
            XCTAssertEqual(model.store.gradients.toArray(), expected, "all but the last bucket averaged")
            try reducer.finishDeferredBucket()
            XCTAssertNil(reducer.deferredRange)
            XCTAssertEqual(communicator.events.last, "wait")
            XCTAssertEqual(model.store.gradients.toArray(), plain.map { $0 * 0.5 })
        }
    }

    /// A communicator without a bfloat16 sum (MPI) is refused with the fix.
    func testBFloat16NeedsACommunicatorThatReducesIt() throws {
        let model = try SmallCNN(backend: ReferenceBackend(), classCount: 10, seed: 0)
        let communicator = RecordingCommunicator(base: model.store.gradients.rawPointer)
        XCTAssertThrowsError(try GradientReducer(store: model.store, communicator: communicator,
                                                 communicationDType: .bfloat16)) { error in
            XCTAssertTrue("\(error)".contains("--allreduce-dtype fp32"), "\(error)")
        }
        XCTAssertThrowsError(try GradientReducer(store: model.store, communicator: DeferringCommunicator(),
                                                 communicationDType: .int32))
    }

    /// Host communicators keep the old contract: started all-reduces are
    /// finished when they return, and steps with them are not captured.
    func testHostCommunicatorsAreNotCapturable() throws {
        let model = try SmallCNN(backend: ReferenceBackend(), classCount: 10, seed: 0)
        let communicator = RecordingCommunicator(base: model.store.gradients.rawPointer)
        let reducer = try GradientReducer(store: model.store, communicator: communicator)
        XCTAssertFalse(reducer.isCapturable)
        XCTAssertFalse(model.store.gradientReadyHandlerIsCapturable)
        XCTAssertNil(reducer.deviceSeconds())
    }
}

final class WatchdogProbeTests: XCTestCase {
    /// Work whose probe reports it finished is forgotten: no expiry past the limit.
    func testFinishedWorkDoesNotExpire() throws {
        let expired = LockedFlag()
        let watchdog = Watchdog(timeout: .milliseconds(600)) { _ in
            expired.set()
            Thread.sleep(forTimeInterval: 3600)  // never let the watchdog reach _exit in a test
        }
        defer { watchdog.stop() }
        let polls = LockedCounter()
        watchdog.watch("a step") { polls.increment() >= 2 ? .finished : .running }
        Thread.sleep(forTimeInterval: 1.2)
        XCTAssertFalse(expired.value)
        XCTAssertGreaterThanOrEqual(polls.value, 2)
    }

    /// Work still running past the limit expires the run with its name.
    func testRunningWorkExpiresPastTheLimit() throws {
        let message = LockedText()
        let start = ContinuousClock.now
        let watchdog = Watchdog(timeout: .milliseconds(500)) { text in
            message.set(text)
            Thread.sleep(forTimeInterval: 3600)
        }
        defer { watchdog.stop() }
        watchdog.watch("the step's collectives") { .running }
        while message.value == nil && ContinuousClock.now - start < .seconds(5) { Thread.sleep(forTimeInterval: 0.05) }
        XCTAssertTrue(message.value?.contains("the step's collectives has not finished after") == true, "\(message.value ?? "nil")")
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(2))
    }

    /// A probe that reports a failure (NCCL's asynchronous error) expires at once.
    func testAFailedProbeExpiresAtOnce() throws {
        let message = LockedText()
        let start = ContinuousClock.now
        let watchdog = Watchdog(timeout: .seconds(60)) { text in
            message.set(text)
            Thread.sleep(forTimeInterval: 3600)
        }
        defer { watchdog.stop() }
        watchdog.watch("an all-reduce") { .failed("remote process exited") }
        while message.value == nil && ContinuousClock.now - start < .seconds(5) { Thread.sleep(forTimeInterval: 0.05) }
        XCTAssertTrue(message.value?.contains("an all-reduce failed: remote process exited") == true, "\(message.value ?? "nil")")
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(2))
    }
}

final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    func set() { lock.withLock { flag = true } }
    var value: Bool { lock.withLock { flag } }
}

final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() -> Int { lock.withLock { count += 1; return count } }
    var value: Int { lock.withLock { count } }
}

final class LockedText: @unchecked Sendable {
    private let lock = NSLock()
    private var text: String?
    func set(_ value: String) { lock.withLock { text = value } }
    var value: String? { lock.withLock { text } }
}
