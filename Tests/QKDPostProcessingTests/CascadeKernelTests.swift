import Testing
import QKDCrypto
@testable import QKDPostProcessing

/// The C kernels of Cascade against the Swift code they replaced: the permutation must be the
/// same one (Spec/postprocessing.md section 5.2), or both sides of an old and a new node would
/// disagree on every pass.
@Suite struct CascadeKernelTests {
    @Test(arguments: [0, 1, 2, 3, 1000, 65_535, 65_536, 100_003, 1 << 18])
    func permutationMatchesReference(n: Int) {
        var shared = DeterministicRandomSource(seed: UInt64(n) &+ 5)
        var a = Xoshiro256StarStar(seedingFrom: &shared)
        var b = a
        let kernel = PassPermutation(size: n, random: &a)
        let reference = ReferencePermutation(size: n, random: &b)
        #expect(kernel.backwardArray == reference.backward)
        #expect((0..<n).allSatisfy { kernel.forward($0) == Int(reference.forward[$0]) })
        #expect(a.next() == b.next(), "the generator must end in the same state")
    }

    @Test(arguments: [1, 63, 64, 65, 1000, 4097])
    func gatherMatchesReference(n: Int) {
        var g = TestRNG(state: UInt64(n) &* 13)
        let key = randomBits(n, &g)
        var shared = DeterministicRandomSource(seed: UInt64(n))
        var x = Xoshiro256StarStar(seedingFrom: &shared)
        let perm = PassPermutation(size: n, random: &x)
        let out = perm.withBackward { gatherBits(key.words, at: $0, count: n) }
        var reference = BitVector(count: n)
        for j in 0..<n where key[perm.backward(j)] { reference[j] = true }
        #expect(out == reference.words)
    }
}

/// The Swift Rao-Sandelius code of 2026-11-27 (before the C kernel), kept as the reference.
struct ReferencePermutation {
    let backward: [UInt32]
    let forward: [UInt32]

    init(size n: Int, random: inout Xoshiro256StarStar) {
        let bucketCount = n >= 1 << 16 ? 256 : 1
        var rng = random  // A local copy stays in registers in the loops below.
        var counts = [Int](repeating: 0, count: bucketCount)
        var members = uninitializedWords(n)
        var pre = uninitializedWords(n)
        if bucketCount == 1 {
            counts[0] = n
            members.withUnsafeMutableBufferPointer { m in
                pre.withUnsafeMutableBufferPointer { p in
                    for i in 0..<n { m[i] = UInt32(truncatingIfNeeded: i); p[i] = UInt32(truncatingIfNeeded: i) }
                }
            }
        } else {
            // Bucket ids: byte i & 7 of word i >> 3 of the stream. They are read twice (count,
            // then place), by replaying a copy of the generator instead of storing n bytes.
            let replay = rng
            counts.withUnsafeMutableBufferPointer { c in
                var i = 0
                while i + 8 <= n {
                    let r = rng.next()
                    for k in 0..<8 { c[Int(UInt8(truncatingIfNeeded: r >> UInt64(8 * k)))] += 1 }
                    i += 8
                }
                if i < n {
                    let r = rng.next()
                    for k in 0..<(n - i) { c[Int(UInt8(truncatingIfNeeded: r >> UInt64(8 * k)))] += 1 }
                }
            }
            var ids = replay
            var starts = [Int](repeating: 0, count: bucketCount)
            for b in 1..<bucketCount { starts[b] = starts[b - 1] + counts[b - 1] }
            starts.withUnsafeMutableBufferPointer { st in
                members.withUnsafeMutableBufferPointer { m in
                    pre.withUnsafeMutableBufferPointer { p in
                        var i = 0
                        while i < n {
                            var r = ids.next()
                            let end = min(n, i + 8)
                            while i < end {
                                let b = Int(UInt8(truncatingIfNeeded: r))
                                let slot = st[b]
                                m[slot] = UInt32(truncatingIfNeeded: i)
                                p[i] = UInt32(truncatingIfNeeded: slot)
                                st[b] = slot + 1
                                r >>= 8
                                i += 1
                            }
                        }
                    }
                }
            }
        }
        var back = uninitializedWords(n)
        var local = [UInt32](repeating: 0, count: counts.max() ?? 0)
        // The in-bucket inverse overwrites `members` in place: iteration `pos` reads and writes
        // only entry start + l[pos], and l is a permutation of the bucket (one array fewer to
        // allocate and fault in).
        back.withUnsafeMutableBufferPointer { bk in
            members.withUnsafeMutableBufferPointer { m in
                local.withUnsafeMutableBufferPointer { l in
                    var start = 0
                    for c in counts {
                        for k in 0..<c { l[k] = UInt32(truncatingIfNeeded: k) }
                        var i = c - 1
                        while i > 0 {
                            let j = Int(rng.next().multipliedFullWidth(by: UInt64(i + 1)).high)
                            let t = l[i]
                            l[i] = l[j]
                            l[j] = t
                            i -= 1
                        }
                        for pos in 0..<c {
                            let k = Int(l[pos])
                            bk[start + pos] = m[start + k]
                            m[start + k] = UInt32(truncatingIfNeeded: start + pos)
                        }
                        start += c
                    }
                }
            }
        }
        // forward[i] = inverse[preSlot[i]] (the inverse now in `members`), in place over
        // `pre`: sequential in i, reads within 256 streams. One lookup per flip instead of two
        // dependent cache misses.
        pre.withUnsafeMutableBufferPointer { p in
            members.withUnsafeBufferPointer { iv in
                for i in 0..<n { p[i] = iv[Int(p[i])] }
            }
        }
        members = []
        random = rng
        backward = back
        forward = pre
    }

}

private func uninitializedWords(_ n: Int) -> [UInt32] { [UInt32](repeating: 0, count: n) }
