import CohortCheckpoint
import CohortTensor
import Foundation
import XCTest

/// A host tensor whose bytes are a fixed pseudo-random pattern (NaN payloads
/// and all), so a round trip is checked bit for bit.
func patternTensor(_ shape: Shape, _ dtype: DType, seed: UInt8) -> Tensor {
    let tensor = Tensor.zeros(shape, dtype: dtype)
    let bytes = tensor.rawPointer.assumingMemoryBound(to: UInt8.self)
    var state = UInt32(seed) &* 2_654_435_761 &+ 1
    for index in 0..<tensor.byteCount {
        state = state &* 1_103_515_245 &+ 12345
        bytes[index] = UInt8(truncatingIfNeeded: state >> 16)
    }
    return tensor
}

func bytes(of tensor: Tensor) -> [UInt8] {
    Array(UnsafeRawBufferPointer(start: tensor.rawPointer, count: tensor.byteCount))
}

/// A file with `header` as its JSON (unpadded) and `data` after it.
func fileBytes(header: String, data: [UInt8]) -> Data {
    var file = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Data($0) }
    file.append(contentsOf: Array(header.utf8))
    file.append(contentsOf: data)
    return file
}

final class SafeTensorsTests: XCTestCase {
    func testRoundTripIsBitForBit() throws {
        let tensors = [
            NamedTensor("conv.weight", patternTensor([2, 3, 3, 3], .float32, seed: 1)),
            NamedTensor("bf16", patternTensor([5], .bfloat16, seed: 2)),
            NamedTensor("bn.num_batches_tracked", patternTensor([], .int64, seed: 3)),
            NamedTensor("labels", patternTensor([4], .int32, seed: 4)),
            NamedTensor("pixels", patternTensor([3, 7], .uint8, seed: 5)),
            NamedTensor("empty", patternTensor([0, 4], .float32, seed: 6)),
            NamedTensor("empty.u8", patternTensor([0], .uint8, seed: 7)),
            NamedTensor("scalar.f32", patternTensor([], .float32, seed: 8)),
        ]
        let metadata = ["format": "pt", "note": "ünïcode \"quoted\" \\ back\nslash \u{01}", "": "empty key"]
        let original = SafeTensorsFile(tensors: tensors, metadata: metadata)

        let directory = try temporaryDirectory()
        let url = directory.appendingPathComponent("model.safetensors")
        try original.write(to: url)
        XCTAssertEqual(try Data(contentsOf: url), try original.serialized(), "write(to:) and serialized() agree")

        for copy in [try SafeTensorsFile(data: original.serialized()), try SafeTensorsFile(contentsOf: url)] {
            XCTAssertEqual(copy.metadata, metadata)
            XCTAssertEqual(Set(copy.names), Set(tensors.map(\.name)))
            for entry in tensors {
                let read = try XCTUnwrap(copy[entry.name])
                XCTAssertEqual(read.dtype, entry.tensor.dtype, entry.name)
                XCTAssertEqual(read.shape, entry.tensor.shape, entry.name)
                XCTAssertEqual(bytes(of: read), bytes(of: entry.tensor), entry.name)
            }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["model.safetensors"])
    }

    /// The bytes the reference writer (safetensors 0.8, `safetensors.numpy.save`) produces for
    /// `{"x": np.array([1.5], np.float32)}`: the header is 54 bytes of JSON and 2 spaces.
    func testGoldenSingleTensor() throws {
        let file = SafeTensorsFile(tensors: [NamedTensor("x", Tensor([1.5], shape: [1]))])
        var expected: [UInt8] = [56, 0, 0, 0, 0, 0, 0, 0]
        expected += Array(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}  "#.utf8)
        expected += [0x00, 0x00, 0xC0, 0x3F]  // 1.5 as a little-endian float32
        XCTAssertEqual(Array(try file.serialized()), expected)
    }

    /// Ordering as the reference writer does it: by dtype alignment (I64, F32, I32, BF16, U8),
    /// then name, whatever order the tensors are given in; `__metadata__` first.
    func testGoldenOrderingAndPadding() throws {
        let int64 = Tensor.zeros([2, 0], dtype: .int64)
        let int32 = Tensor.int32([7], shape: [])
        let uint8 = Tensor.zeros([1], dtype: .uint8)
        uint8.rawPointer.storeBytes(of: 3, as: UInt8.self)
        let bf16 = Tensor.zeros([1], dtype: .bfloat16)
        bf16.copy(from: [1])
        let file = SafeTensorsFile(tensors: [
            NamedTensor("u", uint8), NamedTensor("b", Tensor([1, 2], shape: [2])), NamedTensor("h", bf16),
            NamedTensor("d", int32), NamedTensor("c", int64), NamedTensor("a", Tensor([4], shape: [1])),
        ], metadata: ["format": "pt"])
        let json = #"{"__metadata__":{"format":"pt"},"# + #""c":{"dtype":"I64","shape":[2,0],"data_offsets":[0,0]},"#
            + #""a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"#
            + #""b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},"#
            + #""d":{"dtype":"I32","shape":[],"data_offsets":[12,16]},"#
            + #""h":{"dtype":"BF16","shape":[1],"data_offsets":[16,18]},"#
            + #""u":{"dtype":"U8","shape":[1],"data_offsets":[18,19]}}"#
        XCTAssertEqual(json.utf8.count, 358)
        var expected: [UInt8] = [104, 1, 0, 0, 0, 0, 0, 0]  // 360 = 358 + 2 spaces
        expected += Array(json.utf8) + Array(repeating: UInt8(ascii: " "), count: 2)
        expected += [0x00, 0x00, 0x80, 0x40]                          // a = 4.0
        expected += [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0x40]  // b = 1.0, 2.0
        expected += [0x07, 0x00, 0x00, 0x00]                          // d = 7
        expected += [0x80, 0x3F]                                      // h = bf16 1.0
        expected += [0x03]                                            // u = 3
        XCTAssertEqual(Array(try file.serialized()), expected)
    }

