public import X509
import SwiftASN1
public import QKDCrypto

extension Certificate.PublicKey {
    /// The SubjectPublicKeyInfo fields (algorithm OID and key bits).
    func spkiFields() throws -> SubjectPublicKeyInfoFields {
        try SubjectPublicKeyInfoFields(derEncoded: derEncoding(self)[...])
    }

    /// Wraps a raw Ed25519 public key for swift-certificates (RFC 8410 section 4 SPKI).
    init(ed25519 key: Ed25519.PublicKey) throws {
        let spki = SubjectPublicKeyInfoFields(algorithm: PKIObjectIdentifiers.ed25519, key: key.rawRepresentation)
        try self.init(derEncoded: spki.serialized())
    }
}

extension Certificate {
    /// The leaf's Ed25519 public key, for verifying transcript signatures with libsodium
    /// (Spec/handshake.md 4.3).
    /// - Parameter source: a name for the certificate in messages.
    /// - Returns: the key.
    /// - Throws: ``QKDError/Code/pkiUnsupportedKey`` if the key is not Ed25519.
    public func ed25519PublicKey(source: String) throws -> Ed25519.PublicKey {
        let fields: SubjectPublicKeyInfoFields
        do {
            fields = try publicKey.spkiFields()
        } catch {
            throw QKDError(.pkiBadCertificate, "\(source): the public key could not be re-encoded: \(error)")
        }
        guard fields.algorithm == PKIObjectIdentifiers.ed25519 else {
            throw QKDError(.pkiUnsupportedKey, "\(source) ('\(displayName)') has a \(PKIObjectIdentifiers.keyAlgorithmName(fields.algorithm)) key; only Ed25519 leaf keys are accepted (make the key with 'openssl genpkey -algorithm ed25519')")
        }
        return try Ed25519.PublicKey(rawRepresentation: fields.key)
    }
}

/// This node's PKI identity (Spec/handshake.md 4.1): its certificate chain (leaf first), the
/// Ed25519 private key of the leaf, and optionally an ML-DSA-65 key whose public half the leaf
/// binds with the extension of Spec/handshake.md 4.4.
public struct NodeIdentity: Sendable {
    /// The chain sent to the peer, leaf first.
    public let chain: [Certificate]
    /// The key that signs the transcript.
    public let signingKey: Ed25519.PrivateKey
    /// The optional post-quantum second signing key.
    public let mlDSAKey: MLDSA65Signing.PrivateKey?

    /// The leaf certificate.
    public var leaf: Certificate { chain[0] }

    /// Checks and assembles an identity.
    /// - Parameters:
    ///   - chain: the certificates, leaf first; at most ``PKILimits/maximumChainLength``.
    ///   - signingKey: the leaf's private key.
    ///   - mlDSAKey: an ML-DSA-65 key; if given, the leaf must carry its public key in the
    ///     binding extension.
    ///   - source: names of the files, for messages (e.g. "alice.pem / alice.key").
    /// - Throws: ``QKDError/Code/pkiBadPEM`` for an empty or over-long chain,
    ///   ``QKDError/Code/pkiUnsupportedKey`` if the leaf key is not Ed25519,
    ///   ``QKDError/Code/pkiKeyMismatch`` if a key does not belong to the leaf.
    public init(chain: [Certificate], signingKey: Ed25519.PrivateKey, mlDSAKey: MLDSA65Signing.PrivateKey? = nil, source: String) throws {
        guard !chain.isEmpty, chain.count <= PKILimits.maximumChainLength else {
            throw QKDError(.pkiBadPEM, "\(source): a certificate chain must hold 1 to \(PKILimits.maximumChainLength) certificates, got \(chain.count)")
        }
        let certified = try chain[0].ed25519PublicKey(source: "the certificate in \(source)")
        guard certified == signingKey.publicKey else {
            throw QKDError(.pkiKeyMismatch, "\(source): the private key does not belong to the certificate for '\(chain[0].displayName)'; configure the key the certificate was issued for")
        }
        if let mlDSAKey {
            guard let bound = try MLDSA65Binding.publicKey(in: chain[0], source: "the certificate in \(source)") else {
                throw QKDError(.pkiKeyMismatch, "\(source): an ML-DSA-65 key is configured but the certificate for '\(chain[0].displayName)' carries no ML-DSA-65 binding extension; reissue the certificate with it or drop the ML-DSA key")
            }
            guard bound == mlDSAKey.publicKey else {
                throw QKDError(.pkiKeyMismatch, "\(source): the ML-DSA-65 private key does not match the public key bound in the certificate for '\(chain[0].displayName)'")
            }
        }
        self.chain = chain
        self.signingKey = signingKey
        self.mlDSAKey = mlDSAKey
    }

    /// The chain as DER, leaf first, for the handshake's certificate message.
    /// - Returns: one DER encoding per certificate.
    /// - Throws: if swift-certificates cannot serialise a certificate (not expected).
    public func chainDER() throws -> [[UInt8]] {
        try chain.map { try derEncoding($0) }
    }
}

/// The configured trust anchors (Spec/handshake.md 4.2), with the name of the file they came
/// from for messages ("not signed by any trust anchor in ca.pem").
public struct TrustAnchors: Sendable {
    /// The anchor certificates.
    public let certificates: [Certificate]
    /// Where they came from, for messages.
    public let source: String

    /// Creates a set of anchors.
    /// - Parameters:
    ///   - certificates: at least one certificate.
    ///   - source: e.g. the file name `ca.pem`.
    /// - Throws: ``QKDError/Code/pkiNoTrustAnchors`` if `certificates` is empty.
    public init(_ certificates: [Certificate], source: String) throws {
        guard !certificates.isEmpty else {
            throw QKDError(.pkiNoTrustAnchors, "\(source) holds no trust anchor; configure the CA certificate that issued the peer's certificate")
        }
        self.certificates = certificates
        self.source = source
    }
}
