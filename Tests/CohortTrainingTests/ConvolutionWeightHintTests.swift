import CohortKernels
import CohortNN
import CohortOptim
import CohortTensor
import XCTest

/// Conv2d tells the backend whether a data gradient's weight is the one its
/// forward read (Note [KRSC weights kept for the data gradient] in the CUDA
/// backend, which then skips a transpose): true right after the forward,
/// false once anything changed the parameters in between.
final class ConvolutionWeightHintTests: XCTestCase {
    func testTheHintIsTrueOnlyWhileTheWeightsAreTheForwards() throws {
        let backend = TapeBackend()
        let store = ParameterStore(backend: backend, precision: .float32)
        let conv = Conv2d(store: store, name: "conv", inputChannels: 3, outputChannels: 4, kernelSize: 3, padding: 1)
        try store.allocate(seed: 1)
        let optimizer = try Optimizer(store: store, configuration: OptimizerConfiguration(momentum: 0.9))
        let x = try backend.makeTensor(copying: Tensor((0..<150).map { Float($0 % 7) / 7 }, shape: [2, 5, 5, 3]))
        let dy = try backend.makeTensor(copying: Tensor((0..<200).map { Float($0 % 5) / 5 }, shape: [2, 5, 5, 4]))

        _ = conv(x)
        _ = conv.backward(dy)                     // the forward's weights
        optimizer.step(learningRate: 0.1)         // changes them
        _ = conv.backward(dy)                     // the forward's no longer
        _ = conv(x)
        _ = conv.backward(dy)
        store.refreshComputeParameters()          // any refresh counts (a checkpoint load, a broadcast)
        _ = conv.backward(dy)
        XCTAssertEqual(backend.weightAsInForwardHints, [true, false, true, false])
    }
}
