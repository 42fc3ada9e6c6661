#if canImport(Glibc)
import Glibc
#endif

/// Who this process is in a multi-process run, read from the variables a
/// launcher sets. See `Note [Rank discovery]`.
///
/// Note [Rank discovery]
/// Launchers announce the rank in their own variables; the first family
/// present wins:
/// 1. torchrun (or set by hand): `RANK`, `WORLD_SIZE`, `LOCAL_RANK`,
///    `LOCAL_WORLD_SIZE`. Present as soon as `RANK` or `WORLD_SIZE` is set;
///    both are then required. The local pair defaults to (`RANK`,
///    `WORLD_SIZE`), i.e. one node, when absent.
/// 2. Open MPI's mpirun: `OMPI_COMM_WORLD_RANK`, `OMPI_COMM_WORLD_SIZE`,
///    `OMPI_COMM_WORLD_LOCAL_RANK`, `OMPI_COMM_WORLD_LOCAL_SIZE`.
/// 3. Slurm's srun: `SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`; the
///    local size from `SLURM_NTASKS_PER_NODE`, else this node's entry
///    (`SLURM_NODEID`) of `SLURM_TASKS_PER_NODE` ("2(x3),1" = 2,2,2,1).
/// 4. None of these: a single process (rank 0 of 1).
/// torchrun comes first because it is what a user sets by hand to override
/// the others (e.g. inside an salloc shell, where SLURM_* are inherited);
/// Open MPI before Slurm because mpirun inside an sbatch script inherits the
/// batch step's SLURM_PROCID=0.
/// `MASTER_ADDR` and `MASTER_PORT` (the TCP store's endpoint) are read for
/// every source; they are optional here and required by `rendezvous`.
public struct RankEnvironment: Sendable, Equatable, CustomStringConvertible {
    /// Which launcher's variables the ranks came from.
    public enum Source: String, Sendable {
        case torchrun, openMPI, slurm, single
    }

    public var rank: Int
    public var worldSize: Int
    /// The rank among the processes on this node (picks the GPU).
    public var localRank: Int
    public var localWorldSize: Int
    /// `MASTER_ADDR`: where rank 0's TCP store listens (host name or IP address).
    public var masterAddress: String?
    /// `MASTER_PORT`, 1-65535 (0 only when built in code: any free port, for tests).
    public var masterPort: Int?
    public var source: Source

    public init(rank: Int = 0, worldSize: Int = 1, localRank: Int = 0, localWorldSize: Int = 1,
                masterAddress: String? = nil, masterPort: Int? = nil, source: Source = .single) {
        self.rank = rank
        self.worldSize = worldSize
        self.localRank = localRank
        self.localWorldSize = localWorldSize
        self.masterAddress = masterAddress
        self.masterPort = masterPort
        self.source = source
    }

    /// One process, rank 0 of 1.
    public static let single = RankEnvironment()

    /// Parses `variables` (e.g. `ProcessInfo.processInfo.environment`).
    public init(parsing variables: [String: String]) throws(RankEnvironmentError) {
        let reader = VariableReader(variables: variables)
        if variables["RANK"] != nil || variables["WORLD_SIZE"] != nil {
            source = .torchrun
            rank = try reader.integer("RANK")
            worldSize = try reader.integer("WORLD_SIZE")
            localRank = try reader.optionalInteger("LOCAL_RANK") ?? rank
            localWorldSize = try reader.optionalInteger("LOCAL_WORLD_SIZE") ?? worldSize
        } else if variables["OMPI_COMM_WORLD_RANK"] != nil {
            source = .openMPI
            rank = try reader.integer("OMPI_COMM_WORLD_RANK")
            worldSize = try reader.integer("OMPI_COMM_WORLD_SIZE")
            localRank = try reader.integer("OMPI_COMM_WORLD_LOCAL_RANK")
            localWorldSize = try reader.integer("OMPI_COMM_WORLD_LOCAL_SIZE")
        } else if variables["SLURM_PROCID"] != nil {
            source = .slurm
            rank = try reader.integer("SLURM_PROCID")
            worldSize = try reader.integer("SLURM_NTASKS")
            localRank = try reader.optionalInteger("SLURM_LOCALID") ?? 0
            if let perNode = try reader.optionalInteger("SLURM_NTASKS_PER_NODE") {
                localWorldSize = perNode
            } else if let list = variables["SLURM_TASKS_PER_NODE"] {
                let node = try reader.optionalInteger("SLURM_NODEID") ?? 0
                localWorldSize = try slurmTasks(onNode: node, list: list)
            } else {
                localWorldSize = worldSize
            }
        } else {
            source = .single
            rank = 0
            worldSize = 1
            localRank = 0
            localWorldSize = 1
        }
        masterAddress = variables["MASTER_ADDR"]
        masterPort = try reader.optionalInteger("MASTER_PORT")
        try validate(names: VariableNames(source))
    }

