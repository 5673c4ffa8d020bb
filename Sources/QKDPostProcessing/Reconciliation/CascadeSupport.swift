import QKDCrypto

/// xoshiro256** (Blackman and Vigna, "Scrambled linear pseudorandom number generators", ACM TOMS
/// 2021): the word stream of one Cascade pass's permutation (Spec/postprocessing.md section 5.2).
/// Cascade's permutations are public and only shape which parities are asked; the leakage count
/// does not depend on them, so a fast non-cryptographic generator seeded per pass from the shared
/// ChaCha20 stream is enough, and it is several times cheaper per word.
struct Xoshiro256StarStar {
    private var s0, s1, s2, s3: UInt64

    /// Seeds from four words of the shared stream; an all-zero state (probability 2^-256) becomes
    /// s0 = 1, as the Spec says.
    init(seedingFrom random: inout DeterministicRandomSource) {
        s0 = random.next()
        s1 = random.next()
        s2 = random.next()
        s3 = random.next()
        if s0 | s1 | s2 | s3 == 0 { s0 = 1 }
    }

    /// Starts from an explicit state (tests).
    init(state: (UInt64, UInt64, UInt64, UInt64)) {
        (s0, s1, s2, s3) = state
    }

    /// The four state words (the C kernels take and advance them).
    var state: (UInt64, UInt64, UInt64, UInt64) {
        get { (s0, s1, s2, s3) }
        set { (s0, s1, s2, s3) = newValue }
    }

    @inline(__always)
    mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = s3 << 45 | s3 >> 19
        return result
    }
}
