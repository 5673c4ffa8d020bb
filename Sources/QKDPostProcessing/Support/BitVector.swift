import QKDCrypto

/// A bit-packed vector of bits: bit `i` lives in `words[i >> 6]` at position `i & 63`.
///
/// Bits past ``count`` in the last word are always zero, so word-wise parity and popcount need
/// no masking of the tail. Key material held in a `BitVector` must be wiped with ``wipe()``
/// when it is no longer needed (DESIGN.md, key pool invariant 5).
public struct BitVector: Sendable, Equatable {
    /// The packed words.
    public private(set) var words: [UInt64]
    /// The number of bits.
    public private(set) var count: Int

    /// Creates `count` zero bits.
    /// - Parameter count: the number of bits, >= 0.
    public init(count: Int) {
        precondition(count >= 0, "BitVector count must not be negative")
        self.count = count
        self.words = [UInt64](repeating: 0, count: (count + 63) >> 6)
    }

    /// Creates a vector from packed words; bits past `count` are cleared.
    /// - Parameters:
    ///   - words: at least `ceil(count / 64)` words.
    ///   - count: the number of bits.
    public init(words: [UInt64], count: Int) {
        precondition(count >= 0 && words.count >= (count + 63) >> 6, "BitVector words too short")
        self.count = count
        self.words = Array(words.prefix((count + 63) >> 6))
        clearTail()
    }

    /// Creates an empty vector with room for `capacity` bits.
    /// - Parameter capacity: bits to reserve.
    public init(reservingCapacity capacity: Int) {
        count = 0
        words = []
        words.reserveCapacity((capacity + 63) >> 6)
    }

    private mutating func clearTail() {
        let r = count & 63
        if r != 0 { words[words.count - 1] &= (UInt64(1) << UInt64(r)) &- 1 }
    }

    /// Reads or writes bit `index`.
    public subscript(index: Int) -> Bool {
        get {
            precondition(index >= 0 && index < count, "BitVector index out of range")
            return (words[index >> 6] >> UInt64(index & 63)) & 1 == 1
        }
        set {
            precondition(index >= 0 && index < count, "BitVector index out of range")
            let mask = UInt64(1) << UInt64(index & 63)
            if newValue { words[index >> 6] |= mask } else { words[index >> 6] &= ~mask }
        }
    }

    /// Bit `index` as 0 or 1, without bounds checks beyond the array's.
    @inline(__always)
    func bit(_ index: Int) -> UInt64 { (words[index >> 6] >> UInt64(index & 63)) & 1 }

    /// Calls `body` with the words for writing in place (copied first if another vector shares
    /// them); `body` must leave the bits past ``count`` zero.
    @inline(__always)
    mutating func withUnsafeMutableWords<R>(_ body: (UnsafeMutableBufferPointer<UInt64>) throws -> R) rethrows -> R {
        try words.withUnsafeMutableBufferPointer { try body($0) }
    }

    /// Flips bit `index`.
    /// - Parameter index: a bit index in `0..<count`.
    public mutating func flip(_ index: Int) {
        precondition(index >= 0 && index < count, "BitVector index out of range")
        words[index >> 6] ^= UInt64(1) << UInt64(index & 63)
    }

    /// Appends one bit.
    /// - Parameter bit: the bit.
    public mutating func append(_ bit: Bool) {
        if count & 63 == 0 { words.append(0) }
        if bit { words[count >> 6] |= UInt64(1) << UInt64(count & 63) }
        count += 1
    }

    /// Appends the low `width` bits of `value` (width <= 64), least significant first.
    @inline(__always)
    mutating func append(bits value: UInt64, width: Int) {
        guard width > 0 else { return }
        let v = width == 64 ? value : value & ((UInt64(1) << UInt64(width)) &- 1)
        let shift = count & 63
        if shift == 0 { words.append(v) } else {
            words[words.count - 1] |= v << UInt64(shift)
            if shift + width > 64 { words.append(v >> UInt64(64 - shift)) }
        }
        count += width
    }

    /// The number of one bits.
    public var popcount: Int {
        var total = 0
        for w in words { total &+= w.nonzeroBitCount }
        return total
    }

    /// The parity (0 or 1) of bits `lower..<upper`.
    /// - Parameters:
    ///   - lower: the first bit.
    ///   - upper: one past the last bit.
    /// - Returns: 0 or 1.
    @inline(__always)
    func parity(_ lower: Int, _ upper: Int) -> UInt64 {
        if lower >= upper { return 0 }
        return words.withUnsafeBufferPointer { rangeParity($0, lower, upper) }
    }

