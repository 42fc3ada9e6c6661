/// Every rank of a run meeting at rank 0's TCP store, optionally receiving
/// a blob from rank 0 (the NCCL unique id, later).
///
/// Keep the value alive for the whole run: rank 0's holds the server that
/// the other ranks' stores talk to, and `barrier` uses it afterwards.
///
/// Note [Rendezvous]
/// 1. Rank 0 starts the server on MASTER_ADDR:MASTER_PORT (unless a launcher
///    passes one it already runs, as torchrun's agent hosts its store).
/// 2. Every rank connects, retrying until the time limit: ranks start in
///    any order.
/// 3. Rank 0 sets `cohort/rendezvous/shared` to its blob before arriving, so
///    whoever sees the meeting complete can read the blob at once.
/// 4. Each rank sets `cohort/rendezvous/rank/<r>` (so a timeout can name the
///    missing ranks) and adds 1 to `cohort/rendezvous/arrived`; the rank
///    whose add reaches worldSize sets `cohort/rendezvous/complete`, which
///    every rank waits for.
public final class Rendezvous: @unchecked Sendable {
    public let environment: RankEnvironment
    /// This rank's connection to the store.
    public let store: TCPStore
    /// The server, on rank 0 when it started one itself.
    public let server: TCPStoreServer?
    /// Rank 0's blob (`share`'s result), on every rank; nil without `share`.
    public let sharedBlob: [UInt8]?
    private let timeout: Duration
    private let ownServer: TCPStoreServer?

    private static let prefix = "cohort/rendezvous/"

    /// Meets every rank of `environment` (which must name MASTER_ADDR and
    /// MASTER_PORT), waiting up to `timeout` for the slowest.
    /// - Parameters:
    ///   - server: a server already running for this run (rank 0 only); by
    ///     default rank 0 starts one on the master endpoint.
    ///   - share: run on rank 0 only; what it returns reaches every rank as `sharedBlob`.
    public init(environment: RankEnvironment, timeout: Duration = .seconds(60), server: TCPStoreServer? = nil,
                share: (() throws -> [UInt8])? = nil) throws {
        let (host, port) = try environment.masterEndpoint()
        precondition(server == nil || environment.rank == 0, "Rendezvous: only rank 0 hosts the store")
        let started = ContinuousClock.now
        let ownServer = environment.rank == 0 && server == nil ? try TCPStoreServer(host: host, port: port) : nil
        let store = try TCPStore(host: host, port: port, timeout: timeout)
        let blob: [UInt8]?
        do {
            blob = try Self.meet(store, environment: environment, timeout: timeout, started: started, share: share)
        } catch {
            ownServer?.stop()
            throw error
        }
        self.environment = environment
        self.timeout = timeout
        self.server = ownServer ?? server
        self.ownServer = ownServer
        self.store = store
        self.sharedBlob = blob
    }

    /// Steps 3 and 4 of `Note [Rendezvous]`; returns the shared blob.
    private static func meet(_ store: TCPStore, environment: RankEnvironment, timeout: Duration,
                             started: ContinuousClock.Instant, share: (() throws -> [UInt8])?) throws -> [UInt8]? {
        let rank = environment.rank
        let sharedKey = prefix + "shared"
        if rank == 0, let share {
            try store.set(sharedKey, try share())
        }
        try store.set(prefix + "rank/\(rank)", Array(String(rank).utf8))
        if try store.add(prefix + "arrived", 1) == environment.worldSize {
            try store.set(prefix + "complete", [])
        }
        let rankKeys = (0..<environment.worldSize).map { prefix + "rank/\($0)" }
        try waitForEveryRank(store, complete: prefix + "complete", rankKeys: rankKeys, worldSize: environment.worldSize,
                             timeout: max(.zero, timeout - (ContinuousClock.now - started)), started: started)
        // Rank 0 set the blob (if any) before arriving, so it is there now or never.
        if rank == 0 && share == nil { return nil }
        do {
            return try store.get(sharedKey, timeout: .zero)
        } catch {
            guard case .timedOut = error else { throw error }
            return nil
        }
    }

    /// Leaves the store at the end of the run; every rank calls it. Each
    /// rank counts itself out; rank 0 then waits (up to the rendezvous's
    /// time limit) until every rank has, so no rank's last request meets a
    /// closed store, and stops the server it started. Best effort: errors
    /// are ignored, the run is over.
    public func close() {
        let key = Self.prefix + "closed"
        if (try? store.add(key, 1)) == environment.worldSize {
            try? store.set(key + "/all", [])
        }
        guard let ownServer else { return }
        try? store.wait([key + "/all"], timeout: timeout)
        ownServer.stop()
    }

    /// Returns once every rank has called `barrier` with the same `name`
    /// (names must not repeat within a run), or throws after `timeout`
    /// (default: the rendezvous's) naming the ranks missing.
    public func barrier(_ name: String, timeout: Duration? = nil) throws(TCPStoreError) {
        let limit = timeout ?? self.timeout
        let started = ContinuousClock.now
        let key = "cohort/barrier/\(name)"
        try store.set("\(key)/rank/\(environment.rank)", [])
        if try store.add(key + "/arrived", 1) == environment.worldSize {
            try store.set(key + "/complete", [])
        }
        let rankKeys = (0..<environment.worldSize).map { "\(key)/rank/\($0)" }
        try Self.waitForEveryRank(store, complete: key + "/complete", rankKeys: rankKeys,
                                  worldSize: environment.worldSize, timeout: limit, started: started)
    }

    /// Waits for `complete`; on a timeout, throws `.ranksMissing` naming
    /// the ranks whose key in `rankKeys` (`.../rank/<r>`) is not set.
    private static func waitForEveryRank(_ store: TCPStore, complete: String, rankKeys: [String], worldSize: Int,
                                         timeout: Duration, started: ContinuousClock.Instant) throws(TCPStoreError) {
        do {
            try store.wait([complete], timeout: timeout)
            return
        } catch {
            guard case .timedOut = error else { throw error }
        }
        var missingKeys: [String] = []
        do {
            try store.wait(rankKeys, timeout: .zero)
        } catch {
            guard case .timedOut(_, let keys, _) = error else { throw error }
            missingKeys = keys
        }
        let missingRanks = missingKeys.compactMap { $0.split(separator: "/").last.flatMap { Int($0) } }
        throw .ranksMissing(endpoint: store.endpoint, missingRanks: missingRanks, worldSize: worldSize,
                            waited: ContinuousClock.now - started)
    }
}
