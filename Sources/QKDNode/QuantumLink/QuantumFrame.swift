import QKDCrypto
public import QKDSimulation

/// Limits of the quantum-link format (Spec/quantum-link.md section 3).
public enum QuantumLinkLimits {
    /// Largest number of slots in one round: 2^27, the post-processing round limit
    /// (Spec/postprocessing.md section 2.2).
    public static let maxSlots = 1 << 27
    /// Largest frame body in bytes: 4 bytes per photon slot plus two bitmaps for 2^27 photons
    /// would be 600 MiB; we cap one frame at 64 MiB and check before allocating.
    public static let maxBodyByteCount = 64 << 20
    /// The fixed part of a body: version, type, round, slot count, photon count.
    static let fixedBodyByteCount = 1 + 1 + 8 + 4 + 4
}

/// One round's photons at Bob's detector, as Alice's simulated channel sends them to Bob's
/// simulated detector (Spec/quantum-link.md section 2). Only a simulation carries this: a real
/// link carries photons. The photons are the channel's ``QKDSimulation/Arrivals`` as they are,
/// bases and bits packed (bit i of word i >> 6 belongs to photon i), so that coding a frame of
/// millions of photons is a few passes over words, not a loop per photon.
public struct PulseFrame: Sendable, Equatable {
    /// The round the pulses belong to (the same id as the post-processing round).
    public var roundID: UInt64
    /// The photons, with the round's slot count.
    public let arrivals: Arrivals

    /// Creates a frame.
    /// - Parameters:
    ///   - roundID: the round.
    ///   - arrivals: the photons that reached the detector (at most 2^32 - 1 slots).
    public init(roundID: UInt64, arrivals: Arrivals) {
        precondition(arrivals.roundSlotCount <= Int(UInt32.max), "a pulse frame's slot count is a u32")
        self.roundID = roundID
        self.arrivals = arrivals
    }

    /// Creates a frame from packed bases and bits (``QKDSimulation/Arrivals/init(roundSlotCount:slots:basisWords:bitWords:)``).
    /// - Parameters:
    ///   - roundID: the round.
    ///   - slotCount: slots in the round.
    ///   - slots: strictly increasing photon slots.
    ///   - basisWords: ceil(n / 64) words, bit i = photon i's basis (1 = X), padding zero.
    ///   - bitWords: ceil(n / 64) words, bit i = photon i's bit, padding zero.
    public init(roundID: UInt64, slotCount: UInt32, slots: [UInt32], basisWords: [UInt64], bitWords: [UInt64]) {
        self.init(roundID: roundID, arrivals: Arrivals(roundSlotCount: Int(slotCount), slots: slots, basisWords: basisWords, bitWords: bitWords))
    }

    /// Creates a frame from one basis and bit per photon.
    /// - Parameters:
    ///   - roundID: the round.
    ///   - slotCount: slots in the round.
    ///   - slots: strictly increasing photon slots.
    ///   - bases: one basis per photon (true = X).
    ///   - bits: one bit per photon.
    public init(roundID: UInt64, slotCount: UInt32, slots: [UInt32], bases: [Bool], bits: [Bool]) {
        self.init(roundID: roundID, arrivals: Arrivals(roundSlotCount: Int(slotCount), photonSlots: slots.map { UInt64($0) },
                                                       photonBases: bases, photonBits: bits))
    }

    /// Slots in the round.
    public var slotCount: UInt32 { UInt32(arrivals.roundSlotCount) }
    /// The slots a photon arrived in, strictly increasing, below `slotCount`.
    public var slots: [UInt32] { arrivals.packedSlots }
    /// The basis each photon carries, packed (1 = X).
    public var basisWords: [UInt64] { arrivals.packedBases }
    /// The bit each photon carries, packed.
    public var bitWords: [UInt64] { arrivals.packedBits }
    /// The basis each photon carries (true = X), one value each.
    public var bases: [Bool] { arrivals.photonBases }
    /// The bit each photon carries, one value each.
    public var bits: [Bool] { arrivals.photonBits }

    /// The format version.
    public static let version: UInt8 = 1
    /// The frame type of pulse data.
    public static let typePulses: UInt8 = 1

