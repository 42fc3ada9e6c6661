import Foundation
import XCTest

/// Two "machines" on one: network namespaces joined by a veth pair, with
/// the test's own addresses (10.231.x.1 and .2). A launcher in each runs
/// `cohort launch --nnodes 2`; node 0's mpirun starts node 1's rank through
/// a remote-shell agent that enters the other namespace (ssh's stand-in).
/// Skipped where namespaces cannot be made (not root, no CAP_SYS_ADMIN, no
/// iproute2) or mpirun is missing.
final class NetworkNamespaceTests: XCTestCase {
    var namespaces: [String] = []
    var folder: URL!

    override func tearDownWithError() throws {
        for namespace in namespaces { _ = try? Self.ip(["netns", "del", namespace]) }
        if let folder { try? FileManager.default.removeItem(at: folder) }
    }

    /// Runs `ip arguments`; returns its exit status and output.
    @discardableResult
    static func ip(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try ipPath())
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func testTwoHostsTrainTogether() throws {
        let id = Int.random(in: 1000..<60000)
        let subnet = "10.231.\(id % 250)"
        let (hostA, hostB) = ("\(subnet).1", "\(subnet).2")
        let (nsA, nsB) = ("cohort-a\(id)", "cohort-b\(id)")
        try XCTSkipUnless(getuid() == 0, "network namespaces need root")
        let add = try Self.ip(["netns", "add", nsA])
        guard add.status == 0 else { throw XCTSkip("network namespaces not permitted here: \(add.output)") }
        namespaces.append(nsA)
        try XCTSkipUnless(try Self.ip(["netns", "add", nsB]).status == 0, "second namespace not permitted")
        namespaces.append(nsB)
        let setup: [[String]] = [
            ["link", "add", "cva\(id)", "type", "veth", "peer", "name", "cvb\(id)"],
            ["link", "set", "cva\(id)", "netns", nsA], ["link", "set", "cvb\(id)", "netns", nsB],
            ["-n", nsA, "addr", "add", "\(hostA)/24", "dev", "cva\(id)"],
            ["-n", nsB, "addr", "add", "\(hostB)/24", "dev", "cvb\(id)"],
            ["-n", nsA, "link", "set", "lo", "up"], ["-n", nsB, "link", "set", "lo", "up"],
            ["-n", nsA, "link", "set", "cva\(id)", "up"], ["-n", nsB, "link", "set", "cvb\(id)", "up"],
        ]
        for command in setup {
            let result = try Self.ip(command)
            try XCTSkipUnless(result.status == 0, "ip \(command.joined(separator: " ")) failed: \(result.output)")
        }

        folder = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-netns-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        // mpirun's remote shell: runs the command in the namespace that owns the host's address.
        let agent = folder.appendingPathComponent("netns-rsh")
        let calls = folder.appendingPathComponent("agent-calls")
        try """
            #!/bin/sh
            host="$1"; shift
            echo "$host" >> \(calls.path)
            case "$host" in \(hostA)) ns=\(nsA);; \(hostB)) ns=\(nsB);; *) echo "netns-rsh: unknown host $host" >&2; exit 1;; esac
            exec ip netns exec "$ns" /bin/sh -c "$*"
            """.write(to: agent, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: agent.path)

        let runs = folder.appendingPathComponent("run")
        let port = LaunchedJob.freePort()
        func launcher(node: Int, namespace: String) throws -> LaunchedJob {
            try LaunchedJob(["launch", "--nnodes", "2", "--node-rank", String(node), "--nproc-per-node", "1",
                             "--master-addr", hostA, "--master-port", String(port), "--rdzv-timeout", "30", "--",
                             "cohort", "train", "--device", "cpu", "--dataset", "synthetic", "--model", "smallcnn",
                             "--epochs", "1", "--steps-per-epoch", "3", "--batch-size", "16", "--eval-limit", "32",
                             "--no-progress", "--run-dir", runs.path],
                            environment: ["OMPI_MCA_plm_rsh_agent": agent.path],
                            wrapper: [try Self.ipPath(), "netns", "exec", namespace])
        }
        let node0 = try launcher(node: 0, namespace: nsA)
        let node1 = try launcher(node: 1, namespace: nsB)
        let (status0, output0) = node0.finish(limit: 120)
        let (status1, output1) = node1.finish(limit: 30)
        XCTAssertEqual(status0, 0, output0)
        XCTAssertEqual(status1, 0, output1)
        XCTAssertTrue(output0.contains("2 ranks (\(hostA): 1, \(hostB): 1)"), output0)
        XCTAssertTrue(output0.contains("global batch 32 = 2 ranks x 16"), output0)
        XCTAssertTrue(output1.contains("the job ended with status 0"), output1)
        let agentCalls = (try? String(contentsOf: calls, encoding: .utf8)) ?? ""
        XCTAssertTrue(agentCalls.contains(hostB), "node 1's rank was not started in its namespace: \(agentCalls)")
        for rank in 0..<2 {
            XCTAssertTrue(FileManager.default.fileExists(atPath: runs.appendingPathComponent("metrics-rank\(rank).jsonl").path))
        }
    }

    static func ipPath() throws -> String {
        guard let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first(where: FileManager.default.isExecutableFile) else {
            throw XCTSkip("iproute2's ip is not installed (apt-get install iproute2)")
        }
        return ip
    }
}
