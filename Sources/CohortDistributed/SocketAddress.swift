#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 address and port, as the socket calls take it.
struct SocketAddress: @unchecked Sendable, CustomStringConvertible {
    var storage: sockaddr_storage
    var length: socklen_t

    var family: Int32 { Int32(storage.ss_family) }

    /// Every address `host` resolves to for TCP on `port`, IPv4 first
    /// (MASTER_ADDR is most often an IPv4 address or a name with both).
    static func resolve(host: String, port: Int) throws(SocketFailure) -> [SocketAddress] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let list else {
            throw .system("getaddrinfo(\(host))", status == EAI_SYSTEM ? errno : 0, gaiStatus: status)
        }
        defer { freeaddrinfo(list) }
        var addresses: [SocketAddress] = []
        var entry: UnsafeMutablePointer<addrinfo>? = list
        while let current = entry {
            var storage = sockaddr_storage()
            withUnsafeMutableBytes(of: &storage) {
                $0.copyMemory(from: UnsafeRawBufferPointer(start: current.pointee.ai_addr, count: Int(current.pointee.ai_addrlen)))
            }
            addresses.append(SocketAddress(storage: storage, length: current.pointee.ai_addrlen))
            entry = current.pointee.ai_next
        }
        return addresses.filter { $0.family == AF_INET } + addresses.filter { $0.family != AF_INET }
    }

    func withPointer<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        withUnsafeBytes(of: storage) { body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self), length) }
    }

    var port: Int {
        withUnsafeBytes(of: storage) { raw in
            if family == AF_INET6 {
                return Int(UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port))
            }
            return Int(UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port))
        }
    }

    /// The numeric address without the port: "10.0.0.2", "::1".
    var host: String {
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        let status = withPointer { getnameinfo($0, $1, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) }
        return status == 0 ? String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
    }

    /// "127.0.0.1:29500", "[::1]:29500".
    var description: String {
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        let status = withPointer { getnameinfo($0, $1, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) }
        let text = status == 0 ? String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
        return family == AF_INET6 ? "[\(text)]:\(port)" : "\(text):\(port)"
    }
}
