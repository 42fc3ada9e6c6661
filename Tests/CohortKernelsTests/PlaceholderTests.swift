import XCTest

final class CohortKernelsTestsPlaceholder: XCTestCase {
    func testBuilds() {}
}