    /// Parses this process's environment.
    public static func current() throws(RankEnvironmentError) -> RankEnvironment {
        var variables: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let equals = text.firstIndex(of: "=") {
                variables[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            entry += 1
        }
        return try RankEnvironment(parsing: variables)
    }

    public var isDistributed: Bool { worldSize > 1 }
    /// Every rank runs on this machine (what NCCL's intra-node settings ask).
    public var ranksShareOneMachine: Bool { localWorldSize == worldSize }

    /// `MASTER_ADDR` and `MASTER_PORT`, or an error saying which is missing.
    public func masterEndpoint() throws(RankEnvironmentError) -> (address: String, port: Int) {
        guard let address = masterAddress else { throw .missing(variable: "MASTER_ADDR", source: source) }
        guard let port = masterPort else { throw .missing(variable: "MASTER_PORT", source: source) }
        return (address, port)
    }

    public var description: String {
        var text = "rank \(rank) of \(worldSize) (local \(localRank) of \(localWorldSize), from \(source.rawValue))"
        if let masterAddress, let masterPort { text += ", store at \(masterAddress):\(masterPort)" }
        return text
    }

    private func validate(names: VariableNames) throws(RankEnvironmentError) {
        guard worldSize >= 1 else { throw .outOfRange(variable: names.worldSize, value: worldSize, expected: "at least 1") }
        guard (0..<worldSize).contains(rank) else {
            throw .outOfRange(variable: names.rank, value: rank, expected: "0..<\(worldSize) (\(names.worldSize) is \(worldSize))")
        }
        guard (1...worldSize).contains(localWorldSize) else {
            throw .outOfRange(variable: names.localWorldSize, value: localWorldSize, expected: "1...\(worldSize)")
        }
        guard (0..<localWorldSize).contains(localRank) else {
            throw .outOfRange(variable: names.localRank, value: localRank,
                              expected: "0..<\(localWorldSize) (\(names.localWorldSize) is \(localWorldSize))")
        }
        if let masterPort, !(1...65535).contains(masterPort) {
            throw .outOfRange(variable: "MASTER_PORT", value: masterPort, expected: "1...65535")
        }
        if let masterAddress, masterAddress.isEmpty || masterAddress.contains(where: \.isWhitespace) {
            throw .malformed(variable: "MASTER_ADDR", value: masterAddress, expected: "a host name or IP address")
        }
    }
}

/// The variable names each source uses, for error messages.
private struct VariableNames {
    var rank, worldSize, localRank, localWorldSize: String

    init(_ source: RankEnvironment.Source) {
        switch source {
        case .torchrun, .single:
            (rank, worldSize, localRank, localWorldSize) = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
        case .openMPI:
            (rank, worldSize, localRank, localWorldSize) = ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                                                            "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE")
        case .slurm:
            (rank, worldSize, localRank, localWorldSize) = ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
                                                            "SLURM_NTASKS_PER_NODE/SLURM_TASKS_PER_NODE")
        }
    }
}

private struct VariableReader {
    var variables: [String: String]

    func optionalInteger(_ name: String) throws(RankEnvironmentError) -> Int? {
        guard let text = variables[name] else { return nil }
        guard let value = Int(text.trimmingSpaces) else {
            throw .malformed(variable: name, value: text, expected: "an integer")
        }
        return value
    }

    func integer(_ name: String) throws(RankEnvironmentError) -> Int {
        guard let value = try optionalInteger(name) else {
            throw .missing(variable: name, source: nil)
        }
        return value
    }
}

/// Node `node`'s count in Slurm's compressed list: "2(x3),1" means three
/// nodes with 2 tasks, then one with 1.
private func slurmTasks(onNode node: Int, list: String) throws(RankEnvironmentError) -> Int {
    let malformed = RankEnvironmentError.malformed(variable: "SLURM_TASKS_PER_NODE", value: list,
                                                   expected: "counts like \"2(x3),1\"")
    var remaining = node
    for entry in list.split(separator: ",") {
        let parts = entry.split(separator: "(")
        guard let count = Int(parts[0]) else { throw malformed }
        var repeats = 1
        if parts.count == 2 {
            guard parts[1].hasPrefix("x"), parts[1].hasSuffix(")"),
                  let value = Int(parts[1].dropFirst().dropLast()) else { throw malformed }
            repeats = value
        } else if parts.count > 2 {
            throw malformed
        }
        if remaining < repeats { return count }
        remaining -= repeats
    }
    throw .outOfRange(variable: "SLURM_NODEID", value: node, expected: "a node listed in SLURM_TASKS_PER_NODE=\(list)")
}

private extension String {
    var trimmingSpaces: Substring {
        let start = firstIndex { !$0.isWhitespace } ?? endIndex
        let end = lastIndex { !$0.isWhitespace }.map(index(after:)) ?? start
        return self[start..<end]
    }
}

/// A launcher variable that is missing, not a number, or out of range.
public enum RankEnvironmentError: Error, Equatable, CustomStringConvertible {
    case missing(variable: String, source: RankEnvironment.Source?)
    case malformed(variable: String, value: String, expected: String)
    case outOfRange(variable: String, value: Int, expected: String)

    public var description: String {
        switch self {
        case .missing(let variable, let source):
            let context = source.map { " (ranks came from \($0.rawValue) variables)" } ?? ""
            return "\(variable) is not set\(context); set it, as torchrun, mpirun or srun would"
        case .malformed(let variable, let value, let expected):
            return "\(variable)=\"\(value)\" is not \(expected)"
        case .outOfRange(let variable, let value, let expected):
            return "\(variable)=\(value) is out of range: expected \(expected)"
        }
    }
}
