import XCTest

final class CohortCheckpointTestsPlaceholder: XCTestCase {
    func testBuilds() {}
}
