import ArgumentParser
import CohortCUDA
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
        do {
            let cuda = try CUDABackend()
            print("cuda       available  \(cuda.details)")
        } catch {
            print("cuda       missing    \(error)")
        }
    }
}