    func testReadsAnyOrderAndWhitespace() throws {
        let header = #" { "second" : { "data_offsets" : [4, 12], "shape" : [2], "dtype" : "F32", "extra": null },"#
            + "\n\t" + #""__metadata__": {"k": "v\u00e9\ud83d\ude00"}, "first": {"dtype": "I32", "shape": [1], "data_offsets": [0, 4]} }"#
        let data: [UInt8] = [5, 0, 0, 0, 0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0x40]
        let file = try SafeTensorsFile(data: fileBytes(header: header, data: data))
        XCTAssertEqual(file.names, ["first", "second"], "tensors come in the order of their data")
        XCTAssertEqual(file.metadata, ["k": "vé😀"])
        XCTAssertEqual(file["first"]?.int32s.first, 5)
        XCTAssertEqual(file["second"]?.toArray(), [1, 2])
    }

    func testWriterRejectsDuplicateAndReservedNames() {
        let tensor = Tensor([1], shape: [1])
        XCTAssertThrowsError(try SafeTensorsFile(tensors: [NamedTensor("w", tensor), NamedTensor("w", tensor)])
            .serialized()) { error in
            XCTAssertEqual(error as? SafeTensorsError, SafeTensorsError(file: "<memory>", tensor: "w", reason: .duplicateName))
        }
        XCTAssertThrowsError(try SafeTensorsFile(tensors: [NamedTensor("__metadata__", tensor)]).serialized()) { error in
            XCTAssertEqual((error as? SafeTensorsError)?.reason, .reservedName)
        }
    }

    // MARK: Atomic writes

    func testFailedWriteLeavesTheOldFileAndNoTemporary() throws {
        struct Interrupted: Error {}
        let directory = try temporaryDirectory()
        let url = directory.appendingPathComponent("checkpoint.safetensors")
        let old = SafeTensorsFile(tensors: [NamedTensor("w", Tensor([1, 2, 3], shape: [3]))])
        try old.write(to: url)
        let oldBytes = try Data(contentsOf: url)

        XCTAssertThrowsError(try AtomicFile.write(to: url) { sink in
            try sink.write(Array(repeating: 0xFF, count: 1000))
            XCTAssertTrue(FileManager.default.fileExists(atPath: AtomicFile.temporaryURL(for: url).path),
                          "bytes go to the temporary file first")
            throw Interrupted()
        }) { XCTAssertTrue($0 is Interrupted) }

        XCTAssertEqual(try Data(contentsOf: url), oldBytes)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["checkpoint.safetensors"])
        XCTAssertEqual(try SafeTensorsFile(contentsOf: url)["w"]?.toArray(), [1, 2, 3])

        // A successful write replaces it and leaves nothing else behind.
        try SafeTensorsFile(tensors: [NamedTensor("w", Tensor([4], shape: [1]))]).write(to: url)
        XCTAssertEqual(try SafeTensorsFile(contentsOf: url)["w"]?.toArray(), [4])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["checkpoint.safetensors"])
    }

    func testWriteIntoAMissingDirectoryThrows() throws {
        let url = try temporaryDirectory().appendingPathComponent("missing/model.safetensors")
        XCTAssertThrowsError(try SafeTensorsFile(tensors: []).write(to: url)) { error in
            let ioError = error as? FileIOError
            XCTAssertEqual(ioError?.call, "open")
            XCTAssertEqual(ioError?.errnoCode, ENOENT)
        }
    }

    func testReadingAMissingFileThrows() throws {
        let url = try temporaryDirectory().appendingPathComponent("absent.safetensors")
        XCTAssertThrowsError(try SafeTensorsFile(contentsOf: url)) { error in
            XCTAssertTrue("\(error)".contains("absent.safetensors"), "\(error)")
        }
    }
}

/// A fresh directory, removed when the test ends.
extension XCTestCase {
    func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("cohort-\(type(of: self))-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }
}
