import CohortKernels
import CohortTensor

/// How `allReduce` combines the ranks' values.
public enum ReduceOperation: String, Sendable {
    /// Every rank ends with the element-wise sum.
    case sum
    /// The sum divided by the world size (gradient averaging).
    case average
}

/// Collective operations over every rank of a run: the data-parallel
/// training step all-reduces gradients through one of these.
///
/// Note [Communicator contract]
/// - Collective: every rank calls the same methods in the same order with
///   tensors of the same shape; a rank that skips one leaves the others
///   waiting until the watchdog stops the run (see `Note [Distributed
///   failures]`).
/// - Tensors: float32, contiguous. `MPICommunicator` works on host tensors
///   (`Device.cpu`), as does `ThreadGroupCommunicator` between the replica
///   threads of one process; `NCCLCommunicator` (CohortCUDA) implements the same
///   protocol on tensors of its CUDA device (float32 or bfloat16), enqueued
///   on the backend's stream so the call returns before the data has moved
///   (as `Backend` calls do; `runsOnDeviceStream`). Callers therefore read
///   results only after the backend's `synchronize()`.
/// - In place: `allReduce` and `broadcast` overwrite their argument.
/// - Errors: a throwing call leaves the collective state unknown; the caller
///   reports the error and calls `abort(reason:)`, which stops every rank.
/// - Threads: calls on one communicator must not overlap; a reducer that
///   runs collectives on a background thread owns the communicator there.
public protocol Communicator: AnyObject {
    /// This process's rank, 0..<worldSize.
    var rank: Int { get }
    var worldSize: Int { get }
    /// "single", "mpi", "threads", "nccl": printed when a run starts.
    var name: String { get }
    /// True when collectives are enqueued on the backend's own stream (NCCL):
    /// they are then ordered after the kernels that wrote their input, so a
    /// caller must not wait for the device before one. False (the default)
    /// for host communicators (MPI), which read memory the moment they are
    /// called and so need the backend synchronised first.
    var runsOnDeviceStream: Bool { get }

    /// `tensor` becomes the element-wise sum (or average) of every rank's `tensor`.
    func allReduce(_ tensor: Tensor, op: ReduceOperation) throws
    /// Every rank's `tensor` becomes rank `root`'s.
    func broadcast(_ tensor: Tensor, root: Int) throws
    /// `output` (worldSize * input.elementCount elements) becomes the ranks'
    /// inputs laid end to end in rank order.
    func allGather(_ input: Tensor, into output: Tensor) throws
    /// Returns once every rank has called it.
    func barrier() throws
    /// Stops every rank of the run now, after printing `reason` (the way out
    /// after a failed collective; never returns).
    func abort(reason: String) -> Never
    /// Leaves the group cleanly at the end of a run (every rank calls it);
    /// later calls are programmer errors. Safe to call twice.
    func shutdown() throws

    // MARK: Background collectives (optional; defaults below)

