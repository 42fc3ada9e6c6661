import CohortCUDA
import CohortKernels
import CohortOneDNN
import CohortTensor

/// Which implementation runs the ops: chosen by the user or found at start-up.
public enum BackendChoice: String, CaseIterable, Sendable {
    /// The fastest one available for the device (oneDNN on the CPU, falling
    /// back to the reference backend when oneDNN cannot be loaded).
    case auto
    case onednn
    case reference
}

public struct BackendUnavailable: Error, CustomStringConvertible {
    public var description: String
}

/// Creates the backend for `device`, saying in `notes` what was found and why
/// a fallback was taken, so a run's header can print it.
/// `allowsTF32` (GPU): float32 convolutions may use TF32 tensor cores, as PyTorch allows by default.
public func makeBackend(device: Device, choice: BackendChoice,
                        allowsTF32: Bool = true) throws -> (backend: Backend, notes: [String]) {
    guard device.isHost else {
        guard choice == .auto else {
            throw BackendUnavailable(description: "--backend \(choice.rawValue) runs on the CPU; leave --backend out with --device \(device), or use --device cpu")
        }
        return (try CUDABackend(deviceIndex: device.index, allowsTF32: allowsTF32),
                allowsTF32 ? [] : ["TF32 off: float32 convolutions run in true float32"])
    }
    switch choice {
    case .reference:
        return (ReferenceBackend(), [])
    case .onednn:
        return (try OneDNNBackend(), [])
    case .auto:
        do {
            return (try OneDNNBackend(), [])
        } catch {
            return (ReferenceBackend(), ["oneDNN unavailable (\(error)); using the reference backend, which is slow"])
        }
    }
}

/// Sets how many threads the CPU backend (oneDNN's OpenMP team) uses for
/// calls made from the calling thread: replica threads of one process split
/// the cores (Note [Replica threads]). False where oneDNN cannot be loaded.
@discardableResult
public func setCPUThreadCount(forCallingThread count: Int) -> Bool {
    OneDNNBackend.setThreadCount(forCallingThread: count)
}
