import CohortKernels
import CohortTensor
import XCTest

/// Deterministic random numbers (SplitMix64), so every test sees the same inputs.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A host float32 tensor of uniform values in `range`.
func randomTensor(_ shape: Shape, in range: ClosedRange<Float> = -1...1, using generator: inout SplitMix64) -> Tensor {
    Tensor((0..<shape.elementCount).map { _ in Float.random(in: range, using: &generator) }, shape: shape)
}

/// A host float32 tensor whose values are at least `margin` away from zero,
/// so a finite-difference step never crosses a ReLU's kink.
func randomTensorAwayFromZero(_ shape: Shape, margin: Float = 0.1, using generator: inout SplitMix64) -> Tensor {
    Tensor((0..<shape.elementCount).map { _ in
        let magnitude = Float.random(in: margin...1, using: &generator)
        return Bool.random(using: &generator) ? magnitude : -magnitude
    }, shape: shape)
}

/// sum over i of values[i] * weights[i] in Double: the scalar whose gradient
/// with respect to `values` is `weights`, used to project an op's output.
func weightedSum(_ values: Tensor, _ weights: Tensor) -> Double {
    zip(values.toArray(), weights.toArray()).reduce(0) { $0 + Double($1.0) * Double($1.1) }
}

/// The central finite difference (f(x + eps) - f(x - eps)) / (2 eps) of `f`
/// with respect to every element of the float32 host tensor `x`, which is
/// restored afterwards.
func finiteDifferenceGradient(of f: () -> Double, withRespectTo x: Tensor, epsilon: Float) -> [Float] {
    let values = x.floats
    return (0..<values.count).map { index in
        let original = values[index]
        values[index] = original + epsilon
        let plus = f()
        values[index] = original - epsilon
        let minus = f()
        values[index] = original
        // The step actually taken, after rounding x +- eps to float32.
        let step = Double(original + epsilon) - Double(original - epsilon)
        return Float((plus - minus) / step)
    }
}

/// Asserts |actual - expected| <= absolute + relative * |expected| elementwise,
/// reporting the largest difference.
func assertClose(_ actual: [Float], _ expected: [Float], absolute: Float, relative: Float = 0,
                 _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, "\(message): element counts differ", file: file, line: line)
    var worst: (index: Int, excess: Float)?
    for index in 0..<min(actual.count, expected.count) {
        let excess = abs(actual[index] - expected[index]) - (absolute + relative * abs(expected[index]))
        let finite = actual[index].isFinite && expected[index].isFinite
        if !finite || (excess > 0 && excess > (worst?.excess ?? 0)) { worst = (index, finite ? excess : .infinity) }
    }
    if let worst {
        XCTFail("\(message): element \(worst.index) is \(actual[worst.index]), expected \(expected[worst.index]) "
                + "(tolerance \(absolute) + \(relative) relative)", file: file, line: line)
    }
}
