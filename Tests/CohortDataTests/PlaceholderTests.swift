import XCTest

final class CohortDataTestsPlaceholder: XCTestCase {
    func testBuilds() {}
}
