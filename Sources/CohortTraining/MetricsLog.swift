import Foundation

/// Appends one JSON object per line to a file: the metrics log of a run
/// (`metrics.jsonl`), readable with `jq` or `pandas.read_json(lines=True)`.
///
/// Every record has `"event"` (`"step"`, `"epoch"`, `"eval"`, `"run"`) and
/// `"time"` (seconds since the Unix epoch); numbers are plain JSON numbers.
public final class MetricsLog {
    public let url: URL
    private let handle: FileHandle

    /// Opens `url` for appending (a resumed run continues the same file).
    public init(url: URL) throws {
        self.url = url
        let manager = FileManager.default
        try manager.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        if !manager.fileExists(atPath: url.path) {
            guard manager.createFile(atPath: url.path, contents: nil) else {
                throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: url.path])
            }
        }
        handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
    }

    deinit { try? handle.close() }

    public func record(_ event: String, _ fields: [String: Any]) {
        var object = fields
        object["event"] = event
        object["time"] = Date().timeIntervalSince1970
        guard JSONSerialization.isValidJSONObject(object),
              let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else {
            preconditionFailure("metrics record \(event) is not JSON-serialisable: \(fields)")
        }
        handle.write(data + Data("\n".utf8))
    }
}
