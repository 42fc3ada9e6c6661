import XCTest

final class CohortTensorTestsPlaceholder: XCTestCase {
    func testBuilds() {}
}
