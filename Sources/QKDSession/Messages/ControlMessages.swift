import QKDCrypto

/// Where an epoch's hash key and pads come from (Spec/session.md section 2).
public enum KeySource: UInt8, Sendable, CustomStringConvertible {
    /// The session's bootstrap stream (HKDF and ChaCha20): computational.
    case bootstrap = 0
    /// The QKD pool: information-theoretic.
    case pool = 1

    /// "bootstrap" or "pool".
    public var description: String { self == .pool ? "pool" : "bootstrap" }
}

/// A session control message: the payload of a frame of type `control`
/// (Spec/session.md section 6.1). The first byte is the kind.
public enum ControlMessage: Sendable, Hashable {
    /// kind 1: from the next frame on, the sender's direction uses `epoch`, whose hash key is
    /// slot `keySlot` of `source` (Spec/session.md section 2, "Rotation").
    case rotate(epoch: UInt32, source: KeySource, keySlot: UInt64)
    /// kind 2: the receiver of frames under `epoch` asks their sender to rotate (after a
    /// verification failure).
    case rotateRequest(epoch: UInt32)
    /// kind 3: the sender closes the session gracefully.
    case close
    /// kind 4: the first frame of a round (key kind 2): starts the direction's transcript.
    case beginRound(UInt64)
    /// kind 5: the closing frame of a round (ROUND_CLOSE): carries the round's tag.
    case endRound(UInt64)
    /// kind 6: the sender verified the peer's closing tag of the round (per-frame tag).
    case roundVerified(UInt64)

    private var kind: UInt8 {
        switch self {
        case .rotate: 1
        case .rotateRequest: 2
        case .close: 3
        case .beginRound: 4
        case .endRound: 5
        case .roundVerified: 6
        }
    }

    /// Appends the encoding.
    /// - Parameter out: the buffer.
    public func encode(into out: inout [UInt8]) {
        out.append(kind)
        switch self {
        case .rotate(let epoch, let source, let keySlot):
            out.appendInteger(epoch)
            out.append(source.rawValue)
            out.appendInteger(keySlot)
        case .rotateRequest(let epoch):
            out.appendInteger(epoch)
        case .close:
            break
        case .beginRound(let round), .endRound(let round), .roundVerified(let round):
            out.appendInteger(round)
        }
    }

    /// The encoding as a new array.
    public var encoded: [UInt8] {
        var out: [UInt8] = []
        encode(into: &out)
        return out
    }

    /// Decodes a control payload.
    /// - Parameter bytes: the payload.
    /// - Throws: ``QKDError/Code/sessionMalformedControl`` for an unknown kind, a short or long
    ///   payload, or an unknown key source.
    public init(decoding bytes: ArraySlice<UInt8>) throws {
        var r = ByteReader(bytes, code: .sessionMalformedControl, what: "control message")
        let kind = try r.u8("kind")
        switch kind {
        case 1:
            let epoch = try r.integer(UInt32.self, "epoch")
            let sourceByte = try r.u8("source")
            guard let source = KeySource(rawValue: sourceByte) else { throw r.fail("unknown key source \(sourceByte)") }
            self = .rotate(epoch: epoch, source: source, keySlot: try r.integer(UInt64.self, "key_slot"))
        case 2: self = .rotateRequest(epoch: try r.integer(UInt32.self, "epoch"))
        case 3: self = .close
        case 4: self = .beginRound(try r.integer(UInt64.self, "round"))
        case 5: self = .endRound(try r.integer(UInt64.self, "round"))
        case 6: self = .roundVerified(try r.integer(UInt64.self, "round"))
        default: throw r.fail("unknown kind \(kind)")
        }
        try r.finish()
    }

    /// Decodes a control payload.
    /// - Parameter bytes: the payload.
    /// - Throws: ``QKDError/Code/sessionMalformedControl``.
    public init(decoding bytes: [UInt8]) throws { try self.init(decoding: bytes[...]) }
}

/// An alert: the payload of a frame of type `alert` (Spec/session.md section 7):
/// `u8 code, vec16 message` (UTF-8, no secrets).
public struct Alert: Sendable, Hashable {
    /// Longest message accepted, in UTF-8 bytes: enough for a sentence.
    public static let maxMessageByteCount = 1024

    /// What went wrong.
    public var code: AlertCode
    /// A human-readable sentence.
    public var message: String

    /// Creates an alert.
    /// - Parameters:
    ///   - code: the code.
    ///   - message: a sentence; cut to ``maxMessageByteCount`` bytes on encoding.
    public init(code: AlertCode, message: String) {
        self.code = code
        self.message = message
    }

    /// Appends the encoding; a longer message is cut at a character boundary.
    /// - Parameter out: the buffer.
    public func encode(into out: inout [UInt8]) {
        var text = Array(message.utf8)
        if text.count > Alert.maxMessageByteCount {
            var cut = Alert.maxMessageByteCount
            while cut > 0 && text[cut] & 0xC0 == 0x80 { cut -= 1 }  // not inside a UTF-8 sequence
            text = Array(text[0..<cut])
        }
        out.append(code.rawValue)
        out.appendVector(lengthBytes: 2, text)
    }

    /// The encoding as a new array.
    public var encoded: [UInt8] {
        var out: [UInt8] = []
        encode(into: &out)
        return out
    }

    /// Decodes an alert payload.
    /// - Parameter bytes: the payload.
    /// - Throws: ``QKDError/Code/sessionMalformedControl`` for an unknown code, a message over
    ///   the limit or not UTF-8, or trailing bytes.
    public init(decoding bytes: ArraySlice<UInt8>) throws {
        var r = ByteReader(bytes, code: .sessionMalformedControl, what: "alert")
        let raw = try r.u8("code")
        guard let code = AlertCode(rawValue: raw) else { throw r.fail("unknown alert code \(raw)") }
        let text = try r.vector(lengthBytes: 2, limit: Alert.maxMessageByteCount, "message")
        guard let message = String(validating: text, as: UTF8.self) else { throw r.fail("message is not UTF-8") }
        try r.finish()
        self.code = code
        self.message = message
    }

    /// Decodes an alert payload.
    /// - Parameter bytes: the payload.
    /// - Throws: ``QKDError/Code/sessionMalformedControl``.
    public init(decoding bytes: [UInt8]) throws { try self.init(decoding: bytes[...]) }
}
