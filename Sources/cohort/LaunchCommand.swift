import ArgumentParser
import CohortDistributed
import Foundation

/// Set by `cohort launch` in every rank's environment: 0 on the first
/// attempt, n on the n-th restart (`Note [Restarts]`).
let launchRestartCountVariable = "COHORT_RESTART_COUNT"

/// `cohort launch`: starts the ranks of a data-parallel run, with torchrun's flags.
///
/// Note [Launching CPU ranks]
/// CPU ranks communicate through MPI, and an MPI world can only be formed by
/// an MPI launcher (mpirun, or srun with PMIx). `cohort launch` therefore
/// runs `mpirun` itself for the ranks instead of starting them one by one
/// as torchrun does, and only adds what torchrun users expect:
/// - Every rank gets torchrun's variables: mpirun starts `cohort _rank --
///   <command>` (hidden), which copies Open MPI's OMPI_COMM_WORLD_* into
///   RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE and execs the command;
///   MASTER_ADDR and MASTER_PORT (--master-port + 1: the launchers' own
///   store holds --master-port on node 0, the ranks get the next port for a
///   store of their own, for an id exchange without MPI) and
///   COHORT_RESTART_COUNT are exported to every node, with the launcher's
///   COHORT_, NCCL_ and CUDA_ settings (`forwardedVariables`).
/// - Several machines: each runs `cohort launch --nnodes N --node-rank R
///   --master-addr A`; the launchers meet at a TCP store on node 0
///   (`Rendezvous`, time-limited by --rdzv-timeout), each announces the
///   address it reaches the store from and its --nproc-per-node, and node
///   0's launcher runs one mpirun over all hosts (`--host a:n,b:n`, which
///   starts the remote ranks through ssh, or whatever OMPI_MCA_plm_rsh_agent
///   names). The other launchers wait for node 0's result and exit with it.
/// - Failures: mpirun kills the whole job as soon as one rank dies or calls
///   MPI_Abort (which a rank does on any error, `Note [Distributed
///   failures]`), so no rank outlives a failed one by more than the watchdog
///   limit. The launcher reads mpirun's output as it passes through and
///   names the first rank that failed, and its error, in its last line.
/// - GPU ranks start the same way: `cohort train --device cuda` then takes
///   cuda:LOCAL_RANK and builds an NCCL communicator, its unique id carried
///   by an MPI broadcast (`Note [GPU ranks]` in TrainCommand.swift). The CPU
///   settings (OMP_NUM_THREADS split between a node's ranks, --bind-to none)
///   only size the host threads of a GPU rank (data loading).
/// - --max-restarts N runs the job again after a failure, up to N times;
///   `cohort train` resumes from its run folder's last checkpoint then
///   (`Note [Restarts]`).
/// Why not ranks that build their own collectives over the TCP store: that
/// would be a second communicator to write, tune and keep correct (ring
/// all-reduce, failure detection, process management) where Open MPI's is
/// proven, and process teardown on failure would be ours to get right too.
/// The price is that multi-machine CPU runs need mpirun's usual ssh access
/// from node 0, and that under Slurm one uses `srun --mpi=pmix cohort
/// train` directly (or `cohort launch` inside a one-node allocation).
struct Launch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start one process per rank of a data-parallel run, as torchrun does (CPU ranks through mpirun).",
        discussion: """
            Example: cohort launch --nproc-per-node 2 -- cohort train --device cpu --dataset synthetic --run-dir runs/ddp
            Two machines: run on each
              cohort launch --nnodes 2 --node-rank <0 or 1> --master-addr <node 0's address> --nproc-per-node 2 -- cohort train ...
            (node 0 starts every rank through mpirun, which needs ssh to the other nodes).
            Every rank gets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT, and the \
            launcher's COHORT_*, NCCL_* and CUDA_* settings (on other nodes too; not CUDA_VISIBLE_DEVICES). When a rank \
            fails, the job stops and the launcher names that rank and its error; with --max-restarts the job \
            starts again and cohort train resumes from the run folder's checkpoint.
            """)

    @Option(name: .customLong("nproc-per-node"), help: "Ranks on this machine.")
    var nprocPerNode = 1

    @Option(help: "Machines in the run.")
    var nnodes = 1

    @Option(name: .customLong("node-rank"), help: "This machine's index, 0..<nnodes (node 0 hosts the rendezvous and starts the ranks).")
    var nodeRank = 0

    @Option(name: .customLong("master-addr"), help: "Node 0's address, reachable from every machine.")
    var masterAddress = "127.0.0.1"

    @Option(name: .customLong("master-port"), help: "Port of the launchers' rendezvous on node 0 (the ranks get the next one as MASTER_PORT).")
    var masterPort = 29500

    @Option(name: .customLong("max-restarts"), help: "Run the job again after a failure, up to this many times (resuming from the last checkpoint).")
    var maxRestarts = 0

    @Option(name: .customLong("rdzv-timeout"), help: "Seconds the launchers wait for every machine to join.")
    var rendezvousTimeout = 300

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The rank's command, after --; `cohort` means this executable.", valueName: "command"))
    var command: [String] = []

    func validate() throws {
        guard nprocPerNode > 0 else { throw ValidationError("--nproc-per-node must be a positive integer, not \(nprocPerNode)") }
        guard nnodes > 0 else { throw ValidationError("--nnodes must be a positive integer, not \(nnodes)") }
        guard (0..<nnodes).contains(nodeRank) else { throw ValidationError("--node-rank must be in 0..<\(nnodes) (--nnodes), not \(nodeRank)") }
        guard (1...65534).contains(masterPort) else { throw ValidationError("--master-port must be in 1...65534, not \(masterPort)") }
        guard maxRestarts >= 0 else { throw ValidationError("--max-restarts must be 0 or more") }
        guard rendezvousTimeout > 0 else { throw ValidationError("--rdzv-timeout must be a positive number of seconds") }
        guard !command.isEmpty else {
            throw ValidationError("give the command each rank runs after --, e.g. cohort launch --nproc-per-node 2 -- cohort train --device cpu ...")
        }
    }

    func run() throws {
        let hosts: [(host: String, ranks: Int)]
        var rendezvous: Rendezvous?
        if nnodes > 1 {
            let meeting = try meetOtherLaunchers()
            guard nodeRank == 0 else {
                let status = try waitForNodeZero(meeting)
                meeting.close()
                throw ExitCode(status)
            }
            rendezvous = meeting
            hosts = try (0..<nnodes).map { node in
                let text = String(decoding: try meeting.store.get("cohort/launch/node/\(node)"), as: UTF8.self)
                let parts = text.split(separator: " ")
                return (String(parts[0]), Int(parts[1]) ?? nprocPerNode)
            }
        } else {
            hosts = []
        }
        let worldSize = nnodes > 1 ? hosts.map(\.ranks).reduce(0, +) : nprocPerNode
        log("\(worldSize) ranks (\(nnodes > 1 ? hosts.map { "\($0.host): \($0.ranks)" }.joined(separator: ", ") : "\(nprocPerNode) on this machine")) through mpirun; MASTER_ADDR=\(masterAddress) MASTER_PORT=\(masterPort + 1)")
        let forwarded = Self.forwardedVariables(in: ProcessInfo.processInfo.environment)
        if !forwarded.isEmpty { log("passed to every rank, on every node: \(forwarded.joined(separator: " "))") }
        var status: Int32 = 1
        for attempt in 0...maxRestarts {
            if attempt > 0 { log("restart \(attempt) of \(maxRestarts): running the job again; cohort train resumes from its last checkpoint") }
            let job = MPIRunJob(arguments: try mpirunArguments(worldSize: worldSize, hosts: hosts),
                                environment: rankEnvironment(restart: attempt, worldSize: worldSize))
            let result = try job.run()
            status = result.status
            if status == 0 { break }
            log("the job failed (mpirun exit status \(status)): \(result.failure?.description ?? "no rank reported an error")")
        }
        if let rendezvous {
            try? rendezvous.store.set("cohort/launch/result", Array(String(status).utf8))
            rendezvous.close()
        }
        if status != 0 { throw ExitCode(status) }
    }

    /// Meets the other machines' launchers (`Note [Launching CPU ranks]`)
    /// and announces this machine's address and rank count.
    func meetOtherLaunchers() throws -> Rendezvous {
        let environment = RankEnvironment(rank: nodeRank, worldSize: nnodes, localRank: 0, localWorldSize: 1,
                                          masterAddress: masterAddress, masterPort: masterPort, source: .torchrun)
        do {
            let meeting = try Rendezvous(environment: environment, timeout: .seconds(rendezvousTimeout))
            let host = meeting.store.localHost ?? masterAddress
            try meeting.store.set("cohort/launch/node/\(nodeRank)", Array("\(host) \(nprocPerNode)".utf8))
            return meeting
        } catch {
            throw LaunchError(message: "the launchers of \(nnodes) machines did not meet at \(masterAddress):\(masterPort) within --rdzv-timeout \(rendezvousTimeout) s: \(error)")
        }
    }

    /// On nodes other than 0: waits until node 0's mpirun has finished; returns its exit status.
    func waitForNodeZero(_ meeting: Rendezvous) throws -> Int32 {
        log("node \(nodeRank): joined; node 0 starts this machine's \(nprocPerNode) ranks through mpirun")
        while true {
            let value: [UInt8]
            switch Result(catching: { () throws(TCPStoreError) -> [UInt8] in
                try meeting.store.get("cohort/launch/result", timeout: .seconds(3600))
            }) {
            case .success(let bytes): value = bytes
            case .failure(.timedOut): continue
            case .failure(let error):
                throw LaunchError(message: "lost node 0's launcher at \(masterAddress):\(masterPort): \(error)")
            }
            let status = Int32(String(decoding: value, as: UTF8.self)) ?? 1
            log("node \(nodeRank): the job ended with status \(status) (node 0's launcher has the details)")
            return status
        }
    }

    func mpirunArguments(worldSize: Int, hosts: [(host: String, ranks: Int)]) throws -> [String] {
        guard let mpirun = findInPath("mpirun") else {
            throw LaunchError(message: "mpirun not found: ranks (CPU and GPU) are started by Open MPI (apt-get install openmpi-bin libopenmpi-dev)")
        }
        let me = try ownExecutable()
        var arguments = [mpirun, "-np", String(worldSize), "--oversubscribe", "--bind-to", "none"]
        if getuid() == 0 { arguments.append("--allow-run-as-root") }
        if !hosts.isEmpty { arguments += ["--host", hosts.map { "\($0.host):\($0.ranks)" }.joined(separator: ",")] }
        for variable in ["MASTER_ADDR", "MASTER_PORT", launchRestartCountVariable, "OMP_NUM_THREADS"]
            + Self.forwardedVariables(in: ProcessInfo.processInfo.environment) {
            arguments += ["-x", variable]
        }
        let program = command[0] == "cohort" ? me : command[0]
        return arguments + [me, "_rank", "--", program] + command.dropFirst()
    }

    /// Prefixes of the variables `-x` sends to every rank, remote ones too:
    /// Open MPI hands its own environment only to the ranks of its own
    /// machine, and a rank on another node must see the same NCCL settings
    /// (NCCL_NVLS_ENABLE=0 among them, which the GPU machines require
    /// everywhere), CUDA settings and Cohort's own switches as node 0's.
    static let forwardedPrefixes = ["COHORT_", "NCCL_", "CUDA_", "NVSHMEM_", "TORCH_SYMM_MEM_"]
    /// Facts of node 0's machine rather than settings of the job: each node keeps its own.
    static let machineVariables: Set<String> = ["CUDA_VISIBLE_DEVICES", "CUDA_HOME", "CUDA_PATH", "CUDA_VERSION",
                                                "NCCL_VERSION"]

    /// The names in `environment` that `-x` passes on, sorted.
    static func forwardedVariables(in environment: [String: String]) -> [String] {
        environment.keys.filter { name in
            forwardedPrefixes.contains { name.hasPrefix($0) } && !machineVariables.contains(name)
        }.sorted()
    }

    /// mpirun's environment, which it passes on to every rank.
    func rankEnvironment(restart: Int, worldSize: Int) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["MASTER_ADDR"] = masterAddress
        environment["MASTER_PORT"] = String(masterPort + 1)
        environment[launchRestartCountVariable] = String(restart)
        if environment["OMP_NUM_THREADS"] == nil {
            // As torchrun: ranks sharing a machine split its cores.
            let cores = ProcessInfo.processInfo.activeProcessorCount
            environment["OMP_NUM_THREADS"] = String(max(1, cores / nprocPerNode))
        }
        return environment
    }

    func log(_ line: String) { FileHandle.standardError.write(Data("cohort launch: \(line)\n".utf8)) }
}

