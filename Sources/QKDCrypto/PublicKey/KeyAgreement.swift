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
    /// holds. Share layout and secret order follow the TLS codepoint X25519MLKEM768
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

    /// Bytes in the initiator's share: `pk_X` (32), or `ek_M || pk_X` (1184 + 32).
    public var initiatorShareByteCount: Int {
        switch self {
        case .x25519: X25519.keyByteCount
        case .x25519MLKEM768: Self.mlkemPublicKeyByteCount + X25519.keyByteCount
        }
    }

    /// Bytes in the responder's share: `pk_X` (32), or `ct_M || pk_X` (1088 + 32).
    public var responderShareByteCount: Int {
        switch self {
        case .x25519: X25519.keyByteCount
        case .x25519MLKEM768: Self.mlkemCiphertextByteCount + X25519.keyByteCount
        }
    }

    /// The HKDF info prefix of the combiner (Spec/handshake.md section 2.3).
    var label: [UInt8] { Array("QKDChannel v1 key agreement \(description)".utf8) + [0] }
}

/// The initiator's half of an ephemeral key agreement: makes the share it sends, then derives
/// the bootstrap secret from the responder's share (Spec/handshake.md section 2.3).
///
/// Randomness: the X25519 scalar and the ML-KEM-768 key seed (`d || z`, FIPS 203 Algorithm 19)
/// both come from the injected ``RandomSource``.
public struct KeyAgreementInitiator: Sendable {
    /// The suite.
    public let suite: KeyAgreementSuite
    /// The bytes to send to the responder (layout: ``KeyAgreementSuite/initiatorShareByteCount``).
    public let share: [UInt8]
    private let x25519: X25519.PrivateKey
    private let mlkem: MLKEM768.PrivateKey?

    /// Generates fresh ephemeral keys.
    /// - Parameters:
    ///   - suite: the key agreement to run.
    ///   - random: the source for every private key.
    /// - Throws: ``QKDError/Code/postQuantumFailure`` if swift-crypto refuses the ML-KEM seed.
    public init(suite: KeyAgreementSuite, using random: inout some RandomSource) throws {
        self.suite = suite
        self.x25519 = X25519.PrivateKey(using: &random)
        switch suite {
        case .x25519:
            self.mlkem = nil
            self.share = x25519.publicKey.rawRepresentation
        case .x25519MLKEM768:
            let seed = SecretBytes(randomCount: KeyAgreementSuite.mlkemSeedByteCount, using: &random)
            do {
                let key = try seed.withUnsafeBytes { try MLKEM768.PrivateKey(seedRepresentation: $0, publicKey: nil) }
                self.mlkem = key
                self.share = Array(key.publicKey.rawRepresentation) + x25519.publicKey.rawRepresentation
            } catch {
                throw QKDError(.postQuantumFailure, "swift-crypto could not create an ML-KEM-768 key from its seed: \(error)")
            }
        }
    }

    /// Derives the bootstrap secret from the responder's share.
    /// - Parameters:
    ///   - responderShare: exactly ``KeyAgreementSuite/responderShareByteCount`` bytes.
    ///   - transcriptHash: the transcript hash both sides use as salt (Spec/handshake.md 2.3).
    /// - Returns: the 32-byte bootstrap secret.
    /// - Throws: ``QKDError/Code/invalidPublicKey`` for a share of the wrong length,
    ///   ``QKDError/Code/zeroSharedSecret`` for a small-order X25519 point,
    ///   ``QKDError/Code/postQuantumFailure`` if decapsulation fails. A *tampered* ML-KEM
    ///   ciphertext does not throw: ML-KEM's implicit rejection (FIPS 203 Algorithm 18) yields an
    ///   unrelated secret, and the handshake fails at key confirmation.
    public func sharedSecret(responderShare: some ContiguousBytes, transcriptHash: some ContiguousBytes) throws -> SecretBytes {
        let peer = responderShare.withUnsafeBytes { [UInt8]($0) }
        guard peer.count == suite.responderShareByteCount else {
            throw QKDError(.invalidPublicKey, "the responder's \(suite) share must be \(suite.responderShareByteCount) bytes, got \(peer.count)")
        }
        let peerX = try X25519.PublicKey(rawRepresentation: peer.suffix(X25519.keyByteCount))
        let ssX = try x25519.sharedSecretFromKeyAgreement(with: peerX)
        switch suite {
        case .x25519:
            return try HybridCombiner.combine(
                suite: suite, mlkemSecret: nil, x25519Secret: ssX, mlkemCiphertext: [], mlkemPublicKey: [],
                initiatorX25519: x25519.publicKey.rawRepresentation, responderX25519: peerX.rawRepresentation,
                transcriptHash: transcriptHash)
        case .x25519MLKEM768:
            let ciphertext = Array(peer.prefix(KeyAgreementSuite.mlkemCiphertextByteCount))
            guard let mlkem else { preconditionFailure("hybrid initiator without an ML-KEM key") }
            let ssM: SecretBytes
            do {
                let key = try mlkem.decapsulate(ciphertext)
                ssM = key.withUnsafeBytes { SecretBytes(copying: $0) }
            } catch {
                throw QKDError(.postQuantumFailure, "ML-KEM-768 decapsulation failed: \(error)")
            }
            return try HybridCombiner.combine(
                suite: suite, mlkemSecret: ssM, x25519Secret: ssX, mlkemCiphertext: ciphertext,
                mlkemPublicKey: Array(mlkem.publicKey.rawRepresentation),
                initiatorX25519: x25519.publicKey.rawRepresentation, responderX25519: peerX.rawRepresentation,
                transcriptHash: transcriptHash)
        }
    }
}

