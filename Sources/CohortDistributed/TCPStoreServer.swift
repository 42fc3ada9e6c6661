import Foundation

/// The rendezvous store's server: a key-value table that rank 0 (or a
/// launcher) runs and every rank reaches through `TCPStore`. One thread
/// accepts, one thread serves each connection (see `Note [Store transport]`);
/// the wire format is `Note [Store protocol]`.
///
/// A connection that breaks the protocol is closed with a logged reason;
/// the server and its other connections carry on. It runs until `stop()`
/// (its threads hold it), so the owner calls that at the end of the run.
public final class TCPStoreServer: @unchecked Sendable {
    /// The address it listens on, as given.
    public let host: String
    /// The port it listens on (the one the system chose when asked for 0).
    public let port: Int

    private let listener: Socket
    private let log: @Sendable (String) -> Void
    private let state = NSCondition()
    private var values: [String: [UInt8]] = [:]
    private var connections: [Int32: Socket] = [:]
    private var stopped = false
    /// How long a client may take to send the rest of a message it started.
    private static let messageTimeout = Duration.seconds(10)
    /// The longest wait a client may ask for in one get or wait.
    private static let maximumWait = Duration.seconds(3600)

    /// Listens on `host:port` (port 0: any free port; see `port`).
    /// - Parameter log: receives one line per rejected or failed connection.
    public init(host: String, port: Int,
                log: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data("cohort store: \($0)\n".utf8)) })
        throws(TCPStoreError)
    {
        let endpoint = "\(host):\(port)"
        do throws(SocketFailure) {
            guard let address = try SocketAddress.resolve(host: host, port: port).first else {
                throw SocketFailure.system("getaddrinfo(\(host))", EADDRNOTAVAIL)
            }
            listener = try Socket.listen(on: address)
        } catch {
            throw .cannotListen(endpoint: endpoint, reason: error.description)
        }
        self.host = host
        self.port = listener.localPort
        self.log = log
        let thread = Thread { [self] in acceptConnections() }
        thread.name = "cohort-store-accept"
        thread.start()
    }

    /// Stops accepting, closes every connection (their clients then see
    /// `connectionLost`) and returns.
    public func stop() {
        state.lock()
        defer { state.unlock() }
        guard !stopped else { return }
        stopped = true
        // On Linux, shutdown() of a listening socket refuses new connections at once.
        listener.shutdownBoth()
        for socket in connections.values { socket.shutdownBoth() }
        state.broadcast()
    }

    private var isStopped: Bool {
        state.lock()
        defer { state.unlock() }
        return stopped
    }

    private func acceptConnections() {
        while !isStopped {
            do {
                guard let (socket, peer) = try listener.accept(timeout: .milliseconds(200)) else { continue }
                state.lock()
                if stopped {
                    state.unlock()
                    return
                }
                connections[socket.descriptor] = socket
                state.unlock()
                let thread = Thread { [self] in serve(socket, peer: peer) }
                thread.name = "cohort-store-connection"
                thread.start()
            } catch {
                if isStopped { return }
                log("accept on \(host):\(port) failed: \(error)")
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
    }

    /// Answers `socket`'s requests until it closes or breaks the protocol.
    private func serve(_ socket: Socket, peer: SocketAddress) {
        defer {
            state.lock()
            connections[socket.descriptor] = nil
            state.unlock()
        }
        do {
            while true {
                let header: [UInt8]
                do {
                    header = try socket.receive(StoreMessage.headerSize, deadline: nil)
                } catch SocketFailure.closed {
                    return
                }
                let (kind, length) = try StoreMessage.parseHeader(header)
                guard let opcode = StoreMessage.Opcode(rawValue: kind) else {
                    throw StoreProtocolError("unknown opcode \(kind)")
                }
                let payload = try socket.receive(length, deadline: .now + Self.messageTimeout)
                let (status, answer) = try handle(opcode, PayloadReader(payload))
                try socket.send(StoreMessage.frame(kind: status.rawValue, payload: answer),
                                deadline: .now + Self.messageTimeout)
            }
        } catch let error as StoreProtocolError {
            log("closing connection from \(peer): \(error)")
        } catch {
            if !isStopped { log("connection from \(peer) failed: \(error)") }
        }
    }

    private func handle(_ opcode: StoreMessage.Opcode,
                        _ request: PayloadReader) throws(StoreProtocolError) -> (StoreMessage.Status, [UInt8]) {
        var request = request
        switch opcode {
        case .set:
            let key = try request.key()
            let value = try request.field()
            try request.finish()
            state.lock()
            values[key] = value
            state.broadcast()
            state.unlock()
            return (.ok, [])
        case .get:
            let key = try request.key()
            let timeout = try wait(milliseconds: request.int64())
            try request.finish()
            if !waitFor([key], timeout: timeout).isEmpty { return (.timedOut, []) }
            state.lock()
            defer { state.unlock() }
            return (.ok, values[key] ?? [])
        case .add:
            let key = try request.key()
            let delta = try request.int64()
            try request.finish()
            state.lock()
            defer { state.unlock() }
            let current = values[key].map { String(decoding: $0, as: UTF8.self) }
            guard let old = current.map(Int64.init) ?? 0 else {
                return (.failed, Array("add: the value of \"\(key)\" is not an integer".utf8))
            }
            let (sum, overflow) = old.addingReportingOverflow(delta)
            guard !overflow else { return (.failed, Array("add: \"\(key)\" overflows".utf8)) }
            values[key] = Array(String(sum).utf8)
            state.broadcast()
            var answer: [UInt8] = []
            answer.append(int64: sum)
            return (.ok, answer)
        case .wait:
            let timeout = try wait(milliseconds: request.int64())
            let count = try request.uint32()
            guard count <= 65536 else { throw StoreProtocolError("wait for \(count) keys exceeds 65536") }
            var keys: [String] = []
            for _ in 0..<count { keys.append(try request.key()) }
            try request.finish()
            let missing = waitFor(keys, timeout: timeout)
            guard !missing.isEmpty else { return (.ok, []) }
            var answer: [UInt8] = []
            answer.append(bigEndian: UInt32(missing.count))
            for key in missing { answer.append(key: key) }
            return (.timedOut, answer)
        }
    }

    private func wait(milliseconds: Int64) throws(StoreProtocolError) -> Duration {
        guard milliseconds >= 0 else { throw StoreProtocolError("negative timeout \(milliseconds) ms") }
        return min(.milliseconds(milliseconds), Self.maximumWait)
    }

    /// Waits until every key exists or `timeout` passes; returns the keys still missing.
    private func waitFor(_ keys: [String], timeout: Duration) -> [String] {
        let deadline = Date(timeIntervalSinceNow: seconds(timeout))
        state.lock()
        defer { state.unlock() }
        while true {
            let missing = keys.filter { values[$0] == nil }
            if missing.isEmpty || stopped || !state.wait(until: deadline) {
                return keys.filter { values[$0] == nil }
            }
        }
    }
}