/// A launcher failure that is not a rank's: missing mpirun, a rendezvous that never completed.
struct LaunchError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// The path of the running cohort executable.
func ownExecutable() throws -> String {
    if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return path }
    guard let path = Bundle.main.executablePath else { throw LaunchError(message: "cannot find the cohort executable's path") }
    return path
}

/// `name`'s full path in PATH, if it is there.
func findInPath(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// `cohort _rank -- <command>`: what mpirun starts under `cohort launch`.
/// Sets torchrun's variables from Open MPI's (or Slurm's) and becomes the command.
struct RankExec: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "_rank", shouldDisplay: false)

    @Argument(parsing: .postTerminator) var command: [String] = []

    func run() throws {
        let environment = try RankEnvironment.current()
        guard environment.source != .single, let program = command.first else {
            throw LaunchError(message: "cohort _rank runs under mpirun, started by cohort launch")
        }
        setenv("RANK", String(environment.rank), 1)
        setenv("WORLD_SIZE", String(environment.worldSize), 1)
        setenv("LOCAL_RANK", String(environment.localRank), 1)
        setenv("LOCAL_WORLD_SIZE", String(environment.localWorldSize), 1)
        var arguments = command.map { strdup($0) } + [nil]
        execvp(program, &arguments)
        throw LaunchError(message: "rank \(environment.rank): cannot run \(program): \(String(cString: strerror(errno)))")
    }
}
