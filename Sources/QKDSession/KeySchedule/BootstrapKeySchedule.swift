#if canImport(FoundationEssentials)
public import FoundationEssentials  // ContiguousBytes
#else
public import Foundation
#endif
public import QKDCrypto

/// The direction a derived key serves (Spec/handshake.md 3.2): one byte in every label.
public enum HandshakeDirection: UInt8, Sendable, CaseIterable {
    /// Frames from the initiator to the responder.
    case initiatorToResponder = 1
    /// Frames from the responder to the initiator.
    case responderToInitiator = 2
}

/// The computational bootstrap key schedule of Spec/handshake.md 3.2: from the bootstrap
/// secret (key agreement, 2.3, or short PSK) to per-direction Wegman-Carter hash keys, pad
/// blocks and the session id. Everything it yields is computational and must be flagged so
/// (DESIGN.md, "Bootstrap handshake").
public struct BootstrapKeySchedule: Sendable {
    /// Bytes in one pad block: the HKDF-SHA256 maximum (RFC 5869 2.3), 510 pads of 16 bytes.
    public static let padBlockByteCount = KeyDerivation.maximumOutputByteCount
    /// Pads per block.
    public static let padsPerBlock = padBlockByteCount / MACSuite.padByteCount
    /// Bytes in the session id.
    public static let sessionIDByteCount = 16
    /// How many counters ``hashKey(suite:direction:)`` tries before giving up. A weak (zero)
    /// hash key has probability 2^-106 per try (Spec/crypto.md 1.1), so a second try already
    /// means the secret is broken.
    static let maximumHashKeyAttempts: UInt32 = 4

    private let prk: SecretBytes

    /// Extracts the schedule's pseudorandom key: `PRK = HKDF-Extract(salt = TH_keys, IKM = S)`.
    /// - Parameters:
    ///   - bootstrapSecret: `S`, the 32-byte key-agreement output or short-PSK secret.
    ///   - transcriptHash: `TH_keys`, the transcript hash when the handshake switches to
    ///     authenticated frames.
    public init(bootstrapSecret: SecretBytes, transcriptHash: some ContiguousBytes) {
        prk = KeyDerivation.extract(inputKeyMaterial: bootstrapSecret, salt: transcriptHash)
    }

    /// The hash key for one direction: the first non-weak
    /// `HKDF-Expand(PRK, "QKDChannel v1 bootstrap hash key" || d || uint32be(i), 16)`, i = 0, 1, ...
    /// Both sides apply the same rule, so they agree on the key.
    /// - Parameters:
    ///   - suite: the negotiated MAC suite.
    ///   - direction: whose frames the key authenticates.
    /// - Returns: the hash key.
    /// - Throws: ``QKDError/Code/weakHashKey`` if ``maximumHashKeyAttempts`` derivations in a row
    ///   are weak (a broken secret, not bad luck).
    public func hashKey(suite: MACSuite, direction: HandshakeDirection) throws -> HashKey {
        for counter in 0..<Self.maximumHashKeyAttempts {
            let secret = try KeyDerivation.expand(
                pseudoRandomKey: prk, info: Self.label("bootstrap hash key", direction, counter),
                outputByteCount: MACSuite.hashKeyByteCount)
            do {
                return try HashKey(suite: suite, secret: secret)
            } catch let error as QKDError where error.code == .weakHashKey {
                continue
            }
        }
        throw QKDError(.weakHashKey, "\(Self.maximumHashKeyAttempts) bootstrap hash keys in a row were weak; the bootstrap secret is broken")
    }

    /// Pad block `index` for one direction:
    /// `HKDF-Expand(PRK, "QKDChannel v1 bootstrap pads" || d || uint32be(index), 8160)`.
    /// The caller takes pads from it in order and never derives the same `(direction, index)`
    /// twice for tags (DESIGN.md invariant 1 applies to computational pads too).
    /// - Parameters:
    ///   - direction: whose frames the pads authenticate.
    ///   - index: the block number.
    /// - Returns: ``padBlockByteCount`` bytes.
    public func padBlock(direction: HandshakeDirection, index: UInt32) -> SecretBytes {
        // Length and key size are fixed and valid: expand cannot fail.
        try! KeyDerivation.expand(pseudoRandomKey: prk, info: Self.label("bootstrap pads", direction, index),
                                  outputByteCount: Self.padBlockByteCount)
    }

    /// The session id: `HKDF-Expand(PRK, "QKDChannel v1 session id", 16)`. Public (it goes into
    /// every MAC input, DESIGN.md "The wire"), so returned as plain bytes.
    public var sessionID: [UInt8] {
        let id = try! KeyDerivation.expand(pseudoRandomKey: prk, info: Array("QKDChannel v1 session id".utf8),
                                           outputByteCount: Self.sessionIDByteCount)
        return id.withUnsafeBytes { [UInt8]($0) }
    }

    /// The short-PSK bootstrap secret (Spec/handshake.md 3.2):
    /// `HKDF-SHA256(IKM = PSK, salt = TH_hello, info = "QKDChannel v1 psk" || psk id, 32)`.
    /// - Parameters:
    ///   - psk: the pre-shared key bytes.
    ///   - pskID: the PSK's id as carried in the handshake.
    ///   - transcriptHash: `TH_hello`, the hash of the hello messages.
    /// - Returns: the 32-byte bootstrap secret.
    public static func pskSecret(psk: SecretBytes, pskID: [UInt8], transcriptHash: some ContiguousBytes) -> SecretBytes {
        try! KeyDerivation.hkdfSHA256(inputKeyMaterial: psk, salt: transcriptHash,
                                      info: Array("QKDChannel v1 psk".utf8) + pskID, outputByteCount: 32)
    }

    static func label(_ name: String, _ direction: HandshakeDirection, _ counter: UInt32) -> [UInt8] {
        Array("QKDChannel v1 \(name)".utf8) + [direction.rawValue] + withUnsafeBytes(of: counter.bigEndian) { Array($0) }
    }
}
