import Foundation

/// Small, fast, well-known generators with explicit state, so a run is
/// reproducible from its seed and a checkpoint can save and restore them.
///
/// Neither is cryptographic. Both conform to `RandomNumberGenerator`, but the
/// data pipeline draws through `next(below:)` and its own Fisher-Yates
/// shuffle, not the standard library's `shuffle(using:)`, whose algorithm is
/// not promised to stay the same across Swift versions.

/// SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number
/// generators", OOPSLA 2014; Vigna's reference `splitmix64.c`).
///
/// Its state is one counter, so it is also how seeds are mixed into
/// independent streams (`SplitMix64.mix`) and how Xoshiro256** is seeded.
public struct SplitMix64: RandomNumberGenerator, Hashable, Codable, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    @inlinable
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }

    /// SplitMix64's output function: a bijective 64-bit mixer (avalanches
    /// every input bit), used to derive stream seeds from (seed, epoch, index).
    @inlinable
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// xoshiro256** 1.0 (Blackman & Vigna, "Scrambled linear pseudorandom number
/// generators", 2018): 256 bits of state, period 2^256 - 1, the generator
/// Vigna recommends for general 64-bit use.
///
/// `state` is the four words in the reference implementation's order
/// (`s[0]...s[3]`); saving it and assigning it back resumes the stream exactly.
public struct Xoshiro256StarStar: RandomNumberGenerator, Hashable, Codable, Sendable {
    public var state: [UInt64] {
        get { [s0, s1, s2, s3] }
        set {
            precondition(newValue.count == 4 && newValue.contains { $0 != 0 },
                         "xoshiro256** state is four words, not all zero")
            (s0, s1, s2, s3) = (newValue[0], newValue[1], newValue[2], newValue[3])
        }
    }

    @usableFromInline var s0: UInt64
    @usableFromInline var s1: UInt64
    @usableFromInline var s2: UInt64
    @usableFromInline var s3: UInt64

    /// Seeds the four words from SplitMix64, as the reference code advises.
    public init(seed: UInt64) {
        var seeder = SplitMix64(seed: seed)
        (s0, s1, s2, s3) = (seeder.next(), seeder.next(), seeder.next(), seeder.next())
    }

    /// Resumes from a saved `state`.
    public init(state: [UInt64]) {
        (s0, s1, s2, s3) = (1, 0, 0, 0)
        self.state = state
    }

    @inlinable
    public mutating func next() -> UInt64 {
        let result = Self.rotateLeft(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = Self.rotateLeft(s3, 45)
        return result
    }

    @inlinable
    static func rotateLeft(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}

extension RandomNumberGenerator {
    /// A uniform integer in `0..<bound` without modulo bias (Lemire, "Fast
    /// random integer generation in an interval", 2019: multiply, and reject
    /// the few low products that would over-represent some values).
    @inlinable
    public mutating func next(below bound: Int) -> Int {
        precondition(bound > 0, "next(below:) needs a positive bound, got \(bound)")
        let range = UInt64(bound)
        var product = next().multipliedFullWidth(by: range)
        if product.low < range {
            let threshold = (0 &- range) % range
            while product.low < threshold { product = next().multipliedFullWidth(by: range) }
        }
        return Int(product.high)
    }

    /// Shuffles `values` in place with Fisher-Yates (Durstenfeld's version,
    /// from the last element down), drawing through `next(below:)`.
    @inlinable
    public mutating func shuffle(_ values: inout [Int]) {
        var index = values.count - 1
        while index > 0 {
            values.swapAt(index, next(below: index + 1))
            index -= 1
        }
    }
}

extension RandomNumberGenerator {
    /// Uniform in [0, 1) with 24 random bits (every float32 in the range equally spaced).
    public mutating func nextUnitFloat() -> Float { Float(next() >> 40) * (1.0 / Float(1 << 24)) }

    /// Uniform in [low, high): weight initialisation's `uniform_(-bound, bound)`.
    public mutating func nextUniform(_ low: Float, _ high: Float) -> Float { low + (high - low) * nextUnitFloat() }

    /// Standard normal by Box-Muller in Double: weight initialisation's `normal_`.
    public mutating func nextNormal() -> Float {
        let u1 = max(Double(next() >> 11) * 0x1p-53, 1e-300)
        let u2 = Double(next() >> 11) * 0x1p-53
        return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2))
    }
}
