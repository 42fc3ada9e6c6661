import CohortNN

/// Note [Batch-norm recalibration]
/// Evaluation normalises with the running statistics, an exponential average
/// (momentum 0.1) of the batch statistics of the last steps, taken while the
/// weights were still moving. After many small steps they track the weights
/// well; after the thirty steps of a 5-epoch run at batch 8192 (Q4) they lag
/// far behind, and test accuracy suffers for it rather than for the weights.
/// `--bn-recalibration-batches N` ("precise BN", Wu & Johnson 2021) recomputes
/// them before each evaluation: N forward passes over augmented training
/// batches with the final weights, in batch-statistics mode, each batch norm's
/// running mean and variance set to the plain average of the N batches'
/// (momentum 1/k for the k-th batch makes the running update a cumulative
/// mean). Nothing is trained and no batch is counted. On several ranks each
/// recalibrates on its own shard and rank 0's statistics are broadcast, as
/// before every evaluation (Note [Batch norm across ranks]). The time it takes
/// is evaluation time, not training time.
extension Trainer {
    func recalibrateBatchNorm() throws {
        // An order of its own (not the next epoch's), the same on every run.
        let batches = loader.batches(epoch: configuration.epochs + progress.epoch)
        defer { batches.cancel() }
        for k in 0..<configuration.recalibrationBatches {
            guard let batch = batches.next() else { break }
            let (images, _) = try stager.stage(batch)
            _ = model.forward(images, mode: .recalibration(momentum: 1 / Float(k + 1)))
        }
    }
}
