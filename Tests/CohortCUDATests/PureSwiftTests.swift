import Foundation
import XCTest
import CohortCUDA
import CohortKernels

/// The parts of the CUDA backend that need no GPU: they run everywhere.
final class KernelCacheKeyTests: XCTestCase {
    let key = KernelCacheKey(moduleName: "elementwise", source: "extern \"C\" __global__ void f() {}",
                             options: ["--gpu-architecture=sm_90"], nvrtcVersion: "13.0", driverVersion: 13000,
                             architecture: "sm_90")

    func testHashIsStableAndThirtyTwoHexDigits() {
        XCTAssertEqual(key.hash, key.hash)
        XCTAssertEqual(key.hash.count, 32)
        XCTAssertTrue(key.hash.allSatisfy { $0.isHexDigit })
        XCTAssertTrue(key.fileName.hasPrefix("elementwise-") && key.fileName.hasSuffix(".cubin"))
    }

    func testEveryInputChangesTheHash() {
        var variants: [KernelCacheKey] = []
        for change in 0..<5 {
            var other = key
            switch change {
            case 0: other.source += " "
            case 1: other.options.append("--std=c++17")
            case 2: other.nvrtcVersion = "13.1"
            case 3: other.driverVersion = 13010
            default: other.architecture = "sm_100"
            }
            variants.append(other)
        }
        let hashes = Set(variants.map(\.hash) + [key.hash])
        XCTAssertEqual(hashes.count, 6)
    }

    func testOptionBoundariesMatter() {
        var a = key, b = key
        a.options = ["-a", "b"]
        b.options = ["-ab"]
        XCTAssertNotEqual(a.hash, b.hash)
    }

    func testCacheDirectoryResolution() {
        XCTAssertNil(KernelCacheKey.cacheDirectory(environment: ["COHORT_KERNEL_CACHE": "off", "HOME": "/h"]))
        XCTAssertEqual(KernelCacheKey.cacheDirectory(environment: ["COHORT_KERNEL_CACHE": "/tmp/k"])?.path, "/tmp/k")
        XCTAssertEqual(KernelCacheKey.cacheDirectory(environment: ["XDG_CACHE_HOME": "/x", "HOME": "/h"])?.path,
                       "/x/cohort/kernels")
        XCTAssertEqual(KernelCacheKey.cacheDirectory(environment: ["HOME": "/h"])?.path, "/h/.cache/cohort/kernels")
        XCTAssertNil(KernelCacheKey.cacheDirectory(environment: [:]))
    }
}

final class SegmentTableTests: XCTestCase {
    func testPacksFlagsAndSplitsLongSegmentsIntoChunks() {
        let segments = [
            ParameterSegment(offset: 0, count: 10, weightDecay: true, layerAdaptation: true),
            ParameterSegment(offset: 10, count: 0, weightDecay: false, layerAdaptation: true),
            ParameterSegment(offset: 10, count: 9, weightDecay: false, layerAdaptation: false),
            ParameterSegment(offset: 19, count: 4, weightDecay: true, layerAdaptation: false),
        ]
        let table = SegmentTable(segments, parameterCount: 23, chunkSize: 4)
        XCTAssertEqual(table.segmentCount, 4)
        // flags, firstChunk, chunkCount, 0
        XCTAssertEqual(table.segments, [3, 0, 3, 0,
                                        2, 3, 0, 0,
                                        0, 3, 3, 0,
                                        1, 6, 1, 0])
        // start, end, segment, 0
        XCTAssertEqual(table.chunks, [0, 4, 0, 0, 4, 8, 0, 0, 8, 10, 0, 0,
                                      10, 14, 2, 0, 14, 18, 2, 0, 18, 19, 2, 0,
                                      19, 23, 3, 0])
    }

    func testChunksCoverEverySegmentExactlyOnce() {
        let segments = (0..<7).map { ParameterSegment(offset: $0 * 20_000, count: 20_000 - $0 * 1_000) }
        let table = SegmentTable(segments, parameterCount: 140_000)
        for (index, segment) in segments.enumerated() {
            let first = Int(table.segments[index * 4 + 1]), count = Int(table.segments[index * 4 + 2])
            var covered = segment.offset
            for chunk in first..<(first + count) {
                XCTAssertEqual(Int(table.chunks[chunk * 4]), covered)
                XCTAssertEqual(Int(table.chunks[chunk * 4 + 2]), index)
                let end = Int(table.chunks[chunk * 4 + 1])
                XCTAssertLessThanOrEqual(end - covered, SegmentTable.chunkSize)
                covered = end
            }
            XCTAssertEqual(covered, segment.offset + segment.count)
        }
    }
}

