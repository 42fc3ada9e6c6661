import ArgumentParser
import CohortKernels
import CohortOneDNN
import Foundation

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show which backends and libraries this machine offers.")

    func run() throws {
        let reference = ReferenceBackend()
        print("reference  available  \(reference.details)")
        do {
            let oneDNN = try OneDNNBackend()
            print("onednn     available  \(oneDNN.details)")
        } catch {
            print("onednn     missing    \(error)")
        }
        print("cuda       not in this build")
    }
}
