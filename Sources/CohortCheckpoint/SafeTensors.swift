import CohortTensor
import Foundation

/// A tensor with the name it has in a file (`layer1.0.conv1.weight`).
public struct NamedTensor: Sendable {
    public var name: String
    public var tensor: Tensor

    public init(_ name: String, _ tensor: Tensor) {
        self.name = name
        self.tensor = tensor
    }
}

/// A safetensors file in memory: named host tensors and string metadata.
///
/// The layout is the published one (github.com/huggingface/safetensors):
///
///     [8 bytes]  N, the header length, little-endian u64
///     [N bytes]  UTF-8 JSON: {"__metadata__": {"k": "v"},
///                "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
///     [rest]     the tensors' bytes, little-endian, row-major, packed with no gaps;
///                offsets count from the first byte after the header
///
/// Writing matches the reference writer byte for byte: tensors are ordered by
/// dtype alignment, largest first (I64, F32, I32, BF16, U8; the order of the
/// reference's `Dtype` enum), then by name, so every tensor starts aligned to
/// its element size; the header is padded with spaces to a multiple of 8; the
/// JSON has no whitespace; `__metadata__` comes first and is omitted when
/// empty. (Metadata keys are sorted; the reference writes them in hash order.)
///
/// Reading accepts any order and validates everything before copying data:
/// the header length against the file, UTF-8, JSON syntax, each entry's
/// fields, dtype and size, and that the tensors tile the data region exactly
/// (no overlap, no gap, nothing past the end). Each failure is a
/// `SafeTensorsError` naming the file and, where there is one, the tensor.
/// Unknown fields inside an entry are ignored, as the reference reader does.
public struct SafeTensorsFile: Sendable {
    /// The largest header accepted, as in the reference reader (100 MB).
    public static let maximumHeaderLength = 100_000_000

    /// In the order of their data: for a file read, by offset; for one being
    /// written, as given (the writer reorders, see above).
    public var tensors: [NamedTensor]
    public var metadata: [String: String]

