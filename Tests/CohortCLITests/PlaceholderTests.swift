import XCTest

final class CohortCLITestsPlaceholder: XCTestCase {
    func testBuilds() {}
}