    /// Reverses the bit order inside each byte of `x`: a packed word's bytes (least significant
    /// bit first) become the wire bitmap's bytes (most significant bit first), and back.
    @inline(__always)
    static func reverseBitsInBytes(_ x: UInt64) -> UInt64 {
        var x = x
        x = ((x >> 1) & 0x5555_5555_5555_5555) | ((x & 0x5555_5555_5555_5555) << 1)
        x = ((x >> 2) & 0x3333_3333_3333_3333) | ((x & 0x3333_3333_3333_3333) << 2)
        return ((x >> 4) & 0x0F0F_0F0F_0F0F_0F0F) | ((x & 0x0F0F_0F0F_0F0F_0F0F) << 4)
    }

    /// Appends the length-prefixed frame (Spec/quantum-link.md section 2).
    /// - Parameter out: the buffer.
    public func encode(into out: inout [UInt8]) {
        let n = slots.count
        let bitmap = (n + 7) / 8
        let body = QuantumLinkLimits.fixedBodyByteCount + 4 * n + 2 * bitmap
        out.reserveCapacity(out.count + 4 + body)
        appendBE(UInt32(body), &out)
        out.append(Self.version)
        out.append(Self.typePulses)
        appendBE(roundID, &out)
        appendBE(slotCount, &out)
        appendBE(UInt32(n), &out)
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: 4 * n + 2 * bitmap))
        out.withUnsafeMutableBytes { raw in
            let dst = UnsafeMutableRawBufferPointer(rebasing: raw[start...])
            slots.withUnsafeBufferPointer { src in
                for i in 0..<n { dst.storeBytes(of: src[i].bigEndian, toByteOffset: 4 * i, as: UInt32.self) }
            }
            for (k, words) in [basisWords, bitWords].enumerated() {
                let offset = 4 * n + k * bitmap
                for w in words.indices {
                    let bytes = Swift.min(8, bitmap - 8 * w)
                    let v = Self.reverseBitsInBytes(words[w]).littleEndian
                    if bytes == 8 {
                        dst.storeBytes(of: v, toByteOffset: offset + 8 * w, as: UInt64.self)
                    } else {
                        for b in 0..<bytes { dst[offset + 8 * w + b] = UInt8(truncatingIfNeeded: v >> UInt64(8 * b)) }
                    }
                }
            }
        }
    }

    /// Decodes a frame body (without its length prefix).
    /// - Parameter body: the body.
    /// - Throws: `node.malformed` for a version other than 1, an unknown type, a slot count over
    ///   the limit, a body whose size does not match its photon count, slots out of order or
    ///   out of range, or set padding bits.
    public init(decoding body: ArraySlice<UInt8>) throws {
        var r = Reader(body)
        let version = try r.u8()
        guard version == Self.version else {
            throw QKDError(.nodeMalformed, "quantum-link frame version \(version); this node speaks version 1 (Spec/quantum-link.md)")
        }
        let type = try r.u8()
        guard type == Self.typePulses else { throw QKDError(.nodeMalformed, "unknown quantum-link frame type \(type)") }
        let roundID = try r.u64()
        let slotCount = try r.u32()
        guard slotCount <= QuantumLinkLimits.maxSlots else {
            throw QKDError(.nodeMalformed, "a round of \(slotCount) slots exceeds the \(QuantumLinkLimits.maxSlots)-slot limit")
        }
        let n = Int(try r.u32())
        guard n <= Int(slotCount) else { throw QKDError(.nodeMalformed, "\(n) photons in a round of \(slotCount) slots") }
        let bitmap = (n + 7) / 8
        guard r.remaining == 4 * n + 2 * bitmap else {
            throw QKDError(.nodeMalformed, "a pulse frame for \(n) photons must carry \(4 * n + 2 * bitmap) more bytes, it carries \(r.remaining)")
        }
        let rest = try r.bytes(4 * n + 2 * bitmap)
        let limit = slotCount
        let words = (n + 63) >> 6
        var ordered = true
        var basisWords = [UInt64](repeating: 0, count: words), bitWords = [UInt64](repeating: 0, count: words)
        let slots = rest.withUnsafeBytes { raw -> [UInt32] in
            let decoded = [UInt32](unsafeUninitializedCapacity: n) { out, count in
                // Strictly increasing and below the slot count: each slot above the previous
                // one (the first above "-1"), the last below the limit.
                var previous: Int64 = -1
                for i in 0..<n {
                    let s = UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
                    ordered = ordered && Int64(s) > previous
                    previous = Int64(s)
                    out[i] = s
                }
                ordered = ordered && (n == 0 || previous < Int64(limit))
                count = n
            }
            for (k, offset) in [4 * n, 4 * n + bitmap].enumerated() {
                for w in 0..<words {
                    let bytes = Swift.min(8, bitmap - 8 * w)
                    var v: UInt64 = 0
                    if bytes == 8 {
                        v = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 8 * w, as: UInt64.self))
                    } else {
                        for b in 0..<bytes { v |= UInt64(raw[offset + 8 * w + b]) << UInt64(8 * b) }
                    }
                    if k == 0 { basisWords[w] = Self.reverseBitsInBytes(v) } else { bitWords[w] = Self.reverseBitsInBytes(v) }
                }
            }
            return decoded
        }
        guard ordered else {
            throw QKDError(.nodeMalformed, "photon slots must increase strictly and stay below \(slotCount)")
        }
        if n & 63 != 0 {
            let tail = ~((UInt64(1) << UInt64(n & 63)) - 1)
            guard basisWords[words - 1] & tail == 0, bitWords[words - 1] & tail == 0 else {
                throw QKDError(.nodeMalformed, "padding bits of a pulse bitmap are set")
            }
        }
        self.init(roundID: roundID, slotCount: slotCount, slots: slots, basisWords: basisWords, bitWords: bitWords)
    }
}

