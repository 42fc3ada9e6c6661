import CohortKernels
import CohortNN
import CohortOptim
import CohortTensor
import Foundation

/// Where training stood when a checkpoint was written.
public struct TrainingProgress: Codable, Sendable, Equatable {
    /// Epochs completed.
    public var epoch: Int
    /// Optimiser steps taken since the start of the run.
    public var globalStep: Int
    /// The seed every random stream of the run derives from (data order and
    /// augmentation draw from `(seed, epoch, sample)`, so this and `epoch`
    /// are the whole random state at an epoch boundary).
    public var seed: UInt64

    public init(epoch: Int, globalStep: Int, seed: UInt64) {
        self.epoch = epoch
        self.globalStep = globalStep
        self.seed = seed
    }
}

public struct CheckpointError: Error, CustomStringConvertible {
    public var file: String
    public var problem: String
    public var description: String { "checkpoint \(file): \(problem)" }

    public init(file: String, problem: String) {
        self.file = file
        self.problem = problem
    }
}

/// A training checkpoint: one safetensors file holding the model's state
/// dict under PyTorch's names (`conv1.weight`, `bn1.running_mean`,
/// `bn1.num_batches_tracked` as a 0-d int64, ...), the optimiser's momentum
/// as `optimizer.momentum.<name>`, and the progress and run configuration in
/// the metadata.
///
/// In PyTorch: `state = safetensors.torch.load_file(path)`, then
/// `model.load_state_dict({k: v for k, v in state.items() if not k.startswith("optimizer.")})`.
public enum TrainingCheckpoint {
    public static let formatName = "cohort-checkpoint-1"
    static let momentumPrefix = "optimizer.momentum."

