import CohortKernels
import CohortNN
import CohortTensor
import XCTest

/// ResNet-18's parameters: count, torchvision's names and order, and initialisation.
final class ResNetStructureTests: XCTestCase {
    func testParameterCountMatchesTorchvisionCIFARResNet18() throws {
        let model = try ResNet18(backend: ReferenceBackend(), seed: 1)
        // torchvision resnet18(num_classes=10) with a 3x3 stem: 11,173,962 trainable values.
        XCTAssertEqual(model.store.parameterCount, 11_173_962)
        // 20 batch norms x 64..512 features x (running_mean, running_var).
        XCTAssertEqual(model.store.statisticCount, 2 * (64 + 4 * 64 + 5 * 128 + 5 * 256 + 5 * 512))
    }

    func testStateDictNamesFollowTorchvisionOrder() throws {
        let model = try ResNet18(backend: ReferenceBackend(), seed: 1)
        let names = model.store.entries.map(\.name)
        // torchvision's state_dict() has 122 entries for resnet18 (62 parameters, 60 buffers).
        XCTAssertEqual(names.count, 122)
        XCTAssertEqual(Array(names.prefix(7)), [
            "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
            "bn1.num_batches_tracked", "layer1.0.conv1.weight",
        ])
        XCTAssertEqual(Array(names.suffix(2)), ["fc.weight", "fc.bias"])
        let layer2 = names.filter { $0.hasPrefix("layer2.0.") }
        XCTAssertEqual(layer2, [
            "layer2.0.conv1.weight",
            "layer2.0.bn1.weight", "layer2.0.bn1.bias", "layer2.0.bn1.running_mean", "layer2.0.bn1.running_var",
            "layer2.0.bn1.num_batches_tracked",
            "layer2.0.conv2.weight",
            "layer2.0.bn2.weight", "layer2.0.bn2.bias", "layer2.0.bn2.running_mean", "layer2.0.bn2.running_var",
            "layer2.0.bn2.num_batches_tracked",
            "layer2.0.downsample.0.weight",
            "layer2.0.downsample.1.weight", "layer2.0.downsample.1.bias", "layer2.0.downsample.1.running_mean",
            "layer2.0.downsample.1.running_var", "layer2.0.downsample.1.num_batches_tracked",
        ])
        XCTAssertFalse(names.contains("layer1.0.downsample.0.weight"), "layer1 keeps the identity shortcut")
        let shapes = Dictionary(uniqueKeysWithValues: model.store.entries.map { ($0.name, $0.shape) })
        XCTAssertEqual(shapes["conv1.weight"], [64, 3, 3, 3])
        XCTAssertEqual(shapes["layer4.0.downsample.0.weight"], [512, 256, 1, 1])
        XCTAssertEqual(shapes["fc.weight"], [10, 512])
    }

    func testInitialisationFollowsTorchvision() throws {
        let model = try ResNet18(backend: ReferenceBackend(), seed: 7)
        let store = model.store
        func values(_ name: String) -> [Float] {
            store.value(store.reference(named: name)!).toArray()
        }
        // kaiming normal, fan-out: std sqrt(2 / (256 * 3 * 3)) for layer3's 3x3 convs (590k samples: 1% tolerance).
        let weights = values("layer3.1.conv2.weight")
        let mean = weights.reduce(0, +) / Float(weights.count)
        let std = (weights.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(weights.count)).squareRoot()
        XCTAssertEqual(std, (2.0 / Float(256 * 9)).squareRoot(), accuracy: 0.01 * std)
        XCTAssertEqual(mean, 0, accuracy: 0.01 * std)
        XCTAssertEqual(Set(values("layer1.0.bn1.weight")), [1])
        XCTAssertEqual(Set(values("layer1.0.bn1.bias")), [0])
        XCTAssertEqual(Set(values("bn1.running_var")), [1])
        let bound = 1 / Float(512).squareRoot()
        let fc = values("fc.weight")
        XCTAssertTrue(fc.allSatisfy { abs($0) <= bound })
        XCTAssertGreaterThan(fc.map(abs).max()!, 0.9 * bound)
        // The same seed gives the same model.
        let again = try ResNet18(backend: ReferenceBackend(), seed: 7)
        XCTAssertEqual(again.store.parameters.toArray(), store.parameters.toArray())
    }

    func testOptimizerSegmentsExemptBatchNormAndBiasFromLARS() throws {
        let model = try SmallCNN(backend: ReferenceBackend(), seed: 1)
        let trainable = model.store.entries.filter { $0.kind == .trainable }
        for entry in trainable {
            let adapted = entry.name.hasSuffix("conv1.weight") || entry.name.hasSuffix("conv2.weight")
                || entry.name.hasSuffix("conv3.weight") || entry.name == "fc.weight"
            XCTAssertEqual(entry.segment.layerAdaptation, adapted, entry.name)
        }
        XCTAssertEqual(model.store.segments.map(\.count).reduce(0, +), model.store.parameterCount)
    }

    /// --zero-init-residual: every block's bn2 scale starts at 0 (torchvision's
    /// zero_init_residual), nothing else changes; a model without blocks refuses.
    func testZeroInitResidualZeroesEachBlocksLastScaleOnly() throws {
        let plain = try ResNet18(backend: ReferenceBackend(), seed: 4)
        let model = try ResNet18(backend: ReferenceBackend(), seed: 4)
        XCTAssertEqual(try model.store.zeroInitializeResidualScales(), 8, "ResNet-18 has 8 basic blocks")
        let before = plain.store.parameters.toArray(), after = model.store.parameters.toArray()
        for entry in model.store.entries where entry.kind == .trainable {
            let range = entry.offset..<(entry.offset + entry.shape.elementCount)
            if entry.name.hasPrefix("layer") && entry.name.hasSuffix(".bn2.weight") {
                XCTAssertTrue(after[range].allSatisfy { $0 == 0 }, entry.name)
            } else {
                XCTAssertEqual(Array(after[range]), Array(before[range]), entry.name)
            }
        }
        XCTAssertThrowsError(try SmallCNN(backend: ReferenceBackend(), classCount: 10, seed: 0).store.zeroInitializeResidualScales())
    }
}
