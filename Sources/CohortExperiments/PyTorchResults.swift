import Foundation

/// The PyTorch reference's JSON, read into the suite's records
/// (framework `.pytorch`), so its figures stand beside Cohort's.
///
/// - `benchmarks/pytorch_resnet18.py --json`: a list, one object per batch
///   size (`batch_size`, `images_per_second`, `epoch_seconds`, `precision`,
///   `device`, `peak_memory_bytes` where CUDA reported it): Q1.
/// - `benchmarks/pytorch_ddp.py --json`: one object for one GPU count and
///   mode (`mode`: "single" on one GPU, "ddp" for DistributedDataParallel
///   under torchrun, "dataparallel" for nn.DataParallel), `gpus`,
///   `precision`, and `results`, one per per-GPU batch (`per_gpu_batch`,
///   `epoch_seconds`): Q2.
public enum PyTorchResults {
    public struct FormatError: Error, CustomStringConvertible {
        public var description: String
    }

    struct BenchRow: Decodable {
        var version: String?
        var device: String?
        var precision: String
        var batch_size: Int
        var images_per_second: Double
        var epoch_seconds: Double
        var peak_memory_bytes: Int?
    }

    struct ScalingFile: Decodable {
        struct Row: Decodable {
            var per_gpu_batch: Int
            var epoch_seconds: Double
        }
        var version: String?
        var mode: String
        var gpus: Int
        var precision: String
        var results: [Row]
    }

    /// Q1 records from `pytorch_resnet18.py`'s JSON; `imagesPerEpoch` rescales its
    /// 50,000-image epoch when the suite's epoch differs.
    public static func q1(from data: Data, imagesPerEpoch: Int = 50_000) throws -> (records: [Q1Record], version: String?) {
        let rows = try decode([BenchRow].self, from: data, what: "pytorch_resnet18.py")
        let records = try rows.map { row -> Q1Record in
            Q1Record(framework: .pytorch, device: row.device ?? "cuda:0", precision: try precision(row.precision),
                     batchSize: row.batch_size, epochSeconds: Double(imagesPerEpoch) / row.images_per_second,
                     imagesPerSecond: row.images_per_second, peakMemoryBytes: row.peak_memory_bytes)
        }
        return (records, rows.first?.version)
    }

    /// Q2 records from `pytorch_ddp.py`'s JSON (speedup and efficiency are derived later, over all records).
    public static func q2(from data: Data) throws -> (records: [Q2Record], version: String?) {
        let file = try decode(ScalingFile.self, from: data, what: "pytorch_ddp.py")
        let strategy: Strategy
        switch file.mode {
        case "single", "ddp": strategy = .ddp
        case "dataparallel": strategy = .dp
        default: throw FormatError(description: "pytorch_ddp.py: unknown mode \"\(file.mode)\" (single, ddp, dataparallel)")
        }
        guard file.gpus > 0 else { throw FormatError(description: "pytorch_ddp.py: gpus must be positive, not \(file.gpus)") }
        let precision = try precision(file.precision)
        return (file.results.map {
            Q2Record(framework: .pytorch, strategy: strategy, precision: precision, gpus: file.gpus,
                     perDeviceBatch: $0.per_gpu_batch, epochSeconds: $0.epoch_seconds)
        }, file.version)
    }

    struct TrainingFile: Decodable {
        struct Epoch: Decodable {
            var epoch: Int
            var test_accuracy: Double
            var test_loss: Double
            var train_loss: Double
            var seconds: Double
        }
        var version: String?
        var epochs: [Epoch]
    }

    /// Q4's PyTorch reference from `pytorch_train_cifar.py`'s JSON (`epochs`: per epoch
    /// `test_accuracy`, `test_loss`, `train_loss`, `seconds`); `seed` is the one it ran with
    /// (its label names seeds other than 0).
    public static func q4Reference(from data: Data, recipe: String, batch: Int, learningRate: Double,
                                   seed: Int? = nil) throws -> Q4Record {
        let file = try decode(TrainingFile.self, from: data, what: "pytorch_train_cifar.py")
        guard !file.epochs.isEmpty else { throw FormatError(description: "pytorch_train_cifar.py: no epochs") }
        return Q4Record(label: Q4Record.referenceLabel(.pytorch, seed: seed), recipe: recipe + " (PyTorch \(file.version ?? "?"))", lrRule: .reference,
                        ranks: 1, globalBatch: batch, peakLearningRate: learningRate, warmupEpochs: 0, labelSmoothing: 0,
                        epochs: file.epochs.map {
                            Q4Epoch(epoch: $0.epoch, testAccuracy: $0.test_accuracy, testLoss: $0.test_loss,
                                    trainLoss: $0.train_loss, seconds: $0.seconds)
                        }, framework: .pytorch, seed: seed)
    }

    static func precision(_ text: String) throws -> Precision {
        guard let precision = Precision(rawValue: text) else {
            throw FormatError(description: "unknown precision \"\(text)\" (fp32 or bf16)")
        }
        return precision
    }

    static func decode<T: Decodable>(_ type: T.Type, from data: Data, what: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch {
            throw FormatError(description: "\(what)'s JSON does not read: \(error)")
        }
    }
}
