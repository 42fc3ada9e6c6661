import CCUDA
import CohortCUDA
import CohortKernels
import CohortTensor
import Foundation
import XCTest

/// Note [Convolution algorithm cache] without a GPU: keys, persistence, and
/// several writers sharing one file.
final class ConvolutionAlgorithmCacheTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-algorithms-\(UUID().uuidString)")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    let geometry = Conv2dGeometry(batch: 512, inputChannels: 64, outputChannels: 64, inputHeight: 32, inputWidth: 32,
                                  kernelSize: 3, stride: 1, padding: 1)

    func key(_ direction: String = "forward", dtype: DType = .bfloat16, tf32: Bool = true, card: String = "NVIDIA H200",
             cudnn: Int = 91400, geometry: Conv2dGeometry? = nil) -> String {
        ConvolutionAlgorithmCache.key(device: card, cudnnVersion: cudnn, geometry: geometry ?? self.geometry, dtype: dtype,
                                      direction: direction, allowsTF32: tf32)
    }

    /// Everything the choice depends on is in the key.
    func testKeysSeparateWhatTheChoiceDependsOn() {
        var other = geometry
        other.stride = 2
        let keys = [key(), key("backward data"), key(dtype: .float32), key(tf32: false), key(card: "NVIDIA H100 80GB HBM3"),
                    key(cudnn: 91900), key(geometry: other)]
        XCTAssertEqual(Set(keys).count, keys.count, "\(keys)")
        XCTAssertEqual(key(), key(), "the same question gives the same key")
    }

    /// A choice written by one run is read by the next.
    func testChoicesSurviveTheProcess() throws {
        let first = ConvolutionAlgorithmCache(directory: directory)
        XCTAssertNil(first.entry(key()))
        first.store(.init(algorithm: 1, mathType: 1, milliseconds: 0.09), for: key())
        XCTAssertEqual(first.entry(key())?.algorithm, 1)
        let next = ConvolutionAlgorithmCache(directory: directory)
        XCTAssertEqual(next.entry(key()), .init(algorithm: 1, mathType: 1, milliseconds: 0.09))
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory.appendingPathComponent(ConvolutionAlgorithmCache.fileName).path))
    }

    /// Two writers that started from the same (empty) file both keep their choices.
    func testWritersMergeInsteadOfOverwriting() {
        let a = ConvolutionAlgorithmCache(directory: directory), b = ConvolutionAlgorithmCache(directory: directory)
        a.store(.init(algorithm: 1, mathType: 1, milliseconds: 0.1), for: key("forward"))
        b.store(.init(algorithm: 0, mathType: 1, milliseconds: 0.2), for: key("backward data"))
        let reader = ConvolutionAlgorithmCache(directory: directory)
        XCTAssertEqual(reader.entry(key("forward"))?.algorithm, 1)
        XCTAssertEqual(reader.entry(key("backward data"))?.algorithm, 0)
    }

    /// A damaged file is ignored and replaced; no directory keeps choices in memory only.
    func testADamagedFileOrNoDirectoryCostsOnlyTheSearch() throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let file = directory.appendingPathComponent(ConvolutionAlgorithmCache.fileName)
        try Data("{not json".utf8).write(to: file)
        let cache = ConvolutionAlgorithmCache(directory: directory)
        XCTAssertNil(cache.entry(key()))
        cache.store(.init(algorithm: 6, mathType: 1, milliseconds: 0.3), for: key())
        XCTAssertEqual(ConvolutionAlgorithmCache(directory: directory).entry(key())?.algorithm, 6)

        let memoryOnly = ConvolutionAlgorithmCache(directory: nil)
        memoryOnly.store(.init(algorithm: 2, mathType: 0, milliseconds: 1), for: key())
        XCTAssertEqual(memoryOnly.entry(key())?.algorithm, 2)
        XCTAssertNil(memoryOnly.url)
    }

    /// Note [Two search rounds]: per (algorithm, math type) the best successful
    /// time over the rounds; a candidate that failed once but ran once keeps
    /// its run; fastest first, failures last.
    func testSearchRoundsKeepEachCandidatesBestTime() {
        func result(_ algorithm: Int32, _ math: Int32, _ ms: Float, status: cudnnStatus_t = 0) -> CohortCUDNNConvolutionPerf {
            var perf = CohortCUDNNConvolutionPerf()
            (perf.algorithm, perf.mathType, perf.time, perf.status) = (algorithm, math, ms, status)
            return perf
        }
        // Round 1: algorithm 1's first launch paid a one-time cost; algorithm 3 failed.
        let first = CUDABackend.keepingFastest([], [result(0, 1, 0.30), result(1, 1, 0.50), result(3, 1, 0, status: 9),
                                                    result(1, 0, 0.90)])
        XCTAssertEqual(first.map(\.algorithm), [0, 1, 1, 3])
        let second = CUDABackend.keepingFastest(first, [result(1, 1, 0.20), result(0, 1, 0.31), result(3, 1, 0.40),
                                                        result(1, 0, 0.95)][...])
        XCTAssertEqual(second.map { [$0.algorithm, $0.mathType] }, [[1, 1], [0, 1], [3, 1], [1, 0]])
        XCTAssertEqual(second.map(\.time), [0.20, 0.30, 0.40, 0.90])
        XCTAssertTrue(second.allSatisfy { $0.status == 0 })
    }
}
