import CohortDistributed
import CohortKernels
import CohortNN
import CohortTensor
import XCTest

/// A communicator of two pretend ranks that records each all-reduce and
/// halves the tensor, so a test sees that every element was reduced once.
final class RecordingCommunicator: Communicator {
    let rank = 0
    let worldSize = 2
    let name = "recording"
    /// As NCCL's: collectives ordered on the device stream, no host wait needed.
    var runsOnDeviceStream = false
    var reduced: [(offset: Int, count: Int)] = []
    let base: UnsafeMutableRawPointer

    init(base: UnsafeMutableRawPointer) { self.base = base }

    func allReduce(_ tensor: Tensor, op: ReduceOperation) throws {
        reduced.append(((UnsafeMutableRawPointer(mutating: tensor.rawPointer) - base) / 4, tensor.elementCount))
        let values = tensor.floats
        for index in values.indices { values[index] *= 0.5 }
    }
    func broadcast(_ tensor: Tensor, root: Int) throws {}
    func allGather(_ input: Tensor, into output: Tensor) throws {}
    func barrier() throws {}
    func abort(reason: String) -> Never { fatalError(reason) }
    func shutdown() throws {}
}

final class GradientReducerTests: XCTestCase {
    /// Buckets tile the flat gradient buffer from its end, the first small,
    /// the rest under the cap (a parameter larger than the cap alone).
    func testBucketsTileTheBufferInReverseOrder() throws {
        let model = try ResNet18(backend: ReferenceBackend(), classCount: 10, seed: 0)
        let store = model.store
        let communicator = RecordingCommunicator(base: store.gradients.rawPointer)
        let reducer = try GradientReducer(store: store, communicator: communicator)
        let buckets = reducer.buckets
        XCTAssertEqual(buckets.first?.range.upperBound, store.parameterCount)
        XCTAssertEqual(buckets.last?.range.lowerBound, 0)
        for (earlier, later) in zip(buckets, buckets.dropFirst()) {
            XCTAssertEqual(later.range.upperBound, earlier.range.lowerBound, "buckets must be contiguous, in reverse")
        }
        XCTAssertLessThanOrEqual(buckets[0].byteCount, GradientReducer.defaultFirstBucketCap)
        for bucket in buckets.dropFirst() where bucket.entries.count > 1 {
            XCTAssertLessThanOrEqual(bucket.byteCount, GradientReducer.defaultBucketCap)
        }
        // ResNet-18's 44.7 MB: 1 MB first, then buckets of at most 8 MB (a 9 MB weight alone).
        XCTAssertGreaterThanOrEqual(buckets.count, 3)
    }

    /// Note [Small buckets]: merged, ResNet-18's layout loses its three tiny
    /// buckets (the classifier and the batch norms between layer4's 9 MB
    /// convolutions): six buckets instead of nine, still tiling the buffer,
    /// each but the last at least 1 MB, none more than 1 MB over the cap
    /// or the largest tensor.
    func testSmallBucketsTakeTheNextLargeTensor() throws {
        let model = try ResNet18(backend: ReferenceBackend(), classCount: 10, seed: 0)
        let store = model.store
        let communicator = RecordingCommunicator(base: store.gradients.rawPointer)
        let greedy = try GradientReducer(store: store, communicator: communicator).buckets
        let merged = try GradientReducer(store: store, communicator: communicator, mergesSmallBuckets: true).buckets
        XCTAssertEqual(greedy.filter { $0.byteCount < GradientReducer.smallBucketBytes }.count, 4, "20 KB, 4 KB, 0.5 MB and the stem's 0.43 MB")
        XCTAssertEqual(greedy.count, 9)
        XCTAssertEqual(merged.count, 6)
        XCTAssertEqual(merged.first?.range.upperBound, store.parameterCount)
        XCTAssertEqual(merged.last?.range.lowerBound, 0)
        for (earlier, later) in zip(merged, merged.dropFirst()) {
            XCTAssertEqual(later.range.upperBound, earlier.range.lowerBound, "buckets must be contiguous, in reverse")
        }
        let largest = store.entries.filter { $0.kind == .trainable }.map { $0.shape.elementCount * 4 }.max()!
        for bucket in merged.dropLast() {
            XCTAssertGreaterThanOrEqual(bucket.byteCount, GradientReducer.smallBucketBytes)
            XCTAssertLessThan(bucket.byteCount, max(GradientReducer.defaultBucketCap, largest) + GradientReducer.smallBucketBytes)
        }
        XCTAssertEqual(merged.last?.entries.map { store.entries[$0].name }, greedy.last?.entries.map { store.entries[$0].name },
                       "the last bucket, never hidden behind backward, stays as small")
    }

