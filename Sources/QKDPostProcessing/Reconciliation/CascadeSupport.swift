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

/// The sub-block parity cache of Spec/postprocessing.md section 5.3: an open-addressing table
/// (linear probing, multiplicative hashing) from `pass << 56 | block << 28 | node` to a known
/// error parity. Swift's `Dictionary` hashes with SipHash; this is the hot path of back-tracking.
struct ParityCache {
    private var keys: [UInt64]
    private var values: [Bool]
    private var mask: Int
    private(set) var count = 0

    init() {
        keys = [UInt64](repeating: 0, count: 1024)
        values = [Bool](repeating: false, count: 1024)
        mask = 1023
    }

    @inline(__always)
    static func key(pass: Int, block: Int, node: Int) -> UInt64 {
        UInt64(pass) << 56 | UInt64(block) << 28 | UInt64(node)
    }

    @inline(__always)
    private func slot(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 20) & mask
    }

    /// The parity stored for `key` (keys are never 0: node >= 1).
    @inline(__always)
    func get(_ key: UInt64) -> Bool? {
        var i = slot(key)
        while true {
            let k = keys[i]
            if k == key { return values[i] }
            if k == 0 { return nil }
            i = (i + 1) & mask
        }
    }

    mutating func set(_ key: UInt64, _ value: Bool) {
        if 2 * (count + 1) > keys.count { grow() }
        var i = slot(key)
        while true {
            let k = keys[i]
            if k == key { values[i] = value; return }
            if k == 0 {
                keys[i] = key
                values[i] = value
                count += 1
                return
            }
            i = (i + 1) & mask
        }
    }

    /// Flips a stored parity; returns false if `key` is not stored.
    @inline(__always)
    mutating func toggle(_ key: UInt64) -> Bool {
        var i = slot(key)
        while true {
            let k = keys[i]
            if k == key { values[i].toggle(); return true }
            if k == 0 { return false }
            i = (i + 1) & mask
        }
    }

    private mutating func grow() {
        let oldKeys = keys, oldValues = values
        keys = [UInt64](repeating: 0, count: oldKeys.count * 2)
        values = [Bool](repeating: false, count: oldKeys.count * 2)
        mask = keys.count - 1
        count = 0
        for i in oldKeys.indices where oldKeys[i] != 0 { set(oldKeys[i], oldValues[i]) }
    }
}
