/// Set by `cohort launch` in every rank's environment: 0 on the first
/// attempt, n on the n-th restart (`Note [Restarts]`).
let launchRestartCountVariable = "COHORT_RESTART_COUNT"