final class LaunchShapeTests: XCTestCase {
    func testBatchNormSlicingCoversTheRowsWithFewEnoughBlocks() {
        for (rows, channels) in [(2, 3), (100, 64), (32 * 32 * 32, 64), (2048 * 1024, 64), (2048 * 16, 512), (1 << 24, 1)] {
            let (slices, rowsPerSlice) = CUDABackend.batchNormSlicing(rows: rows, channels: channels, multiprocessors: 132)
            XCTAssertGreaterThanOrEqual(slices, 1)
            XCTAssertLessThanOrEqual(slices, 65535)
            XCTAssertGreaterThanOrEqual(slices * rowsPerSlice, rows, "\(rows) x \(channels)")
            XCTAssertLessThan((slices - 1) * rowsPerSlice, rows, "no empty slice for \(rows) x \(channels)")
            XCTAssertLessThanOrEqual(slices * ((channels + 31) / 32), 4 * 132 + (channels + 31) / 32)
        }
    }

    /// The vector batch-norm kernels' loops (Note [Vector batch norm]), run
    /// here with the host's launch shape: every (row, vector column) is
    /// visited exactly once, blocks stay within 256 threads and one wave,
    /// and no slice is empty. Mirrors the kernels' index arithmetic:
    /// v = blockIdx.y * bx + tx (v < V), rows tile + k * by for tiles from
    /// blockIdx.x * rowsPerSlice + ty in steps of U * by, below the slice's end.
    func testVectorBatchNormLaunchVisitsEveryElementOnce() {
        let cases: [(rows: Int, channels: Int, unroll: Int, resident: Int)] = [
            (1, 8, 4, 264), (3, 64, 8, 264), (189, 64, 4, 264), (189, 64, 8, 3), (45, 512, 4, 264), (105, 24, 8, 264),
            (15, 2056, 4, 264), (15, 2056, 8, 1), (8192, 64, 8, 264), (512, 512, 4, 396), (1000, 8, 8, 7),
        ]
        for (rows, channels, unroll, resident) in cases {
            let launch = BatchNormVectorLaunch(rows: rows, channels: channels, unroll: unroll, residentBlocks: resident)
            let what = "\(rows) x \(channels), unroll \(unroll), \(resident) resident: \(launch)"
            let vectors = channels / 8
            XCTAssertLessThanOrEqual(launch.columns * launch.rowsPerBlock, BatchNormVectorLaunch.maximumThreads, what)
            XCTAssertEqual(launch.columns * launch.rowsPerBlock, BatchNormVectorLaunch.threads(channels: channels), what)
            XCTAssertLessThanOrEqual(launch.slices * launch.columnGroups, max(resident, launch.columnGroups), what)
            XCTAssertEqual(launch.rowsPerSlice % (unroll * launch.rowsPerBlock), 0, what)
            XCTAssertLessThan((launch.slices - 1) * launch.rowsPerSlice, rows, "empty last slice: \(what)")
            var visits = [Int](repeating: 0, count: rows * vectors)
            for slice in 0..<launch.slices {
                let begin = slice * launch.rowsPerSlice, end = min(begin + launch.rowsPerSlice, rows)
                for group in 0..<launch.columnGroups {
                    for ty in 0..<launch.rowsPerBlock {
                        for tx in 0..<launch.columns {
                            let v = group * launch.columns + tx
                            guard v < vectors else { continue }
                            for tile in stride(from: begin + ty, to: end, by: unroll * launch.rowsPerBlock) {
                                for k in 0..<unroll where tile + k * launch.rowsPerBlock < end {
                                    visits[(tile + k * launch.rowsPerBlock) * vectors + v] += 1
                                }
                            }
                        }
                    }
                }
            }
            XCTAssertEqual(visits.filter { $0 != 1 }.count, 0, what)
        }
    }
}

final class ErrorMessageTests: XCTestCase {
    func testMessagesNameTheCallTheCodeAndItsName() {
        let cuda = CUDAError(call: "cuMemAlloc_v2", code: 2, name: "CUDA_ERROR_OUT_OF_MEMORY",
                             message: "out of memory", context: "1024 bytes")
        XCTAssertEqual(cuda.description, "CUDA cuMemAlloc_v2 failed with CUDA_ERROR_OUT_OF_MEMORY (2): out of memory [1024 bytes]")
        let cudnn = CUDNNError(call: "cudnnCreate", code: 1008, name: "CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED", message: "")
        XCTAssertTrue(cudnn.description.contains("cudnnCreate failed with CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED (1008)"))
        XCTAssertTrue(cudnn.description.contains("libcudnn_graph"))
        let cublas = CUBLASError(call: "cublasGemmEx", code: 7, name: "CUBLAS_STATUS_INVALID_VALUE", message: "invalid value")
        XCTAssertTrue(cublas.description.hasPrefix("cuBLAS cublasGemmEx failed with CUBLAS_STATUS_INVALID_VALUE (7)"))
    }

