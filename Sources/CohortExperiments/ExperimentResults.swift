import Foundation

/// Everything `cohort experiments` measured on one machine: the stamp saying
/// where and how, and one section per question of the suite. This is the
/// contents of `results.json` (schema: docs/results-schema.json); every other
/// output (CSV, Markdown, HTML, trace) is rendered from it, so
/// `cohort report results.json` can re-render a run without measuring again.
///
/// Units are fixed and written into the key names where they could be
/// mistaken: seconds, bytes, GB/s (10^9 bytes per second), accuracy as a
/// fraction in [0, 1]. Every number must be finite (JSON has no NaN).
public struct ExperimentResults: Codable, Equatable, Sendable {
    /// Bumped when a key changes meaning or disappears.
    public static let currentSchemaVersion = 1

    public var schemaVersion: Int
    public var metadata: RunMetadata
    /// Q1: one device, throughput by batch size.
    public var q1: Section<Q1Record>
    /// Q2: weak scaling over GPU counts, per strategy.
    public var q2: Section<Q2Record>
    /// Q3: where a data-parallel step's time goes, per Q2 configuration.
    public var q3: Section<Q3Record>
    /// `cohort bench allreduce` on the same machine: the bandwidth Q3's figures are read against.
    public var allReduceSweep: Section<AllReduceSweepRecord>
    /// Q4: accuracy and loss per epoch of the large-batch recipes.
    public var q4: Section<Q4Record>
    /// Q4's time-to-accuracy runs.
    public var timeToAccuracy: Section<TimeToAccuracyRecord>
    /// A few steps per configuration, per rank and stream: the source of trace.json.
    public var timelines: Section<StepTimeline>

    public init(metadata: RunMetadata,
                q1: Section<Q1Record> = .notRun("not requested"),
                q2: Section<Q2Record> = .notRun("not requested"),
                q3: Section<Q3Record> = .notRun("not requested"),
                allReduceSweep: Section<AllReduceSweepRecord> = .notRun("not requested"),
                q4: Section<Q4Record> = .notRun("not requested"),
                timeToAccuracy: Section<TimeToAccuracyRecord> = .notRun("not requested"),
                timelines: Section<StepTimeline> = .notRun("not requested")) {
        self.schemaVersion = Self.currentSchemaVersion
        self.metadata = metadata
        self.q1 = q1
        self.q2 = q2
        self.q3 = q3
        self.allReduceSweep = allReduceSweep
        self.q4 = q4
        self.timeToAccuracy = timeToAccuracy
        self.timelines = timelines
    }
}

/// One question's records, or the reason there are none: a machine with one
/// GPU cannot run Q2's multi-GPU rows, and the report says so instead of
/// showing an empty table.
public struct Section<Record: Codable & Equatable & Sendable>: Codable, Equatable, Sendable {
    public var records: [Record]
    /// Why the section has no (or only some) records, e.g. "one GPU on this machine".
    public var notRunReason: String?

    public init(records: [Record], notRunReason: String? = nil) {
        self.records = records
        self.notRunReason = notRunReason
    }

    public static func notRun(_ reason: String) -> Section { Section(records: [], notRunReason: reason) }

    /// The line a report shows in place of an empty section.
    public var emptyMessage: String { "Not run on this machine (\(notRunReason ?? "no reason recorded"))." }
}

/// Where, when and how the results were measured: every report prints this stamp.
public struct RunMetadata: Codable, Equatable, Sendable {
    /// Host and CPU, e.g. "gpu-host-3, AMD EPYC 9654, 2 cores".
    public var machine: String
    /// The accelerator, e.g. "NVIDIA H200"; nil on the CPU profile.
    public var card: String?
    /// Devices the suite could use (GPUs, or 1 on the CPU).
    public var deviceCount: Int
    /// e.g. "580.159.04"; nil without a GPU.
    public var driver: String?
    public var libraries: LibraryVersions
    /// `git describe --always --dirty` of the build that measured.
    public var commit: String
    /// ISO 8601, UTC, e.g. "2026-11-27T14:03:00Z".
    public var date: String
    /// The exact command line that produced the results.
    public var command: String
    /// The measurement switches (`COHORT_*`) and NCCL's variables the run had
    /// set, `NAME=value` separated by spaces (docs/environment.md); nil when none.
    public var environment: String?
    public var profile: Profile
    /// True when the figures come from random images instead of CIFAR-10.
    public var syntheticData: Bool
    /// Images in one epoch of Q1–Q3 (50,000 on the GPU profile, fewer when scaled down).
    public var imagesPerEpoch: Int
    /// Anything a reader must know to read the figures (load on the machine, skipped parts).
    public var notes: [String]

