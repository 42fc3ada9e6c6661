import XCTest

final class CohortOptimTestsPlaceholder: XCTestCase {
    func testBuilds() {}
}