/// The incremental parser of the quantum link (STYLE.md: the parser is a separate type with
/// `append` and `nextFrame`).
public struct PulseFrameParser: Sendable {
    private var buffer: [UInt8] = []
    private var start = 0

    /// Creates an empty parser.
    public init() {}

    /// Appends received bytes.
    /// - Parameter bytes: the next bytes of the stream.
    public mutating func append(_ bytes: [UInt8]) {
        if start > 0, start == buffer.count { buffer.removeAll(keepingCapacity: true); start = 0 }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete frame, or nil if more bytes are needed.
    /// - Returns: a frame.
    /// - Throws: ``QKDError/Code/nodeMalformed`` for a length beyond the limit (checked before
    ///   any allocation) or a body that does not decode.
    public mutating func nextFrame() throws -> PulseFrame? {
        guard buffer.count - start >= 4 else { return nil }
        let length = Int(buffer[start]) << 24 | Int(buffer[start + 1]) << 16 | Int(buffer[start + 2]) << 8 | Int(buffer[start + 3])
        guard length >= QuantumLinkLimits.fixedBodyByteCount, length <= QuantumLinkLimits.maxBodyByteCount else {
            throw QKDError(.nodeMalformed, "a quantum-link frame of \(length) bytes is outside \(QuantumLinkLimits.fixedBodyByteCount)...\(QuantumLinkLimits.maxBodyByteCount) (Spec/quantum-link.md section 3)")
        }
        guard buffer.count - start >= 4 + length else { return nil }
        let frame = try PulseFrame(decoding: buffer[(start + 4)..<(start + 4 + length)])
        start += 4 + length
        if start > 1 << 20 { buffer.removeFirst(start); start = 0 }
        return frame
    }
}

func appendBE<T: FixedWidthInteger>(_ v: T, _ out: inout [UInt8]) {
    withUnsafeBytes(of: v.bigEndian) { out.append(contentsOf: $0) }
}

/// A bounds-checked big-endian reader over a slice.
struct Reader {
    private let bytes: ArraySlice<UInt8>
    private var index: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        index = bytes.startIndex
    }

    var remaining: Int { bytes.endIndex - index }

    mutating func bytes(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, remaining >= n else { throw QKDError(.nodeMalformed, "a message ends early: \(n) bytes needed, \(remaining) left") }
        defer { index += n }
        return bytes[index..<(index + n)]
    }

    mutating func u8() throws -> UInt8 { try bytes(1).first! }

    mutating func u32() throws -> UInt32 {
        try bytes(4).reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func u64() throws -> UInt64 {
        try bytes(8).reduce(0) { $0 << 8 | UInt64($1) }
    }

    func finish() throws {
        guard remaining == 0 else { throw QKDError(.nodeMalformed, "\(remaining) trailing bytes after a message") }
    }
}
