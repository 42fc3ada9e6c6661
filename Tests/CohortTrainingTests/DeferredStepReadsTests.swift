import CohortData
import CohortKernels
import CohortTensor
import CohortTraining
import Foundation
import XCTest

/// Note [Deferred step reads]: replayed steps' losses are read one logging
/// window late, from snapshots, with downloads that wait for the step's
/// stamp alone; the figures must be each step's own, as reading at once
/// gives. On `TapeBackend` posing as a GPU (timestamps inside graphs turn
/// the deferral off, which gives the at-once figures to compare with).
final class DeferredStepReadsTests: XCTestCase {
    struct Run {
        var steps: [[String: Any]]
        var epochs: [[String: Any]]
        var backend: TapeBackend
    }

    func train(deferred: Bool) throws -> Run {
        let backend = TapeBackend(posesAsGPU: true, timestampsInsideGraphs: !deferred)
        let configuration = TrainingConfiguration(architecture: .smallcnn, epochs: 2, batchSize: 16, learningRate: 0.05,
                                                  seed: 5, logEvery: 3)
        let records = try backend.trainedMetrics(configuration, dataSeed: 2)
        return Run(steps: records.filter { $0["event"] as? String == "step" },
                   epochs: records.filter { $0["event"] as? String == "epoch" }, backend: backend)
    }

    func testLateReadsGiveEachStepsOwnFiguresWithoutDrainingTheQueue() throws {
        let late = try train(deferred: true), atOnce = try train(deferred: false)
        // Logged every 3 steps and at each epoch's last (10 steps): steps 3, 6, 9, 10 of each epoch, in order.
        XCTAssertEqual(late.steps.map { $0["step"] as? Int }, [3, 6, 9, 10, 3, 6, 9, 10])
        XCTAssertEqual(late.steps.map { $0["global_step"] as? Int }, atOnce.steps.map { $0["global_step"] as? Int })
        let lateLosses = late.steps.compactMap { $0["loss"] as? Double }
        XCTAssertEqual(lateLosses.count, 8)
        XCTAssertEqual(lateLosses, atOnce.steps.compactMap { $0["loss"] as? Double })
        XCTAssertEqual(Set(lateLosses).count, lateLosses.count, "each record should carry its own step's loss")
        for (a, b) in zip(late.epochs, atOnce.epochs) {
            XCTAssertEqual(a["train_loss"] as? Double, b["train_loss"] as? Double)
            XCTAssertEqual(a["train_accuracy"] as? Double, b["train_accuracy"] as? Double)
        }
        for record in late.steps { XCTAssertNotNil(record["device_step_seconds"] as? Double, "\(record)") }
        // Loss and correct count per logged step, all through downloads that wait for a stamp alone.
        XCTAssertEqual(late.backend.downloadsAfterTimestamp, 2 * 8)
        XCTAssertEqual(atOnce.backend.downloadsAfterTimestamp, 0)
        XCTAssertLessThan(late.backend.downloads, atOnce.backend.downloads - 8)
    }
}
