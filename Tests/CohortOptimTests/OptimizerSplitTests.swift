import CohortKernels
import CohortNN
import CohortOptim
import CohortTensor
import XCTest

/// Note [Optimizer beside the last all-reduce]: an update in two parts
/// (every tensor outside the deferred range, then the wait, then those in it)
/// gives exactly the parameters and momentum of one update.
final class OptimizerSplitTests: XCTestCase {
    private func model() throws -> ImageClassifier {
        try SmallCNN(backend: ReferenceBackend(), classCount: 10, seed: 7)
    }

    /// Fills the gradient buffer with a fixed pseudo-random pattern of step `step`.
    private func fillGradients(_ store: ParameterStore, step: Int) {
        let values = (0..<store.parameterCount).map { Float(sin(Double($0 * 7 + step * 13))) * 0.1 }
        store.backend.upload(Tensor(values, shape: [store.parameterCount]), to: store.gradients)
    }

    private func compare(_ configuration: OptimizerConfiguration, file: StaticString = #filePath, line: UInt = #line) throws {
        let whole = try model(), split = try model()
        let one = try Optimizer(store: whole.store, configuration: configuration)
        let two = try Optimizer(store: split.store, configuration: configuration)
        // Defer two middle tensors (whole ones): the second convolution's weight and what follows it.
        let trainable = split.store.entries.filter { $0.kind == .trainable }
        let later = trainable[3].offset..<(trainable[4].offset + trainable[4].shape.elementCount)
        for step in 0..<3 {
            fillGradients(whole.store, step: step)
            fillGradients(split.store, step: step)
            one.step(learningRate: 0.05)
            let before = split.store.parameters.toArray()
            var waits = 0
            two.step(learningRate: 0.05, deferring: later) {
                waits += 1
                let during = split.store.parameters.toArray()
                XCTAssertEqual(Array(during[later]), Array(before[later]), "deferred tensors wait", file: file, line: line)
                XCTAssertNotEqual(Array(during[..<later.lowerBound]), Array(before[..<later.lowerBound]),
                                  "the others are updated first", file: file, line: line)
            }
            XCTAssertEqual(waits, 1, file: file, line: line)
        }
        XCTAssertEqual(split.store.parameters.toArray(), whole.store.parameters.toArray(), file: file, line: line)
        XCTAssertEqual(two.momentumBuffer.toArray(), one.momentumBuffer.toArray(), file: file, line: line)
        XCTAssertEqual(two.stepCount, one.stepCount, file: file, line: line)
    }

    func testSGDInTwoPartsMatchesOneStep() throws {
        try compare(OptimizerConfiguration(kind: .sgd, momentum: 0.9, weightDecay: 5e-4, nesterov: true))
    }

    func testLARSInTwoPartsMatchesOneStep() throws {
        try compare(OptimizerConfiguration(kind: .lars, momentum: 0.9, weightDecay: 5e-4))
    }
}
