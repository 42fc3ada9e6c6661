import Foundation

/// A few training steps of one configuration as intervals per rank and
/// stream, which the runner records (CUDA events or host clocks) and
/// `ChromeTrace` turns into trace.json.
public struct StepTimeline: Codable, Equatable, Sendable {
    /// e.g. "DDP 4 GPUs × 128"; names the configuration in the trace.
    public var configuration: String
    public var ranks: Int
    /// Time 0 of `intervals` is the start of the first recorded step.
    public var intervals: [TimelineInterval]

    public init(configuration: String, ranks: Int, intervals: [TimelineInterval]) {
        self.configuration = configuration
        self.ranks = ranks
        self.intervals = intervals
    }
}

/// Which queue of work an interval ran on.
public enum TimelineStream: String, Codable, Sendable, CaseIterable {
    /// Forward, backward, optimiser kernels.
    case compute
    /// All-reduces of gradient buckets.
    case communication

    /// The trace's thread id for the stream, fixed so every rank lists compute first.
    public var threadID: Int { self == .compute ? 1 : 2 }
}

public struct TimelineInterval: Codable, Equatable, Sendable {
    public var rank: Int
    public var stream: TimelineStream
    /// What ran, e.g. "forward", "backward", "all-reduce bucket 3", "optimizer".
    public var name: String
    /// 0-based step within the recorded steps.
    public var step: Int
    /// Seconds since the timeline's origin.
    public var startSeconds: Double
    public var durationSeconds: Double
    /// Bytes moved, for communication intervals.
    public var bytes: Int?

    public init(rank: Int, stream: TimelineStream, name: String, step: Int, startSeconds: Double,
                durationSeconds: Double, bytes: Int? = nil) {
        self.rank = rank
        self.stream = stream
        self.name = name
        self.step = step
        self.startSeconds = startSeconds
        self.durationSeconds = durationSeconds
        self.bytes = bytes
    }
}

/// Chrome's trace event format (the JSON object form), which chrome://tracing
/// and ui.perfetto.dev open: `{"traceEvents": [...], "displayTimeUnit": "ms"}`.
///
/// Every interval is a complete event (`"ph": "X"`) with `ts` and `dur` in
/// microseconds. Each (configuration, rank) is a process, so the trace groups
/// one configuration's ranks together: pid = 1000 × configuration index + rank,
/// named "<configuration> · rank <r>" by a `process_name` metadata event, and
/// the rank itself is in every event's args. Streams are threads
/// (tid 1 compute, tid 2 communication), named by `thread_name` events.
/// Every configuration starts at time 0, so their steps line up for comparison.
public enum ChromeTrace {
    public static func events(for timelines: [StepTimeline]) -> [[String: Any]] {
        var events: [[String: Any]] = []
        for (index, timeline) in timelines.enumerated() {
            let ranks = Set(timeline.intervals.map(\.rank)).union(0..<timeline.ranks).sorted()
            for rank in ranks {
                let pid = processID(configuration: index, rank: rank)
                events.append(["ph": "M", "name": "process_name", "pid": pid, "tid": 0,
                               "args": ["name": "\(timeline.configuration) · rank \(rank)"]])
                events.append(["ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0,
                               "args": ["sort_index": pid]])
                for stream in TimelineStream.allCases {
                    events.append(["ph": "M", "name": "thread_name", "pid": pid, "tid": stream.threadID,
                                   "args": ["name": stream.rawValue]])
                }
            }
            for interval in timeline.intervals {
                var args: [String: Any] = ["configuration": timeline.configuration, "rank": interval.rank,
                                           "step": interval.step]
                if let bytes = interval.bytes { args["bytes"] = bytes }
                events.append([
                    "ph": "X", "name": interval.name, "cat": interval.stream.rawValue,
                    "pid": processID(configuration: index, rank: interval.rank), "tid": interval.stream.threadID,
                    "ts": microseconds(interval.startSeconds), "dur": microseconds(interval.durationSeconds),
                    "args": args,
                ])
            }
        }
        return events
    }

    /// The trace file's bytes.
    public static func encode(_ timelines: [StepTimeline]) throws -> Data {
        let trace: [String: Any] = ["traceEvents": events(for: timelines), "displayTimeUnit": "ms"]
        return try JSONSerialization.data(withJSONObject: trace, options: [.prettyPrinted, .sortedKeys])
    }

    public static func processID(configuration: Int, rank: Int) -> Int { configuration * 1000 + rank }

    /// Microseconds rounded to nanoseconds: the format's unit, without float noise in the file.
    static func microseconds(_ seconds: Double) -> Double { (seconds * 1e9).rounded() / 1e3 }
}
