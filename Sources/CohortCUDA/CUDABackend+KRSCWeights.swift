import Foundation
import CCUDA
import CohortKernels
import CohortTensor

/// Note [KRSC weights kept for the data gradient]
/// - Each cuDNN convolution transposes its OIHW weight into KRSC (Note [KRSC
///   weights]) twice a step: before the forward and before the data
///   gradient, though the weight does not change in between. CUPTI's trace
///   of the 1-GPU step at batch 128 (2 x H100, 2026-11-28, binary 1eb65d8,
///   docs/results/2026-11-28-graph-gaps) has 32 `oihw_to_krsc_bf16` kernels,
///   162 us of a 2.73 ms step: not the "few microseconds" Note [KRSC weights]
///   expected, because there are 32 of them and each is a launch of its own.
/// - So `conv2dForward` transposes into a copy kept per weight (keyed by the
///   weight's address) and `conv2dBackwardData` reads that copy instead of
///   transposing again when its caller says the weight still holds what the
///   forward read (`weightAsInForward`: Conv2d compares
///   ParameterStore.generation across its forward and backward).
/// - A copy is trusted only if the latest `conv2dForward` that read that
///   address wrote it: every forward marks the address's copy stale first and
///   only the cuDNN path's transpose marks it current (a GEMM-path forward
///   transposes nothing and leaves it stale), so an address reused by
///   another tensor, or a forward of another geometry, cannot hand the data
///   gradient a stale copy.
/// - Copies are allocated outside captures only (the caching allocator is
///   frozen in one): a forward of a weight without a copy during a capture
///   transposes into the shared scratch as before, and its data gradient
///   transposes again. ResNet-18 keeps 22 MB of copies in bf16; past
///   `limitBytes` every copy goes (outside a capture).
/// - Measured (2 x H100, 2026-11-28, binary 1e77843, against COHORT_KRSC_COPIES=off
///   in the same call, docs/results/2026-11-28-graph-gaps): the device step at
///   batch 128 2.606/2.599 -> 2.524/2.523 ms on 1 GPU (-3.0%), 2.810/2.803 ->
///   2.722/2.721 on 2; at 32 1.566 -> 1.485; at 512 7.101 -> 7.046.
/// - COHORT_KRSC_COPIES=off transposes twice, as before (the same-call baseline).
final class KRSCWeightCopies {
    struct Copy {
        let storage: Storage
        var current: Bool
    }
    static let isEnabled = ProcessInfo.processInfo.environment["COHORT_KRSC_COPIES"] != "off"
    static let limitBytes = 256 << 20
    private(set) var copies: [CUdeviceptr: Copy] = [:]
    private(set) var bytes = 0

    /// The copy of the weight at `address`, current or not, if it holds `byteCount` bytes.
    func copy(at address: CUdeviceptr, byteCount: Int) -> Copy? {
        guard let copy = copies[address], copy.storage.byteCount >= byteCount else { return nil }
        return copy
    }

    func markStale(_ address: CUdeviceptr) { copies[address]?.current = false }

    func markCurrent(_ address: CUdeviceptr) { copies[address]?.current = true }

    /// Keeps `storage` as the copy of the weight at `address` (stale until a transpose marks it current).
    func keep(_ storage: Storage, at address: CUdeviceptr) {
        if let old = copies[address] { bytes -= old.storage.byteCount }
        copies[address] = Copy(storage: storage, current: false)
        bytes += storage.byteCount
    }

    func removeAll() {
        copies = [:]
        bytes = 0
    }
}

extension CUDABackend {
    /// The forward's KRSC weight (Note [KRSC weights kept for the data gradient]): the weight's
    /// own copy, made current, or the shared scratch where it has none and cannot get one now.
    func krscWeightForForward(_ weight: Tensor, _ g: Conv2dGeometry) -> UnsafeMutableRawPointer {
        let address = weight.devicePointer
        guard KRSCWeightCopies.isEnabled else { return krscWeight(from: weight, g) }
        if krscCopies.copy(at: address, byteCount: weight.byteCount) == nil && !stream.isCapturing {
            if krscCopies.bytes + weight.byteCount > KRSCWeightCopies.limitBytes { krscCopies.removeAll() }
            krscCopies.keep(mustSucceed { try allocator.allocate(byteCount: weight.byteCount) }, at: address)
        }
        guard let copy = krscCopies.copy(at: address, byteCount: weight.byteCount) else {
            return krscWeight(from: weight, g)
        }
        transposeToKRSC(weight, into: copy.storage.address, g)
        krscCopies.markCurrent(address)
        return copy.storage.address
    }

    /// The data gradient's KRSC weight: the forward's current copy when `weightAsInForward`, else a
    /// fresh transpose into the shared scratch.
    func krscWeightForBackwardData(_ weight: Tensor, _ g: Conv2dGeometry, weightAsInForward: Bool)
        -> UnsafeMutableRawPointer {
        if weightAsInForward, let copy = krscCopies.copy(at: weight.devicePointer, byteCount: weight.byteCount),
           copy.current {
            return copy.storage.address
        }
        return krscWeight(from: weight, g)
    }
}
