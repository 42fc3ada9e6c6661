import Foundation

/// Shows training progress: a redrawn status line on a terminal, plain log
/// lines (one every `plainInterval` seconds) when output goes to a file or pipe.
public final class ProgressDisplay {
    public let isTerminal: Bool
    public let enabled: Bool
    /// Prints nothing at all, log lines included: ranks other than 0.
    public let muted: Bool
    private let plainInterval: Double
    private var lastPlainLine = Date.distantPast
    private var lineIsOpen = false

    public init(enabled: Bool = true, muted: Bool = false, plainInterval: Double = 10) {
        self.enabled = enabled && !muted
        self.muted = muted
        self.plainInterval = plainInterval
        isTerminal = isatty(STDOUT_FILENO) == 1
    }

    /// Where an epoch is, and how fast it goes.
    public struct Status {
        public var epoch: Int
        public var epochs: Int
        public var step: Int
        public var stepsPerEpoch: Int
        public var imagesPerSecond: Double
        public var loss: Double?
        public var learningRate: Double
        public var secondsLeft: Double

        public init(epoch: Int, epochs: Int, step: Int, stepsPerEpoch: Int, imagesPerSecond: Double,
                    loss: Double?, learningRate: Double, secondsLeft: Double) {
            self.epoch = epoch
            self.epochs = epochs
            self.step = step
            self.stepsPerEpoch = stepsPerEpoch
            self.imagesPerSecond = imagesPerSecond
            self.loss = loss
            self.learningRate = learningRate
            self.secondsLeft = secondsLeft
        }
    }

    public func update(_ status: Status) {
        guard enabled else { return }
        let loss = status.loss.map { String(format: "%.4f", $0) } ?? "-"
        let numbers = String(format: "%7.1f img/s | loss %@ | lr %.5f | ETA %@",
                             status.imagesPerSecond, loss, status.learningRate, Self.duration(status.secondsLeft))
        if isTerminal {
            let width = 24
            let filled = status.stepsPerEpoch > 0 ? width * status.step / status.stepsPerEpoch : 0
            let bar = String(repeating: "=", count: filled) + (filled < width ? ">" : "")
                + String(repeating: " ", count: max(0, width - filled - 1))
            let line = "epoch \(status.epoch)/\(status.epochs) [\(bar)] \(status.step)/\(status.stepsPerEpoch) | \(numbers)"
            Self.write("\r\u{1B}[2K" + line)
            lineIsOpen = true
        } else if Date().timeIntervalSince(lastPlainLine) >= plainInterval || status.step == status.stepsPerEpoch {
            lastPlainLine = Date()
            Self.write("epoch \(status.epoch)/\(status.epochs) step \(status.step)/\(status.stepsPerEpoch) | \(numbers)\n")
        }
    }

    /// Prints a line of its own, ending the status line first on a terminal.
    public func log(_ line: String) {
        guard !muted else { return }
        if lineIsOpen {
            Self.write("\r\u{1B}[2K")
            lineIsOpen = false
        }
        Self.write(line + "\n")
    }

    /// Unbuffered, so lines reach a pipe or log file as they happen.
    static func write(_ text: String) { FileHandle.standardOutput.write(Data(text.utf8)) }

    /// `1:02:03`, `2:03`.
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "--:--" }
        let total = Int(seconds.rounded())
        let (hours, minutes, secs) = (total / 3600, (total % 3600) / 60, total % 60)
        return hours > 0 ? String(format: "%d:%02d:%02d", hours, minutes, secs) : String(format: "%d:%02d", minutes, secs)
    }
}
