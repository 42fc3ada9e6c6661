import Foundation

/// What went wrong reading, validating or downloading CIFAR-10, with the file
/// concerned and how to fix it (`description` is meant to be printed as is).
public enum CIFAR10Error: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// The path given does not exist.
    case directoryNotFound(path: String)
    /// The path exists but neither it nor `<path>/cifar-10-batches-bin` holds the batch files.
    case batchesNotFound(path: String)
    /// One of the six batch files is missing from the batches folder.
    case fileMissing(file: String)
    case unreadable(file: String, reason: String)
    /// The size is not a whole number of 3,073-byte records: a truncated or foreign file.
    case sizeNotMultipleOfRecord(file: String, byteCount: Int)
    case wrongRecordCount(file: String, records: Int, expected: Int)
    /// A label byte outside 0...9 (`record` counts from 0).
    case labelOutOfRange(file: String, record: Int, label: UInt8)
    case downloadFailed(url: String, reason: String)
    case checksumMismatch(file: String, expected: String, actual: String)
    case extractionFailed(archive: String, status: Int32, output: String)

    private static let remedies = "pass --data pointing at the folder that holds cifar-10-batches-bin "
        + "(or at cifar-10-batches-bin itself), or use --download to fetch it, "
        + "or --dataset synthetic to run without data"
    private static let refetch = "the download is damaged or incomplete: delete the folder and fetch it again "
        + "(--download), or re-extract cifar-10-binary.tar.gz"

    public var description: String {
        switch self {
        case .directoryNotFound(let path):
            return "CIFAR-10: no such directory \(path); " + Self.remedies
        case .batchesNotFound(let path):
            return "CIFAR-10: \(path) holds neither the batch files (data_batch_1.bin ... test_batch.bin) "
                + "nor a cifar-10-batches-bin folder; " + Self.remedies
        case .fileMissing(let file):
            return "CIFAR-10: missing \(file); " + Self.refetch
        case .unreadable(let file, let reason):
            return "CIFAR-10: cannot read \(file): \(reason); check its permissions, or " + Self.refetch
        case .sizeNotMultipleOfRecord(let file, let byteCount):
            return "CIFAR-10: \(file) is \(byteCount) bytes, not a multiple of the \(CIFAR10Format.recordByteCount)-byte "
                + "record (truncated, or not the binary version: the Python and MATLAB versions are not read); " + Self.refetch
        case .wrongRecordCount(let file, let records, let expected):
            return "CIFAR-10: \(file) holds \(records) records where \(expected) are expected; " + Self.refetch
        case .labelOutOfRange(let file, let record, let label):
            return "CIFAR-10: \(file) record \(record) has label \(label), outside 0...9 "
                + "(CIFAR-100's binary files have two label bytes and are not read); " + Self.refetch
        case .downloadFailed(let url, let reason):
            return "CIFAR-10: could not download \(url): \(reason). If this machine is offline, download "
                + "cifar-10-binary.tar.gz elsewhere, extract it, and pass --data pointing at the folder holding "
                + "cifar-10-batches-bin; or use --dataset synthetic"
        case .checksumMismatch(let file, let expected, let actual):
            return "CIFAR-10: \(file) has MD5 \(actual), expected \(expected); the download is corrupt or "
                + "truncated: delete it and run again with --download"
        case .extractionFailed(let archive, let status, let output):
            return "CIFAR-10: /bin/tar could not extract \(archive) (exit status \(status)): \(output); "
                + "delete it and run again with --download, or extract it by hand and pass --data"
        }
    }

    public var errorDescription: String? { description }
}