    public init(tensors: [NamedTensor], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    public var names: [String] { tensors.map(\.name) }

    /// The tensor called `name`, if any.
    public subscript(name: String) -> Tensor? { tensors.first { $0.name == name }?.tensor }

    // MARK: Writing

    /// The whole file as bytes.
    public func serialized() throws -> Data {
        let (header, ordered) = try prepare(file: "<memory>")
        var data = Data(capacity: header.count + ordered.reduce(0) { $0 + $1.tensor.byteCount })
        data.append(contentsOf: header)
        for entry in ordered {
            data.append(contentsOf: UnsafeRawBufferPointer(start: entry.tensor.rawPointer, count: entry.tensor.byteCount))
        }
        return data
    }

    /// Writes the file to `url` atomically (see `AtomicFile`), streaming each
    /// tensor from its own memory.
    public func write(to url: URL) throws {
        let (header, ordered) = try prepare(file: url.path)
        try AtomicFile.write(to: url) { sink in
            try sink.write(header)
            for entry in ordered {
                try sink.write(UnsafeRawBufferPointer(start: entry.tensor.rawPointer, count: entry.tensor.byteCount))
            }
        }
    }

    /// The length prefix and padded header, and the tensors in file order.
    private func prepare(file: String) throws -> (header: [UInt8], ordered: [NamedTensor]) {
        var seen = Set<String>()
        for entry in tensors {
            guard entry.name != SafeTensorsFile.metadataKey else {
                throw SafeTensorsError(file: file, tensor: entry.name, reason: .reservedName)
            }
            guard seen.insert(entry.name).inserted else {
                throw SafeTensorsError(file: file, tensor: entry.name, reason: .duplicateName)
            }
            guard entry.tensor.device.isHost else {
                throw SafeTensorsError(file: file, tensor: entry.name, reason: .notOnHost(entry.tensor.device))
            }
        }
        let ordered = tensors.sorted {
            let (left, right) = (Self.alignmentRank($0.tensor.dtype), Self.alignmentRank($1.tensor.dtype))
            return left != right ? left > right : $0.name.utf8.lexicographicallyPrecedes($1.name.utf8)
        }
        var members: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
                .map { JSONWriter.quoted($0.key) + ":" + JSONWriter.quoted($0.value) }
            members.append(JSONWriter.quoted(Self.metadataKey) + ":{" + pairs.joined(separator: ",") + "}")
        }
        var offset = 0
        for entry in ordered {
            let tensor = entry.tensor
            let shape = tensor.shape.dimensions.map(String.init).joined(separator: ",")
            members.append(JSONWriter.quoted(entry.name)
                + ":{\"dtype\":\"\(tensor.dtype.safetensorsName)\",\"shape\":[\(shape)],"
                + "\"data_offsets\":[\(offset),\(offset + tensor.byteCount)]}")
            offset += tensor.byteCount
        }
        var json = Array(("{" + members.joined(separator: ",") + "}").utf8)
        json.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - json.count % 8) % 8))
        var header = withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) }
        header.append(contentsOf: json)
        return (header, ordered)
    }

    /// The position of `dtype` in the reference implementation's `Dtype`
    /// enum, whose order the reference writer sorts by (descending).
    private static func alignmentRank(_ dtype: DType) -> Int {
        switch dtype {
        case .uint8: return 0
        case .bfloat16: return 1
        case .int32: return 2
        case .float32: return 3
        case .int64: return 4
        }
    }

    static let metadataKey = "__metadata__"

    // MARK: Reading

    /// Reads and validates the file at `url`.
    public init(contentsOf url: URL) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .mappedIfSafe)
        } catch let error as CocoaError {
            let errnoCode = (error.userInfo[NSUnderlyingErrorKey] as? NSError)?.code ?? Int(EIO)
            throw FileIOError(call: "read", path: url.path, errnoCode: Int32(errnoCode))
        }
        try self.init(data: data, file: url.path)
    }

    /// Parses and validates a whole file held in `data`; `file` names it in errors.
    public init(data: Data, file: String = "<memory>") throws {
        func fail(_ reason: SafeTensorsError.Reason, tensor: String? = nil) -> SafeTensorsError {
            SafeTensorsError(file: file, tensor: tensor, reason: reason)
        }
        guard data.count >= 8 else { throw fail(.truncated(byteCount: data.count)) }
        let headerLength = data.prefix(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard headerLength <= UInt64(min(data.count - 8, Self.maximumHeaderLength)) else {
            throw fail(.headerLengthOutOfRange(headerLength: headerLength, fileSize: data.count))
        }
        let dataStart = 8 + Int(headerLength)
        let headerBytes = data[data.startIndex + 8 ..< data.startIndex + dataStart]
        guard String(validating: headerBytes, as: UTF8.self) != nil else { throw fail(.headerNotUTF8) }

        let root: JSONValue
        do {
            root = try JSONParser.parse(Array(headerBytes))
        } catch let error as JSONSyntaxError {
            throw fail(.invalidJSON(offset: error.offset, reason: error.reason))
        }
        guard case .object(let members) = root else {
            throw fail(.invalidHeader("the header is \(root.kindName), not an object"))
        }

        struct Entry {
            var name: String
            var dtype: DType
            var shape: Shape
            var begin: Int
            var end: Int
        }
        var entries: [Entry] = []
        var metadata: [String: String] = [:]
        var seen = Set<String>()
        let dataSize = data.count - dataStart
        for member in members {
            let (name, value) = (member.key, member.value)
            guard seen.insert(name).inserted else { throw fail(.duplicateName, tensor: name) }
            if name == Self.metadataKey {
                metadata = try Self.parseMetadata(value, fail: fail)
                continue
            }
            let entry = try Self.parseEntry(value, fail: { fail($0, tensor: name) })
            let count = entry.shape.reduce((1, false)) { acc, dimension in
                let product = acc.0.multipliedReportingOverflow(by: dimension)
                return (product.partialValue, acc.1 || product.overflow)
            }
            let bytes = count.0.multipliedReportingOverflow(by: entry.dtype.byteSize)
            guard !count.1, !bytes.overflow, entry.end >= entry.begin, entry.end - entry.begin == bytes.partialValue else {
                throw fail(.sizeMismatch(dtype: entry.dtype, shape: entry.shape, begin: entry.begin, end: entry.end),
                           tensor: name)
            }
            guard entry.end <= dataSize else {
                throw fail(.offsetsOutOfRange(begin: entry.begin, end: entry.end, dataSize: dataSize), tensor: name)
            }
            entries.append(Entry(name: name, dtype: entry.dtype, shape: Shape(entry.shape),
                                 begin: entry.begin, end: entry.end))
        }

        // The tensors must tile [0, dataSize): sorted by offset, each begins where the last ended.
        entries = entries.enumerated().sorted {
            ($0.element.begin, $0.element.end, $0.offset) < ($1.element.begin, $1.element.end, $1.offset)
        }.map(\.element)
        var covered = 0
        var previous: String?
        for entry in entries {
            if entry.begin < covered, let previous {
                throw fail(.overlap(other: previous, begin: entry.begin, end: entry.end), tensor: entry.name)
            }
            if entry.begin > covered {
                throw fail(.gap(begin: covered, end: entry.begin), tensor: entry.name)
            }
            covered = entry.end
            previous = entry.name
        }
        guard covered == dataSize else { throw fail(.gap(begin: covered, end: dataSize)) }

        self.metadata = metadata
        self.tensors = data.withUnsafeBytes { raw in
            let body = raw.baseAddress! + dataStart
            return entries.map { entry in
                let tensor = Tensor.zeros(entry.shape, dtype: entry.dtype)
                tensor.rawPointer.copyMemory(from: body + entry.begin, byteCount: entry.end - entry.begin)
                return NamedTensor(entry.name, tensor)
            }
        }
    }

    private static func parseMetadata(
        _ value: JSONValue, fail: (SafeTensorsError.Reason, String?) -> SafeTensorsError
    ) throws -> [String: String] {
        guard case .object(let pairs) = value else {
            throw fail(.invalidHeader("\"__metadata__\" is \(value.kindName), not an object of strings"), nil)
        }
        var metadata: [String: String] = [:]
        for pair in pairs {
            let (key, value) = (pair.key, pair.value)
            guard case .string(let text) = value else {
                throw fail(.invalidHeader("metadata \"\(key)\" is \(value.kindName), not a string"), nil)
            }
            guard metadata.updateValue(text, forKey: key) == nil else {
                throw fail(.invalidHeader("metadata key \"\(key)\" appears twice"), nil)
            }
        }
        return metadata
    }

    private static func parseEntry(
        _ value: JSONValue, fail: (SafeTensorsError.Reason) -> SafeTensorsError
    ) throws -> (dtype: DType, shape: [Int], begin: Int, end: Int) {
        guard case .object(let fields) = value else {
            throw fail(.invalidEntry("the entry is \(value.kindName), not an object"))
        }
        func field(_ key: String) throws -> JSONValue {
            let matches = fields.filter { $0.key == key }
            guard matches.count == 1 else {
                throw fail(.invalidEntry(matches.isEmpty ? "no \"\(key)\" field" : "\"\(key)\" appears twice"))
            }
            return matches[0].value
        }
        func integers(_ key: String) throws -> [Int] {
            guard case .array(let elements) = try field(key) else {
                throw fail(.invalidEntry("\"\(key)\" is not an array"))
            }
            return try elements.map {
                guard let integer = $0.nonNegativeInteger else {
                    throw fail(.invalidEntry("\"\(key)\" holds \($0.kindName), not a non-negative integer below 2^63"))
                }
                return integer
            }
        }
        guard case .string(let dtypeName) = try field("dtype") else {
            throw fail(.invalidEntry("\"dtype\" is not a string"))
        }
        guard let dtype = DType(safetensorsName: dtypeName) else { throw fail(.unknownDType(dtypeName)) }
        let shape = try integers("shape")
        let offsets = try integers("data_offsets")
        guard offsets.count == 2 else {
            throw fail(.invalidEntry("\"data_offsets\" has \(offsets.count) numbers, not 2 ([begin, end])"))
        }
        return (dtype, shape, offsets[0], offsets[1])
    }
}

