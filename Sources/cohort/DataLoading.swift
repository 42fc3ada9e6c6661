import CohortData
import Foundation

/// The training and test sets a command asked for, with a line saying what they are.
struct LoadedData {
    var training: ImageDataset
    var test: ImageDataset
    var description: String
}

extension DataOptions {
    /// Synthetic data has CIFAR-10's sizes (50,000 and 10,000 images) so
    /// epochs take as long as real ones.
    func load(log: (String) -> Void) throws -> LoadedData {
        switch dataset {
        case .synthetic:
            let training = ImageDataset.synthetic(count: syntheticImages, seed: 1)
            let test = ImageDataset.synthetic(count: 10_000, seed: 2)
            return LoadedData(training: training, test: test,
                              description: "SYNTHETIC random images (CIFAR-10 shape, \(syntheticImages.formatted()) train / 10,000 test): accuracy is meaningless")
        case .cifar10:
            var path = data ?? "data"
            if download {
                path = try CIFAR10Download().fetch(into: path, log: log).path
            }
            let training = try CIFAR10Reader.load(.train, from: path)
            let test = try CIFAR10Reader.load(.test, from: path)
            return LoadedData(training: training, test: test,
                              description: "CIFAR-10 from \(path) (\(training.count) train / \(test.count) test)")
        }
    }
}