    /// During backward each bucket is reduced once, when its last gradient
    /// is written, in the order backward fills them; --no-overlap reduces
    /// the whole buffer once afterwards.
    func testEachBucketIsReducedOnceWhenItsLastGradientIsReady() throws {
        let backend = ReferenceBackend()
        let images = Tensor((0..<(4 * 32 * 32 * 3)).map { Float($0 % 17) / 17 }, shape: [4, 32, 32, 3])
        let labels = Tensor.int32([1, 2, 3, 4])
        let criterion = try SoftmaxCrossEntropy(backend: backend)
        let plain = try SmallCNN(backend: backend, classCount: 10, seed: 1)
        criterion(logits: plain.forward(images, mode: .training), labels: labels)
        plain.backward(criterion.backward())
        let halved = plain.store.gradients.toArray().map { $0 * 0.5 }
        for overlap in [true, false] {
            let model = try SmallCNN(backend: backend, classCount: 10, seed: 1)
            let store = model.store
            let communicator = RecordingCommunicator(base: store.gradients.rawPointer)
            let reducer = try GradientReducer(store: store, communicator: communicator, overlap: overlap,
                                          bucketCap: 40_000, firstBucketCap: 4_000)
            XCTAssertGreaterThan(reducer.buckets.count, 2)
            criterion(logits: model.forward(images, mode: .training), labels: labels)
            reducer.prepareForBackward()
            model.backward(criterion.backward())
            if overlap {
                // Reduced during backward, bucket by bucket, in reduction order.
                XCTAssertEqual(communicator.reduced.map(\.offset), reducer.buckets.map(\.range.lowerBound))
                XCTAssertEqual(communicator.reduced.map(\.count), reducer.buckets.map(\.range.count))
            } else {
                XCTAssertTrue(communicator.reduced.isEmpty)
            }
            try reducer.finishBackward()
            if !overlap {
                XCTAssertEqual(communicator.reduced.count, 1)
                XCTAssertEqual(communicator.reduced.first?.count, store.parameterCount)
            }
            XCTAssertEqual(reducer.lastStep.callBytes.reduce(0, +), store.parameterCount * 4)
            XCTAssertEqual(store.gradients.toArray(), halved, "overlap \(overlap): every gradient reduced exactly once")
        }
    }

    /// A host communicator (MPI) needs the backend synchronised before each
    /// bucket; one on the device stream (NCCL) must not wait for it.
    func testOnlyHostCommunicatorsWaitForTheDeviceBeforeEachBucket() throws {
        let backend = ReferenceBackend()
        let images = Tensor((0..<(2 * 32 * 32 * 3)).map { Float($0 % 13) / 13 }, shape: [2, 32, 32, 3])
        let labels = Tensor.int32([3, 7])
        let criterion = try SoftmaxCrossEntropy(backend: backend)
        for onDeviceStream in [false, true] {
            for overlap in [true, false] {
                let model = try SmallCNN(backend: backend, classCount: 10, seed: 2)
                let communicator = RecordingCommunicator(base: model.store.gradients.rawPointer)
                communicator.runsOnDeviceStream = onDeviceStream
                let reducer = try GradientReducer(store: model.store, communicator: communicator, overlap: overlap,
                                              bucketCap: 40_000, firstBucketCap: 4_000)
                criterion(logits: model.forward(images, mode: .training), labels: labels)
                reducer.prepareForBackward()
                model.backward(criterion.backward())
                try reducer.finishBackward()
                let calls = overlap ? reducer.buckets.count : 1
                XCTAssertEqual(communicator.reduced.count, calls)
                XCTAssertEqual(reducer.lastStep.hostSynchronizations, onDeviceStream ? 0 : calls,
                               "device stream \(onDeviceStream), overlap \(overlap)")
            }
        }
    }
}
