import CohortExperiments
import XCTest

/// The derived figures against hand-computed values.
final class ScalingFiguresTests: XCTestCase {
    func testSpeedupAndEfficiency() {
        XCTAssertEqual(ScalingFigures.speedup(baselineSeconds: 8, seconds: 2.5), 3.2, accuracy: 1e-12)
        XCTAssertEqual(ScalingFigures.efficiency(speedup: 3.2, devices: 4), 0.8, accuracy: 1e-12)
    }

    /// nccl-tests: busbw = algbw × 2(n−1)/n; 44.7 MB in 0.223 ms on 4 GPUs is the ~300 GB/s of DEVICE.md.
    func testBusBandwidthFollowsNCCLTests() {
        XCTAssertEqual(ScalingFigures.allReduceBusbw(algbw: 100, ranks: 2), 100, accuracy: 1e-12)
        XCTAssertEqual(ScalingFigures.allReduceBusbw(algbw: 100, ranks: 4), 150, accuracy: 1e-12)
        XCTAssertEqual(ScalingFigures.allReduceBusbw(algbw: 100, ranks: 8), 175, accuracy: 1e-12)
        XCTAssertEqual(ScalingFigures.allReduceBusbw(algbw: 100, ranks: 1), 0)
        let algbw = ScalingFigures.algbw(bytes: 11_173_962 * 4, seconds: 0.223e-3)
        XCTAssertEqual(algbw, 200.4, accuracy: 0.1)
        XCTAssertEqual(ScalingFigures.allReduceBusbw(algbw: algbw, ranks: 4), 300.6, accuracy: 0.1)
    }

    func testExposedCommunicationAndOverlap() {
        XCTAssertEqual(ScalingFigures.exposedCommunication(stepSeconds: 0.012, withoutCommunication: 0.010), 0.002, accuracy: 1e-15)
        XCTAssertEqual(ScalingFigures.exposedCommunication(stepSeconds: 0.0099, withoutCommunication: 0.010), 0)
        XCTAssertEqual(ScalingFigures.overlapFraction(busySeconds: 0.004, exposedSeconds: 0.001), 0.75, accuracy: 1e-12)
        XCTAssertEqual(ScalingFigures.overlapFraction(busySeconds: 0.004, exposedSeconds: 0.006), 0)
        XCTAssertEqual(ScalingFigures.overlapFraction(busySeconds: 0, exposedSeconds: 0), 1)
    }

    func testQ3RecordDerivesItsFigures() {
        let record = Q3Record(strategy: .ddp, precision: .fp32, gpus: 4, perDeviceBatch: 128, stepSeconds: 0.0062,
                              stepSecondsWithoutCommunication: 0.0060, computeSeconds: 0.0058,
                              communicationBusySeconds: 0.0004, bytesPerStep: 40_000_000)
        XCTAssertEqual(record.exposedCommunicationSeconds, 0.0002, accuracy: 1e-12)
        XCTAssertEqual(record.overlapFraction, 0.5, accuracy: 1e-9)
        XCTAssertEqual(record.algbwGBps, 100, accuracy: 1e-9)
        XCTAssertEqual(record.busbwGBps, 150, accuracy: 1e-9)
    }

    /// Speedup against the 1-GPU figure of the same framework, strategy, precision and batch;
    /// DP without its own 1-GPU row borrows DDP's; no baseline leaves nil.
    func testQ2ScalingIsDerivedFromTheMatchingBaseline() {
        let records = [
            Q2Record(framework: .cohort, strategy: .ddp, precision: .fp32, gpus: 1, perDeviceBatch: 128, epochSeconds: 4),
            Q2Record(framework: .cohort, strategy: .ddp, precision: .fp32, gpus: 4, perDeviceBatch: 128, epochSeconds: 1.25),
            Q2Record(framework: .cohort, strategy: .dp, precision: .fp32, gpus: 2, perDeviceBatch: 128, epochSeconds: 4),
            Q2Record(framework: .pytorch, strategy: .ddp, precision: .fp32, gpus: 1, perDeviceBatch: 128, epochSeconds: 6),
            Q2Record(framework: .cohort, strategy: .ddp, precision: .fp32, gpus: 4, perDeviceBatch: 512, epochSeconds: 1),
        ].withDerivedScaling()
        XCTAssertEqual(records[0].speedup, 1)
        XCTAssertEqual(records[1].speedup!, 3.2, accuracy: 1e-12)
        XCTAssertEqual(records[1].efficiency!, 0.8, accuracy: 1e-12)
        XCTAssertEqual(records[2].speedup!, 1, accuracy: 1e-12)
        XCTAssertEqual(records[2].efficiency!, 0.5, accuracy: 1e-12)
        XCTAssertEqual(records[3].speedup, 1)
        XCTAssertNil(records[4].speedup)
        XCTAssertNil(records[4].efficiency)
    }

    func testSweepLookupPrefersTheExactSizeThenTheNearest() {
        let sweep = [1 << 20, 1 << 25, 44_695_848, 1 << 26].map {
            AllReduceSweepRecord(communicator: "nccl", ranks: 4, bytes: $0, seconds: 1e-3)
        }
        XCTAssertEqual(sweep.nearest(ranks: 4, bytes: 44_695_848)?.bytes, 44_695_848)
        XCTAssertEqual(sweep.nearest(ranks: 4, bytes: 1 << 21)?.bytes, 1 << 20)
        XCTAssertNil(sweep.nearest(ranks: 2, bytes: 1 << 20))
    }

    func testFormats() {
        XCTAssertEqual(Format.significant(9.06), "9.060")
        XCTAssertEqual(Format.significant(20.96), "20.96")
        XCTAssertEqual(Format.significant(0.218), "0.2180")
        XCTAssertEqual(Format.significant(1234.6), "1235")
        XCTAssertEqual(Format.count(38294.4), "38,294")
        XCTAssertEqual(Format.count(999), "999")
        XCTAssertEqual(Format.bytes(1 << 30), "1 GiB")
        XCTAssertEqual(Format.bytes(3 << 10), "3 KiB")
        XCTAssertEqual(Format.bytes(44_695_848), "44.70 MB")
        XCTAssertEqual(Format.percent(0.9312), "93.1%")
    }
}
