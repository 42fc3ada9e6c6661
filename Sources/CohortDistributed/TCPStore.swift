import Foundation

/// A client of the rendezvous store (`TCPStoreServer`), in the manner of
/// torch.distributed's TCPStore: every rank holds one, rank 0's server
/// holds the table. Safe to share between threads (requests take turns).
///
/// Every operation has a time limit and throws `TCPStoreError` naming the
/// store's address, the keys and how long it waited. After a connection
/// error the client is closed for good: make a new one.
public final class TCPStore: @unchecked Sendable {
    public let host: String
    public let port: Int
    /// The limit for connecting and for each set or add; get and wait take their own.
    public let timeout: Duration

    private let socket: Socket
    private let lock = NSLock()
    private var broken: String?
    /// Time allowed, beyond the wait the server was asked for, for the answer to arrive.
    private static let answerMargin = Duration.seconds(5)

    public var endpoint: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Connects to the server at `host:port`, retrying until `timeout` (the
    /// server may start after its clients).
    public init(host: String, port: Int, timeout: Duration = .seconds(60)) throws(TCPStoreError) {
        self.host = host
        self.port = port
        self.timeout = timeout
        let started = ContinuousClock.now
        let deadline = started + timeout
        var lastFailure: SocketFailure = .timedOut
        while true {
            do throws(SocketFailure) {
                for address in try SocketAddress.resolve(host: host, port: port) {
                    do throws(SocketFailure) {
                        socket = try Socket.connect(to: address, deadline: deadline)
                        return
                    } catch {
                        lastFailure = error
                    }
                }
            } catch {
                lastFailure = error
            }
            if ContinuousClock.now + .milliseconds(100) >= deadline {
                throw .cannotConnect(endpoint: "\(host):\(port)", waited: ContinuousClock.now - started,
                                     reason: lastFailure.description)
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    /// The numeric address of this machine's interface that reaches the
    /// store: what other machines of the run can reach this one at.
    public var localHost: String? { socket.localAddress?.host }

    /// Stores `value` under `key`, replacing any earlier value.
    public func set(_ key: String, _ value: [UInt8]) throws(TCPStoreError) {
        var payload: [UInt8] = []
        payload.append(key: key)
        payload.append(field: value)
        _ = try request(.set, payload, operation: "set(\"\(key)\")", keys: [key], wait: nil)
    }

    /// The value of `key`, waiting up to `timeout` (default: `self.timeout`) for it to be set.
    public func get(_ key: String, timeout: Duration? = nil) throws(TCPStoreError) -> [UInt8] {
        var payload: [UInt8] = []
        payload.append(key: key)
        payload.append(int64: milliseconds(timeout ?? self.timeout))
        let (status, answer) = try request(.get, payload, operation: "get(\"\(key)\")", keys: [key],
                                           wait: timeout ?? self.timeout)
        if status == .timedOut { throw .timedOut(endpoint: endpoint, keys: [key], waited: timeout ?? self.timeout) }
        return answer
    }

    /// Adds `delta` to the integer under `key` (0 when unset) and returns
    /// the new value, atomically: the counter behind barriers.
    @discardableResult
    public func add(_ key: String, _ delta: Int) throws(TCPStoreError) -> Int {
        var payload: [UInt8] = []
        payload.append(key: key)
        payload.append(int64: Int64(delta))
        let (_, answer) = try request(.add, payload, operation: "add(\"\(key)\")", keys: [key], wait: nil)
        var reader = PayloadReader(answer)
        do throws(StoreProtocolError) {
            let value = try reader.int64()
            try reader.finish()
            return Int(value)
        } catch {
            throw close(because: "malformed answer to add(\"\(key)\"): \(error)", operation: "add")
        }
    }

    /// Returns once every key in `keys` is set; throws `.timedOut` naming
    /// the keys still missing after `timeout` (default: `self.timeout`).
    public func wait(_ keys: [String], timeout: Duration? = nil) throws(TCPStoreError) {
        let limit = timeout ?? self.timeout
        var payload: [UInt8] = []
        payload.append(int64: milliseconds(limit))
        payload.append(bigEndian: UInt32(keys.count))
        for key in keys { payload.append(key: key) }
        let (status, answer) = try request(.wait, payload, operation: "wait", keys: keys, wait: limit)
        guard status == .timedOut else { return }
        var reader = PayloadReader(answer)
        var missing: [String] = []
        do throws(StoreProtocolError) {
            for _ in 0..<(try reader.uint32()) { missing.append(try reader.key()) }
            try reader.finish()
        } catch {
            throw close(because: "malformed answer to wait: \(error)", operation: "wait")
        }
        throw .timedOut(endpoint: endpoint, keys: missing, waited: limit)
    }

    private func milliseconds(_ duration: Duration) -> Int64 {
        Int64((seconds(duration) * 1000).rounded(.up))
    }

    /// Sends one request and reads its answer; a `.failed` answer throws.
    private func request(_ opcode: StoreMessage.Opcode, _ payload: [UInt8], operation: String, keys: [String],
                         wait: Duration?) throws(TCPStoreError) -> (StoreMessage.Status, [UInt8]) {
        lock.lock()
        defer { lock.unlock() }
        if let broken { throw .connectionLost(endpoint: endpoint, operation: operation, reason: broken) }
        guard payload.count <= StoreMessage.maximumPayload else {
            throw .rejected(endpoint: endpoint, operation: operation,
                            message: "\(payload.count) bytes exceeds the store's \(StoreMessage.maximumPayload >> 20) MiB limit")
        }
        let started = ContinuousClock.now
        let deadline = started + (wait.map { $0 + Self.answerMargin } ?? timeout)
        do {
            try socket.send(StoreMessage.frame(kind: opcode.rawValue, payload: payload), deadline: deadline)
            let header = try socket.receive(StoreMessage.headerSize, deadline: deadline)
            let (kind, length) = try StoreMessage.parseHeader(header)
            guard let status = StoreMessage.Status(rawValue: kind) else { throw StoreProtocolError("unknown status \(kind)") }
            let answer = try socket.receive(length, deadline: deadline)
            if status == .failed {
                throw TCPStoreError.rejected(endpoint: endpoint, operation: operation,
                                             message: String(decoding: answer, as: UTF8.self))
            }
            return (status, answer)
        } catch let error as TCPStoreError {
            throw error
        } catch SocketFailure.timedOut {
            // The answer may still come: the connection is out of step now.
            _ = close(because: "no answer in time", operation: operation)
            throw .timedOut(endpoint: endpoint, keys: keys, waited: ContinuousClock.now - started)
        } catch {
            broken = "\(error)"
            socket.shutdownBoth()
            throw .connectionLost(endpoint: endpoint, operation: operation, reason: "\(error)")
        }
    }

    private func close(because reason: String, operation: String) -> TCPStoreError {
        broken = reason
        socket.shutdownBoth()
        return .connectionLost(endpoint: endpoint, operation: operation, reason: reason)
    }
}
