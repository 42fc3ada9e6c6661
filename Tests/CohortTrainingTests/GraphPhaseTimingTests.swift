import CohortData
import CohortKernels
import CohortTensor
import CohortTraining
import Foundation
import XCTest

/// Note [Timing inside graphs]: a step replayed from a graph reports its
/// phases (forward, backward, optimizer) only where the backend stamps
/// timestamps inside graphs; otherwise only its whole, as before. Run on
/// `TapeBackend` posing as a GPU, whose clock ticks once per op, so each
/// phase's "seconds" count the ops in it.
final class GraphPhaseTimingTests: XCTestCase {
    func loggedSteps(timestampsInsideGraphs: Bool, gradientMarks: Bool = false) throws -> [[String: Any]] {
        var configuration = TrainingConfiguration(architecture: .smallcnn, epochs: 1, batchSize: 16, learningRate: 0.05,
                                                  seed: 3, logEvery: 2)
        configuration.gradientMarks = gradientMarks
        return try TapeBackend(posesAsGPU: true, timestampsInsideGraphs: timestampsInsideGraphs)
            .trainedMetrics(configuration, dataSeed: 1).filter { $0["event"] as? String == "step" }
    }

    /// The logged steps whose window was replayed whole (so the logged step itself was a replay).
    func replayed(_ steps: [[String: Any]]) -> [[String: Any]] {
        steps.filter {
            guard let replays = $0["graph_replayed_steps"] as? Int else { return false }
            return replays > 0 && replays == $0["steps_timed"] as? Int
        }
    }

    func testReplayedStepsReportTheirPhasesOnlyWithTimestampsInsideGraphs() throws {
        let timed = replayed(try loggedSteps(timestampsInsideGraphs: true))
        XCTAssertFalse(timed.isEmpty, "no replayed logged step")
        for record in timed {
            let step = try XCTUnwrap(record["device_step_seconds"] as? Double)
            let forward = try XCTUnwrap(record["device_forward_seconds"] as? Double)
            let backward = try XCTUnwrap(record["device_backward_seconds"] as? Double)
            let optimizer = try XCTUnwrap(record["device_optimizer_seconds"] as? Double)
            XCTAssertGreaterThan(forward, 0)
            XCTAssertGreaterThan(backward, 0)
            XCTAssertGreaterThan(optimizer, 0)
            // The replay's first node comes after the learning-rate fill, inside forward's time.
            let replayStart = try XCTUnwrap(record["device_replay_start_seconds"] as? Double)
            XCTAssertGreaterThan(replayStart, 0)
            XCTAssertLessThan(replayStart, forward)
            // One rank: nothing between backward and the optimizer; the phases add up to the step.
            XCTAssertEqual(forward + backward + optimizer, step, accuracy: 1e-9)
        }
        let untimed = replayed(try loggedSteps(timestampsInsideGraphs: false))
        XCTAssertFalse(untimed.isEmpty)
        for record in untimed {
            XCTAssertNotNil(record["device_step_seconds"] as? Double)
            XCTAssertNil(record["device_forward_seconds"])
        }
    }

    /// Note [Split step graphs]: `splitsGraphAfterForward` splits every
    /// capture once, between forward and backward, and changes no value:
    /// the logged losses are the same as from one graph.
    func testSplitStepGraphSplitsEachCaptureOnceAndChangesNothing() throws {
        func run(split: Bool) throws -> (TapeBackend, [[String: Any]]) {
            var configuration = TrainingConfiguration(architecture: .smallcnn, epochs: 1, batchSize: 16, learningRate: 0.05,
                                                      seed: 3, logEvery: 2)
            configuration.splitsGraphAfterForward = split
            let backend = TapeBackend(posesAsGPU: true, timestampsInsideGraphs: true)
            let steps = try backend.trainedMetrics(configuration, dataSeed: 1).filter { $0["event"] as? String == "step" }
            return (backend, steps)
        }
        let (whole, wholeSteps) = try run(split: false)
        let (split, splitSteps) = try run(split: true)
        XCTAssertEqual(whole.splitPoints, [])
        XCTAssertGreaterThan(split.captures, 0)
        XCTAssertEqual(split.splitPoints.count, split.captures)
        // Forward's ops come before the split, backward's and the optimizer's after it.
        XCTAssertTrue(split.splitPoints.allSatisfy { $0 > 0 })
        XCTAssertFalse(replayed(splitSteps).isEmpty, "no replayed logged step")
        XCTAssertEqual(wholeSteps.map { $0["loss"] as? Double }, splitSteps.map { $0["loss"] as? Double })
        for record in replayed(splitSteps) {
            let forward = try XCTUnwrap(record["device_forward_seconds"] as? Double)
            let step = try XCTUnwrap(record["device_step_seconds"] as? Double)
            XCTAssertGreaterThan(forward, 0)
            XCTAssertLessThan(forward, step)
        }
    }

    /// Note [Backward progress marks]: every convolution weight's mark lies
    /// inside backward, in the order backward writes them (the last layer
    /// first), on replayed steps as on eager ones; without the option, none.
    func testGradientMarksFallInsideBackwardInItsOrder() throws {
        let timed = replayed(try loggedSteps(timestampsInsideGraphs: true, gradientMarks: true))
        XCTAssertFalse(timed.isEmpty, "no replayed logged step")
        for record in timed {
            let forward = try XCTUnwrap(record["device_forward_seconds"] as? Double)
            let backward = try XCTUnwrap(record["device_backward_seconds"] as? Double)
            let marks = try XCTUnwrap(record["device_gradient_ready_seconds"] as? [Double])
            let names = try XCTUnwrap(record["device_gradient_ready_names"] as? [String])
            XCTAssertEqual(names, ["conv3.weight", "conv2.weight", "conv1.weight"], "SmallCNN's convolutions, last first")
            XCTAssertEqual(marks.count, names.count)
            XCTAssertEqual(marks, marks.sorted(), "marks in backward's order")
            XCTAssertGreaterThan(marks.first!, forward)
            XCTAssertLessThanOrEqual(marks.last!, forward + backward + 1e-9)
        }
        for record in replayed(try loggedSteps(timestampsInsideGraphs: true)) {
            XCTAssertNil(record["device_gradient_ready_seconds"])
        }
    }
}
