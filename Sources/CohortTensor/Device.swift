/// Where a tensor's storage lives: host memory, or the memory of one GPU.
public struct Device: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable { case cpu, cuda }

    public var kind: Kind
    /// The GPU ordinal for `.cuda`; always 0 for `.cpu`.
    public var index: Int

    public static let cpu = Device(kind: .cpu, index: 0)
    public static func cuda(_ index: Int = 0) -> Device { Device(kind: .cuda, index: index) }

    public init(kind: Kind, index: Int) {
        self.kind = kind
        self.index = index
    }

    /// Parses `cpu`, `cuda` and `cuda:N`, the spellings PyTorch uses.
    public init?(parsing text: String) {
        let lowered = text.lowercased()
        if lowered == "cpu" { self = .cpu; return }
        if lowered == "cuda" || lowered == "gpu" { self = .cuda(0); return }
        let parts = lowered.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0] == "cuda", let index = Int(parts[1]), index >= 0 else { return nil }
        self = .cuda(index)
    }

    public var isHost: Bool { kind == .cpu }

    public var description: String { kind == .cpu ? "cpu" : "cuda:\(index)" }
}
