import CohortTestSupport
import Foundation
import XCTest

/// The large-batch remedies as flags of `cohort train` (Note [Large-batch
/// remedies]): each is stated in the header and recorded in the run record.
final class RecipeFlagsTests: XCTestCase {
    func testRecalibrationAndZeroInitResidualAreStatedAndRecorded() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-recipe-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let (status, output) = try cohort(["train", "--dataset", "synthetic", "--model", "resnet18", "--epochs", "1",
                                           "--steps-per-epoch", "1", "--batch-size", "4", "--eval-limit", "8",
                                           "--bn-recalibration-batches", "2", "--zero-init-residual", "--no-progress",
                                           "--run-dir", folder.path])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("batch-norm statistics recomputed over 2 batches before each evaluation"), output)
        XCTAssertTrue(output.contains("residual blocks starting as the identity"), output)
        let run = try String(contentsOf: folder.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
            .first { $0["event"] as? String == "run" }
        XCTAssertEqual(run?["bn_recalibration_batches"] as? String, "2")
        XCTAssertEqual(run?["zero_init_residual"] as? String, "true")

        let (bad, message) = try cohort(["train", "--dataset", "synthetic", "--bn-recalibration-batches=-1"])
        XCTAssertNotEqual(bad, 0)
        XCTAssertTrue(message.contains("--bn-recalibration-batches must be 0 or more"), message)
    }
}
