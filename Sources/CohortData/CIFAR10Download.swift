import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Fetches the official `cifar-10-binary.tar.gz` (170 MB), checks its
/// published MD5, and extracts it with `/bin/tar`, leaving
/// `<directory>/cifar-10-batches-bin` for `CIFAR10Reader`.
///
/// Offline machines fail fast with a `CIFAR10Error.downloadFailed` that says
/// what to do instead: a connection that makes no progress for
/// `connectTimeout` seconds is abandoned (a refused one fails at once).
public struct CIFAR10Download: Sendable {
    public static let officialURL = URL(string: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz")!
    /// The checksum published on https://www.cs.toronto.edu/~kriz/cifar.html.
    public static let officialMD5 = "c32a1d4ab5d03f1284b67883e8d87530"
    public static let archiveName = "cifar-10-binary.tar.gz"

    public let url: URL
    public let expectedMD5: String
    /// Seconds without any progress (connecting included) before giving up.
    public let connectTimeout: TimeInterval

    public init(url: URL = officialURL, expectedMD5: String = officialMD5, connectTimeout: TimeInterval = 20) {
        self.url = url
        self.expectedMD5 = expectedMD5
        self.connectTimeout = connectTimeout
    }

    /// Makes sure `directory` holds a complete `cifar-10-batches-bin` and
    /// returns that folder. Files already there are kept when complete (all
    /// six batch files of the right size); an archive already downloaded is
    /// reused when its MD5 matches. `log` hears one line per step.
    @discardableResult
    public func fetch(into directory: String, log: (String) -> Void = { _ in }) throws -> URL {
        let root = URL(fileURLWithPath: directory, isDirectory: true)
        let batches = root.appendingPathComponent(CIFAR10Format.directoryName, isDirectory: true)
        if Self.isComplete(batches) {
            log("CIFAR-10 already present in \(batches.path)")
            return batches
        }
        do {
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        } catch {
            throw CIFAR10Error.unreadable(file: root.path, reason: "cannot create it: \(error.localizedDescription)")
        }
        let archive = root.appendingPathComponent(Self.archiveName)
        let haveArchive = FileManager.default.fileExists(atPath: archive.path)
            && (try? MD5.hexDigest(ofFileAt: archive)) == expectedMD5
        if !haveArchive {
            log("downloading \(url.absoluteString) to \(archive.path)")
            try download(to: archive)
        }
        log("verifying MD5 and extracting \(archive.path)")
        try verifyAndExtract(archive: archive, into: root)
        return batches
    }

    /// Checks `archive` against `expectedMD5`, then extracts it into `directory`.
    public func verifyAndExtract(archive: URL, into directory: URL) throws {
        let actual: String
        do {
            actual = try MD5.hexDigest(ofFileAt: archive)
        } catch {
            throw CIFAR10Error.unreadable(file: archive.path, reason: error.localizedDescription)
        }
        guard actual == expectedMD5 else {
            throw CIFAR10Error.checksumMismatch(file: archive.path, expected: expectedMD5, actual: actual)
        }
        try Self.extract(archive: archive, into: directory)
    }

    /// Runs `/bin/tar -xzf archive -C directory`.
    public static func extract(archive: URL, into directory: URL) throws {
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/bin/tar")
        tar.arguments = ["-xzf", archive.path, "-C", directory.path]
        let output = Pipe()
        tar.standardOutput = output
        tar.standardError = output
        do {
            try tar.run()
        } catch {
            throw CIFAR10Error.extractionFailed(archive: archive.path, status: -1,
                                                output: "could not start /bin/tar: \(error.localizedDescription)")
        }
        let message = output.fileHandleForReading.readDataToEndOfFile()
        tar.waitUntilExit()
        guard tar.terminationStatus == 0 else {
            let text = String(decoding: message, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw CIFAR10Error.extractionFailed(archive: archive.path, status: tar.terminationStatus, output: text)
        }
    }

    /// All six batch files present at the official size.
    static func isComplete(_ batches: URL) -> Bool {
        let size = CIFAR10Format.recordsPerFile * CIFAR10Format.recordByteCount
        return CIFAR10Split.allCases.flatMap(\.fileNames).allSatisfy { name in
            let path = batches.appendingPathComponent(name).path
            let attributes = try? FileManager.default.attributesOfItem(atPath: path)
            return (attributes?[.size] as? NSNumber)?.intValue == size
        }
    }

    /// Downloads `url` to `file`, blocking until done.
    func download(to file: URL) throws {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = connectTimeout
        configuration.timeoutIntervalForResource = 3600
        let session = URLSession(configuration: configuration)
        defer { session.finishTasksAndInvalidate() }
        let outcome = DownloadOutcome()
        let source = url
        let task = session.downloadTask(with: url) { location, response, error in
            if let error {
                outcome.finish(.failure(CIFAR10Error.downloadFailed(url: source.absoluteString, reason: error.localizedDescription)))
                return
            }
            if let http = response as? HTTPURLResponse, !(200..<300).contains(http.statusCode) {
                outcome.finish(.failure(CIFAR10Error.downloadFailed(url: source.absoluteString,
                                                                    reason: "HTTP status \(http.statusCode)")))
                return
            }
            guard let location else {
                outcome.finish(.failure(CIFAR10Error.downloadFailed(url: source.absoluteString, reason: "no file received")))
                return
            }
            // The temporary file is deleted when this handler returns: move it now.
            do {
                try? FileManager.default.removeItem(at: file)
                try FileManager.default.moveItem(at: location, to: file)
                outcome.finish(.success(()))
            } catch {
                outcome.finish(.failure(CIFAR10Error.unreadable(file: file.path,
                                                                reason: "cannot store the download: \(error.localizedDescription)")))
            }
        }
        task.resume()
        try outcome.wait().get()
    }
}

/// The result of a download task, handed from URLSession's callback queue to
/// the waiting caller.
private final class DownloadOutcome: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var result: Result<Void, Error> = .success(())

    func finish(_ result: Result<Void, Error>) {
        lock.lock()
        self.result = result
        lock.unlock()
        done.signal()
    }

    func wait() -> Result<Void, Error> {
        done.wait()
        lock.lock()
        defer { lock.unlock() }
        return result
    }
}
