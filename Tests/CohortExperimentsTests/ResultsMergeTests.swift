import CohortExperiments
import Foundation
import XCTest

/// Note [Merging results]: a suite run in parts becomes one results file.
final class ResultsMergeTests: XCTestCase {
    func testTheLaterCallWinsWhereBothMeasuredAndEveryCallIsStamped() throws {
        let first = SampleResults.make()
        var second = SampleResults.make()
        second.metadata.commit = "bbbbbbb"
        second.metadata.date = "2026-11-28T00:00:00Z"
        second.metadata.command = "cohort experiments --only q1"
        second.metadata.environment = nil
        // The second call measured Q1 at one batch again (faster) and one batch the first did not.
        let again = try XCTUnwrap(first.q1.records.first)
        var faster = again
        faster.epochSeconds /= 2
        var extra = again
        extra.batchSize = 4096
        second.q1 = Section(records: [faster, extra])
        second.q2 = .notRun("not requested (--only)")

        let merged = try ResultsMerge.merge([first, second])
        XCTAssertEqual(merged.q1.records.count, first.q1.records.count + 1)
        XCTAssertEqual(merged.q1.records.first { $0.framework == again.framework && $0.batchSize == again.batchSize
                                                  && $0.precision == again.precision && $0.device == again.device }?.epochSeconds,
                       faster.epochSeconds)
        XCTAssertEqual(merged.q2, first.q2, "a section only the first call ran stays as it was")
        XCTAssertEqual(merged.metadata.commit, "\(first.metadata.commit) + bbbbbbb")
        XCTAssertEqual(merged.metadata.date, "2026-11-28T00:00:00Z")
        XCTAssertEqual(merged.metadata.environment, "call 1: NCCL_NVLS_ENABLE=0; call 2: none", "each call's switches, where they differ")
        XCTAssertEqual(try ResultsMerge.merge([first, first]).metadata.environment, "NCCL_NVLS_ENABLE=0")
        XCTAssertTrue(merged.metadata.notes[0].contains("call 2: commit bbbbbbb"), merged.metadata.notes[0])
        XCTAssertTrue(merged.metadata.notes[1].contains("Q1: call 1 and call 2"), merged.metadata.notes[1])
        XCTAssertTrue(merged.metadata.notes[1].contains("Q2: call 1;"), merged.metadata.notes[1])
        // It is an ordinary results file: it encodes and renders.
        XCTAssertEqual(try ResultsFile.decode(ResultsFile.encode(merged)), merged)
        XCTAssertTrue(MarkdownReport.render(merged).contains("Merged from 2 calls"))
    }

    func testDifferentMachinesAndNothingAreRefused() throws {
        var other = SampleResults.make()
        other.metadata.card = "NVIDIA H100 80GB HBM3"
        XCTAssertThrowsError(try ResultsMerge.merge([SampleResults.make(), other])) { error in
            XCTAssertTrue("\(error)".contains("different machines"), "\(error)")
        }
        XCTAssertThrowsError(try ResultsMerge.merge([]))
        XCTAssertEqual(try ResultsMerge.merge([SampleResults.make()]), SampleResults.make(), "one file is itself")
    }
}
