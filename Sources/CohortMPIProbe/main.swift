// CohortMPIProbe: checks MPICommunicator under mpirun; CohortDistributedTests
// runs it as `mpirun -np 2 CohortMPIProbe <mode>`. Exits non-zero on a mismatch.
//   collectives  all-reduce (sum, average), broadcast, all-gather, barrier
//   die          rank 1 exits at once; rank 0 waits in barriers (mpirun must end the job)
//   stall        rank 1 sleeps; rank 0's barrier trips a 2 s watchdog
import CohortDistributed
import CohortTensor
import Foundation

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("CohortMPIProbe: \(message)\n".utf8))
    exit(1)
}

let mode = CommandLine.arguments.dropFirst().first ?? "collectives"
let communicator: MPICommunicator
do {
    let environment = try RankEnvironment.current()
    communicator = try MPICommunicator(environment: environment, watchdogTimeout: .seconds(mode == "stall" ? 2 : 30))
} catch {
    fail("\(error)")
}
let rank = communicator.rank
let worldSize = communicator.worldSize

func expect(_ tensor: Tensor, _ expected: [Float], _ what: String) {
    let actual = tensor.toArray()
    guard actual == expected else { fail("rank \(rank): \(what): got \(actual), expected \(expected)") }
}

do {
    switch mode {
    case "collectives":
        let count = 5
        // Rank r holds r*10 + i; the sum over ranks is 10*W(W-1)/2 + W*i.
        let values = { (r: Int) in (0..<count).map { Float(r * 10 + $0) } }
        let sums = (0..<count).map { i in (0..<worldSize).reduce(Float(0)) { $0 + Float($1 * 10 + i) } }
        let summed = Tensor(values(rank), shape: [count])
        try communicator.allReduce(summed, op: .sum)
        expect(summed, sums, "allReduce sum")
        let averaged = Tensor(values(rank), shape: [count])
        try communicator.allReduce(averaged, op: .average)
        expect(averaged, sums.map { $0 / Float(worldSize) }, "allReduce average")
        let root = worldSize - 1
        let broadcasted = Tensor(values(rank), shape: [count])
        try communicator.broadcast(broadcasted, root: root)
        expect(broadcasted, values(root), "broadcast from \(root)")
        var bytes = rank == 0 ? Array(0..<128).map(UInt8.init) : [UInt8](repeating: 0, count: 128)
        try communicator.broadcast(bytes: &bytes, root: 0)
        guard bytes == Array(0..<128).map(UInt8.init) else { fail("rank \(rank): byte broadcast got \(bytes)") }
        let gathered = Tensor.zeros([count * worldSize])
        try communicator.allGather(Tensor(values(rank), shape: [count]), into: gathered)
        expect(gathered, (0..<worldSize).flatMap(values), "allGather")
        try communicator.barrier()
        print("rank \(rank) of \(worldSize): collectives ok (\(communicator.libraryVersion))")
    case "die":
        if rank == 1 { exit(3) }
        for _ in 0..<1000 { try communicator.barrier() }
        fail("rank \(rank): barriers returned although rank 1 died")
    case "stall":
        if rank == 1 { sleep(120) }
        try communicator.barrier()
        fail("rank \(rank): barrier returned although rank 1 stalled")
    default:
        fail("unknown mode \(mode)")
    }
    try communicator.shutdown()
} catch {
    communicator.abort(reason: "\(error)")
}
