import ArgumentParser
import CohortCUDA
import CohortDistributed
import CohortExperiments
import CohortKernels
import CohortTensor
import CohortTraining
import Foundation

/// `--strategy`'s values are the experiments' strategies: one name for one idea.
typealias TrainingStrategy = CohortExperiments.Strategy
extension TrainingStrategy: ExpressibleByArgument {}

extension Train {
    /// `--strategy dp`: this process runs every replica, one thread and one
    /// device each, each thread the same `train` a ddp rank runs with rank =
    /// its index (Note [Replica threads]). The communicators: a `ThreadGroup`
    /// on the CPU (Note [Thread-group collectives]), one `ncclCommInitAll`
    /// on GPUs (Note [NCCL for replica threads]). The data set is loaded
    /// once and shared, the run folder is chosen once, GPU backends are
    /// opened one after another on this thread before NCCL needs them; a CPU
    /// replica makes its oneDNN backend on its own thread after taking its
    /// share of the cores (OMP_NUM_THREADS, when set, is left to rule).
    func runReplicas() throws {
        let environment = try RankEnvironment.current()
        guard !environment.isDistributed else {
            throw ValidationError("""
                --strategy dp runs every replica inside this one process, but this process is rank \(environment.rank) of \
                \(environment.worldSize) (from \(environment.source.rawValue) variables, as cohort launch, mpirun or srun set them): \
                run cohort train --strategy dp by itself, or leave --strategy at ddp under cohort launch / mpirun
                """)
        }
        let device = deviceOptions.device
        let count = try replicaCount(on: device)
        var command = self
        command.runDirectory = runDirectory
            ?? resume.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path } ?? "runs/" + Self.timestamp()
        let data = try dataOptions.load(log: ProgressDisplay(enabled: !noProgress).log)
        let commands = (0..<count).map { _ in ReplicaOwned(command) }

        if device.isHost {
            let group = ThreadGroup(size: count)
            let communicators = group.makeCommunicators()
            let presetThreads = ProcessInfo.processInfo.environment["OMP_NUM_THREADS"]
            let threads = max(1, ProcessInfo.processInfo.activeProcessorCount / count)
            let placement = "all on the CPU, \(presetThreads.map { "OMP_NUM_THREADS=\($0)" } ?? "\(threads)") oneDNN thread\(presetThreads == nil && threads == 1 ? "" : "s") each"
            _ = try ReplicaThreads.run(count: count, grace: group.timeout,
                                       stopOthers: { rank, error in group.fail(rank: rank, reason: "\(error)") }) { rank in
                if presetThreads == nil { setCPUThreadCount(forCallingThread: threads) }
                try commands[rank].value.train(communicator: communicators[rank], environment: environment, data: data,
                                               placement: placement)
                try communicators[rank].shutdown()
            }
        } else {
            var prepared: [ReplicaOwned<(backend: Backend, notes: [String])>] = []
            var backends: [CUDABackend] = []
            // One process, one machine: the block cap applies by batch alone.
            let blockNote = NCCLBlockLimit.apply(perDeviceBatch: batchSize, ranksShareOneMachine: true)
            for index in device.index..<(device.index + count) {
                let made = try makeBackend(device: .cuda(index), choice: deviceOptions.backend,
                                           allowsTF32: !deviceOptions.noTF32)
                guard let cuda = made.backend as? CUDABackend else {
                    throw ValidationError("--strategy dp on GPUs needs the CUDA backend, got \(made.backend.name)")
                }
                backends.append(cuda)
                let launchNote = count > 1 ? cuda.prepareDataParallelSteps(perDeviceBatch: batchSize) : nil
                prepared.append(ReplicaOwned((made.backend, made.notes + [blockNote, launchNote].compactMap { $0 })))
            }
            let communicators = try NCCLCommunicator.makeGroup(
                backends: backends, timeout: collectiveTimeout > 0 ? .seconds(collectiveTimeout) : nil)
            let handedOver = prepared
            let placement = "replica r on cuda:\(device.index)+r (cuda:\(device.index)...cuda:\(device.index + count - 1)), "
                + "NCCL communicators from ncclCommInitAll"
            _ = try ReplicaThreads.run(count: count, grace: .seconds(30), stopOthers: { rank, error in
                // Note [NCCL for replica threads]: as a failed ddp rank, the whole process stops.
                communicators[rank].abort(reason: "replica \(rank) of \(count) failed: \(error)")
            }) { rank in
                try commands[rank].value.train(communicator: communicators[rank], environment: environment,
                                               prepared: handedOver[rank].value, data: data, placement: placement)
                // Each replica leaves its communicator, as each ddp rank does (ncclCommDestroy per rank).
                try communicators[rank].shutdown()
            }
        }
    }

    /// `--replicas`, checked against the GPUs there are; on GPUs it defaults to every one from `device` on.
    func replicaCount(on device: Device) throws -> Int {
        if device.isHost { return replicas ?? 1 }
        let visible = try cudaVisibleDeviceCount()
        let available = max(0, visible - device.index)
        let count = replicas ?? available
        guard count >= 1, count <= available else {
            let mask = ProcessInfo.processInfo.environment["CUDA_VISIBLE_DEVICES"].map { "CUDA_VISIBLE_DEVICES=\($0)" }
                ?? "CUDA_VISIBLE_DEVICES unset"
            throw ValidationError("""
                --strategy dp needs one GPU per replica: \(count) replica\(count == 1 ? "" : "s") from \(device) on, \
                but the driver sees \(visible) GPU\(visible == 1 ? "" : "s") (\(mask)); pass --replicas \(max(1, available)) \
                or fewer, or --device cpu
                """)
        }
        return count
    }
}