    /// Writes atomically: a crash mid-write leaves the previous file whole.
    public static func save(model: ImageClassifier, optimizer: Optimizer?, progress: TrainingProgress,
                            configuration: [String: String] = [:], to url: URL) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try makeFile(model: model, optimizer: optimizer, progress: progress, configuration: configuration).write(to: url)
    }

    static func makeFile(model: ImageClassifier, optimizer: Optimizer?, progress: TrainingProgress,
                         configuration: [String: String]) throws -> SafeTensorsFile {
        let store = model.store
        let backend = store.backend
        let parameters = backend.download(store.parameters)
        let statistics = backend.download(store.statistics)
        var tensors: [NamedTensor] = []
        for entry in store.entries {
            switch entry.kind {
            case .trainable:
                tensors.append(NamedTensor(entry.name, parameters.view(elementOffset: entry.offset, shape: entry.shape)))
            case .statistic:
                tensors.append(NamedTensor(entry.name, statistics.view(elementOffset: entry.offset, shape: entry.shape)))
            case .counter:
                let counter = Tensor.zeros(Shape([]), dtype: .int64)
                counter.rawPointer.storeBytes(of: store.counters[entry.offset], as: Int64.self)
                tensors.append(NamedTensor(entry.name, counter))
            }
        }
        if let optimizer {
            let momentum = backend.download(optimizer.momentumBuffer)
            for entry in store.entries where entry.kind == .trainable {
                tensors.append(NamedTensor(momentumPrefix + entry.name,
                                           momentum.view(elementOffset: entry.offset, shape: entry.shape)))
            }
        }
        var metadata = configuration
        metadata["format"] = formatName
        metadata["architecture"] = model.architecture
        metadata["epoch"] = String(progress.epoch)
        metadata["global_step"] = String(progress.globalStep)
        metadata["seed"] = String(progress.seed)
        metadata["optimizer_steps"] = optimizer.map { String($0.stepCount) } ?? "0"
        return SafeTensorsFile(tensors: tensors, metadata: metadata)
    }

    /// A checkpoint read and checked for its format; nothing is applied yet.
    public struct Contents {
        public let file: SafeTensorsFile
        public let path: String
        public let progress: TrainingProgress
        public let architecture: String
        public var metadata: [String: String] { file.metadata }
    }

    public static func read(from url: URL) throws -> Contents {
        let file = try SafeTensorsFile(contentsOf: url)
        let path = url.path
        guard file.metadata["format"] == formatName else {
            throw CheckpointError(file: path, problem: "not a Cohort training checkpoint (metadata format is \(file.metadata["format"] ?? "missing"), expected \(formatName))")
        }
        func integer(_ key: String) throws -> Int {
            guard let text = file.metadata[key], let value = Int(text), value >= 0 else {
                throw CheckpointError(file: path, problem: "metadata \(key) is missing or not a count")
            }
            return value
        }
        guard let seedText = file.metadata["seed"], let seed = UInt64(seedText) else {
            throw CheckpointError(file: path, problem: "metadata seed is missing or malformed")
        }
        let progress = TrainingProgress(epoch: try integer("epoch"), globalStep: try integer("global_step"), seed: seed)
        return Contents(file: file, path: path, progress: progress, architecture: file.metadata["architecture"] ?? "?")
    }

    /// Loads the model's tensors (and the optimiser's state, when given)
    /// from `contents`, after checking that every name the model has is
    /// present with its shape and dtype and that nothing unknown is left.
    public static func restore(_ contents: Contents, into model: ImageClassifier, optimizer: Optimizer?) throws {
        let store = model.store
        let file = contents.file
        guard contents.architecture == model.architecture else {
            throw CheckpointError(file: contents.path, problem: "holds a \(contents.architecture), not a \(model.architecture)")
        }
        var expected = Set(store.entries.map(\.name))
        if optimizer != nil {
            expected.formUnion(store.entries.filter { $0.kind == .trainable }.map { momentumPrefix + $0.name })
        }
        let present = Set(file.names)
        let missing = expected.subtracting(present).sorted()
        guard missing.isEmpty else {
            throw CheckpointError(file: contents.path, problem: "missing \(missing.count) tensors: \(missing.prefix(5).joined(separator: ", "))")
        }
        let unexpected = present.subtracting(expected).filter { optimizer != nil || !$0.hasPrefix(momentumPrefix) }.sorted()
        guard unexpected.isEmpty else {
            throw CheckpointError(file: contents.path, problem: "unexpected tensors: \(unexpected.prefix(5).joined(separator: ", "))")
        }
        func tensor(_ name: String, shape: Shape, dtype: DType) throws -> Tensor {
            let tensor = file[name]!
            guard tensor.shape == shape, tensor.dtype == dtype else {
                throw CheckpointError(file: contents.path, problem: "\(name) is \(tensor.dtype) \(tensor.shape), the model needs \(dtype) \(shape)")
            }
            return tensor
        }
        let parameters = Tensor.zeros([store.parameterCount])
        let statistics = Tensor.zeros([store.statisticCount])
        let momentum = Tensor.zeros([store.parameterCount])
        var counters = store.counters
        for entry in store.entries {
            switch entry.kind {
            case .trainable, .statistic:
                let source = try tensor(entry.name, shape: entry.shape, dtype: .float32)
                let target = entry.kind == .trainable ? parameters : statistics
                target.floats.baseAddress!.advanced(by: entry.offset)
                    .update(from: source.floats.baseAddress!, count: entry.shape.elementCount)
                if entry.kind == .trainable, optimizer != nil {
                    let buffer = try tensor(momentumPrefix + entry.name, shape: entry.shape, dtype: .float32)
                    momentum.floats.baseAddress!.advanced(by: entry.offset)
                        .update(from: buffer.floats.baseAddress!, count: entry.shape.elementCount)
                }
            case .counter:
                let source = try tensor(entry.name, shape: Shape([]), dtype: .int64)
                counters[entry.offset] = source.rawPointer.load(as: Int64.self)
            }
        }
        store.backend.upload(parameters, to: store.parameters)
        store.refreshComputeParameters()
        store.backend.upload(statistics, to: store.statistics)
        store.counters = counters
        if let optimizer {
            guard let text = contents.metadata["optimizer_steps"], let steps = Int(text), steps >= 0 else {
                throw CheckpointError(file: contents.path, problem: "metadata optimizer_steps is missing or malformed")
            }
            optimizer.restore(stepCount: steps, momentum: momentum)
        }
    }
}
