import QKDCrypto

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

    /// The word-at-a-time encoder: codes go into a 64-bit accumulator that is stored once full,
    /// so a code costs a few register operations and a store per 64 bits, not an array append
    /// (Spec/postprocessing.md section 2.3 fixes the bit order this writes).
    /// - Parameters:
    ///   - slots: sorted, distinct slots.
    ///   - r: the Rice parameter.
    /// - Returns: the packed stream (bits past `count` zero) and its length in bits.
    static func encodeWords(_ slots: UnsafeBufferPointer<UInt64>, parameter r: Int) -> ([UInt64], Int) {
        // The buffer is sized from the last slot; the loop traps on a slot that is not above the
        // one before it, so the gaps sum to at most last + 1 and the writes stay in bounds
        // whatever a caller passes (a precondition, not a memory error).
        let last = slots.last ?? 0
        precondition(last < UInt64(1) << 62, "Rice-coded slots must be below 2^62 (Spec/postprocessing.md section 2.2)")
        let capacityBits = slots.isEmpty ? 0 : maxStreamBits(count: slots.count, slotCount: last + 1, parameter: r)
        let wordCapacity = (capacityBits + 63) >> 6 + 1
        var written = 0
        let words = [UInt64](unsafeUninitializedCapacity: wordCapacity) { out, initialized in
            let base = out.baseAddress!
            var stored = 0  // words stored
            var acc: UInt64 = 0
            var used = 0  // bits of acc in use, 0..<64
            @inline(__always) func put(_ code: UInt64, _ width: Int) {
                // width in 1...64, code < 2^width
                acc |= code &<< UInt64(used)  // Masking shifts: every count here is below 64.
                let filled = used + width
                if filled >= 64 {
                    base[stored] = acc
                    stored += 1
                    // The bits of code that did not fit: code >> (64 - used), written as two
                    // shifts so that used == 0 (shift by 64) gives 0.
                    acc = (code &>> 1) &>> UInt64(63 - used)
                    used = filled - 64
                } else {
                    used = filled
                }
            }
            var previous: UInt64 = 0  // slot[-1] + 1
            let lowMask: UInt64 = r == 0 ? 0 : (UInt64(1) << UInt64(r)) &- 1
            for s in slots {
                precondition(s >= previous, "Rice-coded slots must be strictly increasing")
                let gap = s &- previous
                previous = s &+ 1
                var q = gap &>> UInt64(r)
                if q < UInt64(64 - r) {
                    // One write: q ones, a zero, then the r low bits. (q + 1 = 64 only if r = 0,
                    // when the masked shift moves gap & lowMask = 0.)
                    put(((UInt64(1) &<< q) &- 1) | ((gap & lowMask) &<< (q + 1)), Int(q) + 1 + r)
                    continue
                }
                while q >= 63 { put(~UInt64(0) >> 1, 63); q -= 63 }
                // q ones then a zero: the low q+1 bits of (2^q - 1).
                put((UInt64(1) << q) &- 1, Int(q) + 1)
                if r > 0 { put(gap & lowMask, r) }
            }
            written = stored * 64 + used
            if used > 0 { base[stored] = acc; stored += 1 }
            precondition(stored <= wordCapacity, "Rice stream longer than its bound")
            initialized = stored
        }
        return (words, written)
    }

    /// Decodes exactly `count` slots from `stream`, checking every slot is below `slotCount`.
    /// - Throws: ``QKDError/Code/ppMalformed`` if the stream ends early, a slot is out of range,
    ///   or bits are left over.
    static func decode(_ stream: BitVector, count: Int, parameter r: Int, slotCount: UInt64) throws -> [UInt64] {
        // Each code takes at least r + 1 bits: check before allocating (STYLE.md, "Codecs").
        guard count == 0 || stream.count / (r + 1) >= count else {
            throw QKDError(.ppMalformed, "detection report: \(count) positions cannot fit in \(stream.count) Rice-coded bits with parameter \(r)")
        }
        // The batch loop below relies on slots staying far from 2^64 (section 2.2 caps slotCount
        // at 2^44), so that a window's gaps cannot wrap `next` around.
        guard slotCount <= UInt64(1) << 62 else {
            throw QKDError(.ppMalformed, "detection report: slot count \(slotCount) is out of range")
        }
        var finalPosition = 0
        let total = stream.count
        let lowMask: UInt64 = r == 0 ? 0 : (UInt64(1) << UInt64(r)) &- 1
        let result = try [UInt64](unsafeUninitializedCapacity: count) { out, initialized in
            try stream.words.withUnsafeBufferPointer { w in
                let dst = out.baseAddress
                // Locals, not captured variables: the loop keeps them in registers.
                var position = 0
                var next: UInt64 = 0
                defer { finalPosition = position }
                var i = 0
                while i < count {
                    if position + 64 <= total {
                        // Batch: load the 64 bits at `position` once and take every code that lies
                        // wholly inside them from the register; the loop-carried chain is then
                        // not, count-trailing-zeros, shift, instead of a load per code.
                        let wi = position >> 6, shift = UInt64(position & 63)
                        var window = w[wi] >> shift
                        if shift != 0 { window |= w[wi + 1] << (64 - shift) }
                        var avail = 64
                        var slot = next
                        while i < count {
                            let ones = (~window).trailingZeroBitCount
                            let length = ones &+ 1 &+ r
                            if length > avail { break }
                            // Masking shifts: ones + 1 = 64 only if r = 0 (lowMask = 0), and
                            // after length = 64 the window is never read again (avail = 0).
                            let low = (window &>> UInt64(ones + 1)) & lowMask
                            window = window &>> UInt64(length)
                            avail &-= length
                            slot = next &+ ((UInt64(ones) &<< UInt64(r)) | low)
                            dst![i] = slot
                            next = slot &+ 1
                            i &+= 1
                        }
                        // Slots increase, so checking the last of the batch checks them all; a
                        // batch adds less than 2^63 (64 bits of codes), so nothing wrapped.
                        guard next <= slotCount else {
                            throw QKDError(.ppMalformed, "detection report: slot \(slot) is not below the slot count \(slotCount)")
                        }
                        position += 64 - avail
                        if avail < 64 { continue }
                    }
                    // One code that does not fit a full window (a long unary part, or the end of
                    // the stream): read it piece by piece with every check.
                    var q: UInt64 = 0
                    while true {
                        guard position < total else {
                            throw QKDError(.ppMalformed, "detection report: Rice stream ends inside a code")
                        }
                        let word = w[position >> 6] >> UInt64(position & 63)
                        let available = min(64 - (position & 63), total - position)
                        let ones = (~word).trailingZeroBitCount
                        if ones < available {
                            q &+= UInt64(ones)
                            position += ones + 1
                            break
                        }
                        q &+= UInt64(available)
                        position += available
                        guard q <= slotCount else {
                            throw QKDError(.ppMalformed, "detection report: a gap exceeds the slot count \(slotCount)")
                        }
                    }
                    guard position + r <= total else {
                        throw QKDError(.ppMalformed, "detection report: Rice stream ends inside a code")
                    }
                    var low: UInt64 = 0
                    if r > 0 {
                        let shift = UInt64(position & 63)
                        low = w[position >> 6] >> shift
                        if Int(shift) + r > 64 { low |= w[(position >> 6) + 1] << (64 - shift) }
                        low &= lowMask
                        position += r
                    }
                    guard q <= (slotCount >> UInt64(r)) else {
                        throw QKDError(.ppMalformed, "detection report: a gap exceeds the slot count \(slotCount)")
                    }
                    let slot = next &+ ((q << UInt64(r)) | low)
                    guard slot >= next, slot < slotCount else {
                        throw QKDError(.ppMalformed, "detection report: slot \(slot) is not below the slot count \(slotCount)")
                    }
                    dst![i] = slot
                    next = slot &+ 1
                    i += 1
                }
            }
            initialized = count
        }
        guard finalPosition == total else {
            throw QKDError(.ppMalformed, "detection report: \(total - finalPosition) bits left after the last Rice code")
        }
        return result
    }
}

extension Double {
    /// floor(log2(self)) for self >= 1.
    var log2Floor: Int { Int(self.exponent) }
}
