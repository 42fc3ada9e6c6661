import CohortKernels
import CohortNN
import CohortTensor
import XCTest

/// Note [Batch-norm recalibration]: momentum 1/k over k batches makes the
/// running statistics the plain average of the batches' statistics, whatever
/// they held before, without counting a batch.
final class BatchNormRecalibrationTests: XCTestCase {
    func testRecalibrationAveragesTheBatchesStatistics() throws {
        let backend = ReferenceBackend()
        let store = ParameterStore(backend: backend)
        let bn = BatchNorm2d(store: store, name: "bn", featureCount: 2)
        try store.allocate(seed: 0)
        // Running statistics far from anything the batches hold.
        backend.fill(store.value(bn.runningMean), value: 50)
        backend.fill(store.value(bn.runningVar), value: 9)
        func batch(_ values: [Float]) -> Tensor { Tensor(values, shape: [2, 1, 2, 2]) }  // N=2, H=1, W=2, C=2
        let a = batch([1, 10, 3, 14, 5, 18, 7, 22]), b = batch([2, 0, 2, 4, 6, 8, 6, 12])
        _ = bn(a, mode: .recalibration(momentum: 1))
        _ = bn(b, mode: .recalibration(momentum: 0.5))
        func statistics(_ x: Tensor) -> (mean: [Float], variance: [Float]) {
            let v = x.toArray()
            return (0..<2).reduce(into: ([Float](), [Float]())) { result, c in
                let column = stride(from: c, to: v.count, by: 2).map { v[$0] }
                let mean = column.reduce(0, +) / Float(column.count)
                let unbiased = column.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(column.count - 1)
                result.0.append(mean)
                result.1.append(unbiased)
            }
        }
        let (sa, sb) = (statistics(a), statistics(b))
        let mean = store.value(bn.runningMean).toArray(), variance = store.value(bn.runningVar).toArray()
        for c in 0..<2 {
            XCTAssertEqual(mean[c], (sa.mean[c] + sb.mean[c]) / 2, accuracy: 1e-5)
            XCTAssertEqual(variance[c], (sa.variance[c] + sb.variance[c]) / 2, accuracy: 1e-4)
        }
        XCTAssertEqual(store.counters, [0], "recalibration counts no batch")
    }
}
