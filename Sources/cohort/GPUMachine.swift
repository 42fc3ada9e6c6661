import CohortExperiments
import Foundation

/// What the GPU profile records about the machine, read without opening
/// CUDA in this process (the runs do that): nvidia-smi for the cards and
/// driver, `cohort info` for the CUDA libraries, `mpirun --version`, and
/// the runs' own output for NCCL.
struct GPUMachine {
    /// Card names, one per visible GPU.
    var cards: [String]
    var driver: String?

    var count: Int { cards.count }

    /// The GPUs nvidia-smi lists, narrowed to CUDA_VISIBLE_DEVICES when it
    /// names indices; none when nvidia-smi is missing or fails.
    static func detect() -> GPUMachine {
        guard let smi = findInPath("nvidia-smi"),
              let text = capture([smi, "--query-gpu=index,name,driver_version", "--format=csv,noheader"]) else {
            return GPUMachine(cards: [], driver: nil)
        }
        var rows = text.split(separator: "\n").map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            .filter { $0.count >= 3 }
        if let visible = ProcessInfo.processInfo.environment["CUDA_VISIBLE_DEVICES"] {
            let indices = visible.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            if indices.count == visible.split(separator: ",").count {
                rows = indices.compactMap { index in rows.first { $0[0] == String(index) } }
            }
        }
        return GPUMachine(cards: rows.map { $0[1] }, driver: rows.first?[2])
    }

    /// "NVIDIA H200", or "NVIDIA H200, NVIDIA H100" for a mixed machine.
    var cardDescription: String? {
        cards.isEmpty ? nil : cards.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }.joined(separator: ", ")
    }

    /// CUDA, cuDNN (from `cohort info`'s cuda line), Open MPI; NCCL from the runs' outputs.
    static func libraries(executable: String, runFolders: [String]) -> LibraryVersions {
        var versions = LibraryVersions()
        if let info = capture([executable, "info"]),
           let line = info.split(separator: "\n").first(where: { $0.hasPrefix("cuda") && $0.contains("available") }) {
            versions.cuda = firstMatch(#"driver CUDA ([0-9.]+)"#, in: String(line))
            versions.cudnn = firstMatch(#"cuDNN ([0-9.]+)"#, in: String(line))
        }
        if let mpirun = findInPath("mpirun"), let text = capture([mpirun, "--version"]) {
            versions.mpi = firstMatch(#"Open MPI\)? ([0-9.]+)"#, in: text).map { "Open MPI \($0)" }
        }
        for folder in runFolders {
            if let text = try? String(contentsOfFile: folder + "/output.txt", encoding: .utf8),
               let nccl = firstMatch(#"nccl ([0-9]+\.[0-9]+\.[0-9]+)"#, in: text) {
                versions.nccl = nccl
                break
            }
        }
        return versions
    }

    static func firstMatch(_ pattern: String, in text: String) -> String? {
        guard let regex = try? NSRegularExpression(pattern: pattern),
              let match = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)),
              match.numberOfRanges > 1, let range = Range(match.range(at: 1), in: text) else { return nil }
        return String(text[range])
    }

    /// The command's standard output when it exits 0; nil otherwise.
    static func capture(_ arguments: [String]) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return process.terminationStatus == 0 ? String(decoding: data, as: UTF8.self) : nil
    }

    /// `python` when it imports torch and torchvision (the reference scripts' needs), with torch's version.
    static func pytorch(_ python: String) -> String? {
        let path = python.contains("/") ? python : findInPath(python)
        guard let path else { return nil }
        return capture([path, "-c", "import torch, torchvision; print(torch.__version__)"])?
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
