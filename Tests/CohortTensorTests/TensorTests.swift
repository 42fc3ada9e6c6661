import CohortTensor
import XCTest

final class TensorTests: XCTestCase {
    func testViewsShareStorage() {
        let flat = Tensor([0, 1, 2, 3, 4, 5, 6, 7], shape: [8])
        let view = flat.view(elementOffset: 2, shape: [2, 2])
        XCTAssertEqual(view.toArray(), [2, 3, 4, 5])
        view.copy(from: [9, 9, 9, 9])
        XCTAssertEqual(flat.toArray(), [0, 1, 9, 9, 9, 9, 6, 7])
        XCTAssertEqual(flat.reshaped([2, 4]).shape, [2, 4])
    }

    func testBFloat16RoundsToNearestEven() {
        XCTAssertEqual(BFloat16.fromFloat(1), 0x3F80)
        XCTAssertEqual(BFloat16.toFloat(0x3F80), 1)
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1).
        XCTAssertEqual(BFloat16.fromFloat(1 + 0x1p-8), 0x3F80)
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: to the even one, 1 + 2^-6.
        XCTAssertEqual(BFloat16.fromFloat(1 + 3 * 0x1p-8), 0x3F82)
        XCTAssertTrue(BFloat16.toFloat(BFloat16.fromFloat(.nan)).isNaN)
        let tensor = try! Tensor(shape: [3], dtype: .bfloat16, allocator: HostAllocator.shared)
        tensor.copy(from: [0.5, -2, 3.140625])
        XCTAssertEqual(tensor.toArray(), [0.5, -2, 3.140625])
    }

    func testDeviceParsing() {
        XCTAssertEqual(Device(parsing: "cpu"), .cpu)
        XCTAssertEqual(Device(parsing: "cuda"), .cuda(0))
        XCTAssertEqual(Device(parsing: "cuda:3"), .cuda(3))
        XCTAssertNil(Device(parsing: "cuda:-1"))
        XCTAssertNil(Device(parsing: "tpu"))
        XCTAssertEqual(Device.cuda(1).description, "cuda:1")
    }

    /// The steady state of training allocates nothing new: released blocks
    /// of the same rounded size are handed out again.
    func testCachingAllocatorReusesBlocks() throws {
        let allocator = CachingAllocator(underlying: HostAllocator.shared)
        for _ in 0..<10 {
            let a = try Tensor(shape: [1000], allocator: allocator)
            let b = try Tensor(shape: [300_000], allocator: allocator)
            _ = (a, b)
        }
        XCTAssertEqual(allocator.underlyingAllocations, 2)
        XCTAssertEqual(allocator.bytesInUse, 0)
        XCTAssertEqual(allocator.peakBytesInUse, CachingAllocator.roundedSize(4000) + CachingAllocator.roundedSize(1_200_000))
        XCTAssertEqual(CachingAllocator.roundedSize(1), 512)
        XCTAssertEqual(CachingAllocator.roundedSize(3 << 20), 4 << 20)
        allocator.emptyCache()
        XCTAssertEqual(allocator.bytesCached, 0)
    }
}
