import QKDCrypto

/// Byte offsets of frame format version 1 (Spec/wire.md section 2, "Layout"). Every integer is
/// big-endian.
enum WireLayout {
    /// u32: bytes after this field = 28 + payload length + tag length.
    static let lengthOffset = 0
    static let versionOffset = 4
    static let typeOffset = 5
    static let flagsOffset = 6
    static let keyKindOffset = 7
    /// u64, per direction.
    static let sequenceOffset = 8
    /// u32, hash-key epoch.
    static let epochOffset = 16
    /// u64, index of a 16-byte pad in the sender's outbound pad stream.
    static let slotOffset = 20
    /// u32.
    static let payloadLengthOffset = 28
    /// The fixed header: offsets 0 through 31. The payload starts here.
    static let headerByteCount = 32
    /// Header bytes counted by the length field (all but the length field itself).
    static let headerBytesAfterLength = headerByteCount - 4
    /// The length field is the first thing read; the decoder needs this many bytes to check a
    /// frame's size (Spec/wire.md section 5, checks 1 and 2).
    static let lengthFieldByteCount = 4

    /// Flags bit 0: this round-transcript frame closes the round and carries the round's tag.
    static let flagRoundClose: UInt8 = 0x01
    /// Every other flags bit is reserved and must be zero in version 1.
    static let reservedFlagsMask: UInt8 = ~flagRoundClose

    /// Key kinds (Spec/wire.md section 3.3).
    static let keyKindNone: UInt8 = 0
    static let keyKindPadSlot: UInt8 = 1
    static let keyKindRound: UInt8 = 2
}

/// What a frame carries (Spec/wire.md section 3.1). Unknown values are a decoding error
/// (``QKDError/Code/frameUnknownType``), never a crash.
public enum FrameType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// Bootstrap and resume handshake messages.
    case handshake = 0x01
    /// An alert: the sender reports an error and usually closes the session.
    case alert = 0x02
    /// Session control: key rotation, acknowledgements, close.
    case control = 0x03
    /// A post-processing (BB84) payload: sifting, estimation, reconciliation, verification.
    case data = 0x04

    /// "handshake", "alert", "control" or "data".
    public var description: String {
        switch self {
        case .handshake: "handshake"
        case .alert: "alert"
        case .control: "control"
        case .data: "data"
        }
    }
}

/// Which key authenticates a frame (Spec/wire.md section 3.3): the key kind byte, the
/// ROUND_CLOSE flag, the epoch and the pad slot, as one value so that contradictory combinations
/// cannot be built.
public enum KeyReference: Hashable, Sendable, CustomStringConvertible {
    /// Not authenticated by the frame layer: no tag; epoch and slot are 0 on the wire. (Before the
    /// session has keys, or for an alert that cannot be authenticated.)
    case none
    /// Authenticated on its own: a 16-byte tag under the hash key of `epoch` and the pad at
    /// `slot` of the sender's outbound pad stream.
    case padSlot(epoch: UInt32, slot: UInt64)
    /// Part of a round transcript under the hash key of `epoch`: no tag of its own; the round's
    /// closing frame authenticates it (Spec/wire.md section 6.2). Slot is 0 on the wire.
    case roundTranscript(epoch: UInt32)
    /// Closes a round transcript (ROUND_CLOSE): carries the round's 16-byte tag, sealed with the
    /// pad at `slot`.
    case roundClose(epoch: UInt32, slot: UInt64)

    /// The key-kind byte.
    var kind: UInt8 {
        switch self {
        case .none: WireLayout.keyKindNone
        case .padSlot: WireLayout.keyKindPadSlot
        case .roundTranscript, .roundClose: WireLayout.keyKindRound
        }
    }

    /// The flags byte this reference implies.
    var flags: UInt8 {
        if case .roundClose = self { return WireLayout.flagRoundClose }
        return 0
    }

    /// The hash-key epoch (0 for ``none``).
    public var epoch: UInt32 {
        switch self {
        case .none: 0
        case .padSlot(let epoch, _), .roundTranscript(let epoch), .roundClose(let epoch, _): epoch
        }
    }

