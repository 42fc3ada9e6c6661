import CohortDistributed
import Foundation
import XCTest

/// The rendezvous store over loopback: operations, time limits, start-up
/// order, and rejection of malformed messages. Time limits are 1-2 s.
final class TCPStoreTests: XCTestCase {
    func makeServer(log: @escaping @Sendable (String) -> Void = { _ in }) throws -> TCPStoreServer {
        try TCPStoreServer(host: "127.0.0.1", port: 0, log: log)
    }

    func testSetAndGetAcrossThreads() throws {
        let server = try makeServer()
        let clients = 4
        let failures = Failures()
        DispatchQueue.concurrentPerform(iterations: clients) { index in
            do {
                let store = try TCPStore(host: "127.0.0.1", port: server.port, timeout: .seconds(2))
                try store.set("key/\(index)", [UInt8(index), 42])
                // Each reads the next one's key, which may not be set yet: get waits.
                let value = try store.get("key/\((index + 1) % clients)")
                if value != [UInt8((index + 1) % clients), 42] { failures.add("client \(index) read \(value)") }
            } catch {
                failures.add("client \(index): \(error)")
            }
        }
        XCTAssertEqual(failures.all, [])
        let store = try TCPStore(host: "127.0.0.1", port: server.port, timeout: .seconds(2))
        try store.set("big", [UInt8](repeating: 7, count: 1 << 20))
        XCTAssertEqual(try store.get("big").count, 1 << 20)
        try store.set("empty", [])
        XCTAssertEqual(try store.get("empty"), [])
        try store.wait(["key/0", "key/1", "empty"])
    }

