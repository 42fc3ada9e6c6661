/// The TCP store's wire format.
///
/// Note [Store protocol]
/// Every message, either way, is a 12-byte header and a payload:
///   magic "CHST" (4 bytes), version 1 (1 byte), kind (1 byte),
///   reserved 0 (2 bytes), payload length (UInt32, big-endian)
/// A request's kind is its opcode, a response's its status. Payload fields
/// are byte strings (UInt32 length, then the bytes) and Int64s (big-endian):
///   set  key, value            -> ok
///   get  key, timeout ms       -> ok value | timedOut
///   add  key, delta            -> ok new value (Int64) | failed message
///   wait timeout ms, count (UInt32), keys -> ok | timedOut missing keys
/// The server waits for get/wait itself, so a client blocks in one read.
/// Anything else (another magic or version, a reserved byte set, an unknown
/// opcode, a payload over 64 MiB, fields that overrun or do not fill the
/// payload, a key over 4 KiB or not UTF-8) ends that connection.
enum StoreMessage {
    static let magic: [UInt8] = Array("CHST".utf8)
    static let version: UInt8 = 1
    static let headerSize = 12
    /// Far above anything a rendezvous stores (an NCCL id is 128 bytes),
    /// small enough that a corrupt length cannot make the server allocate
    /// gigabytes.
    static let maximumPayload = 64 << 20
    static let maximumKeyLength = 4096

    enum Opcode: UInt8 { case set = 1, get = 2, add = 3, wait = 4 }
    enum Status: UInt8 { case ok = 0, timedOut = 1, failed = 2 }

    /// A header and payload ready to send.
    static func frame(kind: UInt8, payload: [UInt8]) -> [UInt8] {
        precondition(payload.count <= maximumPayload, "store message of \(payload.count) bytes exceeds \(maximumPayload)")
        var bytes = magic + [version, kind, 0, 0]
        bytes.append(bigEndian: UInt32(payload.count))
        return bytes + payload
    }

    /// The kind and payload length from a header, or why it is not one.
    static func parseHeader(_ header: [UInt8]) throws(StoreProtocolError) -> (kind: UInt8, length: Int) {
        guard Array(header[0..<4]) == magic else {
            throw StoreProtocolError("wrong magic \(hex(header[0..<4])) (not a Cohort store client?)")
        }
        guard header[4] == version else { throw StoreProtocolError("protocol version \(header[4]), expected \(version)") }
        guard header[6] == 0 && header[7] == 0 else { throw StoreProtocolError("reserved header bytes are not zero") }
        let length = header[8..<12].reduce(0) { $0 << 8 | Int($1) }
        guard length <= maximumPayload else {
            throw StoreProtocolError("payload length \(length) exceeds the \(maximumPayload >> 20) MiB limit")
        }
        return (header[5], length)
    }

    static func hex(_ bytes: ArraySlice<UInt8>) -> String {
        "0x" + bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }
}

/// A message that breaks `Note [Store protocol]`.
struct StoreProtocolError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension Array where Element == UInt8 {
    mutating func append(bigEndian value: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) { append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    mutating func append(int64 value: Int64) {
        for shift in stride(from: 56, through: 0, by: -8) { append(UInt8(truncatingIfNeeded: value >> Int64(shift))) }
    }

    mutating func append(field bytes: [UInt8]) {
        append(bigEndian: UInt32(bytes.count))
        append(contentsOf: bytes)
    }

    mutating func append(key: String) { append(field: Array(key.utf8)) }
}

/// Reads payload fields in order; every read checks the bounds.
struct PayloadReader {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func uint32() throws(StoreProtocolError) -> UInt32 {
        guard bytes.count - offset >= 4 else { throw StoreProtocolError("payload ends inside a length") }
        defer { offset += 4 }
        return bytes[offset..<offset + 4].reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func int64() throws(StoreProtocolError) -> Int64 {
        guard bytes.count - offset >= 8 else { throw StoreProtocolError("payload ends inside an integer") }
        defer { offset += 8 }
        return bytes[offset..<offset + 8].reduce(0) { $0 << 8 | Int64($1) }
    }

    mutating func field() throws(StoreProtocolError) -> [UInt8] {
        let length = Int(try uint32())
        guard bytes.count - offset >= length else {
            throw StoreProtocolError("field of \(length) bytes overruns the payload (\(bytes.count - offset) left)")
        }
        defer { offset += length }
        return Array(bytes[offset..<offset + length])
    }

    mutating func key() throws(StoreProtocolError) -> String {
        let raw = try field()
        guard raw.count <= StoreMessage.maximumKeyLength else {
            throw StoreProtocolError("key of \(raw.count) bytes exceeds \(StoreMessage.maximumKeyLength)")
        }
        guard let key = String(validating: raw, as: UTF8.self) else { throw StoreProtocolError("key is not UTF-8") }
        return key
    }

    /// Checks that nothing follows the last field.
    func finish() throws(StoreProtocolError) {
        guard offset == bytes.count else { throw StoreProtocolError("\(bytes.count - offset) unexpected bytes after the fields") }
    }
}