    /// The pad slot, for the references that consume a pad; nil otherwise.
    public var slot: UInt64? {
        switch self {
        case .none, .roundTranscript: nil
        case .padSlot(_, let slot), .roundClose(_, let slot): slot
        }
    }

    /// Bytes of tag a frame with this reference carries: 16 or 0.
    public var tagByteCount: Int { slot == nil ? 0 : MACSuite.tagByteCount }

    /// Whether the frame belongs to a round transcript (key kind 2).
    public var isRoundTranscript: Bool { kind == WireLayout.keyKindRound }

    /// A short form for logs, e.g. "pad(epoch 1, slot 7)".
    public var description: String {
        switch self {
        case .none: "none"
        case .padSlot(let e, let s): "pad(epoch \(e), slot \(s))"
        case .roundTranscript(let e): "round(epoch \(e))"
        case .roundClose(let e, let s): "round-close(epoch \(e), slot \(s))"
        }
    }
}

/// The 32-byte header of a frame (Spec/wire.md section 2). The length field at offset 0 is not
/// stored: it is always `28 + payloadLength + tag length`, and the decoder rejects any other value.
///
/// Because every field is checked on decoding (no reserved bit, no free epoch or slot, the
/// length field fixed by the other fields), each header value has exactly one encoding: decoding
/// and re-encoding gives back the received bytes (Spec/wire.md section 5, "Canonical encoding").
public struct FrameHeader: Hashable, Sendable, CustomStringConvertible {
    /// The frame format version this module reads and writes.
    public static let version: UInt8 = 1
    /// Bytes of the header.
    public static let byteCount = WireLayout.headerByteCount

    /// What the frame carries.
    public var type: FrameType
    /// The sender's sequence number in this direction (Spec/wire.md section 3.2).
    public var sequenceNumber: UInt64
    /// Which key authenticates the frame.
    public var keyReference: KeyReference
    /// Bytes of payload, at most `UInt32.max` (the limits keep it far lower).
    public var payloadLength: Int

    /// Creates a header.
    /// - Parameters:
    ///   - type: what the frame carries.
    ///   - sequenceNumber: the sender's sequence number in this direction.
    ///   - keyReference: which key authenticates the frame.
    ///   - payloadLength: bytes of payload; must fit in a u32.
    public init(type: FrameType, sequenceNumber: UInt64, keyReference: KeyReference, payloadLength: Int) {
        precondition(payloadLength >= 0 && payloadLength <= Int(UInt32.max) - WireLayout.headerBytesAfterLength - MACSuite.tagByteCount,
                     "payload length out of range for a frame")
        self.type = type
        self.sequenceNumber = sequenceNumber
        self.keyReference = keyReference
        self.payloadLength = payloadLength
    }

    /// Bytes of tag after the payload: 16 or 0.
    public var tagByteCount: Int { keyReference.tagByteCount }

    /// Bytes of the whole frame on the wire, length field and tag included.
    public var frameByteCount: Int { WireLayout.headerByteCount + payloadLength + tagByteCount }

    /// Decodes and checks a header (Spec/wire.md section 5, checks 1 to 8), from the first 32
    /// bytes of `bytes`. It does not need the payload: the checks depend on the header alone.
    /// - Parameters:
    ///   - bytes: at least the 32 header bytes of a frame.
    ///   - limits: the size limit to check the length field against.
    /// - Throws: the first failing check's error, in the order of Spec/wire.md section 5;
    ///   ``QKDError/Code/frameTruncated`` if `bytes` holds fewer than 32 bytes.
    public init(decoding bytes: UnsafeRawBufferPointer, limits: FrameLimits = .default) throws {
        guard bytes.count >= WireLayout.lengthFieldByteCount else {
            throw QKDError(.frameTruncated, "a frame header is \(WireLayout.headerByteCount) bytes; only \(bytes.count) given")
        }
        let length = try FrameHeader.checkLengthField(bytes, limits: limits)
        guard bytes.count >= WireLayout.headerByteCount else {
            throw QKDError(.frameTruncated, "a frame header is \(WireLayout.headerByteCount) bytes; only \(bytes.count) given")
        }
        self = try FrameHeader.decodeFields(bytes, lengthField: length)
    }