    func testAddIsAnAtomicCounter() throws {
        let server = try makeServer()
        let results = Failures()
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            do {
                let store = try TCPStore(host: "127.0.0.1", port: server.port, timeout: .seconds(2))
                for _ in 0..<25 { results.add(String(try store.add("counter", 1))) }
            } catch {
                results.add("error: \(error)")
            }
        }
        XCTAssertEqual(Set(results.all), Set((1...100).map(String.init)))
        let store = try TCPStore(host: "127.0.0.1", port: server.port)
        XCTAssertEqual(try store.add("counter", -10), 90)
        XCTAssertEqual(try store.get("counter"), Array("90".utf8))
        try store.set("text", Array("abc".utf8))
        XCTAssertThrowsError(try store.add("text", 1)) { error in
            XCTAssertEqual("\(error)", "rendezvous store at 127.0.0.1:\(server.port) refused add(\"text\"): "
                + "add: the value of \"text\" is not an integer")
        }
        XCTAssertEqual(try store.add("counter", 0), 90, "a refused request leaves the connection usable")
    }

    func testGetTimesOutWithAClearMessage() throws {
        let server = try makeServer()
        let store = try TCPStore(host: "127.0.0.1", port: server.port, timeout: .seconds(2))
        let started = Date()
        XCTAssertThrowsError(try store.get("never", timeout: .seconds(1))) { error in
            XCTAssertEqual(error as? TCPStoreError,
                           .timedOut(endpoint: "127.0.0.1:\(server.port)", keys: ["never"], waited: .seconds(1)))
            XCTAssertEqual("\(error)", "rendezvous store at 127.0.0.1:\(server.port): key \"never\" not set within 1 s; "
                + "check MASTER_ADDR/MASTER_PORT and that every rank was started")
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 3)
        XCTAssertThrowsError(try store.wait(["a", "b"], timeout: .milliseconds(200))) { error in
            guard case .timedOut(_, let keys, _)? = error as? TCPStoreError else { return XCTFail("\(error)") }
            XCTAssertEqual(keys, ["a", "b"])
        }
    }

    func testClientConnectingBeforeTheServerStarts() throws {
        let port = try freePort()
        let connected = expectation(description: "client connected")
        let result = Failures()
        Thread.detachNewThread {
            do {
                let store = try TCPStore(host: "127.0.0.1", port: port, timeout: .seconds(5))
                result.add(String(decoding: try store.get("hello", timeout: .seconds(2)), as: UTF8.self))
            } catch {
                result.add("error: \(error)")
            }
            connected.fulfill()
        }
        Thread.sleep(forTimeInterval: 0.5)
        let server = try TCPStoreServer(host: "127.0.0.1", port: port, log: { _ in })
        try TCPStore(host: "127.0.0.1", port: port).set("hello", Array("world".utf8))
        wait(for: [connected], timeout: 10)
        XCTAssertEqual(result.all, ["world"])
        server.stop()
    }

    func testConnectTimeoutNamesTheAddress() throws {
        let port = try freePort()
        XCTAssertThrowsError(try TCPStore(host: "127.0.0.1", port: port, timeout: .milliseconds(500))) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("rendezvous store at 127.0.0.1:\(port) did not answer within"), text)
            XCTAssertTrue(text.contains("Connection refused") && text.contains("rank 0 was started"), text)
        }
    }

    func testMalformedMessagesAreRejectedAndTheServerKeepsServing() throws {
        let messages = Failures()
        let server = try makeServer { messages.add($0) }
        let store = try TCPStore(host: "127.0.0.1", port: server.port, timeout: .seconds(2))
        try store.set("before", [1])
        let header = Array("CHST".utf8) + [1]
        let cases: [(bytes: [UInt8], reason: String)] = [
            (Array("GET / HTTP/1.1\r\n\r\n".utf8), "wrong magic 0x47455420"),
            (header + [1, 0, 0, 0xff, 0xff, 0xff, 0xff], "payload length 4294967295 exceeds the 64 MiB limit"),
            (header + [9, 0, 0, 0, 0, 0, 0], "unknown opcode 9"),
            (Array("CHST".utf8) + [2, 1, 0, 0, 0, 0, 0, 0], "protocol version 2, expected 1"),
            (header + [1, 0, 0, 0, 0, 0, 4, 0, 0, 0, 9], "field of 9 bytes overruns the payload (0 left)"),
            (header + [3, 0, 0, 0, 0, 0, 5, 0, 0, 0, 1, 0x41], "payload ends inside an integer"),
        ]
        for (bytes, reason) in cases {
            let closed = try sendRaw(bytes, port: server.port)
            XCTAssertTrue(closed, "the server kept a connection open after \(reason)")
            XCTAssertTrue(messages.all.contains { $0.contains(": " + reason) }, "no log line for \(reason): \(messages.all)")
        }
        // A client that sends half a message and stalls holds only its own connection.
        let stalled = try RawConnection(port: server.port)
        stalled.send(header + [2, 0, 0])
        XCTAssertEqual(try store.get("before"), [1])
        try store.set("after", [2])
        let another = try TCPStore(host: "127.0.0.1", port: server.port, timeout: .seconds(2))
        XCTAssertEqual(try another.get("after"), [2])
        _ = stalled
    }

    func testStoppedServerMakesClientsFailNotHang() throws {
        let server = try makeServer()
        let store = try TCPStore(host: "127.0.0.1", port: server.port, timeout: .seconds(2))
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { server.stop() }
        let started = Date()
        XCTAssertThrowsError(try store.get("never", timeout: .seconds(10))) { error in
            guard case .connectionLost? = error as? TCPStoreError else { return XCTFail("\(error)") }
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
    }
}

/// Strings collected from several threads.
final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ item: String) { lock.withLock { items.append(item) } }
    var all: [String] { lock.withLock { items } }
}

/// A port nothing listens on now (the system's pick for a socket just closed).
func freePort() throws -> Int {
    let server = try TCPStoreServer(host: "127.0.0.1", port: 0, log: { _ in })
    defer { server.stop() }
    return server.port
}

/// A plain TCP connection for sending bytes the client never would.
final class RawConnection {
    let descriptor: Int32

    init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if status != 0 { throw POSIXError(.ECONNREFUSED) }
    }

    deinit { close(descriptor) }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Whether the peer closed the connection within `timeout` seconds.
    func closedByPeer(timeout: Double) -> Bool {
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, Int32(timeout * 1000)) > 0 else { return false }
        var byte: UInt8 = 0
        return recv(descriptor, &byte, 1, 0) <= 0
    }
}

/// Sends `bytes` on a new connection; returns whether the server then closed it.
func sendRaw(_ bytes: [UInt8], port: Int) throws -> Bool {
    let connection = try RawConnection(port: port)
    connection.send(bytes)
    return connection.closedByPeer(timeout: 2)
}
