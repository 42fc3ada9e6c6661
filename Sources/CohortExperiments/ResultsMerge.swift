import Foundation

/// Several results files of one machine kind as one: a GPU suite too long for
/// one device call runs in parts (`--only`), and its report should still be
/// one folder.
///
/// Note [Merging results]
/// - Records are identified by what they measure (Q2: framework, strategy,
///   precision, GPUs, per-GPU batch; Q4: framework, label and seed, where a
///   record without a seed, from before the references were repeated, is
///   seed 0; ...). Where two files measured the same thing the later file's
///   record wins: list the files oldest first. So the references' repeats
///   (`--q4-reference-seeds`, labels "reference seed 1", ...) of one call
///   join the seed-0 runs of another, and the baseline target reads every
///   seed of the merged file (Note [Q4 reference seeds]).
/// - Derived figures stay as each call computed them (Q2's speedup and
///   efficiency against the 1-GPU run of the same call), so a ratio never
///   mixes two calls.
/// - The stamp lists every call (commit, date, command), and a note says which
///   call each section's records came from; the machine, card and libraries
///   are the first file's, and files from different cards are refused.
public enum ResultsMerge {
    public struct MergeError: Error, CustomStringConvertible {
        public var description: String
    }

    public static func merge(_ parts: [ExperimentResults]) throws -> ExperimentResults {
        guard var merged = parts.first else { throw MergeError(description: "nothing to merge") }
        guard parts.count > 1 else { return merged }
        for part in parts.dropFirst() where part.metadata.card != merged.metadata.card
            || part.metadata.profile != merged.metadata.profile {
            throw MergeError(description: "results from different machines do not merge: \(merged.metadata.card ?? "cpu") "
                + "(\(merged.metadata.profile.rawValue)) and \(part.metadata.card ?? "cpu") (\(part.metadata.profile.rawValue))")
        }
        var sources: [String] = []
        func combine<Record>(_ path: WritableKeyPath<ExperimentResults, Section<Record>>, _ name: String,
                             key: (Record) -> String) {
            var records: [Record] = [], keys: [String] = [], from: [Int] = []
            var reason: String?
            for (index, part) in parts.enumerated() {
                let section = part[keyPath: path]
                if section.records.isEmpty { reason = reason ?? section.notRunReason; continue }
                for record in section.records {
                    let k = key(record)
                    if let existing = keys.firstIndex(of: k) {
                        records[existing] = record
                        from[existing] = index
                    } else {
                        records.append(record)
                        keys.append(k)
                        from.append(index)
                    }
                }
            }
            merged[keyPath: path] = records.isEmpty ? .notRun(reason ?? "not run in any of the merged calls")
                : Section(records: records)
            let calls = Set(from).sorted().map { "call \($0 + 1)" }
            if !calls.isEmpty { sources.append("\(name): \(calls.joined(separator: " and "))") }
        }
        combine(\.q1, "Q1") { "\($0.framework) \($0.device) \($0.precision) \($0.batchSize)" }
        combine(\.q2, "Q2") { "\($0.framework) \($0.strategy) \($0.precision) \($0.gpus) \($0.perDeviceBatch)" }
        combine(\.q3, "Q3") { "\($0.strategy) \($0.precision) \($0.gpus) \($0.perDeviceBatch)" }
        combine(\.allReduceSweep, "all-reduce") { "\($0.communicator) \($0.ranks) \($0.bytes)" }
        combine(\.q4, "Q4") { "\($0.framework) \($0.label) seed \($0.seed ?? 0)" }
        combine(\.timeToAccuracy, "time to accuracy") { $0.label }
        combine(\.timelines, "timelines") { $0.configuration }

        let calls = parts.enumerated().map { index, part in
            "call \(index + 1): commit \(part.metadata.commit), \(part.metadata.date), `\(part.metadata.command)`"
        }
        merged.metadata.commit = parts.map(\.metadata.commit).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
            .joined(separator: " + ")
        merged.metadata.date = parts.last!.metadata.date
        merged.metadata.command = "merged from \(parts.count) calls (cohort report)"
        let environments = parts.map { $0.metadata.environment ?? "" }
        if Set(environments).count == 1 {
            merged.metadata.environment = parts[0].metadata.environment
        } else {
            merged.metadata.environment = environments.enumerated()
                .map { "call \($0.offset + 1): \($0.element.isEmpty ? "none" : $0.element)" }.joined(separator: "; ")
        }
        merged.metadata.deviceCount = parts.map(\.metadata.deviceCount).max() ?? merged.metadata.deviceCount
        var notes = ["Merged from \(parts.count) calls on the same kind of machine (Note [Merging results]): "
                     + calls.joined(separator: "; "),
                     "Where the records come from: " + sources.joined(separator: "; ")]
        for part in parts {
            for note in part.metadata.notes where !notes.contains(note) { notes.append(note) }
        }
        merged.metadata.notes = notes
        return merged
    }
}
