import Foundation

/// The `COHORT_*` environment variables Cohort reads, with what setting each
/// one does to a run (docs/environment.md has the values and the Notes).
///
/// Note [Environment switches]: a measurement switch left set from an
/// experiment silently changes what a later run measures, and a misspelt one
/// silently does nothing, so
/// `cohort info` names every `COHORT_*` variable that is set (an unknown one
/// as a likely typo) and a training run's header records the switches and
/// NCCL's variables it ran under. A CI test keeps this list, the sources and
/// docs/environment.md in step.
enum EnvironmentSettings {
    enum Effect: String {
        case launcher = "set by cohort launch or the build scripts"
        case files = "where Cohort keeps or finds files"
        case speed = "a measurement switch: changes how fast a step runs, not what it computes"
        case computation = "a measurement switch that changes what is computed: gradients are NOT all-reduced"
    }

    static let variables: [String: Effect] = [
        "COHORT_RESTART_COUNT": .launcher, "COHORT_BUILD_COMMIT": .launcher,
        "COHORT_CIFAR10_DIR": .files, "COHORT_KERNEL_CACHE": .files,
        "COHORT_PDL": .speed, "COHORT_CONV_PATH": .speed, "COHORT_GRAPH_MEMSETS": .speed,
        "COHORT_KRSC_COPIES": .speed, "COHORT_FIND_ROUNDS": .speed, "COHORT_CUDA_SCHEDULE": .speed,
        "COHORT_NCCL_STREAM": .speed, "COHORT_NCCL_STREAM_PRIORITY": .speed,
        "COHORT_GRAPH_NODE_PRIORITY": .speed, "COHORT_KERNEL_CARVEOUT": .speed, "COHORT_GRAPH_TIMING": .speed,
        "COHORT_GRAPH_DOT": .speed, "COHORT_SIDE_WORK": .speed, "COHORT_SIDE_PRIORITY": .speed,
        "COHORT_DNNL_ACTIVATIONS": .speed,
        "COHORT_ALLREDUCE_DRY": .computation,
    ]

    /// The `COHORT_*` variables set in `environment`, by name, each with its
    /// effect (nil: Cohort reads no such variable).
    static func set(in environment: [String: String] = ProcessInfo.processInfo.environment)
        -> [(name: String, value: String, effect: Effect?)] {
        environment.filter { $0.key.hasPrefix("COHORT_") }.sorted { $0.key < $1.key }
            .map { ($0.key, $0.value, variables[$0.key]) }
    }

    /// `cohort info`'s lines: one per `COHORT_*` variable that is set.
    static func infoLines(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        set(in: environment).map { name, value, effect in
            let what = effect.map { $0.rawValue } ?? "not a variable Cohort reads: misspelt? (docs/environment.md lists them)"
            return "environment \(name)=\(value): \(what)"
        }
    }

    /// For a run's header: the measurement switches that are set (and any
    /// `COHORT_*` Cohort does not know, a likely typo) and NCCL's variables,
    /// as `NAME=value` separated by spaces; nil when none is set.
    static func headerValue(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        let switches = set(in: environment).filter { $0.effect == .speed || $0.effect == .computation || $0.effect == nil }
            .map { "\($0.name)=\($0.value)" }
        let nccl = environment.filter { $0.key.hasPrefix("NCCL_") }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        let all = switches + nccl
        return all.isEmpty ? nil : all.joined(separator: " ")
    }
}