    /// Sets every word to zero (`secureZero`) and empties the vector.
    public mutating func wipe() {
        let shared = words.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
        words.withUnsafeMutableBytes { secureZero($0) }
        // A moved buffer means another copy shared the words: the zeroes went to a fresh copy.
        if !words.isEmpty {
            WipeAudit.record(reachedCopy: words.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) } != shared)
        }
        words.removeAll()
        count = 0
    }

    /// The bits as bytes, bit `i` at byte `i >> 3`, position `i & 7` (least significant first):
    /// the bitmap layout of Spec/postprocessing.md section 2.
    /// - Returns: `ceil(count / 8)` bytes.
    public func packedBytes() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: (count + 7) >> 3)
        out.withUnsafeMutableBytes { dst in
            words.withUnsafeBytes { src in
                // Little-endian word layout equals the LSB-first byte layout.
                dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[0..<dst.count]))
            }
        }
        return out
    }

    /// Creates a vector from LSB-first packed bytes.
    /// - Parameters:
    ///   - bytes: exactly `ceil(count / 8)` bytes.
    ///   - count: the number of bits.
    /// - Returns: nil if the byte count is wrong or a padding bit past `count` is set.
    init?(packedBytes bytes: UnsafeRawBufferPointer, count: Int) {
        guard bytes.count == (count + 7) >> 3 else { return nil }
        if count & 7 != 0, bytes[bytes.count - 1] >> UInt8(count & 7) != 0 { return nil }
        self.init(count: count)
        words.withUnsafeMutableBytes { dst in
            if bytes.count > 0 { dst.copyMemory(from: bytes) }
        }
        for i in words.indices { words[i] = UInt64(littleEndian: words[i]) }
    }
}

/// Parity (0 or 1) of bits `lower..<upper` of a packed word array.
@inline(__always)
func rangeParity(_ w: UnsafeBufferPointer<UInt64>, _ lower: Int, _ upper: Int) -> UInt64 {
    let firstWord = lower >> 6, lastWord = (upper - 1) >> 6
    let lowMask = ~UInt64(0) << UInt64(lower & 63)
    let highMask = ~UInt64(0) >> UInt64(63 - ((upper - 1) & 63))
    if firstWord == lastWord {
        return UInt64((w[firstWord] & lowMask & highMask).nonzeroBitCount & 1)
    }
    var acc = (w[firstWord] & lowMask) ^ (w[lastWord] & highMask)
    var i = firstWord + 1
    while i < lastWord { acc ^= w[i]; i += 1 }
    return UInt64(acc.nonzeroBitCount & 1)
}

/// Appends bits to a caller-sized word buffer through a register accumulator, one store per 64
/// bits: the sifting loops append a bit or not for every detection without branching on it.
struct BitPacker {
    private let base: UnsafeMutablePointer<UInt64>
    private var accumulator: UInt64 = 0
    private var used: UInt64 = 0
    private var stored = 0

    /// - Parameter base: room for every word that will be appended.
    init(_ base: UnsafeMutablePointer<UInt64>) { self.base = base }

    /// Appends `bit` (0 or 1) if `take` is 1; does nothing if `take` is 0.
    @inline(__always)
    mutating func append(_ bit: UInt64, if take: UInt64) {
        accumulator |= (bit & take) &<< used
        used &+= take
        if used == 64 {
            base[stored] = accumulator
            stored &+= 1
            accumulator = 0
            used = 0
        }
    }

    /// Appends the low `width` bits of `value` (bits at `width` and above must be zero),
    /// `width` in 0...64.
    @inline(__always)
    mutating func append(word value: UInt64, width: Int) {
        accumulator |= value &<< used
        let filled = Int(used) + width
        if filled >= 64 {
            base[stored] = accumulator
            stored &+= 1
            // The bits that did not fit: value >> (64 - used), as two masking shifts so that
            // used = 0 gives 0.
            accumulator = (value &>> 1) &>> (63 - used)
            used = UInt64(filled - 64)
        } else {
            used = UInt64(filled)
        }
    }

    /// Stores the last partial word and returns the number of bits appended.
    mutating func finish() -> Int {
        if used > 0 { base[stored] = accumulator }
        return stored << 6 + Int(used)
    }
}

/// The bits of `value` at the one bits of `mask`, packed towards bit 0 (the software form of
/// BMI2 `pext`, which is microcoded and slow on the AMD cores this runs on). A dense mask (most
/// matched detections are Z-basis key bits with p_Z = 0.9) has its zero bits removed from the
/// highest down; a sparse one has its one bits gathered from the lowest up; either way the cost
/// is a few operations per bit of the rarer kind. Bits at and above `mask.nonzeroBitCount` of
/// the result are zero.
@inline(__always)
func compressBits(_ value: UInt64, _ mask: UInt64) -> UInt64 {
    var v = value & mask
    if mask.nonzeroBitCount >= 32 {
        var holes = ~mask
        while holes != 0 {
            let h = UInt64(63 - holes.leadingZeroBitCount)
            holes &= ~(UInt64(1) &<< h)
            let low = (UInt64(1) &<< h) &- 1  // bits below the hole stay
            v = (v & low) | ((v &>> 1) & ~low)
        }
        return v
    }
    var ones = mask
    var k: UInt64 = 0
    v = 0
    while ones != 0 {
        let j = UInt64(ones.trailingZeroBitCount)
        ones &= ones &- 1
        v |= ((value &>> j) & 1) &<< k
        k &+= 1
    }
    return v
}
