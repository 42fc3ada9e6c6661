import CohortOptim
import Foundation
import XCTest

/// Expected values are worked by hand from the formulas in
/// `LearningRateSchedule`'s documentation; tolerance 1e-6 relative (Float results).
final class LearningRateScheduleTests: XCTestCase {
    private func assertRates(_ schedule: LearningRateSchedule, _ expected: [Int: Double],
                             file: StaticString = #filePath, line: UInt = #line) {
        for (step, rate) in expected.sorted(by: { $0.key < $1.key }) {
            XCTAssertEqual(Double(schedule.learningRate(atStep: step)), rate, accuracy: 1e-6 * max(1, rate),
                           "step \(step) of \(schedule)", file: file, line: line)
        }
    }

    func testConstant() throws {
        let schedule = try LearningRateSchedule(baseLR: 0.1, decay: .constant, totalSteps: 50, stepsPerEpoch: 10)
        assertRates(schedule, [0: 0.1, 25: 0.1, 49: 0.1, 500: 0.1])
    }

    func testCosineStartMiddleEnd() throws {
        let schedule = try LearningRateSchedule(baseLR: 0.1, decay: .cosine(finalFactor: 0), totalSteps: 100,
                                                stepsPerEpoch: 10)
        // 0.1 * (1 + cos(pi/4)) / 2 = 0.0853553390593...
        assertRates(schedule, [0: 0.1, 25: 0.085355339059, 50: 0.05, 100: 0, 250: 0])
    }

    func testCosineToMinimumAfterWarmup() throws {
        let schedule = try LearningRateSchedule(baseLR: 0.1, decay: .cosine(finalFactor: 0.1), totalSteps: 110,
                                                stepsPerEpoch: 10, warmupSteps: 10)
        // Warmup 0 -> 0.1 over 10 steps; then 0.1 * (0.1 + 0.9 * (1 + cos(pi p)) / 2), p = (t - 10) / 100.
        assertRates(schedule, [0: 0, 5: 0.05, 9: 0.09, 10: 0.1, 60: 0.055, 110: 0.01, 111: 0.01])
    }

    func testWarmupFromStartFactor() throws {
        let schedule = try LearningRateSchedule(baseLR: 2, decay: .constant, totalSteps: 20, stepsPerEpoch: 4,
                                                warmupSteps: 4, warmupStartFactor: 0.25)
        // factor = 0.25 + 0.75 * t / 4
        assertRates(schedule, [0: 0.5, 1: 0.875, 2: 1.25, 3: 1.625, 4: 2, 19: 2])
    }

    func testStepEveryKEpochs() throws {
        let schedule = try LearningRateSchedule(baseLR: 1, decay: .step(everyEpochs: 3, gamma: 0.5), totalSteps: 50,
                                                stepsPerEpoch: 5)
        assertRates(schedule, [0: 1, 14: 1, 15: 0.5, 29: 0.5, 30: 0.25, 45: 0.125])
    }

    func testMilestonesCountEpochsFromTheStartOfTheRun() throws {
        let schedule = try LearningRateSchedule(baseLR: 1, decay: .milestones(epochs: [2, 4], gamma: 0.1),
                                                epochs: 6, stepsPerEpoch: 10, warmupEpochs: 1)
        assertRates(schedule, [0: 0, 5: 0.5, 10: 1, 19: 1, 20: 0.1, 39: 0.1, 40: 0.01, 59: 0.01])
    }

    func testLinearDecay() throws {
        let toZero = try LearningRateSchedule(baseLR: 1, decay: .linear(finalFactor: 0), totalSteps: 100,
                                              stepsPerEpoch: 10, warmupSteps: 20)
        assertRates(toZero, [10: 0.5, 20: 1, 60: 0.5, 99: 0.0125, 100: 0, 1000: 0])
        let toFactor = try LearningRateSchedule(baseLR: 1, decay: .linear(finalFactor: 0.2), totalSteps: 100,
                                                stepsPerEpoch: 10, warmupSteps: 20)
        assertRates(toFactor, [20: 1, 60: 0.6, 100: 0.2])
    }

    func testWarmupRisesAndDecaysNeverRise() throws {
        for decay: LearningRateSchedule.Decay in [.constant, .step(everyEpochs: 3, gamma: 0.3),
                                                   .milestones(epochs: [3, 7], gamma: 0.1),
                                                   .cosine(finalFactor: 0.05), .linear(finalFactor: 0)] {
            let schedule = try LearningRateSchedule(baseLR: 0.4, decay: decay, epochs: 10, stepsPerEpoch: 7,
                                                    warmupEpochs: 2)
            let rates = (0...80).map { schedule.learningRate(atStep: $0) }
            for step in 1...14 { XCTAssertGreaterThan(rates[step], rates[step - 1], "warmup, \(schedule)") }
            for step in 15...80 { XCTAssertLessThanOrEqual(rates[step], rates[step - 1], "step \(step), \(schedule)") }
            XCTAssertEqual(rates[14], 0.4, "the full rate right after warmup")
        }
    }

