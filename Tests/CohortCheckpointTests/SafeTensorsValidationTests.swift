import CohortCheckpoint
import CohortTensor
import Foundation
import XCTest

/// Every malformed file gives its own `SafeTensorsError`, naming the file and the tensor.
final class SafeTensorsValidationTests: XCTestCase {
    private func assertRejects(_ data: Data, tensor: String? = nil, _ reason: SafeTensorsError.Reason,
                               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SafeTensorsFile(data: data, file: "bad.safetensors"), file: file, line: line) { error in
            XCTAssertEqual(error as? SafeTensorsError,
                           SafeTensorsError(file: "bad.safetensors", tensor: tensor, reason: reason),
                           "\(error)", file: file, line: line)
        }
    }

    private func entry(_ name: String, _ dtype: String = "F32", shape: String = "[2]", offsets: String) -> String {
        #""\#(name)":{"dtype":"\#(dtype)","shape":\#(shape),"data_offsets":\#(offsets)}"#
    }

    private let eightBytes: [UInt8] = Array(repeating: 0, count: 8)

    func testTruncatedBeforeTheHeaderLength() {
        assertRejects(Data([1, 0, 0, 0, 0]), .truncated(byteCount: 5))
        assertRejects(Data(), .truncated(byteCount: 0))
    }

    func testHeaderLengthPastTheEnd() {
        var data = fileBytes(header: "{" + entry("x", offsets: "[0,8]") + "}", data: eightBytes)
        data.replaceSubrange(0..<8, with: [0xE8, 0x03, 0, 0, 0, 0, 0, 0])  // 1000
        assertRejects(data, .headerLengthOutOfRange(headerLength: 1000, fileSize: data.count))
        data.replaceSubrange(0..<8, with: Array(repeating: 0xFF, count: 8))
        assertRejects(data, .headerLengthOutOfRange(headerLength: .max, fileSize: data.count))
    }

    func testTruncatedData() {
        let whole = fileBytes(header: "{" + entry("x", offsets: "[0,8]") + "}", data: eightBytes)
        assertRejects(whole.dropLast(3), tensor: "x", .offsetsOutOfRange(begin: 0, end: 8, dataSize: 5))
    }

    func testBadJSON() {
        assertRejects(fileBytes(header: #"{"x":{"dtype":"F32""#, data: []),
                      .invalidJSON(offset: 19, reason: "expected '}' but the text ended"))
        assertRejects(fileBytes(header: #"{"x":1} junk"#, data: []),
                      .invalidJSON(offset: 8, reason: "unexpected text after the JSON value"))
        assertRejects(fileBytes(header: "[]", data: []), .invalidHeader("the header is an array, not an object"))
        var invalidUTF8 = fileBytes(header: #"{"é":1}"#, data: [])
        invalidUTF8[11] = 0xFF
        assertRejects(invalidUTF8, .headerNotUTF8)
    }

    func testUnknownDType() {
        assertRejects(fileBytes(header: "{" + entry("half", "F16", offsets: "[0,4]") + "}", data: [0, 0, 0, 0]),
                      tensor: "half", .unknownDType("F16"))
        XCTAssertThrowsError(try SafeTensorsFile(data: fileBytes(header: "{" + entry("half", "F16", offsets: "[0,4]") + "}",
                                                                 data: [0, 0, 0, 0]), file: "m.safetensors")) {
            XCTAssertEqual("\($0)", #"m.safetensors: tensor "half": dtype "F16" is not supported (Cohort reads F32, BF16, I32, I64, U8)"#)
        }
    }

    func testOverlappingOffsets() {
        let header = "{" + entry("a", offsets: "[0,8]") + "," + entry("b", offsets: "[4,12]") + "}"
        assertRejects(fileBytes(header: header, data: Array(repeating: 0, count: 12)), tensor: "b",
                      .overlap(other: "a", begin: 4, end: 12))
        let empty = "{" + entry("a", offsets: "[0,8]") + "," + entry("e", shape: "[0]", offsets: "[4,4]") + "}"
        assertRejects(fileBytes(header: empty, data: eightBytes), tensor: "e", .overlap(other: "a", begin: 4, end: 4))
    }

    func testOffsetsOutOfRange() {
        assertRejects(fileBytes(header: "{" + entry("x", offsets: "[0,8]") + "}", data: [0, 0, 0, 0]), tensor: "x",
                      .offsetsOutOfRange(begin: 0, end: 8, dataSize: 4))
        // 2^53 + 1 is exact (a Double would round it to 2^53 and report a size mismatch instead).
        assertRejects(fileBytes(header: "{" + entry("x", "U8", shape: "[9007199254740993]",
                                                     offsets: "[0,9007199254740993]") + "}", data: []),
                      tensor: "x", .offsetsOutOfRange(begin: 0, end: 9_007_199_254_740_993, dataSize: 0))
    }

    func testGapsAndTrailingBytes() {
        assertRejects(fileBytes(header: "{" + entry("x", shape: "[1]", offsets: "[4,8]") + "}", data: eightBytes),
                      tensor: "x", .gap(begin: 0, end: 4))
        assertRejects(fileBytes(header: "{" + entry("x", shape: "[1]", offsets: "[0,4]") + "}", data: eightBytes),
                      .gap(begin: 4, end: 8))
    }

    func testSizeMismatch() {
        assertRejects(fileBytes(header: "{" + entry("x", shape: "[3]", offsets: "[0,8]") + "}", data: eightBytes),
                      tensor: "x", .sizeMismatch(dtype: .float32, shape: [3], begin: 0, end: 8))
        assertRejects(fileBytes(header: "{" + entry("x", shape: "[0]", offsets: "[8,0]") + "}", data: eightBytes),
                      tensor: "x", .sizeMismatch(dtype: .float32, shape: [0], begin: 8, end: 0))
        // An element count that overflows Int is a mismatch, not a crash.
        assertRejects(fileBytes(header: "{" + entry("x", shape: "[4294967296,4294967296]", offsets: "[0,8]") + "}",
                                data: eightBytes),
                      tensor: "x", .sizeMismatch(dtype: .float32, shape: [1 << 32, 1 << 32], begin: 0, end: 8))
    }

    func testDuplicateNames() {
        let header = "{" + entry("x", shape: "[1]", offsets: "[0,4]") + "," + entry("x", shape: "[1]", offsets: "[4,8]") + "}"
        assertRejects(fileBytes(header: header, data: eightBytes), tensor: "x", .duplicateName)
    }

    func testMalformedEntries() {
        func rejects(_ entryJSON: String, _ reason: String, line: UInt = #line) {
            assertRejects(fileBytes(header: #"{"x":"# + entryJSON + "}", data: eightBytes), tensor: "x",
                          .invalidEntry(reason), line: line)
        }
        rejects(#"{"dtype":"F32","shape":[2]}"#, #"no "data_offsets" field"#)
        rejects(#"{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}"#,
                #""shape" holds the number -2, not a non-negative integer below 2^63"#)
        rejects(#"{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}"#,
                #""shape" holds the number 2.0, not a non-negative integer below 2^63"#)
        rejects(#"{"dtype":"F32","shape":[true],"data_offsets":[0,8]}"#,
                #""shape" holds true, not a non-negative integer below 2^63"#)
        rejects(#"{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}"#,
                #""data_offsets" holds the number 18446744073709551615, not a non-negative integer below 2^63"#)
        rejects(#"{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}"#,
                #""data_offsets" has 3 numbers, not 2 ([begin, end])"#)
        rejects(#"{"dtype":32,"shape":[2],"data_offsets":[0,8]}"#, #""dtype" is not a string"#)
        rejects(#"{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}"#, #""dtype" appears twice"#)
        rejects(#"[1]"#, "the entry is an array, not an object")
    }

    func testMalformedMetadata() {
        let header = #"{"__metadata__":{"epoch":3},"# + entry("x", offsets: "[0,8]") + "}"
        assertRejects(fileBytes(header: header, data: eightBytes),
                      .invalidHeader(#"metadata "epoch" is the number 3, not a string"#))
    }

    func testMessagesNameTheFileAndTensor() throws {
        let url = try temporaryDirectory().appendingPathComponent("cut.safetensors")
        let whole = try SafeTensorsFile(tensors: [NamedTensor("layer1.weight", Tensor([1, 2], shape: [2]))]).serialized()
        try whole.dropLast(1).write(to: url)
        XCTAssertThrowsError(try SafeTensorsFile(contentsOf: url)) {
            XCTAssertEqual("\($0)", "\(url.path): tensor \"layer1.weight\": data_offsets [0, 8] run past the 7 data bytes; "
                + "the file is truncated or corrupt")
        }
    }
}
