import ArgumentParser
import CohortCheckpoint
import CohortNN
import CohortTensor
import CohortTraining
import Foundation

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Score a checkpoint on the CIFAR-10 test set.")

    @Argument(help: ArgumentHelp("A checkpoint written by `cohort train`.", valueName: "checkpoint"))
    var checkpoint: String

    @OptionGroup(title: "Data") var dataOptions: DataOptions
    @OptionGroup(title: "Device") var deviceOptions: DeviceOptions

    @Option(name: .customLong("batch-size"), help: "Images per evaluation batch.")
    var batchSize: Int = 500

    @Option(help: "Evaluate on only the first N test images.")
    var limit: Int?

    @Option(name: .customLong("logits-out"), help: ArgumentHelp("Also write the logits (and labels) of the evaluated images to this safetensors file, e.g. to compare with PyTorch (benchmarks/pytorch_checkpoint_check.py).", valueName: "file"))
    var logitsOut: String?

    func validate() throws {
        guard FileManager.default.fileExists(atPath: checkpoint) else {
            throw ValidationError("no checkpoint at \(checkpoint)")
        }
        guard batchSize > 0 else { throw ValidationError("--batch-size must be a positive integer") }
        if let limit, limit <= 0 { throw ValidationError("--limit must be a positive integer") }
    }

    func run() throws {
        let contents = try TrainingCheckpoint.read(from: URL(fileURLWithPath: checkpoint))
        guard let architecture = ModelArchitecture(rawValue: contents.architecture) else {
            throw CheckpointError(file: checkpoint, problem: "holds an unknown model \(contents.architecture)")
        }
        let (backend, notes) = try makeBackend(device: deviceOptions.device, choice: deviceOptions.backend, allowsTF32: !deviceOptions.noTF32)
        notes.forEach { print("note: \($0)") }
        let data = try dataOptions.load { print($0) }
        let model = try architecture.build(backend: backend, classCount: data.test.classCount, seed: 0)
        try TrainingCheckpoint.restore(contents, into: model, optimizer: nil)
        let result = try evaluate(model, on: data.test, batchSize: batchSize, limit: limit, keepLogits: logitsOut != nil)
        if let logitsOut, let logits = result.logits {
            let labels = Tensor.int32(data.test.labels.prefix(result.imageCount).map(Int32.init))
            try SafeTensorsFile(tensors: [NamedTensor("logits", logits), NamedTensor("labels", labels)],
                                metadata: ["checkpoint": checkpoint, "backend": backend.name,
                                           "layout": "first N test images, evaluation mode"])
                .write(to: URL(fileURLWithPath: logitsOut))
        }
        print("\(checkpoint): \(architecture.rawValue) after \(contents.progress.epoch) epochs (\(contents.progress.globalStep) steps)")
        print(String(format: "test loss %.4f, test accuracy %.2f%% on %d images of %@ (%@ backend)",
                     result.loss, 100 * result.accuracy, result.imageCount, data.description, backend.name))
    }
}
