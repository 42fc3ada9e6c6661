import CohortTensor
import CohortData
import Foundation
import XCTest

final class MD5Tests: XCTestCase {
    /// The test suite of RFC 1321, appendix A.5.
    func testRFC1321Vectors() {
        let vectors = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            ("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
            ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"),
            ("12345678901234567890123456789012345678901234567890123456789012345678901234567890",
             "57edf4a22be3c955ac49da2e2107b67a"),
        ]
        for (message, digest) in vectors {
            XCTAssertEqual(MD5.hexDigest(of: Array(message.utf8)), digest, message)
        }
    }

    /// Feeding in pieces of every size gives the one-shot digest (block boundaries, 55/56/64-byte padding edges).
    func testIncrementalUpdatesMatchOneShot() {
        var generator = SplitMix64(seed: 3)
        let bytes = (0..<1000).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        for length in [55, 56, 63, 64, 65, 119, 128, 1000] {
            let whole = MD5.hexDigest(of: bytes[0..<length])
            for piece in [1, 7, 63, 64, 100] {
                var md5 = MD5()
                var start = 0
                while start < length {
                    md5.update(bytes[start..<min(start + piece, length)])
                    start += piece
                }
                XCTAssertEqual(MD5.hex(md5.finalize()), whole, "length \(length) piece \(piece)")
            }
        }
    }
}
