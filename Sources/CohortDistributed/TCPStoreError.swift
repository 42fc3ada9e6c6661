/// What went wrong with the rendezvous store; each message names the
/// address, what was asked, how long it waited and what to check.
public enum TCPStoreError: Error, Equatable, CustomStringConvertible {
    /// The server could not bind or listen on `endpoint`.
    case cannotListen(endpoint: String, reason: String)
    /// No server answered at `endpoint` within `waited`.
    case cannotConnect(endpoint: String, waited: Duration, reason: String)
    /// `keys` were not set within `waited` (or the server's answer did not come in time).
    case timedOut(endpoint: String, keys: [String], waited: Duration)
    /// The connection closed or broke during `operation`.
    case connectionLost(endpoint: String, operation: String, reason: String)
    /// The server refused `operation` (e.g. add on a value that is not a number).
    case rejected(endpoint: String, operation: String, message: String)
    /// Some ranks never reached the rendezvous.
    case ranksMissing(endpoint: String, missingRanks: [Int], worldSize: Int, waited: Duration)

    public var description: String {
        let check = "check MASTER_ADDR/MASTER_PORT and that every rank was started"
        switch self {
        case .cannotListen(let endpoint, let reason):
            return "rendezvous store cannot listen on \(endpoint): \(reason); MASTER_ADDR must be an address of "
                + "rank 0's machine and MASTER_PORT a free port"
        case .cannotConnect(let endpoint, let waited, let reason):
            return "rendezvous store at \(endpoint) did not answer within \(describe(waited)) (\(reason)); "
                + "check MASTER_ADDR/MASTER_PORT and that rank 0 was started"
        case .timedOut(let endpoint, let keys, let waited):
            let names = keys.map { "\"\($0)\"" }.joined(separator: ", ")
            return "rendezvous store at \(endpoint): \(keys.count == 1 ? "key" : "keys") \(names) not set within "
                + "\(describe(waited)); \(check)"
        case .connectionLost(let endpoint, let operation, let reason):
            return "rendezvous store at \(endpoint): connection lost during \(operation) (\(reason)); "
                + "rank 0, which runs the store, may have stopped"
        case .rejected(let endpoint, let operation, let message):
            return "rendezvous store at \(endpoint) refused \(operation): \(message)"
        case .ranksMissing(let endpoint, let missingRanks, let worldSize, let waited):
            let ranks = missingRanks.count == 1 ? "rank \(missingRanks[0])"
                : "ranks " + missingRanks.map(String.init).joined(separator: ", ")
            return "rendezvous at \(endpoint): \(ranks) of \(worldSize) never arrived within \(describe(waited)); \(check)"
        }
    }
}
