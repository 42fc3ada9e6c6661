import CohortCUDA
import CohortKernels
import Foundation
import XCTest

/// The bf16 batch-norm and elementwise kernels run on the CPU, so their
/// indexing and sums are checked where there is no GPU (here, CI): the
/// NVRTC modules compile as host C++ against Emulation/KernelEmulation.h
/// (one host thread per CUDA thread, `__syncthreads` a barrier), and
/// Emulation/KernelEmulation.cpp launches them with the launch shapes the
/// backend computes (`BatchNormVectorLaunch`, `batchNormSlicing`), checking
/// the vector kernels against double sums and against the scalar kernels
/// (Note [Vector batch norm]). The cases cover what the GPU self-test's
/// shapes cannot force on every card: slices of several tiles (few resident
/// blocks), a block of 3 x 85 threads (C = 24), two column groups (C =
/// 2,056), rows that end inside a tile, a mean 100 times the spread, and
/// elementwise grids whose last pass ends inside a thread's four units.
/// The convolution GEMM operand kernels (Note [Convolution paths]) run on
/// the geometries' definitions: gather and scatter in each unit size the
/// host picks (`CUDABackend.pixelUnitBytes`), im2col with the row length the
/// plan pads to (`ConvolutionGEMMPlan.paddedDepth`), padding and narrowing
/// columns; grids of 1-3 blocks, so every thread loops.
final class KernelEmulationTests: XCTestCase {
    static let emulation = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Emulation")

    /// (rows, C, fused ReLU, seed, mean offset, blocks the GPU holds at once).
    static let batchNormCases: [(rows: Int, channels: Int, relu: Bool, seed: Int, offset: Float, resident: Int)] = [
        (189, 64, false, 1, 0, 660), (189, 64, true, 2, 0, 660), (50, 512, true, 3, 0, 264), (105, 24, false, 4, 0, 528),
        (15, 2056, true, 5, 0, 264), (15, 2056, false, 6, 0, 3), (5000, 64, true, 7, 0, 5), (3000, 128, false, 8, 0, 2),
        (4096, 64, false, 9, 100, 7),
    ]
    /// (units of eight bf16, blocks of 256 threads).
    static let elementwiseCases: [(units: Int, blocks: Int)] = [(189, 1), (189, 4), (100_000, 7)]
    /// 1x1 convolutions: (N, H, W, C, stride, element bytes, blocks). C = 64 bf16 and C = 12 float32 move
    /// 16-byte units, C = 12 bf16 and C = 7 float32 4-byte ones, C = 7 bf16 2-byte ones.
    static let pixelCases: [(n: Int, h: Int, w: Int, c: Int, stride: Int, bytes: Int, blocks: Int)] = [
        (4, 16, 16, 64, 2, 2, 2), (3, 7, 5, 12, 2, 2, 1), (3, 9, 7, 7, 3, 2, 3), (2, 8, 6, 12, 2, 4, 2),
        (3, 9, 7, 7, 2, 4, 1), (2, 4, 3, 8, 1, 4, 1), (1, 5, 5, 16, 4, 2, 1),
    ]
    /// im2col: convolutions of few channels (N, H, W, C, k, stride, padding, element bytes, blocks).
    static let im2colCases: [(n: Int, h: Int, w: Int, c: Int, k: Int, stride: Int, padding: Int, bytes: Int, blocks: Int)] = [
        (2, 8, 8, 3, 3, 1, 1, 2, 2), (2, 8, 8, 3, 3, 1, 1, 4, 2), (3, 9, 7, 5, 3, 2, 0, 2, 1), (3, 7, 9, 6, 3, 1, 0, 4, 3),
        (2, 6, 5, 1, 5, 1, 2, 2, 1), (2, 6, 5, 4, 3, 2, 1, 4, 2),
    ]
    /// copy_columns: (rows, destination columns, source columns, source stride, element bytes, blocks): the
    /// stem's weight padded in both dtypes and its gradient narrowed, and odd sizes.
    static let copyColumnsCases: [(rows: Int, columns: Int, sourceColumns: Int, stride: Int, bytes: Int, blocks: Int)] = [
        (64, 32, 27, 27, 2, 2), (64, 32, 27, 27, 4, 1), (64, 27, 32, 32, 4, 3), (5, 48, 45, 45, 2, 1), (7, 45, 48, 48, 4, 1),
    ]

