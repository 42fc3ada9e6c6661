import CohortData
import Foundation
import XCTest

final class AugmentationTests: XCTestCase {
    /// Identity normalisation (mean 0, std 1) so outputs are bytes / 255.
    private let plain = Augmentation(cropPadding: 1, horizontalFlip: true, mean: [0, 0, 0], std: [1, 1, 1])

    /// A 3x3 image whose byte at (y, x, c) is 100c + 10y + x + 1 (never 0, so padding shows).
    private let image: [UInt8] = (0..<27).map { (index: Int) -> UInt8 in
        let y = index / 9, x = index / 3 % 3, c = index % 3
        return UInt8(100 * c + 10 * y + x + 1)
    }

    private func apply(_ augmentation: Augmentation, _ parameters: Augmentation.Parameters) -> [Float] {
        var output = [Float](repeating: -1, count: 27)
        image.withUnsafeBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target in
                augmentation.apply(image: source.baseAddress!, height: 3, width: 3, parameters: parameters,
                                   into: target.baseAddress!)
            }
        }
        return output
    }

    /// out[y][x] = padded[y + top][x' + left] with x' = 2 - x when flipped;
    /// padded[py][px] = image[py - 1][px - 1], or 0 outside.
    private func handComputed(_ parameters: Augmentation.Parameters) -> [Float] {
        (0..<27).map { (index: Int) -> Float in
            let y = index / 9, x = index / 3 % 3, c = index % 3
            let sourceY = y + parameters.top - 1
            let sourceX = (parameters.flip ? 2 - x : x) + parameters.left - 1
            guard (0..<3).contains(sourceY), (0..<3).contains(sourceX) else { return 0 }
            return Float(100 * c + 10 * sourceY + sourceX + 1) / 255
        }
    }

    func testCropAndFlipAgainstHandComputation() {
        // Written out for one case: crop corner (0, 2) of the 5x5 padded image, then flip.
        func row(_ y: Int, _ xs: [Int?]) -> [Float] {
            var values: [Float] = []
            for x in xs {
                for c in 0..<3 { values.append(x.map { Float(100 * c + 10 * y + $0 + 1) / 255 } ?? 0) }
            }
            return values
        }
        let expected = [Float](repeating: 0, count: 9) + row(0, [nil, 2, 1]) + row(1, [nil, 2, 1])
        XCTAssertEqual(apply(plain, .init(top: 0, left: 2, flip: true)), expected)

        for top in 0...2 {
            for left in 0...2 {
                for flip in [false, true] {
                    let parameters = Augmentation.Parameters(top: top, left: left, flip: flip)
                    XCTAssertEqual(apply(plain, parameters), handComputed(parameters), "\(parameters)")
                }
            }
        }
        // The centre crop without flip is the image itself.
        XCTAssertEqual(apply(plain, plain.identity), image.map { Float($0) / 255 })
    }

    func testNormalisationUsesCIFAR10Statistics() {
        let augmentation = Augmentation.cifar10Evaluation
        XCTAssertFalse(augmentation.isRandom)
        XCTAssertEqual(augmentation.normalized(0, channel: 0), -0.4914 / 0.2470, accuracy: 1e-6)
        XCTAssertEqual(augmentation.normalized(255, channel: 1), (1 - 0.4822) / 0.2435, accuracy: 1e-6)
        XCTAssertEqual(augmentation.normalized(128, channel: 2), (128.0 / 255 - 0.4465) / 0.2616, accuracy: 1e-6)
        let output = apply(augmentation, augmentation.identity)
        for (index, value) in output.enumerated() {
            XCTAssertEqual(value, augmentation.normalized(image[index], channel: index % 3))
        }
    }

    /// Padding is zero bytes before normalising, as torchvision pads the PIL image.
    func testPaddingIsNormalisedZero() {
        let output = apply(Augmentation(cropPadding: 1, horizontalFlip: false, mean: Augmentation.cifar10Mean,
                                        std: Augmentation.cifar10Std), .init(top: 0, left: 0, flip: false))
        for c in 0..<3 { XCTAssertEqual(output[c], -Augmentation.cifar10Mean[c] / Augmentation.cifar10Std[c], accuracy: 1e-6) }
    }

    func testParametersCoverTheRangeAndFlipHalfTheTime() {
        var corners = Set<Int>()
        var flips = 0
        for index in 0..<4000 {
            var generator = Augmentation.generator(seed: 5, epoch: 0, sampleIndex: index)
            let parameters = Augmentation.cifar10Training.parameters(using: &generator)
            XCTAssertTrue((0...8).contains(parameters.top) && (0...8).contains(parameters.left))
            corners.insert(parameters.top * 9 + parameters.left)
            if parameters.flip { flips += 1 }
        }
        XCTAssertEqual(corners.count, 81)
        XCTAssertEqual(Double(flips), 2000, accuracy: 150)
    }
}
