import ArgumentParser
import CohortCUDA
import CohortDistributed
import CohortKernels
import CohortTensor
import CohortTraining
import Foundation

/// The all-reduce sweep of the experiment suite's Q3: every message size from
/// 1 KB up, timed on the communicator training uses (MPI between CPU ranks,
/// NCCL between GPUs), with nccl-tests' definitions:
///     algbw = bytes / time,  busbw = algbw * 2 (n - 1) / n
/// (busbw is what each link carries in a ring all-reduce, comparable across
/// rank counts and with the hardware's bandwidth).
struct BenchAllReduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allreduce",
        abstract: "Time all-reduces of growing sizes across ranks (run it under cohort launch).",
        discussion: """
            Example: cohort launch --nproc-per-node 2 -- cohort bench allreduce --device cuda
            Each size is all-reduced (sum, float32) after warm-up, and the median of the timed \
            repetitions gives algbw and busbw as nccl-tests define them. Rank 0 prints the table.
            """)

    @OptionGroup var deviceOptions: DeviceOptions

    @Option(name: .customLong("min-bytes"), help: "Smallest message.")
    var minBytes: Int = 1 << 10

    @Option(name: .customLong("max-bytes"), help: "Largest message (default 1 GiB on GPUs, 64 MiB on the CPU).")
    var maxBytes: Int?

    @Option(help: "Each size is this many times the one before.")
    var factor: Int = 4

    @Option(help: "Timed repetitions per size (the median is reported).")
    var iterations: Int = 20

    @Option(help: ArgumentHelp("Rank 0 also writes the results as JSON to this file.", valueName: "file"))
    var json: String?

    /// One size's result, the fields of the experiments' `AllReduceSweepRecord`.
    struct Row: Codable {
        var communicator: String
        var ranks: Int
        var bytes: Int
        var seconds: Double
        var algbwGBps: Double
        var busbwGBps: Double
    }

    func validate() throws {
        guard minBytes >= 4 else { throw ValidationError("--min-bytes must be at least 4 (one float)") }
        if let maxBytes, maxBytes < minBytes { throw ValidationError("--max-bytes must be at least --min-bytes") }
        guard factor >= 2 else { throw ValidationError("--factor must be 2 or more") }
        guard iterations >= 1 else { throw ValidationError("--iterations must be at least 1") }
    }

    func run() throws {
        let environment = try RankEnvironment.current()
        guard environment.isDistributed else {
            throw ValidationError("""
                an all-reduce needs several ranks: cohort launch --nproc-per-node 2 -- cohort bench allreduce \
                \(deviceOptions.device.isHost ? "--device cpu" : "--device cuda")
                """)
        }
        let backend: Backend
        let communicator: Communicator
        if deviceOptions.device.isHost {
            backend = try makeBackend(device: .cpu, choice: deviceOptions.backend).backend
            communicator = try MPICommunicator(environment: environment)
        } else {
            let device = Train.rankDevice(deviceOptions.device, environment: environment,
                                          visibleDevices: ProcessInfo.processInfo.environment["CUDA_VISIBLE_DEVICES"])
            guard let cuda = try makeBackend(device: device, choice: deviceOptions.backend).backend as? CUDABackend else {
                throw ValidationError("GPU all-reduces need the CUDA backend")
            }
            backend = cuda
            communicator = try Train.makeNCCLCommunicator(backend: cuda, environment: environment).communicator
        }
        do {
            let rows = try sweep(backend: backend, communicator: communicator)
            if communicator.isRoot { try report(rows) }
            try communicator.shutdown()
        } catch {
            communicator.abort(reason: "\(error)")
        }
    }

    private func sweep(backend: Backend, communicator: Communicator) throws -> [Row] {
        let ranks = communicator.worldSize
        let largest = maxBytes ?? (backend.device.isHost ? 64 << 20 : 1 << 30)
        var sizes: [Int] = []
        var bytes = minBytes
        while bytes <= largest { sizes.append(bytes / 4 * 4); bytes *= factor }
        let buffer = try backend.makeTensor([largest / 4])
        backend.fill(buffer, value: 1)
        var rows: [Row] = []
        for size in sizes {
            let message = buffer.view(elementOffset: 0, shape: [size / 4])
            for _ in 0..<3 { try communicator.allReduce(message, op: .sum) }   // warm-up: connections, buffers
            backend.synchronize()
            try communicator.barrier()
            var times: [Double] = []
            for _ in 0..<iterations {
                let start = DispatchTime.now().uptimeNanoseconds
                try communicator.allReduce(message, op: .sum)
                backend.synchronize()
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            let seconds = times.sorted()[times.count / 2]
            let algbw = Double(size) / seconds / 1e9
            rows.append(Row(communicator: communicator.name, ranks: ranks, bytes: size, seconds: seconds,
                            algbwGBps: algbw, busbwGBps: algbw * 2 * Double(ranks - 1) / Double(ranks)))
        }
        return rows
    }

    private func report(_ rows: [Row]) throws {
        guard let first = rows.first else { return }
        print("all-reduce (sum, float32) on \(first.ranks) ranks through \(first.communicator); median of \(iterations)")
        print("       bytes     time (us)  algbw (GB/s)  busbw (GB/s)")
        for row in rows {
            print(String(format: "%12d  %12.1f  %12.3f  %12.3f", row.bytes, row.seconds * 1e6, row.algbwGBps, row.busbwGBps))
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(rows).write(to: URL(fileURLWithPath: json))
        }
    }
}
