import CohortOptim
import XCTest

final class LearningRateScalingTests: XCTestCase {
    func testRules() {
        XCTAssertEqual(LearningRateScaling.none.scaled(baseLR: 0.1, baseBatch: 256, batch: 1024), 0.1)
        XCTAssertEqual(LearningRateScaling.linear.scaled(baseLR: 0.1, baseBatch: 256, batch: 1024), 0.4, accuracy: 1e-7)
        XCTAssertEqual(LearningRateScaling.linear.scaled(baseLR: 0.1, baseBatch: 256, batch: 64), 0.025, accuracy: 1e-8)
        XCTAssertEqual(LearningRateScaling.squareRoot.scaled(baseLR: 0.1, baseBatch: 128, batch: 512), 0.2,
                       accuracy: 1e-7)
        XCTAssertEqual(LearningRateScaling.squareRoot.scaled(baseLR: 1, baseBatch: 100, batch: 200),
                       Float(2.0.squareRoot()), accuracy: 1e-7)
        for rule in LearningRateScaling.allCases {
            XCTAssertEqual(rule.scaled(baseLR: 0.3, baseBatch: 512, batch: 512), 0.3, "\(rule) at the base batch")
        }
    }

    func testCommandLineSpellings() {
        XCTAssertEqual(LearningRateScaling.allCases.map(\.rawValue), ["none", "linear", "sqrt"])
        XCTAssertEqual(LearningRateScaling(rawValue: "sqrt"), .squareRoot)
        XCTAssertNil(LearningRateScaling(rawValue: "cubic"))
    }
}
