#if canImport(FoundationEssentials)
public import FoundationEssentials  // ContiguousBytes
#else
public import Foundation
#endif
internal import Crypto

/// The ephemeral key agreements the PKI bootstrap offers (Spec/handshake.md section 2.3).
/// The identifier is what goes on the wire and into the transcript.
public enum KeyAgreementSuite: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// X25519 alone (RFC 7748): classical, 128-bit security against classical attackers only.
    case x25519 = 1
    /// X25519 and ML-KEM-768 (FIPS 203) together: the secret stays safe as long as either one
    /// holds. The secret order follows the TLS group X25519MLKEM768
    /// (draft-kwiatkowski-tls-ecdhe-mlkem): ML-KEM first, then X25519.
    case x25519MLKEM768 = 2

    /// ML-KEM-768 encapsulation key bytes (FIPS 203 section 8, Table 3).
    public static let mlkemPublicKeyByteCount = 1184
    /// ML-KEM-768 ciphertext bytes (FIPS 203 section 8, Table 3).
    public static let mlkemCiphertextByteCount = 1088
    /// ML-KEM private key seed bytes (FIPS 203 Algorithm 16, `d || z`).
    public static let mlkemSeedByteCount = 64
    /// Bytes in the derived bootstrap secret.
    public static let secretByteCount = 32

    /// The name used in labels, logs and the Spec: `x25519` or `x25519-mlkem768`.
    public var description: String {
        switch self {
        case .x25519: "x25519"
        case .x25519MLKEM768: "x25519-mlkem768"
        }
    }

    /// The HKDF info prefix of the combiner (Spec/handshake.md section 2.3).
    var label: [UInt8] { Array("QKDChannel/1 key agreement \(description)".utf8) + [0] }
}

/// The initiator's half of an ephemeral key agreement (Spec/handshake.md 2.3; the hello fields
/// of Spec/session.md 3): it makes an X25519 share and, if the hybrid suite is offered, an
/// ML-KEM-768 encapsulation key, then derives the bootstrap secret for whichever suite the
/// responder chose.
///
/// Randomness: the X25519 scalar and the ML-KEM-768 key seed (`d || z`, FIPS 203 Algorithm 19)
/// both come from the injected ``RandomSource``.
public struct KeyAgreementInitiator: Sendable {
    /// The X25519 public share (32 bytes), sent whatever suite is chosen.
    public let x25519Share: [UInt8]
    /// The ML-KEM-768 encapsulation key (1184 bytes), or nil if the hybrid suite is not offered.
    public let mlkemEncapsulationKey: [UInt8]?
    private let x25519: X25519.PrivateKey
    private let mlkem: MLKEM768.PrivateKey?

    /// Generates fresh ephemeral keys.
    /// - Parameters:
    ///   - offerHybrid: whether ``KeyAgreementSuite/x25519MLKEM768`` is offered (then an
    ///     ML-KEM-768 key is made too).
    ///   - random: the source for every private key.
    /// - Throws: ``QKDError/Code/postQuantumFailure`` if swift-crypto refuses the ML-KEM seed.
    public init(offerHybrid: Bool, using random: inout some RandomSource) throws {
        let x25519 = X25519.PrivateKey(using: &random)
        self.x25519 = x25519
        self.x25519Share = x25519.publicKey.rawRepresentation
        guard offerHybrid else {
            self.mlkem = nil
            self.mlkemEncapsulationKey = nil
            return
        }
        let seed = SecretBytes(randomCount: KeyAgreementSuite.mlkemSeedByteCount, using: &random)
        do {
            let key = try seed.withUnsafeBytes { try MLKEM768.PrivateKey(seedRepresentation: $0, publicKey: nil) }
            self.mlkem = key
            self.mlkemEncapsulationKey = Array(key.publicKey.rawRepresentation)
        } catch {
            throw QKDError(.postQuantumFailure, "swift-crypto could not create an ML-KEM-768 key from its seed: \(error)")
        }
    }

