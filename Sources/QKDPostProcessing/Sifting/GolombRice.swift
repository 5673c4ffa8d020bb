import QKDCrypto
internal import CQKDKernels

/// Golomb-Rice coding of the gaps between sorted detection slots (Spec/postprocessing.md
/// section 2.3). A gap `g = slot[i] - slot[i-1] - 1` (with `slot[-1] = -1`) is written as
/// `g >> r` one bits, a zero bit, then the low `r` bits of `g`, least significant first.
/// For geometrically distributed gaps (independent detections with probability p per slot) the
/// Rice code with `2^r ~ ln 2 / p` is within about 0.03 bits of the entropy h(p)/p per
/// detection (Gallager and van Voorhis 1975).
enum GolombRice {
    /// The Rice parameter for `count` detections spread over `slots` slots.
    static func parameter(count: Int, slots: UInt64) -> Int {
        guard count > 0 else { return 0 }
        let mean = Double(slots) / Double(count)
        let target = mean * 0.6931471805599453
        guard target >= 2 else { return 0 }
        return min(Int(target.log2Floor), 62)
    }

    /// An upper bound on the stream length of `count` sorted slots below `slotCount`: every code
    /// takes `r + 1` bits plus one per `2^r` of its gap, and the gaps sum to at most `slotCount`.
    static func maxStreamBits(count: Int, slotCount: UInt64, parameter r: Int) -> Int {
        count * (r + 1) + Int(slotCount >> UInt64(r)) + 63 * (count > 0 ? 1 : 0)
    }

    /// The exact stream length of `slots` (the sum of the code lengths), without encoding.
    static func streamBits(_ slots: UnsafeBufferPointer<UInt64>, parameter r: Int) -> Int {
        guard let first = slots.first else { return 0 }
        // Sum of floor(gap / 2^r): a plain loop over neighbouring slots that the compiler
        // vectorises (gap = slot[i] - slot[i-1] - 1).
        let p = slots.baseAddress!, count = slots.count, shift = UInt64(r)
        var unary = first &>> shift
        var i = 1
        while i < count {
            unary &+= (p[i] &- p[i &- 1] &- 1) &>> shift
            i &+= 1
        }
        return count * (r + 1) + Int(unary)
    }

    /// Encodes sorted, distinct slots.
    static func encode(_ slots: UnsafeBufferPointer<UInt64>, parameter r: Int) -> BitVector {
        let (words, count) = encodeWords(slots, parameter: r)
        return BitVector(words: words, count: count)
    }

    /// The word-at-a-time encoder (C kernel `qkd_rice_encode`, Sources/CQKDKernels/sift.c):
    /// codes go into a 64-bit accumulator that is stored once full, so a code costs a few
    /// register operations and no branch on the fill level (Spec/postprocessing.md section 2.3
    /// fixes the bit order this writes).
    /// - Parameters:
    ///   - slots: sorted, distinct slots below 2^62 (a precondition: this traps otherwise).
    ///   - r: the Rice parameter, at most 62.
    /// - Returns: the packed stream (bits past `count` zero) and its length in bits.
    static func encodeWords(_ slots: UnsafeBufferPointer<UInt64>, parameter r: Int) -> ([UInt64], Int) {
        precondition(r >= 0 && r <= 62, "the Rice parameter is at most 62 (Spec/postprocessing.md section 2.3)")
        if let last = slots.last {
            precondition(last < UInt64(1) << 62, "Rice-coded slots must be below 2^62 (Spec/postprocessing.md section 2.2)")
        }
        guard let coded = encodeWordsIfValid(slots, parameter: r) else {
            preconditionFailure("Rice-coded slots must be strictly increasing")
        }
        return coded
    }

    /// ``encodeWords(_:parameter:)``, or nil instead of a trap if the slots are not strictly
    /// increasing or not below 2^62, or `r` is over 62.
    static func encodeWordsIfValid(_ slots: UnsafeBufferPointer<UInt64>, parameter r: Int) -> ([UInt64], Int)? {
        guard r >= 0 && r <= 62 else { return nil }
        guard let last = slots.last else { return ([], 0) }
        guard last < UInt64(1) << 62 else { return nil }
        // The kernel checks every slot against its predecessor and the last one, so the gaps
        // sum to at most last + 1 and the writes stay inside `capacity` whatever a caller passes.
        let capacity = qkd_rice_encode_capacity(slots.count, last, UInt32(r))
        var written = 0
        let words = [UInt64](unsafeUninitializedCapacity: capacity) { out, initialized in
            written = qkd_rice_encode(slots.baseAddress, slots.count, UInt32(r), out.baseAddress, capacity)
            initialized = written >= 0 ? (written + 63) >> 6 : 0
        }
        return written >= 0 ? (words, written) : nil
    }