    func testWarmupOverTheWholeRun() throws {
        let schedule = try LearningRateSchedule(baseLR: 1, decay: .cosine(finalFactor: 0), totalSteps: 4,
                                                stepsPerEpoch: 4, warmupSteps: 4)
        assertRates(schedule, [0: 0, 2: 0.5, 3: 0.75, 4: 0])
    }

    func testDescription() throws {
        let cosine = try LearningRateSchedule(baseLR: 0.4, decay: .cosine(finalFactor: 0), epochs: 90,
                                              stepsPerEpoch: 100, warmupEpochs: 5)
        XCTAssertEqual(cosine.description, "lr 0.4, linear warmup 5 epochs from 0.0 -> cosine to 0.0 over 85 epochs")
        let milestones = try LearningRateSchedule(baseLR: 0.1, decay: .milestones(epochs: [30, 60], gamma: 0.1),
                                                  totalSteps: 9000, stepsPerEpoch: 100, warmupSteps: 250)
        XCTAssertEqual(milestones.description,
                       "lr 0.1, linear warmup 250 steps from 0.0 -> step decay x0.1 at epochs 30, 60")
        let constant = try LearningRateSchedule(baseLR: 0.01, decay: .constant, totalSteps: 10, stepsPerEpoch: 10)
        XCTAssertEqual(constant.description, "lr 0.01, constant")
    }

    func testNamesForTheCommandLine() {
        XCTAssertEqual(LearningRateSchedule.Name.allCases.map(\.rawValue), ["constant", "step", "cosine", "linear"])
        XCTAssertEqual(LearningRateSchedule.Name(rawValue: "cosine"), .cosine)
        XCTAssertNil(LearningRateSchedule.Name(rawValue: "exponential"))
        XCTAssertEqual(LearningRateSchedule.Decay.milestones(epochs: [1], gamma: 0.1).name, .step)
        XCTAssertEqual(LearningRateSchedule.Decay.step(everyEpochs: 1, gamma: 0.1).name, .step)
    }

    func testCodableRoundTripAndValidation() throws {
        let schedule = try LearningRateSchedule(baseLR: 0.2, decay: .milestones(epochs: [5, 8], gamma: 0.2),
                                                totalSteps: 1000, stepsPerEpoch: 100, warmupSteps: 50,
                                                warmupStartFactor: 0.1)
        let data = try JSONEncoder().encode(schedule)
        XCTAssertEqual(try JSONDecoder().decode(LearningRateSchedule.self, from: data), schedule)

        var object = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        object["warmupSteps"] = 5000
        let invalid = try JSONSerialization.data(withJSONObject: object)
        XCTAssertThrowsError(try JSONDecoder().decode(LearningRateSchedule.self, from: invalid)) {
            XCTAssertTrue("\($0)".contains("warmup"), "\($0)")
        }
    }

    func testRejectsSettingsThatMakeNoSchedule() {
        func rejects(_ make: @autoclosure () throws -> LearningRateSchedule, mentioning word: String,
                     line: UInt = #line) {
            XCTAssertThrowsError(try make(), line: line) { error in
                XCTAssertTrue(error is LearningRateScheduleError, line: line)
                XCTAssertTrue("\(error)".contains(word), "\(error)", line: line)
            }
        }
        rejects(try LearningRateSchedule(baseLR: -1, decay: .constant, totalSteps: 10, stepsPerEpoch: 1),
                mentioning: "learning rate")
        rejects(try LearningRateSchedule(baseLR: 1, decay: .constant, totalSteps: 0, stepsPerEpoch: 1),
                mentioning: "at least one step")
        rejects(try LearningRateSchedule(baseLR: 1, decay: .constant, totalSteps: 10, stepsPerEpoch: 0),
                mentioning: "steps per epoch")
        rejects(try LearningRateSchedule(baseLR: 1, decay: .constant, totalSteps: 10, stepsPerEpoch: 1,
                                         warmupSteps: 11), mentioning: "warmup")
        rejects(try LearningRateSchedule(baseLR: 1, decay: .constant, totalSteps: 10, stepsPerEpoch: 1,
                                         warmupSteps: 2, warmupStartFactor: 1.5), mentioning: "start factor")
        rejects(try LearningRateSchedule(baseLR: 1, decay: .milestones(epochs: [5, 3], gamma: 0.1), totalSteps: 10,
                                         stepsPerEpoch: 1), mentioning: "increasing")
        rejects(try LearningRateSchedule(baseLR: 1, decay: .step(everyEpochs: 0, gamma: 0.1), totalSteps: 10,
                                         stepsPerEpoch: 1), mentioning: "period")
        rejects(try LearningRateSchedule(baseLR: 1, decay: .cosine(finalFactor: 2), totalSteps: 10,
                                         stepsPerEpoch: 1), mentioning: "final factor")
    }
}