    /// Derives the bootstrap secret from the responder's answer.
    /// - Parameters:
    ///   - suite: the suite the responder chose.
    ///   - responderX25519Share: the responder's 32-byte X25519 share.
    ///   - mlkemCiphertext: the 1088-byte ML-KEM-768 ciphertext for the hybrid suite; nil or empty
    ///     for ``KeyAgreementSuite/x25519``.
    ///   - transcriptHash: the transcript hash both sides use as salt (Spec/handshake.md 2.3).
    /// - Returns: the 32-byte bootstrap secret.
    /// - Throws: ``QKDError/Code/keyAgreementNotOffered`` if the responder chose the hybrid suite
    ///   that was not offered (or sent a ciphertext for x25519);
    ///   ``QKDError/Code/invalidPublicKey`` for a share or ciphertext of the wrong length;
    ///   ``QKDError/Code/zeroSharedSecret`` for a small-order X25519 point;
    ///   ``QKDError/Code/postQuantumFailure`` if decapsulation fails. A *tampered* ML-KEM
    ///   ciphertext does not throw: ML-KEM's implicit rejection (FIPS 203 Algorithm 18) yields an
    ///   unrelated secret, and the handshake fails at key confirmation.
    public func sharedSecret(
        suite: KeyAgreementSuite, responderX25519Share: [UInt8], mlkemCiphertext: [UInt8]?, transcriptHash: some ContiguousBytes
    ) throws -> SecretBytes {
        let peerX = try X25519.PublicKey(rawRepresentation: responderX25519Share)
        switch suite {
        case .x25519:
            guard mlkemCiphertext?.isEmpty ?? true else {
                throw QKDError(.keyAgreementNotOffered, "the responder chose x25519 but sent an ML-KEM-768 ciphertext")
            }
            let ssX = try x25519.sharedSecretFromKeyAgreement(with: peerX)
            return try HybridCombiner.combine(
                suite: suite, mlkemSecret: nil, x25519Secret: ssX, mlkemCiphertext: [], mlkemPublicKey: [],
                initiatorX25519: x25519Share, responderX25519: peerX.rawRepresentation, transcriptHash: transcriptHash)
        case .x25519MLKEM768:
            guard let mlkem, let ek = mlkemEncapsulationKey else {
                throw QKDError(.keyAgreementNotOffered, "the responder chose x25519-mlkem768, which this side did not offer")
            }
            guard let ciphertext = mlkemCiphertext, ciphertext.count == KeyAgreementSuite.mlkemCiphertextByteCount else {
                throw QKDError(.invalidPublicKey, "an ML-KEM-768 ciphertext must be \(KeyAgreementSuite.mlkemCiphertextByteCount) bytes, got \(mlkemCiphertext?.count ?? 0)")
            }
            let ssX = try x25519.sharedSecretFromKeyAgreement(with: peerX)
            let ssM: SecretBytes
            do {
                let key = try mlkem.decapsulate(ciphertext)
                ssM = key.withUnsafeBytes { SecretBytes(copying: $0) }
            } catch {
                throw QKDError(.postQuantumFailure, "ML-KEM-768 decapsulation failed: \(error)")
            }
            return try HybridCombiner.combine(
                suite: suite, mlkemSecret: ssM, x25519Secret: ssX, mlkemCiphertext: ciphertext, mlkemPublicKey: ek,
                initiatorX25519: x25519Share, responderX25519: peerX.rawRepresentation, transcriptHash: transcriptHash)
        }
    }
}

/// What the responder sends back, and the secret it derived.
public struct KeyAgreementResponse: Sendable {
    /// The responder's X25519 share (32 bytes).
    public let x25519Share: [UInt8]
    /// The ML-KEM-768 ciphertext (1088 bytes) for the hybrid suite, nil for x25519.
    public let mlkemCiphertext: [UInt8]?
    /// The 32-byte bootstrap secret.
    public let sharedSecret: SecretBytes
}

/// The responder's half of an ephemeral key agreement (Spec/handshake.md section 2.3).
public enum KeyAgreementResponder {
    /// Answers an initiator: makes an ephemeral X25519 key (from `random`), encapsulates to the
    /// initiator's ML-KEM-768 key (hybrid suite) and derives the bootstrap secret.
    ///
    /// Randomness: ML-KEM encapsulation draws its 32-byte message `m` (FIPS 203 Algorithm 20)
    /// from swift-crypto's own generator (BoringSSL `RAND_bytes`), not from `random`:
    /// swift-crypto 4.5 does not expose seeded encapsulation. The X25519 scalar comes from `random`.
    /// - Parameters:
    ///   - suite: the suite the responder chose.
    ///   - x25519Share: the initiator's 32-byte X25519 share.
    ///   - mlkemEncapsulationKey: the initiator's 1184-byte encapsulation key (hybrid suite).
    ///   - transcriptHash: the transcript hash used as salt (Spec/handshake.md 2.3).
    ///   - random: the source of the X25519 scalar.
    /// - Returns: the response to send and the secret.
    /// - Throws: ``QKDError/Code/invalidPublicKey`` for a share of the wrong length or an
    ///   encapsulation key swift-crypto refuses (FIPS 203 section 7.2 modulus check), or a
    ///   missing one for the hybrid suite; ``QKDError/Code/zeroSharedSecret`` for a small-order
    ///   X25519 point.
    public static func respond(
        suite: KeyAgreementSuite, x25519Share: [UInt8], mlkemEncapsulationKey: [UInt8]?, transcriptHash: some ContiguousBytes,
        using random: inout some RandomSource
    ) throws -> KeyAgreementResponse {
        let peerX = try X25519.PublicKey(rawRepresentation: x25519Share)
        let own = X25519.PrivateKey(using: &random)
        let ssX = try own.sharedSecretFromKeyAgreement(with: peerX)
        switch suite {
        case .x25519:
            let secret = try HybridCombiner.combine(
                suite: suite, mlkemSecret: nil, x25519Secret: ssX, mlkemCiphertext: [], mlkemPublicKey: [],
                initiatorX25519: peerX.rawRepresentation, responderX25519: own.publicKey.rawRepresentation,
                transcriptHash: transcriptHash)
            return KeyAgreementResponse(x25519Share: own.publicKey.rawRepresentation, mlkemCiphertext: nil, sharedSecret: secret)
        case .x25519MLKEM768:
            guard let ek = mlkemEncapsulationKey, ek.count == KeyAgreementSuite.mlkemPublicKeyByteCount else {
                throw QKDError(.invalidPublicKey, "an ML-KEM-768 encapsulation key must be \(KeyAgreementSuite.mlkemPublicKeyByteCount) bytes, got \(mlkemEncapsulationKey?.count ?? 0)")
            }
            let result: KEM.EncapsulationResult
            do {
                result = try MLKEM768.PublicKey(rawRepresentation: ek).encapsulate()
            } catch {
                throw QKDError(.invalidPublicKey, "the initiator's ML-KEM-768 encapsulation key was refused: \(error)")
            }
            let ssM = result.sharedSecret.withUnsafeBytes { SecretBytes(copying: $0) }
            let ciphertext = Array(result.encapsulated)
            let secret = try HybridCombiner.combine(
                suite: suite, mlkemSecret: ssM, x25519Secret: ssX, mlkemCiphertext: ciphertext, mlkemPublicKey: ek,
                initiatorX25519: peerX.rawRepresentation, responderX25519: own.publicKey.rawRepresentation,
                transcriptHash: transcriptHash)
            return KeyAgreementResponse(x25519Share: own.publicKey.rawRepresentation, mlkemCiphertext: ciphertext, sharedSecret: secret)
        }
    }
}

