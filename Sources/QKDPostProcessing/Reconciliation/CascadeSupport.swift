import QKDCrypto
internal import CQKDKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

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

/// The sub-block parity cache of Spec/postprocessing.md section 5.3, as dense bit planes: per
/// pass, two bits (known, error parity) for every node of every block's bisection tree, at index
/// `block << shift + node` with `node` the heap index (root 1, children 2i and 2i + 1) and
/// `2^shift` a bound on the heap indices of one block. A lookup is a load from a small array, not
/// a hash probe: the earlier open-addressing table spent a third of Cascade's time in probes that
/// missed the cache. The planes come from `calloc`, so the pages of passes with few searches
/// (blocks of n/2) are never touched and cost no memory.
struct SubBlockParityCache {
    private var planes: [ParityPlane] = []
    private var shifts: [Int] = []

    /// The log2 of the node stride of a block of `k` bits: a search splits `[lo, hi)` at
    /// `lo + floor((hi - lo) / 2)`, so the right child is the larger one and the tree depth is
    /// `ceil(log2 k)`; heap indices stay below `2^(ceil(log2 k) + 1)`.
    static func strideShift(blockSize k: Int) -> Int {
        (k <= 1 ? 0 : Int.bitWidth - (k - 1).leadingZeroBitCount) + 1
    }

    /// Adds the next pass (passes are added in order 0, 1, ...).
    mutating func addPass(blockSize: Int, blockCount: Int) {
        let shift = Self.strideShift(blockSize: blockSize)
        shifts.append(shift)
        prepareForWrites()
        planes.append(ParityPlane(bits: blockCount << shift))
    }

    /// The index of node 0 of `block` in `pass` (add a heap index to it).
    @inline(__always)
    func base(pass: Int, block: Int) -> Int { block << shifts[pass] }

    /// The cached error parity at `index` of `pass`, nil if unknown.
    @inline(__always)
    func get(pass: Int, _ index: Int) -> Bool? {
        let w = planes[pass].storage + 2 * (index >> 6)
        let m = UInt64(1) << UInt64(index & 63)
        guard w[0] & m != 0 else { return nil }
        return w[1] & m != 0
    }

    /// Asks the memory system for the words of `index` ahead of a ``get(pass:_:)`` or
    /// ``set(pass:_:_:)`` (a hint; any index of the pass).
    @inline(__always)
    func prefetch(pass: Int, _ index: Int) {
        qkd_cascade_prefetch(planes[pass].storage + 2 * (index >> 6))
    }

    /// Stores an error parity. Call ``prepareForWrites()`` first in each mutating operation.
    @inline(__always)
    mutating func set(pass: Int, _ index: Int, _ value: Bool) {
        let w = planes[pass].storage + 2 * (index >> 6)
        let m = UInt64(1) << UInt64(index & 63)
        w[0] |= m
        w[1] = value ? w[1] | m : w[1] & ~m
    }

    /// Flips a stored parity; returns false if it is not stored. Call ``prepareForWrites()``
    /// first in each mutating operation.
    @inline(__always)
    mutating func toggle(pass: Int, _ index: Int) -> Bool {
        let w = planes[pass].storage + 2 * (index >> 6)
        let m = UInt64(1) << UInt64(index & 63)
        guard w[0] & m != 0 else { return false }
        w[1] ^= m
        return true
    }

    /// Copy on write, once per operation rather than per bit: an engine copied by value must not
    /// share its cache. Call before ``set(pass:_:_:)`` or ``toggle(pass:_:)``.
    mutating func prepareForWrites() {
        for p in planes.indices where !isKnownUniquelyReferenced(&planes[p]) {
            planes[p] = ParityPlane(copying: planes[p])
        }
    }
}

/// One pass's bit plane: pairs of words (known, error parity), zero-filled by `calloc`.
final class ParityPlane {
    let words: Int
    let storage: UnsafeMutablePointer<UInt64>

    init(bits: Int) {
        words = max(1, (bits + 63) >> 6)
        guard let raw = calloc(2 * words, MemoryLayout<UInt64>.stride) else {
            fatalError("out of memory for the Cascade parity cache (\(2 * words) words)")
        }
        storage = raw.bindMemory(to: UInt64.self, capacity: 2 * words)
    }

    init(copying other: ParityPlane) {
        words = other.words
        guard let raw = malloc(2 * words * MemoryLayout<UInt64>.stride) else {
            fatalError("out of memory for the Cascade parity cache (\(2 * words) words)")
        }
        storage = raw.bindMemory(to: UInt64.self, capacity: 2 * words)
        storage.update(from: other.storage, count: 2 * words)
    }

    deinit { free(storage) }
}
