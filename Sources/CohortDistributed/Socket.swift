import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A TCP connection or listening socket on plain POSIX calls, every wait
/// bounded by poll().
///
/// Note [Store transport]
/// The rendezvous store moves a few hundred small messages per run (one
/// counter per rank, a 128-byte NCCL id), with callers that block until the
/// answer is there. Blocking sockets with poll() deadlines, a thread per
/// connection on the server, say that directly in a few hundred lines and
/// add no dependency to a binary that must also start on machines without
/// anything installed; swift-nio's event loops would serve thousands of
/// connections we never have, at the price of a large dependency and
/// futures wrapped back into blocking calls.
final class Socket: @unchecked Sendable {
    let descriptor: Int32

    init(descriptor: Int32) { self.descriptor = descriptor }

    deinit { close(descriptor) }

    /// Wakes any thread blocked on this socket (its reads then see the end of stream).
    func shutdownBoth() { _ = Glibc.shutdown(descriptor, Int32(SHUT_RDWR)) }

    /// This end's address (getsockname): for a connected socket, the local
    /// interface's address that reaches the peer.
    var localAddress: SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return status == 0 ? SocketAddress(storage: storage, length: length) : nil
    }

    /// Connects to `address`, giving up at `deadline`.
    static func connect(to address: SocketAddress, deadline: ContinuousClock.Instant) throws(SocketFailure) -> Socket {
        let descriptor = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw .system("socket", errno) }
        let socket = Socket(descriptor: descriptor)
        var noDelay: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, socklen_t(MemoryLayout<Int32>.size))
        let flags = fcntl(descriptor, F_GETFL)
        _ = fcntl(descriptor, F_SETFL, flags | O_NONBLOCK)
        let status = address.withPointer { Glibc.connect(descriptor, $0, $1) }
        if status != 0 {
            guard errno == EINPROGRESS else { throw .system("connect", errno) }
            try socket.poll(for: Int16(POLLOUT), until: deadline)
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &error, &length)
            guard error == 0 else { throw .system("connect", error) }
        }
        _ = fcntl(descriptor, F_SETFL, flags)
        return socket
    }

    /// A socket listening on `address` (port 0: any free port).
    static func listen(on address: SocketAddress) throws(SocketFailure) -> Socket {
        let descriptor = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw .system("socket", errno) }
        let socket = Socket(descriptor: descriptor)
        var reuse: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        guard address.withPointer({ bind(descriptor, $0, $1) }) == 0 else { throw .system("bind", errno) }
        guard Glibc.listen(descriptor, 128) == 0 else { throw .system("listen", errno) }
        return socket
    }

    /// The port this socket is bound to.
    var localPort: Int {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(descriptor, $0, &length) }
        }
        return SocketAddress(storage: storage, length: length).port
    }

    /// Waits up to `timeout` for a connection; nil when none came.
    func accept(timeout: Duration) throws(SocketFailure) -> (Socket, SocketAddress)? {
        guard try poll(for: Int16(POLLIN), until: .now + timeout, throwOnTimeout: false) else { return nil }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let client = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.accept(descriptor, $0, &length) }
        }
        guard client >= 0 else {
            if errno == EAGAIN || errno == EINTR || errno == ECONNABORTED { return nil }
            throw .system("accept", errno)
        }
        _ = fcntl(client, F_SETFD, FD_CLOEXEC)
        var noDelay: Int32 = 1
        setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, socklen_t(MemoryLayout<Int32>.size))
        return (Socket(descriptor: client), SocketAddress(storage: storage, length: length))
    }

    /// Sends all of `bytes` by `deadline`.
    func send(_ bytes: [UInt8], deadline: ContinuousClock.Instant) throws(SocketFailure) {
        var offset = 0
        while offset < bytes.count {
            try poll(for: Int16(POLLOUT), until: deadline)
            let sent = bytes.withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            }
            if sent < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw .system("send", errno)
            }
            offset += sent
        }
    }

    /// Receives exactly `count` bytes by `deadline` (nil: no limit).
    /// Throws `.closed` when the peer closed before the first byte,
    /// `.truncated` when it closed part-way.
    func receive(_ count: Int, deadline: ContinuousClock.Instant?) throws(SocketFailure) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            if let deadline {
                try poll(for: Int16(POLLIN), until: deadline)
            }
            let received = bytes.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress! + offset, count - offset, 0) }
            if received < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw .system("recv", errno)
            }
            if received == 0 { throw offset == 0 ? .closed : .truncated(received: offset, expected: count) }
            offset += received
        }
        return bytes
    }

    /// Waits for `events` until `deadline`; returns false (or throws
    /// `.timedOut`) when the deadline passes first.
    @discardableResult
    func poll(for events: Int16, until deadline: ContinuousClock.Instant,
              throwOnTimeout: Bool = true) throws(SocketFailure) -> Bool {
        while true {
            let remaining = deadline - .now
            let milliseconds = max(0, Int32(clamping: Int64((seconds(remaining) * 1000).rounded(.up))))
            var entry = pollfd(fd: descriptor, events: events, revents: 0)
            let ready = Glibc.poll(&entry, 1, milliseconds)
            if ready > 0 { return true }
            if ready < 0 && errno != EINTR { throw .system("poll", errno) }
            if ready == 0 && ContinuousClock.now >= deadline {
                if throwOnTimeout { throw .timedOut }
                return false
            }
        }
    }
}

/// Why a socket call failed.
enum SocketFailure: Error, CustomStringConvertible {
    /// `call` failed with errno `code` (or, for getaddrinfo, `gaiStatus`).
    case system(String, Int32, gaiStatus: Int32 = 0)
    case timedOut
    case closed
    case truncated(received: Int, expected: Int)

    var description: String {
        switch self {
        case .system(let call, let code, let gaiStatus):
            if gaiStatus != 0 && code == 0 { return "\(call): \(String(cString: gai_strerror(gaiStatus)))" }
            return "\(call): \(String(cString: strerror(code)))"
        case .timedOut: return "timed out"
        case .closed: return "connection closed by the peer"
        case .truncated(let received, let expected): return "connection closed after \(received) of \(expected) bytes"
        }
    }
}
