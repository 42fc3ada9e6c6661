#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A failed system call while writing or reading a file.
public struct FileIOError: Error, CustomStringConvertible, Equatable {
    /// The call that failed (`open`, `write`, `fsync`, `rename`, ...).
    public var call: String
    public var path: String
    public var errnoCode: Int32

    public init(call: String, path: String, errnoCode: Int32) {
        self.call = call
        self.path = path
        self.errnoCode = errnoCode
    }

    public var description: String {
        "\(call) failed for \(path): \(String(cString: strerror(errnoCode))) (errno \(errnoCode))"
    }
}

private func systemWrite(_ descriptor: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(descriptor, buffer, count)
    #else
    return Darwin.write(descriptor, buffer, count)
    #endif
}

/// Receives the bytes of a file being written by `AtomicFile.write(to:_:)`.
public final class FileSink {
    fileprivate let descriptor: Int32
    fileprivate let path: String
    /// Bytes written so far.
    public private(set) var byteCount = 0

    fileprivate init(descriptor: Int32, path: String) {
        self.descriptor = descriptor
        self.path = path
    }

    /// Writes all of `buffer`, retrying short writes and `EINTR`.
    public func write(_ buffer: UnsafeRawBufferPointer) throws {
        guard var cursor = buffer.baseAddress else { return }
        var remaining = buffer.count
        while remaining > 0 {
            let written = systemWrite(descriptor, cursor, remaining)
            if written < 0 {
                if errno == EINTR { continue }
                throw FileIOError(call: "write", path: path, errnoCode: errno)
            }
            cursor += written
            remaining -= written
            byteCount += written
        }
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    public func write(_ data: Data) throws {
        try data.withUnsafeBytes { try write($0) }
    }
}

/// Replaces a file so that a crash at any moment leaves either the old file
/// or the complete new one, never a mix.
///
/// The bytes go to `.<name>.tmp-<pid>` in the destination's directory (the
/// same file system, so the rename is atomic), the file is fsynced, renamed
/// over the destination, and the directory fsynced so the rename itself is
/// durable. If anything throws, the temporary file is removed and the
/// destination is untouched. The temporary name is per process, so one
/// process must not write the same destination from two threads at once
/// (rank 0 writes checkpoints). The new file gets mode 0644 (less the umask).
public enum AtomicFile {
    /// The temporary path used while writing `url`.
    public static func temporaryURL(for url: URL) -> URL {
        url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
    }

    /// Writes the file with the bytes `produce` hands to its sink.
    public static func write(to url: URL, _ produce: (FileSink) throws -> Void) throws {
        let destination = url.path
        let temporary = temporaryURL(for: url).path
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw FileIOError(call: "open", path: temporary, errnoCode: errno) }
        var isOpen = true
        do {
            try produce(FileSink(descriptor: descriptor, path: temporary))
            guard fsync(descriptor) == 0 else { throw FileIOError(call: "fsync", path: temporary, errnoCode: errno) }
            isOpen = false
            guard close(descriptor) == 0 else { throw FileIOError(call: "close", path: temporary, errnoCode: errno) }
            guard rename(temporary, destination) == 0 else {
                throw FileIOError(call: "rename", path: destination, errnoCode: errno)
            }
        } catch {
            if isOpen { _ = close(descriptor) }
            _ = unlink(temporary)
            throw error
        }
        try syncDirectory(of: url)
    }

    /// Writes `data` as the whole file.
    public static func write(_ data: Data, to url: URL) throws {
        try write(to: url) { try $0.write(data) }
    }

    /// Makes a rename in `url`'s directory durable.
    private static func syncDirectory(of url: URL) throws {
        let directory = url.deletingLastPathComponent().path
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw FileIOError(call: "open", path: directory, errnoCode: errno) }
        defer { _ = close(descriptor) }
        guard fsync(descriptor) == 0 else { throw FileIOError(call: "fsync", path: directory, errnoCode: errno) }
    }
}