/// Why a safetensors file could not be read or written.
public struct SafeTensorsError: Error, CustomStringConvertible, Equatable {
    public enum Reason: Equatable, Sendable {
        /// The file is shorter than the 8-byte header length.
        case truncated(byteCount: Int)
        /// The header length points past the end of the file, or above `maximumHeaderLength`.
        case headerLengthOutOfRange(headerLength: UInt64, fileSize: Int)
        case headerNotUTF8
        /// `offset` counts bytes from the start of the JSON header.
        case invalidJSON(offset: Int, reason: String)
        /// The header or its `__metadata__` is not the shape the format requires.
        case invalidHeader(String)
        /// A tensor's entry lacks a field or holds the wrong kind of value.
        case invalidEntry(String)
        /// A dtype Cohort does not hold (or no safetensors dtype at all).
        case unknownDType(String)
        /// `end - begin` is not the byte size of `shape` in `dtype` (or `end < begin`).
        case sizeMismatch(dtype: DType, shape: [Int], begin: Int, end: Int)
        /// The tensor's bytes run past the end of the data region.
        case offsetsOutOfRange(begin: Int, end: Int, dataSize: Int)
        /// The tensor's bytes overlap those of tensor `other`.
        case overlap(other: String, begin: Int, end: Int)
        /// Bytes `begin..<end` of the data region belong to no tensor.
        case gap(begin: Int, end: Int)
        case duplicateName
        /// A tensor may not be called `__metadata__`.
        case reservedName
        /// Only host tensors can be written; download it through its backend first.
        case notOnHost(Device)
    }

