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

    /// Encodes sorted, distinct slots.
    static func encode(_ slots: UnsafeBufferPointer<UInt64>, parameter r: Int) -> BitVector {
        var out = BitVector(reservingCapacity: slots.count * (r + 2))
        var previous: UInt64 = 0  // slot[-1] + 1
        let lowMask: UInt64 = r == 0 ? 0 : (UInt64(1) << UInt64(r)) &- 1
        for s in slots {
            let gap = s &- previous
            previous = s &+ 1
            var q = gap >> UInt64(r)
            if Int(q) + 1 + r <= 64 {
                // One write: q ones, a zero, then the r low bits.
                let code = ((UInt64(1) << q) &- 1) | ((gap & lowMask) << (q + 1))
                out.append(bits: code, width: Int(q) + 1 + r)
                continue
            }
            while q >= 63 { out.append(bits: ~UInt64(0), width: 63); q -= 63 }
            // q ones then a zero: the low q+1 bits of (2^q - 1).
            out.append(bits: (UInt64(1) << q) &- 1, width: Int(q) + 1)
            out.append(bits: gap & lowMask, width: r)
        }
        return out
    }

    /// Decodes exactly `count` slots from `stream`, checking every slot is below `slotCount`.
    /// - Throws: ``QKDError/Code/ppMalformed`` if the stream ends early, a slot is out of range,
    ///   or bits are left over.
    static func decode(_ stream: BitVector, count: Int, parameter r: Int, slotCount: UInt64) throws -> [UInt64] {
        // Each code takes at least r + 1 bits: check before allocating (STYLE.md, "Codecs").
        guard count == 0 || stream.count / (r + 1) >= count else {
            throw QKDError(.ppMalformed, "detection report: \(count) positions cannot fit in \(stream.count) Rice-coded bits with parameter \(r)")
        }
        var result = [UInt64]()
        result.reserveCapacity(count)
        var position = 0
        var next: UInt64 = 0
        let total = stream.count
        try stream.words.withUnsafeBufferPointer { w in
            let wordCount = w.count
            let lowMask: UInt64 = r == 0 ? 0 : (UInt64(1) << UInt64(r)) &- 1
            for _ in 0..<count {
                // Fast path: the whole code lies in the 64-bit window at `position`.
                let wi = position >> 6, shift = UInt64(position & 63)
                var window = wi < wordCount ? w[wi] >> shift : 0
                if shift != 0, wi + 1 < wordCount { window |= w[wi + 1] << (64 - shift) }
                let ones = (~window).trailingZeroBitCount
                if ones + 1 + r <= 64, position + ones + 1 + r <= total {
                    let q = UInt64(ones)
                    guard q <= (slotCount >> UInt64(r)) else {
                        throw QKDError(.ppMalformed, "detection report: a gap exceeds the slot count \(slotCount)")
                    }
                    let low = (window >> (q + 1)) & lowMask
                    position += ones + 1 + r
                    let slot = next &+ ((q << UInt64(r)) | low)
                    guard slot >= next, slot < slotCount else {
                        throw QKDError(.ppMalformed, "detection report: slot \(slot) is not below the slot count \(slotCount)")
                    }
                    result.append(slot)
                    next = slot &+ 1
                    continue
                }
                // Unary part: count ones up to the next zero.
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
                    low &= (UInt64(1) << UInt64(r)) &- 1
                    position += r
                }
                guard q <= (slotCount >> UInt64(r)) else {
                    throw QKDError(.ppMalformed, "detection report: a gap exceeds the slot count \(slotCount)")
                }
                let slot = next &+ ((q << UInt64(r)) | low)
                guard slot >= next, slot < slotCount else {
                    throw QKDError(.ppMalformed, "detection report: slot \(slot) is not below the slot count \(slotCount)")
                }
                result.append(slot)
                next = slot &+ 1
            }
        }
        guard position == total else {
            throw QKDError(.ppMalformed, "detection report: \(total - position) bits left after the last Rice code")
        }
        return result
    }
}

extension Double {
    /// floor(log2(self)) for self >= 1.
    var log2Floor: Int { Int(self.exponent) }
}
