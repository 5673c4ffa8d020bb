import Foundation
import Testing
import QKDCrypto
import QKDTestSupport
@testable import QKDPostProcessing

/// Privacy amplification (Spec/postprocessing.md section 7) against Spec/vectors/pp-amplification.json,
/// written by Spec/vectors/gen_pp_amplification.py with Python integers (no shared code).
@Suite struct MultiplyAddShiftTests {
    struct SmallCase: Decodable {
        let n: Int
        let l: Int
        let x: HexBytes
        let a: HexBytes
        let b: HexBytes
        let out: HexBytes
    }

    struct LargeCase: Decodable {
        let seed: UInt64
        let n: Int
        let l: Int
        let blake2b256: HexBytes
    }

    struct File: Decodable {
        let cases: [SmallCase]
        let large: [LargeCase]
    }

    static func load() throws -> File {
        try JSONDecoder().decode(File.self, from: Data(contentsOf: PackagePaths.vector("pp-amplification.json")))
    }

    static func bits(_ hex: HexBytes, _ count: Int) throws -> BitVector {
        try hex.bytes.withUnsafeBytes { try #require(BitVector(packedBytes: $0, count: count)) }
    }

    /// The generator's SplitMix64 words (the same mixer as the tests' `TestRNG`).
    static func words(_ bits: Int, _ g: inout TestRNG) -> BitVector {
        BitVector(words: (0..<((bits + 63) >> 6)).map { _ in g.next() }, count: bits)
    }

    @Test(arguments: [1, 2])
    func smallVectors(threads: Int) throws {
        let file = try Self.load()
        #expect(file.cases.count >= 28)
        for c in file.cases {
            let w = c.n + c.l - 1
            let out = MultiplyAddShiftHash.hash(try Self.bits(c.x, c.n), multiplier: try Self.bits(c.a, w),
                                                addend: try Self.bits(c.b, w), outputBits: c.l, threads: threads)
            #expect(out.packedBytes() == c.out.bytes, "n=\(c.n) l=\(c.l)")
        }
    }

    /// Sizes where GMP multiplies by Toom-Cook and FFT, with both thread counts.
    @Test(arguments: [1, 2])
    func largeVectors(threads: Int) throws {
        for c in try Self.load().large {
            var g = TestRNG(state: c.seed)
            let w = c.n + c.l - 1
            let x = Self.words(c.n, &g), a = Self.words(w, &g), b = Self.words(w, &g)
            let out = MultiplyAddShiftHash.hash(x, multiplier: a, addend: b, outputBits: c.l, threads: threads)
            var h = GenericHash(outputByteCount: 32)
            h.update(out.packedBytes())
            #expect(h.finalize() == c.blake2b256.bytes, "seed \(c.seed) n=\(c.n) l=\(c.l)")
        }
    }

    /// An independent check in Swift for random sizes: schoolbook product of the words.
    @Test func matchesSchoolbookProduct() {
        var g = TestRNG(state: 31)
        for _ in 0..<40 {
            let n = Int.random(in: 1...900, using: &g), l = Int.random(in: 1...900, using: &g)
            let w = n + l - 1
            let x = randomBits(n, &g), a = randomBits(w, &g), b = randomBits(w, &g)
            // (a x + b) mod 2^W, word by word.
            var acc = [UInt64](repeating: 0, count: a.words.count + x.words.count + 1)
            for i in a.words.indices {
                var carry: UInt64 = 0
                for j in x.words.indices {
                    let (hi, lo) = a.words[i].multipliedFullWidth(by: x.words[j])
                    let (s1, c1) = acc[i + j].addingReportingOverflow(lo)
                    let (s2, c2) = s1.addingReportingOverflow(carry)
                    acc[i + j] = s2
                    carry = hi &+ (c1 ? 1 : 0) &+ (c2 ? 1 : 0)
                }
                var k = i + x.words.count
                while carry != 0 { let (s, c) = acc[k].addingReportingOverflow(carry); acc[k] = s; carry = c ? 1 : 0; k += 1 }
            }
            var carry: UInt64 = 0
            for i in b.words.indices {
                let (s1, c1) = acc[i].addingReportingOverflow(b.words[i])
                let (s2, c2) = s1.addingReportingOverflow(carry)
                acc[i] = s2
                carry = (c1 ? 1 : 0) + (c2 ? 1 : 0)
            }
            var expected = BitVector(count: l)
            for i in 0..<l {
                let bit = n - 1 + i
                if (acc[bit >> 6] >> UInt64(bit & 63)) & 1 == 1 { expected[i] = true }
            }
            #expect(MultiplyAddShiftHash.hash(x, multiplier: a, addend: b, outputBits: l) == expected, "n=\(n) l=\(l)")
        }
    }

    /// Strong universality on a tiny instance, by enumeration: n = 3, ℓ = 2, W = 4; for every
    /// pair x != x' every output pair (y, y') occurs for exactly 2^(2W) / 2^(2ℓ) seeds.
    @Test func stronglyUniversalByEnumeration() {
        let n = 3, l = 2, w = n + l - 1
        func bv(_ v: Int, _ c: Int) -> BitVector { BitVector(words: [UInt64(v)], count: c) }
        var table = [[Int]](repeating: [], count: 1 << n)
        for x in 0..<(1 << n) {
            for a in 0..<(1 << w) {
                for b in 0..<(1 << w) {
                    let h = MultiplyAddShiftHash.hash(bv(x, n), multiplier: bv(a, w), addend: bv(b, w), outputBits: l)
                    table[x].append(Int(h.words[0]))
                }
            }
        }
        for x in 0..<(1 << n) {
            for y in 0..<(1 << n) where y != x {
                var counts = [Int](repeating: 0, count: 1 << (2 * l))
                for s in 0..<(1 << (2 * w)) { counts[table[x][s] << l | table[y][s]] += 1 }
                #expect(counts.allSatisfy { $0 == 1 << (2 * w - 2 * l) }, "x=\(x) y=\(y)")
            }
        }
    }

    @Test func seedIsDrawnFromTheSourceInFull() {
        var r1 = DeterministicRandomSource(seed: 4)
        var r2 = DeterministicRandomSource(seed: 4)
        let s = MultiplyAddShiftHash.drawSeed(inputBits: 1000, outputBits: 300, random: &r1)
        #expect(s.multiplier.count == 1299 && s.addend.count == 1299)
        let raw = r2.bytes(count: 2 * 21 * 8)
        #expect(Array(s.multiplier.packedBytes()) == Array(raw[0..<163]).enumerated().map { $0.offset == 162 ? $0.element & 0x07 : $0.element })
        #expect(s.multiplier != s.addend)
    }
}