    public init(machine: String, card: String? = nil, deviceCount: Int, driver: String? = nil,
                libraries: LibraryVersions = LibraryVersions(), commit: String, date: String, command: String,
                environment: String? = nil, profile: Profile, syntheticData: Bool, imagesPerEpoch: Int,
                notes: [String] = []) {
        self.machine = machine
        self.card = card
        self.deviceCount = deviceCount
        self.driver = driver
        self.libraries = libraries
        self.commit = commit
        self.date = date
        self.command = command
        self.environment = environment
        self.profile = profile
        self.syntheticData = syntheticData
        self.imagesPerEpoch = imagesPerEpoch
        self.notes = notes
    }
}

/// Library versions as loaded at run time; nil where the library was not loaded.
public struct LibraryVersions: Codable, Equatable, Sendable {
    public var cuda: String?
    public var cudnn: String?
    public var nccl: String?
    public var onednn: String?
    public var mpi: String?
    /// The PyTorch that measured the reference rows.
    public var pytorch: String?

    public init(cuda: String? = nil, cudnn: String? = nil, nccl: String? = nil, onednn: String? = nil,
                mpi: String? = nil, pytorch: String? = nil) {
        self.cuda = cuda
        self.cudnn = cudnn
        self.nccl = nccl
        self.onednn = onednn
        self.mpi = mpi
        self.pytorch = pytorch
    }

    /// (name, version) of the libraries that were loaded, in a fixed order.
    public var loaded: [(name: String, version: String)] {
        [("CUDA", cuda), ("cuDNN", cudnn), ("NCCL", nccl), ("oneDNN", onednn), ("MPI", mpi), ("PyTorch", pytorch)]
            .compactMap { name, version in version.map { (name, $0) } }
    }
}

public enum Profile: String, Codable, Sendable, CaseIterable {
    case gpu = "gpu"
    case cpuScaledDown = "cpu (scaled down)"

    /// What one data-parallel replica is in this profile's reports: a GPU,
    /// or on the CPU profile an MPI rank (a process on the CPU's cores).
    public var replicaNoun: String { self == .gpu ? "GPU" : "rank" }
}

/// Who measured a row: Cohort, or PyTorch's reference script in the same call.
public enum Framework: String, Codable, Sendable, CaseIterable, Comparable {
    case cohort
    case pytorch

    public var displayName: String { self == .cohort ? "Cohort" : "PyTorch" }

    public static func < (lhs: Framework, rhs: Framework) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

public enum Precision: String, Codable, Sendable, CaseIterable, Comparable {
    case fp32
    /// bf16 compute with float32 master weights (PyTorch: autocast + channels_last).
    case bf16

    public static func < (lhs: Precision, rhs: Precision) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// How the GPUs of a data-parallel run are driven.
public enum Strategy: String, Codable, Sendable, CaseIterable, Comparable {
    /// One process per GPU, gradients all-reduced (PyTorch's DistributedDataParallel).
    case ddp
    /// One process driving every GPU (PyTorch's DataParallel).
    case dp

    public var displayName: String { displayName(per: "GPU") }

    /// "one process per rank (DDP)" on the CPU profile (`Profile.replicaNoun`).
    public func displayName(per replica: String) -> String {
        self == .ddp ? "one process per \(replica) (DDP)" : "single process (DP)"
    }

    public static func < (lhs: Strategy, rhs: Strategy) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}
