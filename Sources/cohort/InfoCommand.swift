import ArgumentParser
import CohortCUDA
import CohortDistributed
import CohortKernels
import CohortOneDNN
import Foundation

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show which backends and libraries (CUDA, NCCL, MPI) this machine offers, and the COHORT_* settings in the environment.")

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
        // The communication libraries: NCCL for GPU ranks, MPI for CPU ranks (both loaded with dlopen).
        do {
            print("nccl       available  \(try NCCLCommunicator.libraryDescription())")
        } catch {
            print("nccl       missing    \(error)")
        }
        do {
            print("mpi        available  \(try MPICommunicator.libraryDescription())")
        } catch {
            print("mpi        missing    \(error)")
        }
        // Settings that change what a run measures (Note [Environment switches]).
        for line in EnvironmentSettings.infoLines() { print(line) }
    }
}
