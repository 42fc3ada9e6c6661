import XCTest

final class CohortTrainingTestsPlaceholder: XCTestCase {
    func testBuilds() {}
}