    /// Decodes and checks a header; see the raw-buffer `init(decoding:limits:)`.
    /// - Parameters:
    ///   - bytes: at least the 32 header bytes of a frame.
    ///   - limits: the size limit.
    /// - Throws: the first failing check's error.
    public init(decoding bytes: [UInt8], limits: FrameLimits = .default) throws {
        self = try bytes.withUnsafeBytes { try FrameHeader(decoding: $0, limits: limits) }
    }

    /// Appends the 32 header bytes, length field included, to `output`.
    /// - Parameter output: the buffer to append to.
    public func encode(into output: inout [UInt8]) {
        withEncodedBytes { output.append(contentsOf: $0) }
    }

    /// Calls `body` with the 32 encoded header bytes, built on the stack (the verifier hashes
    /// them without allocating).
    /// - Parameter body: reads the bytes; they must not escape.
    /// - Returns: what `body` returns.
    func withEncodedBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &words) { write(to: $0) }
        return try withUnsafeBytes(of: &words, body)
    }

    /// Writes the 32 header bytes at the start of `p` (which holds at least 32 bytes).
    func write(to p: UnsafeMutableRawBufferPointer) {
        let length = UInt32(WireLayout.headerBytesAfterLength + payloadLength + tagByteCount)
        p.storeBytes(of: length.bigEndian, toByteOffset: WireLayout.lengthOffset, as: UInt32.self)
        p[WireLayout.versionOffset] = FrameHeader.version
        p[WireLayout.typeOffset] = type.rawValue
        p[WireLayout.flagsOffset] = keyReference.flags
        p[WireLayout.keyKindOffset] = keyReference.kind
        p.storeBytes(of: sequenceNumber.bigEndian, toByteOffset: WireLayout.sequenceOffset, as: UInt64.self)
        p.storeBytes(of: keyReference.epoch.bigEndian, toByteOffset: WireLayout.epochOffset, as: UInt32.self)
        p.storeBytes(of: (keyReference.slot ?? 0).bigEndian, toByteOffset: WireLayout.slotOffset, as: UInt64.self)
        p.storeBytes(of: UInt32(payloadLength).bigEndian, toByteOffset: WireLayout.payloadLengthOffset, as: UInt32.self)
    }

    /// Checks 1 and 2 of Spec/wire.md section 5, on the length field alone (the first 4 bytes of
    /// `p`): run before anything else of the frame is buffered.
    /// - Returns: the length field's value.
    static func checkLengthField(_ p: UnsafeRawBufferPointer, limits: FrameLimits) throws -> Int {
        let length = Int(UInt32(bigEndian: p.loadUnaligned(fromByteOffset: WireLayout.lengthOffset, as: UInt32.self)))
        guard length >= WireLayout.headerBytesAfterLength else {
            throw QKDError(.frameTruncated, "the frame's length field says \(length) bytes follow it, fewer than the \(WireLayout.headerBytesAfterLength) the rest of the header needs; the peer's framing is broken, close the connection")
        }
        guard length <= limits.maxFrameByteCount - WireLayout.lengthFieldByteCount else {
            throw QKDError(.frameOversize, "the frame's length field announces \(length + WireLayout.lengthFieldByteCount) bytes, more than the limit of \(limits.maxFrameByteCount); the peer must split its payloads (Spec/wire.md section 4)")
        }
        return length
    }

    /// Checks 3 to 8 of Spec/wire.md section 5, in that order, on the 32 header bytes at the start
    /// of `p`, given the length field already checked by ``checkLengthField(_:limits:)``.
    static func decodeFields(_ p: UnsafeRawBufferPointer, lengthField length: Int) throws -> FrameHeader {
        let version = p[WireLayout.versionOffset]
        guard version == FrameHeader.version else {
            throw QKDError(.frameBadVersion, "the peer sent frame format version \(version); this node speaks version \(FrameHeader.version) only, upgrade one side")
        }
        let typeByte = p[WireLayout.typeOffset]
        guard let type = FrameType(rawValue: typeByte) else {
            throw QKDError(.frameUnknownType, "frame type \(typeByte) is not defined in frame format version 1 (Spec/wire.md section 3.1)")
        }
        let flags = p[WireLayout.flagsOffset]
        guard flags & WireLayout.reservedFlagsMask == 0 else {
            throw QKDError(.frameReservedBitsSet, "reserved flag bits are set (flags 0x\(String(flags, radix: 16))); version 1 defines bit 0 only")
        }
        let kind = p[WireLayout.keyKindOffset]
        guard kind <= WireLayout.keyKindRound else {
            throw QKDError(.frameUnknownKeyKind, "key kind \(kind) is not defined in frame format version 1 (Spec/wire.md section 3.3)")
        }
        let sequence = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: WireLayout.sequenceOffset, as: UInt64.self))
        let epoch = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: WireLayout.epochOffset, as: UInt32.self))
        let slot = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: WireLayout.slotOffset, as: UInt64.self))
        let payloadLength = Int(UInt32(bigEndian: p.loadUnaligned(fromByteOffset: WireLayout.payloadLengthOffset, as: UInt32.self)))
        let closing = flags & WireLayout.flagRoundClose != 0

        let reference: KeyReference
        switch kind {
        case WireLayout.keyKindNone:
            guard !closing, epoch == 0, slot == 0 else {
                throw QKDError(.frameKeyReferenceMismatch, "a frame without a key (kind 0) must have epoch 0, slot 0 and no ROUND_CLOSE flag; got epoch \(epoch), slot \(slot), flags 0x\(String(flags, radix: 16))")
            }
            reference = .none
        case WireLayout.keyKindPadSlot:
            guard !closing else {
                throw QKDError(.frameKeyReferenceMismatch, "ROUND_CLOSE is set on a pad-slot frame (kind 1); only round-transcript frames (kind 2) close a round")
            }
            reference = .padSlot(epoch: epoch, slot: slot)
        default:  // keyKindRound, the only value left after the check above.
            if closing {
                reference = .roundClose(epoch: epoch, slot: slot)
            } else {
                guard slot == 0 else {
                    throw QKDError(.frameKeyReferenceMismatch, "an open round-transcript frame (kind 2 without ROUND_CLOSE) must have slot 0, got \(slot)")
                }
                reference = .roundTranscript(epoch: epoch)
            }
        }

        // Check 8: what the length field leaves after the payload must be exactly the tag.
        let tagLength = reference.tagByteCount
        let rest = length - WireLayout.headerBytesAfterLength - payloadLength
        if rest != tagLength {
            if rest < 0 {
                throw QKDError(.frameTruncated, "the payload length \(payloadLength) runs past the end of the frame (length field \(length)); the peer's framing is broken")
            } else if rest == 0 || rest == MACSuite.tagByteCount {
                throw QKDError(.frameTagLengthMismatch, "the key reference \(reference) calls for a \(tagLength)-byte tag, but the frame carries \(rest) bytes after its payload")
            } else if rest < tagLength {
                throw QKDError(.frameTruncated, "the frame's tag is cut to \(rest) of \(tagLength) bytes")
            } else {
                throw QKDError(.frameTrailingGarbage, "\(rest - tagLength) unexpected bytes follow the \(tagLength == 0 ? "payload" : "tag") inside the frame")
            }
        }
        return FrameHeader(type: type, sequenceNumber: sequence, keyReference: reference, payloadLength: payloadLength)
    }

    /// A short form for logs: "data #7 pad(epoch 1, slot 7) 1024 B".
    public var description: String {
        "\(type) #\(sequenceNumber) \(keyReference) \(payloadLength) B"
    }
}