    /// Decodes exactly `count` slots from `stream`, checking every slot is below `slotCount`
    /// (C kernel `qkd_rice_decode`: a window of 64 stream bits in a register, every code inside
    /// it taken with count-trailing-zeros; codes that straddle or run long are read one piece at
    /// a time with every bound checked, so no word outside the stream is read).
    /// - Throws: ``QKDError/Code/ppMalformed`` if the stream ends early, a slot is out of range,
    ///   or bits are left over.
    static func decode(_ stream: BitVector, count: Int, parameter r: Int, slotCount: UInt64) throws -> [UInt64] {
        try checkArguments(streamBits: stream.count, count: count, parameter: r, slotCount: slotCount)
        let (status, result, bad) = kernelDecode(stream, count: count, parameter: r, slotCount: slotCount)
        switch status {
        case QKD_RICE_OK: return result
        case QKD_RICE_TRUNCATED:
            throw QKDError(.ppMalformed, "detection report: Rice stream ends inside a code")
        case QKD_RICE_LEFTOVER:
            throw QKDError(.ppMalformed, "detection report: bits left after the last Rice code")
        default:
            throw QKDError(.ppMalformed, "detection report: slot \(bad) is not below the slot count \(slotCount)")
        }
    }
}

extension GolombRice {
    /// The checks that come before the decoder runs (they bound its work and its arithmetic):
    /// the parameter is at most 62, `count` codes of at least r + 1 bits fit in the stream, and
    /// the slot count is at most 2^62.
    /// - Throws: ``QKDError/Code/ppMalformed`` if one fails.
    static func checkArguments(streamBits: Int, count: Int, parameter r: Int, slotCount: UInt64) throws {
        guard r >= 0, r <= 62 else {
            throw QKDError(.ppMalformed, "detection report: Rice parameter \(r) is over 62")
        }
        // Each code takes at least r + 1 bits: check before allocating (STYLE.md, "Codecs").
        guard count == 0 || streamBits / (r + 1) >= count else {
            throw QKDError(.ppMalformed, "detection report: \(count) positions cannot fit in \(streamBits) Rice-coded bits with parameter \(r)")
        }
        // The kernel's batch loop relies on slots staying far from 2^64 (section 2.2 caps
        // slotCount at 2^44), so that a window's gaps cannot wrap around.
        guard slotCount <= UInt64(1) << 62 else {
            throw QKDError(.ppMalformed, "detection report: slot count \(slotCount) is out of range")
        }
    }

    /// The C kernel's decode: its `QKD_RICE_*` status, the slots (empty unless the status is
    /// OK) and the offending slot of an out-of-range status. ``decode(_:count:parameter:slotCount:)``
    /// checks its arguments first; tests call this directly to compare the kernel's two paths.
    static func kernelDecode(_ stream: BitVector, count: Int, parameter r: Int,
                             slotCount: UInt64) -> (status: Int32, slots: [UInt64], bad: UInt64) {
        var status: Int32 = 0
        var bad: UInt64 = 0
        let slots = [UInt64](unsafeUninitializedCapacity: count) { out, initialized in
            // The words hold exactly ceil(stream.count / 64) words with the bits past the count
            // zero (BitVector's invariant), which is what the kernel requires.
            status = stream.words.withUnsafeBufferPointer { w in
                qkd_rice_decode(w.baseAddress, UInt64(stream.count), count, UInt32(r), slotCount, out.baseAddress, &bad)
            }
            initialized = status == QKD_RICE_OK ? count : 0
        }
        return (status, slots, bad)
    }

    /// Runs `body` with r = 0 streams coded a code at a time, like every other parameter,
    /// instead of a word at a time (`sift.c`): the same bytes and outcomes, the slower kernel.
    /// For tests comparing the two paths and for `qkd-node bench sift`'s same-run baseline; the
    /// switch is process-wide, so nothing else should sift meanwhile.
    /// - Parameter body: the work to run on the code-at-a-time kernel.
    /// - Returns: what `body` returns.
    /// - Throws: what `body` throws.
    static func withCodeAtATimeKernel<T>(_ body: () throws -> T) rethrows -> T {
        setCodeAtATimeKernel(true)
        defer { setCodeAtATimeKernel(false) }
        return try body()
    }

    /// The switch of ``withCodeAtATimeKernel(_:)`` without its scope, for tests that select a
    /// kernel path for a whole test.
    static func setCodeAtATimeKernel(_ on: Bool) { qkd_rice_force_generic(on ? 1 : 0) }
}

extension Double {
    /// floor(log2(self)) for self >= 1.
    var log2Floor: Int { Int(self.exponent) }
}
