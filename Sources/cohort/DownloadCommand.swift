import ArgumentParser
import CohortData
import Foundation

struct Download: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Download CIFAR-10's official binary archive, check its MD5 and unpack it.")

    @Option(help: ArgumentHelp("Folder to put cifar-10-batches-bin in.", valueName: "dir"))
    var into: String = "data"

    func run() throws {
        let folder = try CIFAR10Download().fetch(into: into) { print($0) }
        print("CIFAR-10 is in \(folder.path): pass --data \(into) to train and eval")
    }
}