/// The combiner of Spec/handshake.md section 2.3:
///
/// ```
/// IKM  = ss_M || ss_X                (x25519 suite: ss_X)
/// salt = transcript hash
/// info = "QKDChannel/1 key agreement <suite>" || 0x00
///        || pk_X(initiator) || pk_X(responder) [|| ct_M || SHA-256(ek_M)]
/// secret = HKDF-SHA256(IKM, salt, info, 32)
/// ```
///
/// All fields have fixed lengths per suite, so the concatenation is unambiguous.
public enum HybridCombiner {
    /// Derives the bootstrap secret from the component secrets and public values.
    /// - Parameters:
    ///   - suite: the suite (selects the label and which fields are present).
    ///   - mlkemSecret: the 32-byte ML-KEM shared secret, nil for ``KeyAgreementSuite/x25519``.
    ///   - x25519Secret: the 32-byte X25519 shared secret.
    ///   - mlkemCiphertext: `ct_M` (empty for x25519).
    ///   - mlkemPublicKey: `ek_M` (empty for x25519); bound through its SHA-256.
    ///   - initiatorX25519: the initiator's X25519 public key.
    ///   - responderX25519: the responder's X25519 public key.
    ///   - transcriptHash: the salt.
    /// - Returns: the 32-byte secret.
    /// - Throws: ``QKDError/Code/invalidKeyLength`` if a component has the wrong length for the suite.
    public static func combine(
        suite: KeyAgreementSuite, mlkemSecret: SecretBytes?, x25519Secret: SecretBytes,
        mlkemCiphertext: [UInt8], mlkemPublicKey: [UInt8], initiatorX25519: [UInt8], responderX25519: [UInt8],
        transcriptHash: some ContiguousBytes
    ) throws -> SecretBytes {
        guard x25519Secret.count == 32, initiatorX25519.count == 32, responderX25519.count == 32 else {
            throw QKDError(.invalidKeyLength, "the X25519 inputs of the \(suite) combiner must be 32 bytes each")
        }
        var info = suite.label + initiatorX25519 + responderX25519
        let ikm: SecretBytes
        switch suite {
        case .x25519:
            guard mlkemSecret == nil, mlkemCiphertext.isEmpty, mlkemPublicKey.isEmpty else {
                throw QKDError(.invalidKeyLength, "the x25519 combiner takes no ML-KEM inputs")
            }
            ikm = x25519Secret
        case .x25519MLKEM768:
            guard let ssM = mlkemSecret, ssM.count == 32,
                  mlkemCiphertext.count == KeyAgreementSuite.mlkemCiphertextByteCount,
                  mlkemPublicKey.count == KeyAgreementSuite.mlkemPublicKeyByteCount else {
                throw QKDError(.invalidKeyLength, "the x25519-mlkem768 combiner needs a 32-byte ML-KEM secret, a 1088-byte ciphertext and a 1184-byte encapsulation key")
            }
            info += mlkemCiphertext + KeyDerivation.sha256(mlkemPublicKey)
            ikm = SecretBytes(count: 64) { out in
                ssM.withUnsafeBytes { out.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: 32) }
                x25519Secret.withUnsafeBytes { (out.baseAddress! + 32).copyMemory(from: $0.baseAddress!, byteCount: 32) }
            }
        }
        return try KeyDerivation.hkdfSHA256(
            inputKeyMaterial: ikm, salt: transcriptHash, info: info, outputByteCount: KeyAgreementSuite.secretByteCount)
    }
}
