import CohortTensor
import Foundation
import XCTest

final class RandomTests: XCTestCase {
    /// Outputs of the reference `splitmix64.c` and `xoshiro256starstar.c`.
    func testReferenceOutputs() {
        var splitMix = SplitMix64(seed: 0)
        XCTAssertEqual(splitMix.next(), 0xE220_A839_7B1D_CDAF)
        var xoshiro = Xoshiro256StarStar(state: [1, 2, 3, 4])
        XCTAssertEqual((0..<3).map { _ in xoshiro.next() }, [11520, 0, 1_509_978_240])
    }

    func testStateSavesAndRestores() throws {
        var generator = Xoshiro256StarStar(seed: 42)
        for _ in 0..<10 { _ = generator.next() }
        let saved = try JSONEncoder().encode(generator)
        let expected = (0..<5).map { _ in generator.next() }
        var restored = try JSONDecoder().decode(Xoshiro256StarStar.self, from: saved)
        XCTAssertEqual((0..<5).map { _ in restored.next() }, expected)
        var fromWords = Xoshiro256StarStar(state: try JSONDecoder().decode(Xoshiro256StarStar.self, from: saved).state)
        XCTAssertEqual((0..<5).map { _ in fromWords.next() }, expected)
    }

    func testBoundedDrawsAreInRangeAndRoughlyUniform() {
        var generator = Xoshiro256StarStar(seed: 7)
        var counts = [Int](repeating: 0, count: 9)
        for _ in 0..<90_000 { counts[generator.next(below: 9)] += 1 }
        for count in counts { XCTAssertEqual(Double(count), 10_000, accuracy: 400) }
    }

    func testShuffleIsAPermutation() {
        var generator = Xoshiro256StarStar(seed: 9)
        var values = Array(0..<1000)
        generator.shuffle(&values)
        XCTAssertNotEqual(values, Array(0..<1000))
        XCTAssertEqual(values.sorted(), Array(0..<1000))
    }
}

/// The sampling helpers weight initialisation draws through.
final class RandomSamplingTests: XCTestCase {
    func testUniformAndNormalMoments() {
        var generator = SplitMix64(seed: 12)
        let uniform = (0..<100_000).map { _ in generator.nextUniform(-2, 2) }
        XCTAssertTrue(uniform.allSatisfy { $0 >= -2 && $0 < 2 })
        // Mean 0 and variance 4/3; with 1e5 samples the standard errors are 0.004 and 0.005.
        XCTAssertEqual(uniform.reduce(0, +) / 1e5, 0, accuracy: 0.02)
        XCTAssertEqual(uniform.map { $0 * $0 }.reduce(0, +) / 1e5, 4.0 / 3.0, accuracy: 0.03)
        let normal = (0..<100_000).map { _ in generator.nextNormal() }
        XCTAssertEqual(normal.reduce(0, +) / 1e5, 0, accuracy: 0.015)
        XCTAssertEqual(normal.map { $0 * $0 }.reduce(0, +) / 1e5, 1, accuracy: 0.02)
        XCTAssertEqual(Float(normal.filter { abs($0) < 1 }.count) / 1e5, 0.6827, accuracy: 0.01)
    }
}
