import QKDCrypto

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
/// link carries photons.
public struct PulseFrame: Sendable, Equatable {
    /// The round the pulses belong to (the same id as the post-processing round).
    public var roundID: UInt64
    /// Slots in the round.
    public var slotCount: UInt32
    /// The slots a photon arrived in, strictly increasing, below `slotCount`.
    public var slots: [UInt32]
    /// The basis each photon carries (true = X).
    public var bases: [Bool]
    /// The bit each photon carries.
    public var bits: [Bool]

    /// Creates a frame.
    /// - Parameters:
    ///   - roundID: the round.
    ///   - slotCount: slots in the round.
    ///   - slots: strictly increasing photon slots.
    ///   - bases: one basis per photon.
    ///   - bits: one bit per photon.
    public init(roundID: UInt64, slotCount: UInt32, slots: [UInt32], bases: [Bool], bits: [Bool]) {
        precondition(slots.count == bases.count && bases.count == bits.count, "one basis and bit per photon")
        self.roundID = roundID
        self.slotCount = slotCount
        self.slots = slots
        self.bases = bases
        self.bits = bits
    }

    /// The format version.
    public static let version: UInt8 = 1
    /// The frame type of pulse data.
    public static let typePulses: UInt8 = 1

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
        for s in slots { appendBE(s, &out) }
        for flags in [bases, bits] {
            var packed = [UInt8](repeating: 0, count: bitmap)
            for (i, f) in flags.enumerated() where f { packed[i >> 3] |= 0x80 >> UInt8(i & 7) }
            out.append(contentsOf: packed)
        }
    }

    /// Decodes one frame body (without its length prefix).
    /// - Parameter body: the body bytes.
    /// - Throws: ``QKDError/Code/nodeMalformed`` for a wrong version or type, a length that does
    ///   not match the photon count, slots out of order or out of range, or padding bits set.
    public init(decoding body: ArraySlice<UInt8>) throws {
        var r = Reader(body)
        let version = try r.u8()
        guard version == Self.version else {
            throw QKDError(.nodeMalformed, "quantum-link frame version \(version); this node speaks version 1 (Spec/quantum-link.md)")
        }
        let type = try r.u8()
        guard type == Self.typePulses else { throw QKDError(.nodeMalformed, "unknown quantum-link frame type \(type)") }
        roundID = try r.u64()
        slotCount = try r.u32()
        guard slotCount <= QuantumLinkLimits.maxSlots else {
            throw QKDError(.nodeMalformed, "a round of \(slotCount) slots exceeds the \(QuantumLinkLimits.maxSlots)-slot limit")
        }
        let n = Int(try r.u32())
        guard n <= Int(slotCount) else { throw QKDError(.nodeMalformed, "\(n) photons in a round of \(slotCount) slots") }
        let bitmap = (n + 7) / 8
        guard r.remaining == 4 * n + 2 * bitmap else {
            throw QKDError(.nodeMalformed, "a pulse frame for \(n) photons must carry \(4 * n + 2 * bitmap) more bytes, it carries \(r.remaining)")
        }
        var slots = [UInt32]()
        slots.reserveCapacity(n)
        var previous: UInt32? = nil
        for _ in 0..<n {
            let s = try r.u32()
            guard s < slotCount, previous.map({ s > $0 }) ?? true else {
                throw QKDError(.nodeMalformed, "photon slots must increase strictly and stay below \(slotCount)")
            }
            slots.append(s)
            previous = s
        }
        var flags: [[Bool]] = []
        for _ in 0..<2 {
            let packed = try r.bytes(bitmap)
            if n & 7 != 0, packed.last! & UInt8(0xFF >> UInt8(n & 7)) != 0 {
                throw QKDError(.nodeMalformed, "padding bits of a pulse bitmap are set")
            }
            flags.append((0..<n).map { packed[packed.startIndex + ($0 >> 3)] & (0x80 >> UInt8($0 & 7)) != 0 })
        }
        self.slots = slots
        bases = flags[0]
        bits = flags[1]
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