    /// Starts an all-reduce that may run beside the backend's later work
    /// (NCCL: on a communication stream, `Note [Communication stream]`);
    /// backend ops may use `tensor` again only after `waitForCollectives()`,
    /// and it must stay alive until then. Default: `allReduce`, finished
    /// (or enqueued in order) when it returns.
    func startAllReduce(_ tensor: Tensor, op: ReduceOperation) throws
    /// Makes the backend's later work wait for every started collective.
    func waitForCollectives() throws
    /// Remembers the collectives started so far, for `waitForMarkedCollectives`
    /// (Note [Optimizer beside the last all-reduce]). Default: nothing.
    func markCollectives()
    /// Makes the backend's later work wait for the collectives started
    /// before the last `markCollectives`, not those after it. Default:
    /// `waitForCollectives` (everything; host communicators have finished anyway).
    func waitForMarkedCollectives() throws
    /// Whether `startAllReduce` can be recorded in a backend graph capture
    /// (NCCL: yes; host communicators: no, they read memory on the host).
    var supportsGraphCapture: Bool { get }
    /// Whether collectives take bfloat16 tensors (NCCL: yes; MPI has no bfloat16 sum).
    var reducesBFloat16: Bool { get }
    /// Starts device timing of the background collectives (Note [Device
    /// timing]): each `startAllReduce` until the next call is timed.
    func beginCollectiveTiming()
    /// Device seconds each timed background collective was busy, in start
    /// order, waiting for them; nil where collectives are not device-timed.
    func collectiveSeconds() -> [Double]?
    /// Device seconds from `origin` (a timestamp the backend recorded on its
    /// stream before the collectives) to the start of each collective
    /// `collectiveSeconds` timed, in the same order: where each ran within
    /// the step, for timelines. Call after `collectiveSeconds`; nil where
    /// collectives are not device-timed.
    func collectiveStartSeconds(since origin: DeviceTimestamp) -> [Double]?
    /// Tells a watchdog that the step just issued must finish within its
    /// time limit (`Note [Distributed failures]`); default: nothing.
    func watchProgress()
}

extension Communicator {
    public var isRoot: Bool { rank == 0 }
    public var runsOnDeviceStream: Bool { false }
    public func startAllReduce(_ tensor: Tensor, op: ReduceOperation) throws { try allReduce(tensor, op: op) }
    public func waitForCollectives() throws {}
    public func markCollectives() {}
    public func waitForMarkedCollectives() throws { try waitForCollectives() }
    public var supportsGraphCapture: Bool { false }
    public var reducesBFloat16: Bool { false }
    public func beginCollectiveTiming() {}
    public func collectiveSeconds() -> [Double]? { nil }
    public func collectiveStartSeconds(since origin: DeviceTimestamp) -> [Double]? { nil }
    public func watchProgress() {}
}

/// A communicator that all-reduces a float32 tensor through a narrower
/// `wire` copy on its own stream: rounds into `wire`, reduces that, widens
/// the result back into `tensor`, all after the compute stream's work so far
/// and beside its later work, joined by `waitForCollectives` like
/// `startAllReduce` (NCCL: Note [bf16 all-reduce off the compute stream]).
/// The gradient reducer's bf16 mode uses it where available, so the two
/// conversions of each bucket leave the compute stream.
public protocol NarrowingAllReduce: Communicator {
    /// `widens: false` leaves the result in `wire` (summed where
    /// `sumsOnly(through:)`, else reduced by `op`) and `tensor` as it was: the
    /// caller reads the wire itself (Note [Widening in the optimizer]).
    func startAllReduce(_ tensor: Tensor, through wire: Tensor, op: ReduceOperation, widens: Bool) throws
    /// A bfloat16 wire buffer of `elementCount` values that this
    /// communicator reduces fastest, or nil for an ordinary backend tensor
    /// (the default). Every rank calls it in the same order: NCCL registers
    /// the buffer with every rank (Note [Symmetric wire buffer]).
    func makeWireBuffer(elementCount: Int) throws -> Tensor?
    /// Whether a plain all-reduce of (part of) `wire` can only sum, so a
    /// caller that wants the average sums and divides while widening (NCCL's
    /// symmetric kernels: Note [Symmetric wire buffer]). Default: false.
    func sumsOnly(through wire: Tensor) -> Bool
}

extension NarrowingAllReduce {
    public func startAllReduce(_ tensor: Tensor, through wire: Tensor, op: ReduceOperation) throws {
        try startAllReduce(tensor, through: wire, op: op, widens: true)
    }
    public func makeWireBuffer(elementCount: Int) throws -> Tensor? { nil }
    public func sumsOnly(through wire: Tensor) -> Bool { false }
}

/// The communicator of a run with one process: collectives are identities.
public final class SingleProcessCommunicator: Communicator {
    public let rank = 0
    public let worldSize = 1
    public let name = "single"

