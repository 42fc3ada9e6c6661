import ArgumentParser
import CohortCUDA
import CohortDistributed
import CohortKernels
import CohortTensor
import CohortTraining
import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension MatrixPrecision: ExpressibleByArgument {}

struct SelfTest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Prove a backend correct: every op, forward and backward, against the reference backend.",
        discussion: """
            Each check draws fresh random inputs (from --seed, printed so a failure can be rerun), runs \
            the op on the chosen backend (its outputs first filled with NaN, so unwritten elements show) \
            and on the plain-Swift reference, and compares them by max-abs and normwise relative error \
            against a tolerance stated with its reason. A full ResNet-18 training step (forward, loss, \
            every gradient, one SGD step) ends the run. Exits non-zero if any check fails.
            Examples: cohort selftest --backend onednn
                      cohort selftest --device cuda --json selftest.json
                      cohort selftest --device cuda --seed 1234 --filter conv2dBackwardWeight
            """)

    @OptionGroup var deviceOptions: DeviceOptions

    @Option(help: "Seed of every check's inputs (default: a new one each run, printed).")
    var seed: UInt64?

    @Option(help: ArgumentHelp("Also write the report as JSON (every row, backend, details, date, seed).",
                               valueName: "file"))
    var json: String?

    @Flag(name: .customLong("bf16"), inversion: .prefixedNo, help: """
        Also run the bfloat16 rows (default): bf16 fill, copy and upload, and, on a backend with bf16 compute \
        (cuda, reference), every op check again with bf16 activations and weights and a bf16 ResNet-18 step.
        """)
    var bfloat16 = true

    @Flag(help: "Batch 2 instead of 8: the same ops and shapes, a quarter of the work.")
    var quick = false

    @Option(name: .customLong("matrix-precision"), help: """
        How the backend multiplies in convolutions and linear layers, which sets their tolerances: \
        fp32 or tf32 (default: tf32 on cuda, fp32 on the CPU).
        """)
    var matrixPrecision: MatrixPrecision?

    @Option(help: ArgumentHelp("Run only the checks whose name or shape contains this text.", valueName: "text"))
    var filter: String?

    func validate() throws {
        // Planned as on a GPU, data-parallel rows included (a factory that only plans: never called).
        let planningOnly = DataParallelCommunicatorFactory { _ in
            throw ValidationError("planning the self-test's checks makes no communicator")
        }
        let planned = BackendSelfTest(backend: ReferenceBackend(), options: .init(
            seed: 0, bfloat16: bfloat16, filter: filter, dataParallelCommunicators: planningOnly))
        guard !planned.plannedChecks.isEmpty else {
            throw ValidationError("--filter \(filter ?? ""): no check's name or shape contains it (try conv2d, batchNorm, resnet18)")
        }
    }

    /// One-rank NCCL communicators for the data-parallel step checks (Note [Self-test of the
    /// data-parallel step]), on CUDA where libnccl loads; otherwise nil and why (nil: nothing to say).
    static func dataParallelCommunicators(_ backend: Backend) -> (DataParallelCommunicatorFactory?, String?) {
        guard let cuda = backend as? CUDABackend else {
            return (nil, "the data-parallel step checks run on CUDA only (one NCCL rank)")
        }
        if let failure = NCCLCommunicator.loadFailure() {
            return (nil, "the data-parallel step checks need NCCL: \(failure)")
        }
        return (DataParallelCommunicatorFactory { launch in
            let communicator = try NCCLCommunicator(backend: cuda, rank: 0, worldSize: 1,
                                                    uniqueId: try NCCLCommunicator.makeUniqueId(), timeout: nil)
            communicator.setAllReduceLaunch(launch)
            return communicator
        }, nil)
    }

    func run() throws {
        let (backend, notes) = try makeBackend(device: deviceOptions.device, choice: deviceOptions.backend, allowsTF32: !deviceOptions.noTF32)
        let (communicators, communicatorNote) = Self.dataParallelCommunicators(backend)
        let options = BackendSelfTest.Options(
            seed: seed ?? UInt64.random(in: 0...UInt64.max), quick: quick, bfloat16: bfloat16,
            matrixPrecision: matrixPrecision ?? (deviceOptions.device.isHost || deviceOptions.noTF32 ? .float32 : .tf32), filter: filter,
            dataParallelCommunicators: communicators)
        let selfTest = BackendSelfTest(backend: backend, options: options)
        (notes + selfTest.notes + [communicatorNote].compactMap { $0 }).forEach { say("note: \($0)") }
        say("cohort selftest: backend \(backend.name) on \(backend.device) (\(backend.details))")
        say("seed \(options.seed) (rerun with --seed \(options.seed)); matrix precision \(options.matrixPrecision.rawValue)"
            + "\(quick ? ", quick" : "")\(bfloat16 ? ", bfloat16" : "")\(filter.map { ", filter \($0)" } ?? ""); "
            + "\(selfTest.plannedChecks.count) checks")
        say(SelfTestReport.tableHeader)
        let report = selfTest.run { say(SelfTestReport.tableLine($0)) }
        say("")
        report.toleranceLegend.forEach(say)
        if report.failedCount > 0 {
            say("\nfailed (rerun with --seed \(options.seed)):")
            report.failures.forEach { say(SelfTestReport.tableLine($0)) }
        }
        if let json {
            try report.json().write(to: URL(fileURLWithPath: json))
            say("wrote \(json)")
        }
        say("\(report.summary)")
        if report.failedCount > 0 { throw ExitCode.failure }
    }

    /// Prints and flushes: a backend that traps mid-run leaves every row before it in a log.
    private func say(_ line: String) {
        print(line)
        fflush(nil)  // every stream: stdout is a global Swift 6 will not touch
    }
}
