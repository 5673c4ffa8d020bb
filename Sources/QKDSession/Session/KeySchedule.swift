import QKDCrypto
import QKDWire

/// ASCII labels of the key schedule (Spec/session.md section 5).
enum KeyScheduleLabel {
    /// HKDF info prefix of `psk-kdf` (section 5.1).
    static let pskKDF = Array("QKDChannel/1 psk-kdf".utf8)
    /// HKDF info prefix of `pki` (section 5.2).
    static let pki = Array("QKDChannel/1 pki".utf8)
    /// HKDF-Expand info prefix of the bootstrap streams, followed by the direction byte (section 5.3).
    static let bootstrapStream = Array("QKDChannel/1 bootstrap stream".utf8)
}

/// Spec/session.md sections 5.1 and 5.2: `secret = HKDF-SHA256(salt = nonce_a || nonce_b,
/// ikm = psk or the key-agreement secret, info = label || transcript hash, 32)`.
func bootstrapSecret(ikm: SecretBytes, label: [UInt8], nonceA: [UInt8], nonceB: [UInt8], transcriptHash: [UInt8]) throws -> SecretBytes {
    try KeyDerivation.hkdfSHA256(inputKeyMaterial: ikm, salt: nonceA + nonceB, info: label + transcriptHash, outputByteCount: 32)
}

/// The two epoch-0 bootstrap streams of a computational session (Spec/session.md section 5.3)
/// and the cursors that keep every slot single-use within the session.
struct BootstrapStreams {
    let outbound: ChaCha20KeyStream
    let inbound: ChaCha20KeyStream
    /// Next outbound slot never used (slot 0 is the epoch-0 hash key, slot 1 the Finished pad).
    var outboundNext: UInt64 = 1
    /// Lowest inbound slot still acceptable.
    var inboundNext: UInt64 = 1

    /// `k_d = HKDF-Expand(secret, "QKDChannel/1 bootstrap stream" || d, 32)`, one per direction.
    init(secret: SecretBytes, outbound: Direction) throws {
        func stream(_ d: Direction) throws -> ChaCha20KeyStream {
            try ChaCha20KeyStream(key: KeyDerivation.expand(pseudoRandomKey: secret, info: KeyScheduleLabel.bootstrapStream + [d.rawValue],
                                                   outputByteCount: ChaCha20KeyStream.keyByteCount))
        }
        self.outbound = try stream(outbound)
        self.inbound = try stream(outbound.reversed)
    }

    /// Bytes `[16 slot, 16 slot + 16)` of a stream.
    static func slot(_ slot: UInt64, of stream: ChaCha20KeyStream) throws -> PadBytes {
        let (offset, overflow) = slot.multipliedReportingOverflow(by: UInt64(MACSuite.padByteCount))
        guard !overflow else { throw QKDError(.sessionPoolExhausted, "bootstrap stream slot \(slot) is out of range") }
        return try stream.withBytes(at: offset, count: MACSuite.padByteCount) { PadBytes($0) }
    }
}

/// The keys of one direction under its current epoch.
struct DirectionKeys {
    var epoch: UInt32
    var source: KeySource
    var authenticator: FrameAuthenticator
    /// Tags made (outbound) or verified (inbound) under this epoch.
    var tags: UInt64 = 0

    var hashKey: HashKey { authenticator.hashKey }

    init(epoch: UInt32, source: KeySource, hashKey: HashKey, direction: Direction, sessionID: SessionID) {
        self.epoch = epoch
        self.source = source
        self.authenticator = FrameAuthenticator(hashKey: hashKey, direction: direction, sessionID: sessionID)
    }
}

/// Holds a running ``RoundTranscript`` (non-copyable) inside the copyable session state.
final class RoundTranscriptBox {
    var transcript: RoundTranscript?
    let round: UInt64
    let epoch: UInt32
    /// The last inbound round id before this one opened: restored if this round turns out to
    /// be forged (Spec/session.md section 6), so a forged round id cannot block later rounds.
    let previousRound: UInt64?

    init(_ transcript: consuming RoundTranscript, epoch: UInt32, previousRound: UInt64? = nil) {
        self.round = transcript.round
        self.epoch = epoch
        self.previousRound = previousRound
        self.transcript = consume transcript
    }
}

/// Progress of one round id (both directions share the id; Spec/session.md section 6).
struct RoundProgress {
    /// This node closed its direction of the round.
    var ownClosed = false
    /// The peer confirmed (authenticated `roundVerified`) that our closing tag verified.
    var ownConfirmed = false
    /// The peer's closing tag verified here.
    var peerVerified = false
    /// The peer's closing tag failed here: the round is never authenticated on this side.
    var failed = false
}

/// The header and payload bytes of a frame: what a transcript hash covers.
func authenticatedBytes(of frame: Frame) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(FrameHeader.byteCount + frame.payload.count)
    frame.header.encode(into: &out)
    out.append(contentsOf: frame.payload)
    return out
}

/// The 16 bytes of one slot (a pad or a hash key) on their way from a key source to a tag:
/// an ordinary heap buffer, wiped when released. Not `SecretBytes`: locking memory costs four
/// system calls per allocation, which per frame would cost more than the MAC (the pad is as
/// short-lived as a `OneTimePad`, which lives on the stack).
final class PadBytes {
    private(set) var bytes: [UInt8]

    init(_ source: UnsafeRawBufferPointer) {
        precondition(source.count == MACSuite.padByteCount, "a slot holds 16 bytes")
        bytes = Array(source)
    }

    deinit { secureZero(&bytes) }

    /// A one-time pad with these bytes.
    func pad() -> OneTimePad { try! OneTimePad(rawRepresentation: bytes) }

    /// A hash key with these bytes.
    /// - Throws: ``QKDError/Code/weakHashKey`` for a zero key.
    func hashKey(suite: MACSuite) throws -> HashKey { try HashKey(suite: suite, rawRepresentation: bytes) }
}

/// A one-time pad from a slot's bytes.
func makePad(_ material: PadBytes) -> OneTimePad { material.pad() }