    public init() {}

    public func allReduce(_ tensor: Tensor, op: ReduceOperation) throws {
        checkHostFloat(tensor, "allReduce")
    }

    public func broadcast(_ tensor: Tensor, root: Int) throws {
        checkHostFloat(tensor, "broadcast")
        precondition(root == 0, "broadcast: root \(root) is not a rank of a 1-process run")
    }

    public func allGather(_ input: Tensor, into output: Tensor) throws {
        checkHostFloat(input, "allGather")
        checkHostFloat(output, "allGather")
        precondition(output.elementCount == input.elementCount,
                     "allGather: output has \(output.elementCount) elements, expected \(input.elementCount)")
        if input.rawPointer != output.rawPointer {
            output.rawPointer.copyMemory(from: input.rawPointer, byteCount: input.byteCount)
        }
    }

    public func barrier() throws {}

    public func abort(reason: String) -> Never {
        fatalError("cohort: aborting: \(reason)")
    }

    public func shutdown() throws {}
}

/// Programmer errors: the contract asks for float32 host tensors.
func checkHostFloat(_ tensor: Tensor, _ call: String) {
    precondition(tensor.dtype == .float32, "\(call): \(tensor) is not float32")
    precondition(tensor.device.isHost, "\(call): \(tensor) is not on the host (this communicator moves host memory)")
}

/// `--symmetric-windows`: whether the bf16 wire buffer is registered with
/// NCCL as a symmetric window (Note [Symmetric wire buffer]).
public enum SymmetricWindowPolicy: String, CaseIterable, Sendable {
    /// On where it can help and is known to work: the communicator has
    /// windows (NCCL 2.27+), every rank is on one machine (NCCL's symmetric
    /// kernels are for communicators without a network transport) and the
    /// gradients travel in bf16.
    case auto
    /// Always, failing clearly where the communicator has no windows.
    case on
    case off

    /// Whether to register the wire buffer. `windowsAvailable`: the
    /// communicator has the API; nil when it is not NCCL (nothing to register).
    public func resolved(windowsAvailable: Bool?, ranksShareOneMachine: Bool, wireIsBFloat16: Bool) throws -> Bool {
        switch self {
        case .off:
            return false
        case .auto:
            return windowsAvailable == true && ranksShareOneMachine && wireIsBFloat16
        case .on:
            guard let windowsAvailable else {
                throw GradientReducerError(description: "--symmetric-windows on needs NCCL (GPU ranks); this run's collectives are not NCCL's")
            }
            guard windowsAvailable else {
                throw GradientReducerError(description: "--symmetric-windows on needs NCCL 2.27 or newer (ncclCommWindowRegister and ncclMemAlloc); use --symmetric-windows auto or off")
            }
            guard wireIsBFloat16 else {
                throw GradientReducerError(description: "--symmetric-windows on registers the bf16 wire buffer, but gradients travel in fp32 here (--allreduce-dtype bf16, or bf16 training with auto)")
            }
            return true
        }
    }
}

/// `--allreduce-launch`: how a replayed (graph-captured) step's bucket
/// all-reduces reach the device (Note [All-reduces launched by the host] in
/// NCCLCommunicator+HostLaunch.swift). Eager steps fork and join as always.
public enum AllReduceLaunch: String, CaseIterable, Sendable {
    /// Captured into the step's graph, on a branch beside backward.
    case graph
    /// Enqueued by the host at each replay, each once backward has passed its
    /// bucket (the host polls); the graph stays one chain.
    case host
    /// Enqueued by the host at each replay, all at once, each behind a wait
    /// for its bucket's event on the communication stream.
    case hostStream = "host-stream"
    /// As `host`, and the host also waits for the all-reduces' end before the
    /// optimizer's graph (and for every collective's end outside graphs): no
    /// stream waits on the device for another stream's kernels.
    case hostSync = "host-sync"
}
