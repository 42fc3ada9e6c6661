import XCTest

final class CohortNNTestsPlaceholder: XCTestCase {
    func testBuilds() {}
}
