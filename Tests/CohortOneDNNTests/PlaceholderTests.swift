import XCTest

final class CohortOneDNNTestsPlaceholder: XCTestCase {
    func testBuilds() {}
}