    /// The path of the file, or `<memory>`.
    public var file: String
    /// The tensor the error is about, where there is one.
    public var tensor: String?
    public var reason: Reason

    public init(file: String, tensor: String?, reason: Reason) {
        self.file = file
        self.tensor = tensor
        self.reason = reason
    }

    public var description: String {
        let subject = tensor.map { "\(file): tensor \"\($0)\"" } ?? file
        return "\(subject): \(reasonText)"
    }

    private var reasonText: String {
        switch reason {
        case .truncated(let byteCount):
            return "truncated: \(byteCount) bytes, too short for the 8-byte header length"
        case .headerLengthOutOfRange(let headerLength, let fileSize):
            return "header length \(headerLength) does not fit a file of \(fileSize) bytes "
                + "(or exceeds \(SafeTensorsFile.maximumHeaderLength)); the file is truncated or not safetensors"
        case .headerNotUTF8:
            return "the header is not valid UTF-8"
        case .invalidJSON(let offset, let reason):
            return "the header is not valid JSON at byte \(offset) of the header: \(reason)"
        case .invalidHeader(let reason):
            return "invalid header: \(reason)"
        case .invalidEntry(let reason):
            return "invalid entry: \(reason)"
        case .unknownDType(let name):
            let known = DType.allCases.map(\.safetensorsName).joined(separator: ", ")
            return "dtype \"\(name)\" is not supported (Cohort reads \(known))"
        case .sizeMismatch(let dtype, let shape, let begin, let end):
            return "data_offsets [\(begin), \(end)] do not hold a \(dtype.safetensorsName) tensor of shape \(shape)"
        case .offsetsOutOfRange(let begin, let end, let dataSize):
            return "data_offsets [\(begin), \(end)] run past the \(dataSize) data bytes; the file is truncated or corrupt"
        case .overlap(let other, let begin, let end):
            return "data_offsets [\(begin), \(end)] overlap tensor \"\(other)\""
        case .gap(let begin, let end):
            return "data bytes \(begin)..<\(end) belong to no tensor"
        case .duplicateName:
            return "the name appears more than once"
        case .reservedName:
            return "\"__metadata__\" is reserved for the metadata and cannot name a tensor"
        case .notOnHost(let device):
            return "the tensor is on \(device); copy it to the host before writing"
        }
    }
}
