import CohortTensor
/// A mark in a device backend's stream of work that the device stamps with
/// the time when it gets there (a CUDA event with timing), so the phases of
/// an asynchronous step can be timed without waiting on the host.
///
/// Note [Device timing]: on a GPU the host issues a step in a fraction of
/// the time the device needs, so host clocks around `forward` or
/// `backward` measure issuing, not computing. A timestamp is recorded on
/// the stream between two phases; once the device has passed both,
/// `Backend.seconds(from:to:)` gives the device time between them. It is
/// reusable: recording it again moves it. Recording is one driver call
/// (cuEventRecord), but reading waits for the device, so callers record on
/// the steps they log and read after the step's loss is read back anyway. A timestamp recorded while the
/// stream is being captured into a graph is not recorded (the capture would
/// make it an ordering edge, not a timestamp); reading it then gives nil,
/// unless the backend `recordsTimestampsInsideGraphs` (CUDA with
/// `COHORT_GRAPH_TIMING=1`): then it stamps every replay (Note [Timing
/// inside graphs] in CUDAEvent.swift).
public protocol DeviceTimestamp: AnyObject {}

extension Backend {
    /// Host backends run every op before it returns, so host clocks are
    /// exact there: they have no device timestamps.
    public func makeTimestamp() -> DeviceTimestamp? { nil }
    public func record(_ timestamp: DeviceTimestamp) {}
    public func seconds(from start: DeviceTimestamp, to end: DeviceTimestamp) -> Double? { nil }
    public var recordsTimestampsInsideGraphs: Bool { false }
    public func download(_ source: Tensor, after timestamp: DeviceTimestamp) -> Tensor { download(source) }
}
