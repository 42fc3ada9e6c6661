import CohortTensor
import XCTest

/// The caching allocator's guard for graph capture (Note [Graph capture]).
final class CachingAllocatorFreezeTests: XCTestCase {
    func testFrozenAllocatorThrowsOnAllocationAndRecordsReleases() throws {
        let allocator = CachingAllocator(underlying: HostAllocator.shared)
        var block: Storage? = try allocator.allocate(byteCount: 1000)
        let cached = try allocator.allocate(byteCount: 3000)
        let eventsBefore = allocator.events
        allocator.freeze(for: "a test capture")
        XCTAssertThrowsError(try allocator.allocate(byteCount: 10)) { error in
            XCTAssertTrue("\(error)".contains("allocation during a test capture"), "\(error)")
        }
        block = nil  // released while frozen
        XCTAssertNil(block)
        XCTAssertEqual(allocator.thaw(), [1024])
        XCTAssertEqual(allocator.events, eventsBefore + 1, "the release counts; the refused allocation does not")
        let again = try allocator.allocate(byteCount: 1000)
        XCTAssertEqual(allocator.events, eventsBefore + 2)
        XCTAssertEqual(allocator.thaw(), [])
        withExtendedLifetime((cached, again)) {}
    }
}
