import ArgumentParser
import CohortData
import CohortDistributed
import CohortNN
import CohortOptim
import CohortTensor
import CohortTraining
import Foundation

extension ModelArchitecture: ExpressibleByArgument {}
extension Precision: ExpressibleByArgument {}
extension BackendChoice: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
extension AllReduceDType: ExpressibleByArgument {}
extension SymmetricWindowPolicy: ExpressibleByArgument {}
extension AllReduceLaunch: ExpressibleByArgument {}

extension Device: ExpressibleByArgument {
    public init?(argument: String) { self.init(parsing: argument) }
    public var defaultValueDescription: String { description }
}

/// Which data a command reads.
enum DatasetChoice: String, CaseIterable, ExpressibleByArgument {
    /// CIFAR-10 from --data (or the folder --download fills).
    case cifar10
    /// Random images and labels of CIFAR-10's shape: runs anywhere, learns nothing.
    case synthetic
}

struct DeviceOptions: ParsableArguments {
    @Option(help: "Where to run: cpu, cuda, cuda:N.")
    var device: Device = .cpu

    @Option(help: "Which implementation runs the ops on the CPU: \(BackendChoice.allCases.map(\.rawValue).joined(separator: ", ")). auto takes oneDNN when it loads.")
    var backend: BackendChoice = .auto

    @Flag(name: .customLong("no-tf32"), help: "On a GPU, keep float32 convolutions off TF32 tensor cores (true float32, slower).")
    var noTF32 = false
}

struct DataOptions: ParsableArguments {
    @Option(help: "Data set: cifar10 or synthetic.")
    var dataset: DatasetChoice = .cifar10

    @Option(help: ArgumentHelp("Folder holding cifar-10-batches-bin (or that folder itself).", valueName: "dir"))
    var data: String?

    @Flag(help: "Download CIFAR-10 into --data (default ./data) if it is not there; the archive's MD5 is checked.")
    var download = false

    @Option(name: .customLong("synthetic-images"), help: "With --dataset synthetic: training images per epoch (default CIFAR-10's 50,000; more gives long epochs for timing runs).")
    var syntheticImages = 50_000

    func validate() throws {
        guard syntheticImages > 0 else { throw ValidationError("--synthetic-images must be positive") }
        if dataset == .synthetic && (data != nil || download) {
            throw ValidationError("--data and --download read CIFAR-10; they make no sense with --dataset synthetic")
        }
        if dataset == .cifar10 && data == nil && !download {
            throw ValidationError("""
                say where CIFAR-10 is: --data <folder with cifar-10-batches-bin>, or add --download to fetch it, \
                or run with --dataset synthetic
                """)
        }
    }
}