    func testVectorKernelsMatchDoubleSumsAndTheScalarKernels() throws {
        let compiler = ["/opt/swift/usr/bin/clang++", "/usr/bin/clang++"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let compiler else { throw XCTSkip("no clang++ to build the kernels for the host with") }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-emulation-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }

        let sources = Dictionary(uniqueKeysWithValues: CUDAKernelSources.modules.map { ($0.name, $0.source) })
        let rounding = #"asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(f));"#
        var objects: [String] = []
        for name in ["batch_norm", "batch_norm_bf16x8", "elementwise", "convolution_gemm"] {
            let source = try XCTUnwrap(sources[name], "no module \(name)")
            XCTAssertTrue(source.contains(rounding), "the prelude's bf16 rounding changed: update the emulation")
            let file = folder.appendingPathComponent("\(name).cpp"), object = folder.appendingPathComponent("\(name).o")
            try ("#include \"KernelEmulation.h\"\n" + source.replacingOccurrences(of: rounding, with: "r = host_float_to_bf16(f);"))
                .write(to: file, atomically: true, encoding: .utf8)
            try run(compiler, ["-std=c++20", "-O1", "-w", "-I", Self.emulation.path, "-c", file.path, "-o", object.path])
            objects.append(object.path)
        }
        let program = folder.appendingPathComponent("emulation").path
        try run(compiler, ["-std=c++20", "-O1", "-w", "-pthread", "-I", Self.emulation.path,
                           Self.emulation.appendingPathComponent("KernelEmulation.cpp").path] + objects + ["-o", program])

        var input = ""
        for c in Self.batchNormCases {
            func shape(_ unroll: Int) -> String {
                let l = BatchNormVectorLaunch(rows: c.rows, channels: c.channels, unroll: unroll, residentBlocks: c.resident)
                return "\(l.columns) \(l.rowsPerBlock) \(l.columnGroups) \(l.slices) \(l.rowsPerSlice)"
            }
            // The scalar kernels' slicing for a 4-SM GPU: few blocks, so the emulation stays quick.
            let scalar = CUDABackend.batchNormSlicing(rows: c.rows, channels: c.channels, multiprocessors: 4)
            input += "bn \(c.rows) \(c.channels) \(c.relu ? 1 : 0) \(c.seed) \(c.offset) \(shape(8)) \(shape(4)) "
                + "\(scalar.slices) \(scalar.rowsPerSlice)\n"
        }
        for c in Self.elementwiseCases { input += "ew \(c.units) \(c.blocks)\n" }
        for c in Self.pixelCases {
            let unit = CUDABackend.pixelUnitBytes(rowBytes: c.c * c.bytes, 0, 0)
            input += "px \(c.n) \(c.h) \(c.w) \(c.c) \(c.stride) \(c.bytes) \(unit) \(c.blocks)\n"
        }
        XCTAssertEqual(Self.pixelCases.map { CUDABackend.pixelUnitBytes(rowBytes: $0.c * $0.bytes, 0, 0) }, [16, 4, 2, 16, 4, 16, 16])
        for c in Self.im2colCases {
            let g = Conv2dGeometry(batch: c.n, inputChannels: c.c, outputChannels: 8, inputHeight: c.h, inputWidth: c.w,
                                   kernelSize: c.k, stride: c.stride, padding: c.padding)
            input += "im \(c.n) \(c.h) \(c.w) \(c.c) \(c.k) \(c.stride) \(c.padding) \(ConvolutionGEMMPlan.paddedDepth(g)) "
                + "\(c.bytes) \(c.blocks)\n"
        }
        for c in Self.copyColumnsCases {
            input += "cc \(c.rows) \(c.columns) \(c.sourceColumns) \(c.stride) \(c.bytes) \(c.blocks)\n"
        }
        let (status, output) = try run(program, [], input: input, checked: false)
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("\n0 failed"), output)
        func cases(_ header: String) -> Int { output.components(separatedBy: "\n").filter { $0.hasPrefix(header) }.count }
        XCTAssertEqual(cases("1x1 pixels:"), Self.pixelCases.count, output)
        XCTAssertEqual(cases("im2col:"), Self.im2colCases.count, output)
        XCTAssertEqual(cases("copy_columns:"), Self.copyColumnsCases.count, output)
    }

    /// Runs `executable`; fails the test with its output on a non-zero exit when `checked`.
    @discardableResult
    private func run(_ executable: String, _ arguments: [String], input: String = "",
                     checked: Bool = true) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stdout
        try process.run()
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try stdin.fileHandleForWriting.close()
        let output = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if checked { XCTAssertEqual(process.terminationStatus, 0, "\(executable) \(arguments):\n\(output)") }
        return (process.terminationStatus, output)
    }
}