/// The responder's half of an ephemeral key agreement (Spec/handshake.md section 2.3).
public enum KeyAgreementResponder {
    /// Answers an initiator's share: makes an ephemeral X25519 key (from `random`), encapsulates
    /// to the initiator's ML-KEM-768 key (hybrid suite) and derives the bootstrap secret.
    ///
    /// Randomness: ML-KEM encapsulation draws its 32-byte message `m` (FIPS 203 Algorithm 20)
    /// from swift-crypto's own generator (BoringSSL `RAND_bytes`), not from `random`:
    /// swift-crypto 4.5 does not expose seeded encapsulation. The X25519 scalar comes from `random`.
    /// - Parameters:
    ///   - suite: the agreed suite.
    ///   - initiatorShare: exactly ``KeyAgreementSuite/initiatorShareByteCount`` bytes.
    ///   - transcriptHash: the transcript hash used as salt (Spec/handshake.md 2.3).
    ///   - random: the source of the X25519 scalar.
    /// - Returns: the share to send back and the 32-byte bootstrap secret.
    /// - Throws: ``QKDError/Code/invalidPublicKey`` for a share of the wrong length or an
    ///   ML-KEM key swift-crypto refuses (FIPS 203 section 7.2 modulus check),
    ///   ``QKDError/Code/zeroSharedSecret`` for a small-order X25519 point.
    public static func respond(
        suite: KeyAgreementSuite, initiatorShare: some ContiguousBytes, transcriptHash: some ContiguousBytes,
        using random: inout some RandomSource
    ) throws -> (share: [UInt8], sharedSecret: SecretBytes) {
        let peer = initiatorShare.withUnsafeBytes { [UInt8]($0) }
        guard peer.count == suite.initiatorShareByteCount else {
            throw QKDError(.invalidPublicKey, "the initiator's \(suite) share must be \(suite.initiatorShareByteCount) bytes, got \(peer.count)")
        }
        let peerX = try X25519.PublicKey(rawRepresentation: peer.suffix(X25519.keyByteCount))
        let own = X25519.PrivateKey(using: &random)
        let ssX = try own.sharedSecretFromKeyAgreement(with: peerX)
        switch suite {
        case .x25519:
            let secret = try HybridCombiner.combine(
                suite: suite, mlkemSecret: nil, x25519Secret: ssX, mlkemCiphertext: [], mlkemPublicKey: [],
                initiatorX25519: peerX.rawRepresentation, responderX25519: own.publicKey.rawRepresentation,
                transcriptHash: transcriptHash)
            return (own.publicKey.rawRepresentation, secret)
        case .x25519MLKEM768:
            let ek = Array(peer.prefix(KeyAgreementSuite.mlkemPublicKeyByteCount))
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
            return (ciphertext + own.publicKey.rawRepresentation, secret)
        }
    }
}

/// The combiner of Spec/handshake.md section 2.3:
///
/// ```
/// IKM  = ss_M || ss_X                (x25519 suite: ss_X)
/// salt = transcript hash
/// info = "QKDChannel v1 key agreement <suite>" || 0x00
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
