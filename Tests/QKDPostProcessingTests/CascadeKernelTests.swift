import Testing
import QKDCrypto
import CQKDKernels
@testable import QKDPostProcessing

/// The C kernels of Cascade against plain Swift readings of Spec/postprocessing.md section 5.2:
/// the permutation must be exactly the specified one, or two nodes would disagree on every pass.
@Suite(.serialized) struct CascadeKernelTests {
    /// Sizes around powers of two and just above a multiple of 2^L (65 537 and 2^17 + 7: the
    /// network's domain 2^L b then exceeds n by 255 and 505, so hundreds of indices walk,
    /// through both the 8-lane and the one-lane walk loops), tiny sizes (a domain of 4 for
    /// n = 1), and sizes that are not multiples of the kernel's 8 lanes; both the AVX2 and the
    /// portable loop.
    @Test(arguments: [0, 1, 2, 3, 5, 8, 9, 1000, 65_535, 65_536, 65_537, 100_003, (1 << 17) + 7])
    func permutationMatchesReference(n: Int) {
        for generic in [false, true] {
            qkd_cascade_force_generic(generic ? 1 : 0)
            defer { qkd_cascade_force_generic(0) }
            var shared = DeterministicRandomSource(seed: UInt64(n) &+ 5)
            var a = Xoshiro256StarStar(seedingFrom: &shared)
            var b = a
            let kernel = PassPermutation(size: n, random: &a)
            let reference = ReferencePermutation(size: n, random: &b)
            #expect(kernel.backwardArray == reference.backward, "backward map, generic loop: \(generic)")
            #expect((0..<n).allSatisfy { kernel.forward($0) == Int(reference.forward[$0]) }, "forward map, generic loop: \(generic)")
            #expect(a.next() == b.next(), "the generator must end in the same state")
        }
    }

    /// The inverse network (`qkd_cascade_backward`, one entry at a time, no map) inverts the
    /// forward map: backward(forward(i)) = i for every i, at sizes where hundreds of indices
    /// walk (65 537, 2^17 + 7: the inverse walk must retrace them), n = 1 (a domain of 4, so
    /// three of four values walk) and plain sizes.
    @Test(arguments: [1, 2, 3, 64, 1000, 65_536, 65_537, 100_003, (1 << 17) + 7])
    func backwardInvertsForward(n: Int) {
        var shared = DeterministicRandomSource(seed: UInt64(n) &+ 11)
        var x = Xoshiro256StarStar(seedingFrom: &shared)
        let perm = PassPermutation(size: n, random: &x)
        var mismatches = 0
        for i in 0..<n where perm.backward(perm.forward(i)) != i { mismatches += 1 }
        #expect(mismatches == 0)
    }

    /// The scatter (a pass's key in its order) against a bit-by-bit reading of the backward
    /// map: position j holds key bit backward(j). Sizes around words and the 64-bit loop's tail.
    @Test(arguments: [1, 7, 8, 63, 64, 65, 127, 1000, 4097, 100_003])
    func scatterMatchesReference(n: Int) {
        var g = TestRNG(state: UInt64(n) &* 13)
        let key = randomBits(n, &g)
        var shared = DeterministicRandomSource(seed: UInt64(n))
        var x = Xoshiro256StarStar(seedingFrom: &shared)
        let perm = PassPermutation(size: n, random: &x)
        var reference = BitVector(count: n)
        for j in 0..<n where key[perm.backward(j)] { reference[j] = true }
        let out = perm.withForward { scatterBits(key.words, to: $0, count: n) }
        #expect(out == reference.words)
    }

    /// The half mask (bit x set iff forward[x] < k), both the AVX2 loop (8 entries per step, 64
    /// per word, the rest by the portable loop) and the portable one, for k at the edges (0, 1,
    /// n - 1, n) and in between.
    @Test(arguments: [1, 7, 64, 65, 1000, 4097, 65_537])
    func maskBelowMatchesReference(n: Int) {
        var shared = DeterministicRandomSource(seed: UInt64(n) &+ 3)
        var x = Xoshiro256StarStar(seedingFrom: &shared)
        let perm = PassPermutation(size: n, random: &x)
        for k in Set([0, 1, n / 2, (n + 1) / 2, max(0, n - 1), n]) {
            var reference = [UInt64](repeating: 0, count: (n + 63) >> 6)
            for i in 0..<n where perm.forward(i) < k { reference[i >> 6] |= UInt64(1) << UInt64(i & 63) }
            for generic in [false, true] {
                qkd_cascade_force_generic(generic ? 1 : 0)
                defer { qkd_cascade_force_generic(0) }
                var out = [UInt64](repeating: 0xdead_beef, count: (n + 63) >> 6)
                perm.withForward { f in
                    out.withUnsafeMutableBufferPointer { qkd_cascade_mask_below($0.baseAddress, f.baseAddress, n, UInt32(k)) }
                }
                #expect(out == reference, "k = \(k), generic loop: \(generic)")
            }
        }
    }
}

/// Spec/postprocessing.md section 5.2 read literally, one index at a time: the Feistel network
/// `E` on the mixed-radix domain, its inverse, and cycle walking. Independent of the C kernel's lanes, list and dispatch.
struct ReferencePermutation {
    let backward: [UInt32]
    let forward: [UInt32]

    init(size n: Int, random: inout Xoshiro256StarStar) {
        guard n > 0 else { backward = []; forward = []; return }
        var m = 2
        while (1 << m) < n { m += 1 }
        let low = m / 2
        let b = UInt32((n + (1 << low) - 1) >> low)  // ceil(n / 2^L)
        var high = 1
        while (1 << high) < b { high += 1 }
        var keys: [UInt32] = [], multipliers: [UInt32] = []
        for _ in 0..<8 {
            let u = random.next()
            keys.append(UInt32(truncatingIfNeeded: u))
            multipliers.append(UInt32(truncatingIfNeeded: u >> 32) | 1)
        }
        func hash(_ v: UInt32, _ r: Int, bits: Int) -> UInt32 {
            ((v ^ keys[r]) &* multipliers[r]) >> UInt32(32 - bits)
        }
        func network(_ x: UInt32, inverse: Bool) -> UInt32 {
            var lo = x % (1 << UInt32(low)), hi = x / (1 << UInt32(low))
            precondition(hi < b)
            for r in inverse ? Array((0..<8).reversed()) : Array(0..<8) {
                if r % 2 == 0 {
                    let t = hash(lo, r, bits: high) % b
                    hi = inverse ? (hi + b - t) % b : (hi + t) % b
                } else {
                    lo ^= hash(hi, r, bits: low)
                }
            }
            return hi * (1 << UInt32(low)) + lo
        }
        func walk(_ i: Int, inverse: Bool) -> UInt32 {
            var y = network(UInt32(i), inverse: inverse)
            while y >= n { y = network(y, inverse: inverse) }
            return y
        }
        forward = (0..<n).map { walk($0, inverse: false) }
        backward = (0..<n).map { walk($0, inverse: true) }
    }
}
