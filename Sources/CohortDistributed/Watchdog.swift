import Foundation

/// Stops a process whose collective has run for longer than `timeout`.
///
/// Note [Distributed failures]
/// A data-parallel run must never hang: when one rank dies or a collective
/// fails, every other rank stops within the watchdog's limit (30 s by
/// default). Three paths get there:
/// - A rank dies (crash, kill, exit without shutdown): under mpirun the
///   runtime notices the lost process and kills the rest of the job at once;
///   on the TCP store the peers see the connection close and throw.
/// - A collective returns an error (MPI_ERRORS_RETURN is set, so MPI
///   failures become `MPIError`s): the caller calls
///   `Communicator.abort(reason:)`, which tears the whole job down.
/// - A collective never returns (a rank skipped it, or stalled without
///   dying): this watchdog, a thread per communicator, notices the
///   collective in flight past its limit, prints which one and for how long,
///   and calls `expire` (MPI_Abort for MPI), falling back to `_exit`.
/// The limit covers one collective, not the time between them, so a slow
/// data loader or evaluation does not trip it; pick a longer one where a
/// rank may legitimately arrive late at a barrier (the first one after data
/// loading).
/// On a GPU a collective returns before it runs (NCCL enqueues it), so the
/// fourth path is device work that never finishes: `watch(_:until:)` takes
/// a probe (has the device passed an event recorded after the work? did
/// NCCL record an asynchronous error?) that the watchdog polls every
/// `pollInterval` until it says done, and expires the run past the limit.
public final class Watchdog: @unchecked Sendable {
    public let timeout: Duration
    /// How often a probe is polled: short against the limit, long against
    /// the microsecond a probe (cuEventQuery) costs.
    public static let pollInterval = 0.2
    private let expire: @Sendable (String) -> Void
    private let condition = NSCondition()
    private var inFlight: (call: String, started: ContinuousClock.Instant, probe: (@Sendable () -> Probe)?)?
    private var stopped = false

    /// What a probe found.
    public enum Probe: Sendable {
        case running
        case finished
        /// The work failed (the message says how): the run stops now.
        case failed(String)
    }

    /// `expire` receives the message; it should end the process (if it
    /// returns, the watchdog calls `_exit(1)`).
    public init(timeout: Duration, expire: @escaping @Sendable (String) -> Void) {
        self.timeout = timeout
        self.expire = expire
        let thread = Thread { [self] in watch() }
        thread.name = "cohort-watchdog"
        thread.start()
    }

    /// Runs `body`, a collective named `call`, under the watchdog.
    func guarding<T>(_ call: String, _ body: () throws -> T) rethrows -> T {
        condition.lock()
        inFlight = (call, .now, nil)
        condition.signal()
        condition.unlock()
        defer {
            condition.lock()
            inFlight = nil
            condition.unlock()
        }
        return try body()
    }

    /// Watches asynchronous work named `call`, issued now, until `probe`
    /// says it finished; replaces whatever was watched before (work issued
    /// later on one stream finishes after earlier work).
    public func watch(_ call: String, until probe: @escaping @Sendable () -> Probe) {
        condition.lock()
        inFlight = (call, .now, probe)
        condition.signal()
        condition.unlock()
    }

    /// Ends the watchdog thread.
    public func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func watch() {
        condition.lock()
        defer { condition.unlock() }
        while !stopped {
            guard let (call, started, probe) = inFlight else {
                condition.wait()
                continue
            }
            switch probe?() {
            case .finished:
                inFlight = nil
                continue
            case .failed(let message):
                condition.unlock()
                expire("watchdog: \(call) failed: \(message). Stopping the run.")
                _exit(1)
            case .running, nil:
                break
            }
            let elapsed = ContinuousClock.now - started
            if elapsed >= timeout {
                condition.unlock()
                expire("watchdog: \(call) has not finished after \(describe(elapsed)); "
                    + "a rank died, stalled or skipped a collective. Stopping the run.")
                _exit(1)
            }
            let interval = probe == nil ? 1 : Self.pollInterval
            _ = condition.wait(until: Date(timeIntervalSinceNow: min(interval, seconds(timeout - elapsed) + 0.01)))
        }
    }
}

/// `duration` in seconds, as a Double.
func seconds(_ duration: Duration) -> Double {
    let (whole, attoseconds) = duration.components
    return Double(whole) + Double(attoseconds) * 1e-18
}

/// `duration` for messages: "30 s", "1.5 s".
func describe(_ duration: Duration) -> String {
    let value: Double = seconds(duration)
    return value == value.rounded() ? "\(Int(value)) s" : String(format: "%.1f s", value)
}