    func testCompileErrorsCarryTheLog() {
        let error = NVRTCError(call: "nvrtcCompileProgram", code: 6, name: "NVRTC_ERROR_COMPILATION",
                               program: "loss", log: "loss.cu(3): error: identifier \"x\" is undefined")
        XCTAssertTrue(error.description.contains("NVRTC_ERROR_COMPILATION (6) for loss"))
        XCTAssertTrue(error.description.hasSuffix("loss.cu(3): error: identifier \"x\" is undefined"))
    }

    func testUnavailableSaysWhatIsMissingAndHowToGetIt() {
        let driver = CUDAUnavailable(missing: .driver, reason: "dlopen(libcuda.so.1): not found").description
        XCTAssertTrue(driver.contains("libcuda.so.1") && driver.contains("NVIDIA driver"))
        XCTAssertTrue(CUDAUnavailable(missing: .cudnn, reason: "x").description.contains("cuDNN 9"))
        XCTAssertTrue(CUDAUnavailable(missing: .nvrtc, reason: "x").description.contains("CUDA 13"))
        XCTAssertTrue(CUDAUnavailable(missing: .cublas, reason: "x").description.contains("libcublas.so.13"))
    }
}

final class LoaderTests: XCTestCase {
    /// Where there is no NVIDIA driver (this machine, CI), the backend says so, naming the library.
    func testMissingDriverIsReportedWithTheLibraryName() throws {
        guard let failure = cudaDriverLoadFailure() else { throw XCTSkip("libcuda.so.1 is installed here") }
        XCTAssertEqual(failure.missing, .driver)
        XCTAssertTrue(failure.reason.contains("libcuda.so.1"), failure.reason)
        XCTAssertThrowsError(try CUDABackend()) { error in
            guard let unavailable = error as? CUDAUnavailable else { return XCTFail("threw \(error)") }
            XCTAssertEqual(unavailable.missing, .driver)
            XCTAssertTrue(unavailable.description.contains("NVIDIA driver"), unavailable.description)
        }
    }
}

/// Note [Programmatic dependent launch]: `auto` launches a data-parallel
/// step's kernels programmatically below 512 images per GPU only.
final class ProgrammaticLaunchBatchLimitTests: XCTestCase {
    func testAutoStopsAt512ImagesPerDevice() {
        XCTAssertTrue(ProgrammaticLaunchBatchLimit.allows(perDeviceBatch: 32))
        XCTAssertTrue(ProgrammaticLaunchBatchLimit.allows(perDeviceBatch: 256))
        XCTAssertTrue(ProgrammaticLaunchBatchLimit.allows(perDeviceBatch: 511))
        XCTAssertFalse(ProgrammaticLaunchBatchLimit.allows(perDeviceBatch: 512))
        XCTAssertFalse(ProgrammaticLaunchBatchLimit.allows(perDeviceBatch: 1024))
    }
}

/// Note [NCCL blocks at large batches]: the cap applies from 512 images per
/// GPU on one machine, never across machines; a user's NCCL_MAX_CTAS wins.
final class NCCLBlockLimitTests: XCTestCase {
    func testTheCapDependsOnTheBatchAndTheMachine() {
        XCTAssertNil(NCCLBlockLimit.blocks(perDeviceBatch: 128, ranksShareOneMachine: true))
        XCTAssertNil(NCCLBlockLimit.blocks(perDeviceBatch: 511, ranksShareOneMachine: true))
        XCTAssertEqual(NCCLBlockLimit.blocks(perDeviceBatch: 512, ranksShareOneMachine: true), 8)
        XCTAssertEqual(NCCLBlockLimit.blocks(perDeviceBatch: 2048, ranksShareOneMachine: true), 8)
        XCTAssertNil(NCCLBlockLimit.blocks(perDeviceBatch: 2048, ranksShareOneMachine: false))
    }

    func testAUsersSettingWins() {
        let previous = ProcessInfo.processInfo.environment["NCCL_MAX_CTAS"]
        defer { if let previous { setenv("NCCL_MAX_CTAS", previous, 1) } else { unsetenv("NCCL_MAX_CTAS") } }
        setenv("NCCL_MAX_CTAS", "16", 1)
        XCTAssertEqual(NCCLBlockLimit.apply(perDeviceBatch: 512, ranksShareOneMachine: true), "NCCL_MAX_CTAS=16 (from the environment)")
        XCTAssertEqual(ProcessInfo.processInfo.environment["NCCL_MAX_CTAS"], "16")
        unsetenv("NCCL_MAX_CTAS")
        XCTAssertNil(NCCLBlockLimit.apply(perDeviceBatch: 128, ranksShareOneMachine: true))
        XCTAssertNil(ProcessInfo.processInfo.environment["NCCL_MAX_CTAS"])
        XCTAssertNotNil(NCCLBlockLimit.apply(perDeviceBatch: 1024, ranksShareOneMachine: true))
        XCTAssertEqual(ProcessInfo.processInfo.environment["NCCL_MAX_CTAS"], "8")
    }
}
