@testable import QKDPostProcessing
internal import CQKDKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// The Swift parity cache the engine used before its step moved to C (`cascade_step.c` keeps the
// same layout in its per-pass planes); kept for ``ReferenceCascadeEngine`` and its own test.

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
