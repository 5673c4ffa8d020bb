public import QKDCrypto

/// A direction of the session (Spec/session.md 1): one byte in the labels below.
public enum HandshakeDirection: UInt8, Sendable, CaseIterable {
    /// Direction 0: Alice (initiator) to Bob (responder).
    case initiatorToResponder = 0
    /// Direction 1: Bob (responder) to Alice (initiator).
    case responderToInitiator = 1
}

/// The epoch-0 bootstrap stream of one direction (Spec/session.md 5.3):
///
/// ```
/// k_d   = HKDF-Expand(secret, "QKDChannel/1 bootstrap stream" || d, 32)
/// bytes = ChaCha20-IETF(key k_d, nonce 0) keystream
/// hash key = bytes [0, 16);  pad slot i >= 1 = bytes [16 i, 16 i + 16)
/// ```
///
/// `secret` is the 32-byte output of the key agreement (``KeyAgreementInitiator``, Spec/handshake.md
/// 2.3) or of ``PSKKeyDerivation``; it is already pseudorandom, so it serves directly as the HKDF
/// PRK. Everything here is computational (DESIGN.md, "Bootstrap handshake").
public struct BootstrapStream: Sendable {
    /// The direction whose frames this stream authenticates.
    public let direction: HandshakeDirection
    private let key: SecretBytes

    /// The highest pad slot: the ChaCha20 stream holds 2^38 bytes (RFC 8439 2.4).
    public static let maximumSlot = KeyDerivation.chacha20StreamByteCount / UInt64(MACSuite.padByteCount) - 1

    /// Derives the stream key of one direction.
    /// - Parameters:
    ///   - secret: the 32-byte bootstrap secret.
    ///   - direction: the direction.
    /// - Throws: ``QKDError/Code/invalidKeyLength`` if `secret` is shorter than 32 bytes.
    public init(secret: SecretBytes, direction: HandshakeDirection) throws {
        self.direction = direction
        self.key = try KeyDerivation.expand(
            pseudoRandomKey: secret, info: Array("QKDChannel/1 bootstrap stream".utf8) + [direction.rawValue],
            outputByteCount: 32)
    }

    /// The epoch-0 hash key: stream bytes [0, 16).
    /// - Parameter suite: the negotiated MAC suite.
    /// - Returns: the hash key.
    /// - Throws: ``QKDError/Code/weakHashKey`` if the bytes are a weak key (probability 2^-106
    ///   for Poly1305, Spec/crypto.md 1.1; both sides fail alike, and the handshake is retried
    ///   with fresh ephemeral keys).
    public func hashKey(suite: MACSuite) throws -> HashKey {
        try HashKey(suite: suite, secret: KeyDerivation.chacha20KeyStream(key: key, byteOffset: 0, count: MACSuite.hashKeyByteCount))
    }

    /// The pad at `slot`.
    /// - Parameter slot: 1 ... ``maximumSlot`` (slot 0 is the hash key).
    /// - Returns: the pad.
    public func pad(slot: UInt64) -> OneTimePad {
        let bytes = padBytes(slots: slot..<(slot + 1))
        // withUnsafeBytes cannot return a non-copyable value: go through a wiped copy.
        var raw = bytes.withUnsafeBytes { [UInt8]($0) }
        defer { secureZero(&raw) }
        return try! OneTimePad(rawRepresentation: raw)  // 16 bytes: cannot fail
    }

    /// The pads of a range of slots as one buffer (16 bytes per slot), e.g. for a reservation chunk.
    /// - Parameter slots: within 1 ... ``maximumSlot``.
    /// - Returns: `16 * slots.count` bytes.
    public func padBytes(slots: Range<UInt64>) -> SecretBytes {
        precondition(slots.lowerBound >= 1 && slots.upperBound <= Self.maximumSlot + 1,
                     "bootstrap pad slots are 1 ... \(Self.maximumSlot); slot 0 is the hash key")
        // In range by the precondition: the keystream call cannot fail.
        return try! KeyDerivation.chacha20KeyStream(
            key: key, byteOffset: slots.lowerBound * UInt64(MACSuite.padByteCount),
            count: slots.count * MACSuite.padByteCount)
    }
}

/// The `psk-kdf` bootstrap secret (Spec/session.md 5.1):
/// `secret = HKDF-SHA256(salt = nonce_a || nonce_b, ikm = psk, info = "QKDChannel/1 psk-kdf" || transcript-hash, 32)`.
public enum PSKKeyDerivation {
    /// Derives the 32-byte bootstrap secret from a short PSK.
    /// - Parameters:
    ///   - psk: the PSK bytes.
    ///   - nonceA: Alice's 32-byte hello nonce.
    ///   - nonceB: Bob's 32-byte hello nonce.
    ///   - transcriptHash: the transcript hash named in Spec/session.md 5.1.
    /// - Returns: the secret.
    public static func secret(psk: SecretBytes, nonceA: [UInt8], nonceB: [UInt8], transcriptHash: [UInt8]) -> SecretBytes {
        // 32 bytes is within HKDF's range: cannot fail.
        try! KeyDerivation.hkdfSHA256(
            inputKeyMaterial: psk, salt: nonceA + nonceB,
            info: Array("QKDChannel/1 psk-kdf".utf8) + transcriptHash, outputByteCount: 32)
    }
}
