import ArgumentParser
import CohortCUDA
import CohortDistributed
import CohortKernels
import CohortNN
import CohortOptim
import CohortTensor
import CohortTraining
import Foundation

extension LearningRateSchedule.Name: ExpressibleByArgument {}
extension LearningRateScaling: ExpressibleByArgument {}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model on CIFAR-10 (or synthetic data) on one device, as one rank of a data-parallel run, or (--strategy dp) as all its replicas.",
        discussion: """
            Example: cohort train --data ~/cifar --epochs 5 --batch-size 128 --lr 0.1
            Each run writes metrics.jsonl (one JSON object per step, epoch and evaluation) and \
            checkpoint.safetensors (after every epoch) into --run-dir; --resume continues from a checkpoint.
            Data-parallel on the CPU: cohort launch --nproc-per-node 2 -- cohort train --device cpu --run-dir D ... \
            (or under mpirun / srun --mpi=pmix). On GPUs, one rank per GPU through NCCL: cohort launch \
            --nproc-per-node 2 -- cohort train --device cuda --run-dir D ... (rank r takes cuda:LOCAL_RANK). --batch-size is per rank; each rank writes metrics-rank<N>.jsonl, \
            rank 0 prints and writes the checkpoint.
            One process driving every device instead, one thread per replica: cohort train --strategy dp --device cuda \
            (every visible GPU; --replicas N for fewer) or --strategy dp --device cpu --replicas 2; the same training, \
            --batch-size per replica, metrics-rank<N>.jsonl per replica.
            """)

    @OptionGroup(title: "Data") var dataOptions: DataOptions
    @OptionGroup(title: "Device") var deviceOptions: DeviceOptions

    @Option(help: ArgumentHelp("""
        ddp: one process per device, its ranks started by cohort launch (or mpirun); dp: this one process drives \
        --replicas devices, one thread each (NCCL between GPUs, shared memory between CPU replicas).
        """, valueName: "ddp|dp"))
    var strategy: TrainingStrategy = .ddp

    @Option(help: "With --strategy dp: how many replicas, each a thread with its own backend and, on cuda, its own GPU (default with --device cuda: every GPU from the one given; with --device cpu, required).")
    var replicas: Int?

    @Option(help: "Model: \(ModelArchitecture.allCases.map(\.rawValue).joined(separator: ", ")).")
    var model: ModelArchitecture = .resnet18

    @Option(help: "Compute precision: fp32, or bf16 with float32 master weights (GPU).")
    var precision: Precision = .float32

    @Option(help: "Epochs to train (a resumed run counts the epochs already done).")
    var epochs: Int = 5

    @Option(name: .customLong("batch-size"), help: "Images per step on each rank (the global batch is this times the world size).")
    var batchSize: Int = 128

    @Option(help: "Peak learning rate (before --lr-scaling).")
    var lr: Float = 0.1

    @Option(name: .customLong("lr-scaling"), help: "Scale --lr for the global batch size: none, linear or sqrt (relative to --base-batch-size).")
    var lrScaling: LearningRateScaling = .none

    @Option(name: .customLong("base-batch-size"), help: "The batch size --lr was tuned for (with --lr-scaling).")
    var baseBatchSize: Int = 128

    @Option(help: "Learning-rate decay after warmup: constant, step, cosine or linear (to zero).")
    var schedule: LearningRateSchedule.Name = .constant

    @Option(name: .customLong("step-every"), help: "With --schedule step: epochs between decays.")
    var stepEvery: Int = 30

    @Option(help: "With --schedule step: the factor applied at each decay.")
    var gamma: Float = 0.1

    @Option(name: .customLong("warmup-epochs"), help: "Epochs of linear warmup from 0 to the peak learning rate.")
    var warmupEpochs: Int = 0

    @Option(help: "Update rule: sgd or lars.")
    var optimizer: OptimizerKind = .sgd

    @Option(help: "Momentum factor (0 for none).")
    var momentum: Float = 0.9

    @Flag(help: "Nesterov momentum.")
    var nesterov = false

    @Option(name: .customLong("weight-decay"), help: "L2 penalty, as torch.optim.SGD's weight_decay.")
    var weightDecay: Float = 5e-4

    @Flag(name: .customLong("no-decay-on-norm-and-bias"), help: "Exempt batch-norm parameters and biases from weight decay.")
    var noDecayOnNormAndBias = false

    @Option(name: .customLong("bn-recalibration-batches"), help: "Before each evaluation, recompute the batch-norm running statistics over this many training batches (precise BN; 0: off).")
    var bnRecalibrationBatches = 0

    @Flag(name: .customLong("zero-init-residual"), help: "ResNet: start each residual block's last batch-norm scale at 0, so every block begins as its shortcut (a large-batch remedy; torchvision's zero_init_residual).")
    var zeroInitResidual = false

    @Option(name: .customLong("lars-eta"), help: "LARS trust coefficient (with --optimizer lars).")
    var larsEta: Float = 0.001

    @Option(name: .customLong("label-smoothing"), help: "Label smoothing in [0, 1).")
    var labelSmoothing: Float = 0

    @Option(help: "Seed of the initial weights, data order and augmentation.")
    var seed: UInt64 = 0

    @Option(name: .customLong("steps-per-epoch"), help: "Stop each epoch after this many steps (quick runs).")
    var stepsPerEpoch: Int?

    @Option(name: .customLong("eval-limit"), help: "Evaluate on only the first N test images (quick runs).")
    var evalLimit: Int?

    @Option(name: .customLong("eval-batch-size"), help: "Images per evaluation batch.")
    var evalBatchSize: Int = 500

    @Option(name: .customLong("target-accuracy"), help: "Stop after the first epoch whose test accuracy (a fraction, e.g. 0.9) reaches this; the eval record gives the training seconds to it (time to accuracy).")
    var targetAccuracy: Double?

    @Option(name: .customLong("log-every"), help: "Write a step record to the metrics log every N steps.")
    var logEvery: Int = 10

    @Option(name: .customLong("run-dir"), help: ArgumentHelp("Folder for metrics.jsonl and checkpoint.safetensors (default runs/<time>, or the resumed checkpoint's folder).", valueName: "dir"))
    var runDirectory: String?

    @Option(help: ArgumentHelp("Continue from this checkpoint.", valueName: "checkpoint"))
    var resume: String?

    @Flag(name: .customLong("no-graphs"), help: "On a GPU, issue every step's kernels one by one instead of replaying a captured CUDA graph.")
    var noGraphs = false

    @Flag(name: .customLong("time-graph-phases"), help: "On a GPU, time the phases and all-reduces of replayed steps inside their graph (event-record nodes; a diagnostic that costs each replay a little; COHORT_GRAPH_TIMING=1 does the same).")
    var timeGraphPhases = false

    @Flag(name: .customLong("time-gradient-marks"), help: "On a GPU, with the phase timing (implies --time-graph-phases): logged steps also report when each convolution's weight gradient was written, seconds after the step's start (a diagnostic; Note [Backward progress marks]).")
    var timeGradientMarks = false

    @Flag(name: .customLong("split-step-graph"), help: "On a GPU, capture each step as two graphs, forward and the rest, replayed one after the other (an experiment that measured no gain; Note [Split step graphs]).")
    var splitStepGraph = false

    @Flag(name: .customLong("no-progress"), help: "No progress display, only epoch lines.")
    var noProgress = false

    @Flag(name: .customLong("deterministic"), help: "GPU runs: only convolution algorithms cuDNN reports deterministic (no atomic accumulation), as PyTorch's torch.backends.cudnn.deterministic: the same seed and machine give the same bits, at some cost in speed (Backend.setDeterministicAlgorithms).")
    var deterministic = false

    @Flag(name: .customLong("no-overlap"), help: "Multi-rank runs: all-reduce the gradients once after backward instead of bucket by bucket during it (to measure the overlap).")
    var noOverlap = false

    @Flag(name: .customLong("no-communication"), help: "Multi-rank runs, for measurement only: ranks train independently, gradients are never all-reduced (the same step with communication off; the model is NOT data-parallel).")
    var noCommunication = false

    @Option(name: .customLong("bucket-cap-mb"), help: "Multi-rank runs: megabytes of gradients per all-reduce bucket (as PyTorch DDP's bucket_cap_mb; Note [Gradient bucketing]).")
    var bucketCapMB = Double(GradientReducer.defaultBucketCap) / 1_048_576

    @Option(name: .customLong("allreduce-dtype"), help: "Multi-rank runs: the dtype gradients travel in: fp32, bf16 (half the bytes; NCCL only), or auto: bf16 when training in bf16 on NCCL, else fp32 (Note [All-reduce dtype]).")
    var allReduceDType: AllReduceDType = .auto

    @Flag(name: .customLong("merge-small-buckets"), inversion: .prefixedNo, help: "Multi-rank runs: a gradient tensor larger than the bucket cap joins a bucket of under 1 MB instead of leaving it an all-reduce of its own (Note [Small buckets]).")
    var mergeSmallBuckets = true

    @Option(name: .customLong("symmetric-windows"), help: "Multi-rank GPU runs: register the bf16 gradient wire buffer with NCCL as a symmetric window, for NCCL's symmetric all-reduce kernels: auto (when NCCL has them, every rank is on one machine and gradients travel in bf16), on, off (Note [Symmetric wire buffer]).")
    var symmetricWindows: SymmetricWindowPolicy = .auto

    @Option(name: .customLong("allreduce-launch"), help: "Multi-rank GPU runs with steps replayed from CUDA graphs: graph (the bucket all-reduces captured into the step's graph), host (enqueued by the host at each replay as backward passes each bucket; the graph stays one chain), host-stream (enqueued by the host at once, each waiting for its bucket on the communication stream), host-sync (as host, and the host, not the device, waits for the all-reduces before the optimizer). An experiment: host gained up to a point at 4 x 128 and lost one at 4 x 512, host-sync gained nothing (Note [All-reduces launched by the host]).")
    var allReduceLaunch: AllReduceLaunch = .graph

    @Flag(name: .customLong("overlap-optimizer"), help: "Multi-rank runs, an experiment: update every parameter outside the last gradient bucket while that bucket is still being all-reduced (Note [Optimizer beside the last all-reduce]).")
    var overlapOptimizer = false

    @Flag(name: .customLong("widen-in-optimizer"), inversion: .prefixedNo, help: "Multi-rank GPU runs with bf16 gradients: the optimizer reads each all-reduce's bf16 result itself; --no-widen-in-optimizer widens it into the float32 gradients first, as before (Note [Widening in the optimizer]).")
    var widenInOptimizer = true

    @Flag(name: .customLong("wire-conversions-on-compute-stream"), help: "Multi-rank GPU runs with bf16 gradients, an experiment: round each bucket into the wire buffer on the compute stream and widen after the wait, leaving only the all-reduces beside backward (Note on GradientReducer.convertsOnComputeStream).")
    var wireConversionsOnComputeStream = false

    @Option(name: .customLong("bucket-release"), help: ArgumentHelp("Multi-rank runs, an experiment: hold full gradient buckets back and start them once backward has written these parameters' gradients (comma-separated names; 'name*k' starts at most k held buckets there). Note [Bucket release points].", valueName: "parameters"))
    var bucketRelease: String?

    @Option(name: .customLong("collective-timeout"), help: "Multi-rank GPU runs: seconds a step or collective may stay unfinished before the watchdog stops every rank (0: no watchdog).")
    var collectiveTimeout = Int(NCCLCommunicator.defaultTimeout.components.seconds)

    /// `--bucket-release`'s text as (parameter, count) pairs: "a*2,b" is
    /// [("a", 2), ("b", nil)].
    static func releasePoints(_ text: String) throws -> [(parameter: String, count: Int?)] {
        try text.split(separator: ",", omittingEmptySubsequences: false).map { item in
            let parts = item.trimmingCharacters(in: .whitespaces).split(separator: "*", omittingEmptySubsequences: false)
            guard let name = parts.first, !name.isEmpty, parts.count <= 2 else {
                throw ValidationError("--bucket-release: '\(item)' is not a parameter name or 'name*count' (e.g. layer3.1.conv1.weight*2)")
            }
            guard parts.count == 2 else { return (String(name), nil) }
            guard let count = Int(parts[1]), count > 0 else {
                throw ValidationError("--bucket-release: '\(item)': the count after '*' must be a positive whole number")
            }
            return (String(name), count)
        }
    }

    func validate() throws {
        func positive(_ value: Int, _ flag: String) throws {
            guard value > 0 else { throw ValidationError("\(flag) must be a positive integer, not \(value)") }
        }
        try positive(epochs, "--epochs")
        try positive(batchSize, "--batch-size")
        try positive(baseBatchSize, "--base-batch-size")
        try positive(stepEvery, "--step-every")
        try positive(evalBatchSize, "--eval-batch-size")
        try positive(logEvery, "--log-every")
        if let stepsPerEpoch { try positive(stepsPerEpoch, "--steps-per-epoch") }
        if let replicas {
            try positive(replicas, "--replicas")
            guard strategy == .dp else {
                throw ValidationError("--replicas is for --strategy dp (one process, a thread per replica); with --strategy ddp, start a process per device: cohort launch --nproc-per-node \(replicas) -- cohort train ...")
            }
        }
        if strategy == .dp && deviceOptions.device.isHost && replicas == nil {
            throw ValidationError("--strategy dp --device cpu needs --replicas N: how many CPU replicas to run as threads of this process")
        }
        if let evalLimit { try positive(evalLimit, "--eval-limit") }
        if let targetAccuracy, !(targetAccuracy > 0 && targetAccuracy <= 1) {
            throw ValidationError("--target-accuracy is a fraction in (0, 1], e.g. 0.9 for 90%, not \(targetAccuracy)")
        }
        guard bnRecalibrationBatches >= 0 else { throw ValidationError("--bn-recalibration-batches must be 0 or more") }
        guard bucketCapMB > 0, bucketCapMB.isFinite else { throw ValidationError("--bucket-cap-mb must be a positive number of megabytes") }
        if let bucketRelease { _ = try Self.releasePoints(bucketRelease) }
        guard collectiveTimeout >= 0 else { throw ValidationError("--collective-timeout must be 0 (off) or a number of seconds") }
        guard lr.isFinite, lr > 0 else { throw ValidationError("--lr must be a positive number, not \(lr)") }
        guard warmupEpochs >= 0, warmupEpochs <= epochs else {
            throw ValidationError("--warmup-epochs must be between 0 and --epochs (\(epochs)), not \(warmupEpochs)")
        }
        guard (0..<1).contains(labelSmoothing) else {
            throw ValidationError("--label-smoothing must be in [0, 1), not \(labelSmoothing)")
        }
        guard (0...1).contains(momentum) else { throw ValidationError("--momentum must be in [0, 1], not \(momentum)") }
        guard !nesterov || momentum > 0 else { throw ValidationError("--nesterov needs a --momentum above 0") }
        guard weightDecay >= 0, weightDecay.isFinite else { throw ValidationError("--weight-decay must be 0 or more") }
        guard gamma > 0, gamma.isFinite else { throw ValidationError("--gamma must be positive") }
        guard larsEta > 0, larsEta.isFinite else { throw ValidationError("--lars-eta must be positive") }
        if let resume, !FileManager.default.fileExists(atPath: resume) {
            throw ValidationError("--resume: no checkpoint at \(resume)")
        }
    }

    func run() throws {
        // Read once, where the CUDA backend records its first timestamp (Note [Timing inside graphs]).
        if timeGraphPhases || timeGradientMarks { setenv("COHORT_GRAPH_TIMING", "1", 1) }
        if strategy == .dp { return try runReplicas() }
        let environment = try RankEnvironment.current()
        let communicator: Communicator
        var prepared: (backend: Backend, notes: [String])?
        var rendezvous: Rendezvous?
        if environment.isDistributed && !deviceOptions.device.isHost {
            // Note [GPU ranks]: the backend first (NCCL works on its device and stream).
            try requireRunDirectory(environment)
            let device = Self.rankDevice(deviceOptions.device, environment: environment,
                                         visibleDevices: ProcessInfo.processInfo.environment["CUDA_VISIBLE_DEVICES"])
            let made = try makeBackend(device: device, choice: deviceOptions.backend, allowsTF32: !deviceOptions.noTF32)
            guard let cuda = made.backend as? CUDABackend else {
                throw ValidationError("multi-rank GPU runs need the CUDA backend, got \(made.backend.name)")
            }
            let blockNote = NCCLBlockLimit.apply(perDeviceBatch: batchSize,
                                                 ranksShareOneMachine: environment.ranksShareOneMachine)
            let launchNote = cuda.prepareDataParallelSteps(perDeviceBatch: batchSize)
            (communicator, rendezvous) = try Self.makeNCCLCommunicator(
                backend: cuda, environment: environment,
                timeout: collectiveTimeout > 0 ? .seconds(collectiveTimeout) : nil)
            var notes = made.notes + [blockNote, launchNote].compactMap { $0 }
            if device != deviceOptions.device {
                notes.append("rank \(environment.rank) on \(device) (local rank \(environment.localRank) of \(environment.localWorldSize))")
            }
            prepared = (made.backend, notes)
        } else {
            communicator = try makeCommunicator(environment)
        }
        do {
            try train(communicator: communicator, environment: environment, prepared: prepared)
            try communicator.shutdown()
            rendezvous?.close()
        } catch where communicator.worldSize > 1 {
            // Note [Distributed failures]: one rank's error ends every rank.
            communicator.abort(reason: "\(error)")
        }
    }

    /// One process: no communication; several on the CPU: MPI (`Note [Launching CPU ranks]`);
    /// several on GPUs: `run` builds an NCCL communicator instead (`Note [GPU ranks]`).
    func makeCommunicator(_ environment: RankEnvironment) throws -> Communicator {
        guard environment.isDistributed else { return SingleProcessCommunicator() }
        try requireRunDirectory(environment)
        return try MPICommunicator(environment: environment)
    }

    func requireRunDirectory(_ environment: RankEnvironment) throws {
        guard runDirectory != nil || resume != nil else {
            throw ValidationError("a run of \(environment.worldSize) ranks needs --run-dir: every rank writes its metrics there, rank 0 its checkpoints, and a restarted run resumes from it")
        }
    }

    /// Note [GPU ranks]
    /// - One process per GPU. `--device cuda` (or `cuda:0`) under several
    ///   ranks means `cuda:LOCAL_RANK`, as torchrun scripts do, unless
    ///   CUDA_VISIBLE_DEVICES already gives each rank a single GPU; any
    ///   other index is taken as given.
    /// - Rank 0 makes the NCCL unique id; under mpirun (and `cohort launch`,
    ///   which runs mpirun; OMPI_COMM_WORLD_RANK is set) it reaches the other
    ///   ranks as an MPI broadcast of its 128 bytes, and the MPI communicator
    ///   stays alive as the NCCL communicator's bootstrap (its abort stops every rank, its shutdown
    ///   finalises MPI). Otherwise (torchrun or Slurm variables) it goes
    ///   through the TCP store at MASTER_ADDR:MASTER_PORT (`Note [Rendezvous]`).
    /// - Gradients are all-reduced on NCCL's communication stream while
    ///   backward runs, and the whole step, collectives included, is
    ///   captured as a CUDA graph (`Note [Communication stream]`); a watchdog
    ///   stops every rank when a step does not finish within
    ///   --collective-timeout.
    static func rankDevice(_ device: Device, environment: RankEnvironment, visibleDevices: String?) -> Device {
        guard !device.isHost, device.index == 0, environment.isDistributed else { return device }
        if let visibleDevices, visibleDevices.split(separator: ",").count == 1 { return device }
        return .cuda(environment.localRank)
    }

    static func makeNCCLCommunicator(backend: CUDABackend, environment: RankEnvironment,
                                     timeout: Duration? = NCCLCommunicator.defaultTimeout) throws
        -> (communicator: NCCLCommunicator, rendezvous: Rendezvous?) {
        // Under mpirun (directly, or through `cohort launch`, whose ranks see
        // torchrun's variables too): Open MPI's variables are set.
        if environment.source == .openMPI || ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_RANK"] != nil {
            let mpi = try MPICommunicator(environment: environment)
            var id = [UInt8](repeating: 0, count: NCCLCommunicator.uniqueIdByteCount)
            if mpi.isRoot {
                do { id = try NCCLCommunicator.makeUniqueId() } catch { mpi.abort(reason: "\(error)") }
            }
            try mpi.broadcast(bytes: &id, root: 0)
            do {
                let nccl = try NCCLCommunicator(backend: backend, rank: mpi.rank, worldSize: mpi.worldSize, uniqueId: id,
                                                bootstrap: mpi, timeout: timeout)
                return (nccl, nil)
            } catch {
                mpi.abort(reason: "\(error)")
            }
        }
        let rendezvous = try Rendezvous(environment: environment, share: { try NCCLCommunicator.makeUniqueId() })
        guard let id = rendezvous.sharedBlob else {
            throw ValidationError("the rendezvous at \(environment.masterAddress ?? "?"):\(environment.masterPort.map(String.init) ?? "?") carried no NCCL id from rank 0")
        }
        let nccl = try NCCLCommunicator(backend: backend, rank: environment.rank, worldSize: environment.worldSize,
                                        uniqueId: id, timeout: timeout)
        return (nccl, rendezvous)
    }

    /// One rank's (or, with `--strategy dp`, one replica thread's) run. `data`:
    /// the data sets when already loaded (replica threads share one copy);
    /// `placement`: with dp, where the replicas run, for the header line.
    func train(communicator: Communicator, environment: RankEnvironment,
               prepared: (backend: Backend, notes: [String])? = nil, data shared: LoadedData? = nil,
               placement: String? = nil) throws {
        let worldSize = communicator.worldSize
        let display = ProgressDisplay(enabled: !noProgress, muted: !communicator.isRoot)
        let (backend, notes) = try prepared
            ?? makeBackend(device: deviceOptions.device, choice: deviceOptions.backend, allowsTF32: !deviceOptions.noTF32)
        if deterministic { backend.setDeterministicAlgorithms(true) }
        let data = try shared ?? dataOptions.load(log: display.log)
        let globalBatch = batchSize * worldSize
        let scaledLR = lrScaling.scaled(baseLR: lr, baseBatch: baseBatchSize, batch: globalBatch)
        let decay: LearningRateSchedule.Decay
        switch schedule {
        case .constant: decay = .constant
        case .step: decay = .step(everyEpochs: stepEvery, gamma: gamma)
        case .cosine: decay = .cosine(finalFactor: 0)
        case .linear: decay = .linear(finalFactor: 0)
        }
        var configuration = TrainingConfiguration(
            architecture: model, precision: precision, epochs: epochs, batchSize: batchSize, learningRate: scaledLR, decay: decay,
            warmupEpochs: warmupEpochs,
            optimizer: OptimizerConfiguration(kind: optimizer, momentum: momentum, weightDecay: weightDecay,
                                              nesterov: nesterov, larsTrustCoefficient: larsEta),
            noDecayOnNormAndBias: noDecayOnNormAndBias, labelSmoothing: labelSmoothing, seed: seed,
            stepsPerEpochLimit: stepsPerEpoch, evaluationLimit: evalLimit, evaluationBatchSize: evalBatchSize,
            logEvery: logEvery)
        configuration.graphs = !noGraphs
        configuration.targetAccuracy = targetAccuracy
        configuration.zeroInitResidual = zeroInitResidual
        configuration.recalibrationBatches = bnRecalibrationBatches
        configuration.gradientMarks = timeGradientMarks
        configuration.splitsGraphAfterForward = splitStepGraph

        let directory = URL(fileURLWithPath: runDirectory
            ?? resume.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path }
            ?? "runs/" + Self.timestamp())
        let checkpointURL = directory.appendingPathComponent("checkpoint.safetensors")
        let metrics = try MetricsLog(url: directory.appendingPathComponent(
            worldSize > 1 ? "metrics-rank\(communicator.rank).jsonl" : "metrics.jsonl"))
        let gradientDType = allReduceDType.resolved(trainingDType: precision.dtype, reducesBFloat16: communicator.reducesBFloat16)
        if worldSize > 1 && !noCommunication {
            // Note [Symmetric wire buffer]: every rank resolves the same way (one machine: dp, or all ranks local).
            let nccl = communicator as? NCCLCommunicator
            let registers = try symmetricWindows.resolved(
                windowsAvailable: nccl.map { _ in NCCLCommunicator.hasSymmetricWindows },
                ranksShareOneMachine: strategy == .dp || environment.ranksShareOneMachine,
                wireIsBFloat16: gradientDType == .bfloat16)
            nccl?.registersWireBuffer = registers
            if allReduceLaunch != .graph {
                guard let nccl else {
                    throw ValidationError("--allreduce-launch \(allReduceLaunch.rawValue) is for NCCL ranks (GPUs); this run's collectives are \(communicator.name)'s")
                }
                nccl.setAllReduceLaunch(allReduceLaunch)
            }
        }
        let trainer = try Trainer(configuration: configuration, backend: backend, trainingSet: data.training,
                                  testSet: data.test, checkpointURL: checkpointURL,
                                  metrics: metrics, display: display, communicator: communicator,
                                  overlapCommunication: !noOverlap,
                                  gradientDType: gradientDType,
                                  bucketCap: Int(bucketCapMB * 1_048_576), averagesGradients: !noCommunication,
                                  overlapOptimizer: overlapOptimizer, mergesSmallBuckets: mergeSmallBuckets,
                                  widensInOptimizer: widenInOptimizer)
        if wireConversionsOnComputeStream {
            guard let reducer = trainer.reducer, reducer.communicationDType == .bfloat16, communicator is NCCLCommunicator else {
                throw ValidationError("--wire-conversions-on-compute-stream moves the bf16 gradient conversions of NCCL ranks; "
                                      + "this run has \(trainer.reducer == nil ? "no all-reduce" : "no bf16 NCCL all-reduce")")
            }
            reducer.convertsOnComputeStream = true
        }
        if let bucketRelease, let reducer = trainer.reducer {
            try reducer.holdBuckets(releasingAt: try Self.releasePoints(bucketRelease))
        }
        // Note [Restarts]: a job restarted by `cohort launch --max-restarts`
        // resumes from the run folder's last checkpoint (rank 0 wrote it).
        let restart = Int(ProcessInfo.processInfo.environment[launchRestartCountVariable] ?? "") ?? 0
        var resumeFrom = resume
        if resumeFrom == nil, restart > 0, FileManager.default.fileExists(atPath: checkpointURL.path) {
            resumeFrom = checkpointURL.path
        }
        if let resumeFrom {
            try trainer.resume(from: URL(fileURLWithPath: resumeFrom))
        }

        display.log("cohort train: \(model.rawValue) in \(precision.rawValue) (\(trainer.model.store.parameterCount.formatted()) parameters) on \(backend.device) with the \(backend.name) backend (\(backend.details))")
        notes.forEach { display.log("note: \($0)") }
        display.log("data: \(data.description)")
        let scalingText = lrScaling == .none
            ? "no scaling" : "\(lrScaling) of \(lr) from batch \(baseBatchSize) to the global batch \(globalBatch)"
        if worldSize > 1 {
            let sampler = trainer.loader.sampler
            let library = (communicator as? MPICommunicator).map { ", \($0.libraryVersion)" }
                ?? (communicator as? NCCLCommunicator).map {
                    " \($0.versionText) on its own stream\($0.usesSymmetricWindows ? ", the bf16 wire buffer a symmetric window" : "")"
                        + ((backend as? CUDABackend)?.launchesKernelsProgrammatically == true ? ", kernels launched programmatically (COHORT_PDL)" : "")
                } ?? ""
            let unit = strategy == .dp ? "replica" : "rank"
            let ranks = strategy == .dp
                ? "strategy dp: \(worldSize) replicas as threads of one process, \(placement ?? "") (\(communicator.name)\(library))"
                : "strategy ddp: \(worldSize) ranks, one process each (\(communicator.name)\(library), from \(environment.source.rawValue) variables)"
            if let reducer = trainer.reducer {
                display.log("\(ranks); gradients averaged in \(reducer.buckets.count) buckets (\(reducer.buckets.map { Self.megabytes($0.byteCount) }.joined(separator: ", "))), \(noOverlap ? "one all-reduce after backward (--no-overlap)" : bucketRelease.map { "held and started at --bucket-release \($0)" } ?? "each all-reduced as soon as backward produced it") in \(reducer.communicationDType == .bfloat16 ? "bf16" : "fp32")\(allReduceDType == .auto ? " (--allreduce-dtype auto)" : "")\(overlapOptimizer ? "; the optimizer updates the rest while the last bucket is all-reduced" : "")\(trainer.capturesSteps ? "; steps captured as CUDA graphs" + (allReduceLaunch == .graph ? "" : ", their all-reduces launched by the host (--allreduce-launch \(allReduceLaunch.rawValue))") : "")")
            } else {
                display.log("\(ranks); gradients NOT averaged (--no-communication): every \(unit) trains on its own, a timing run, not data-parallel training\(trainer.capturesSteps ? "; steps captured as CUDA graphs" : "")")
            }
            display.log("global batch \(globalBatch) = \(worldSize) \(unit)s x \(batchSize); sampler: each epoch's shuffled order padded to \(sampler.totalSize) and split into \(worldSize) disjoint shards of \(sampler.samplesPerRank) (\(unit) r takes positions r, r+\(worldSize), ...); \(trainer.stepsPerEpoch) steps per epoch; lr \(scaledLR) (\(scalingText)); \(trainer.schedule)")
            display.log("batch norm: per-\(unit) batch statistics; \(unit) 0's running statistics are broadcast before each evaluation and checkpoint")
        } else {
            display.log("batch \(batchSize) on 1 \(strategy == .dp ? "replica" : "rank") (global batch \(batchSize)), \(trainer.stepsPerEpoch) steps per epoch; lr \(scaledLR) (\(scalingText)); \(trainer.schedule)")
        }
        display.log("optimizer \(optimizer.rawValue), momentum \(momentum)\(nesterov ? " (Nesterov)" : ""), weight decay \(weightDecay)\(noDecayOnNormAndBias ? " (not on norms and biases)" : ""), label smoothing \(labelSmoothing), seed \(seed)\(zeroInitResidual ? ", residual blocks starting as the identity (--zero-init-residual)" : "")\(bnRecalibrationBatches > 0 ? ", batch-norm statistics recomputed over \(bnRecalibrationBatches) batches before each evaluation" : "")")
        if trainer.capturesSteps && backend.recordsTimestampsInsideGraphs {
            display.log("replayed steps timed inside their graph (--time-graph-phases): logged steps report forward, backward and each all-reduce\(timeGradientMarks ? ", and when each convolution's weight gradient was written (--time-gradient-marks)" : "")")
        } else if timeGraphPhases {
            display.log("--time-graph-phases: not on this backend or driver (steps not captured, or no cuEventRecordWithFlags); logged steps report their whole only")
        }
        display.log("run folder: \(directory.path)\(resumeFrom.map { "; resuming from \($0) at epoch \(trainer.progress.epoch)" } ?? "")\(restart > 0 ? " (restart \(restart))" : "")")

        var header = configuration.summary
        header["backend"] = backend.name
        if backend.recordsTimestampsInsideGraphs { header["graph_phase_timing"] = "true" }
        header["device"] = backend.device.description
        if deterministic { header["deterministic"] = "cuDNN algorithms reported deterministic" }
        header["dataset"] = data.training.name
        header["synthetic"] = String(data.training.isSynthetic)
        header["lr_scaling"] = lrScaling.rawValue
        header["world_size"] = String(worldSize)
        header["strategy"] = strategy.rawValue
        header["rank"] = String(communicator.rank)
        header["global_batch_size"] = String(globalBatch)
        header["pid"] = String(ProcessInfo.processInfo.processIdentifier)
        if let environment = EnvironmentSettings.headerValue() { header["environment"] = environment }
        if noCommunication { header["communication"] = "off" }
        if splitStepGraph { header["split_step_graph"] = "after forward" }
        if allReduceLaunch != .graph && trainer.reducer != nil { header["allreduce_launch"] = allReduceLaunch.rawValue }
        if let reducer = trainer.reducer {
            header["overlap"] = String(reducer.overlap)
            header["allreduce_dtype"] = reducer.communicationDType == .bfloat16 ? "bf16" : "fp32"
            if let nccl = communicator as? NCCLCommunicator { header["nccl_symmetric_windows"] = String(nccl.usesSymmetricWindows) }
            header["merged_small_buckets"] = String(mergeSmallBuckets)
            if reducer.communicationDType == .bfloat16 && reducer.convertsOnComputeStream {
                header["wire_conversions"] = "compute stream"
            }
            // Note [Widening in the optimizer]: where the averaged gradients are read from.
            header["optimizer_gradients"] = reducer.optimizerReadsWire ? "bf16 wire" : "float32"
            // float32 sizes; GPUMeasurements halves them for allreduce_dtype bf16 (older runs' headers read the same).
            header["bucket_bytes"] = reducer.buckets.map { String($0.byteCount) }.joined(separator: ",")
            if let bucketRelease { header["bucket_release"] = bucketRelease }
            if overlapOptimizer { header["optimizer_overlap"] = "last bucket" }
            header["sampler"] = "distributed: \(worldSize) shards of \(trainer.loader.sampler.samplesPerRank)"
        }
        if restart > 0 { header["restart"] = String(restart) }
        metrics.record("run", header)

        let summary = try trainer.run()
        if let targetAccuracy {
            display.log(summary.targetReached.map {
                String(format: "time to %.2f%% test accuracy: %.2f s of training (%d epochs)", 100 * targetAccuracy, $0.trainingSeconds, $0.epoch)
            } ?? String(format: "target %.2f%% test accuracy not reached in %d epochs", 100 * targetAccuracy, summary.epochsCompleted))
        }
        if let last = summary.evaluations.last {
            display.log(String(format: "done: %d epochs, %d steps, %.1f s; final test accuracy %.2f%%%@",
                               summary.epochsCompleted, summary.globalSteps, summary.trainingSeconds,
                               100 * last.accuracy, data.test.isSynthetic ? " (synthetic data)" : ""))
        } else {
            display.log("done: \(summary.epochsCompleted) epochs, \(summary.globalSteps) steps")
        }
    }

    static func megabytes(_ bytes: Int) -> String { String(format: "%.2f MB", Double(bytes) / 1_048_576) }

    static func timestamp() -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        formatter.locale = Locale(identifier: "en_US_POSIX")
        return "train-" + formatter.string(from: Date())
    }
}
