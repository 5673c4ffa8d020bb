#if canImport(FoundationEssentials)
public import FoundationEssentials  // Date
#else
public import Foundation
#endif
public import X509
import SwiftASN1
public import QKDCrypto

/// swift-certificates signing with our libsodium Ed25519 key (`Certificate.PrivateKey(custom)`),
/// so QKDSession needs no swift-crypto import and the key stays in ``SecretBytes``.
struct SodiumEd25519CertificateKey: CustomPrivateKey {
    let key: Ed25519.PrivateKey

    var publicKey: Certificate.PublicKey {
        // The SPKI of a valid 32-byte key always parses.
        try! Certificate.PublicKey(ed25519: key.publicKey)
    }
    var defaultSignatureAlgorithm: Certificate.SignatureAlgorithm { .ed25519 }
    var supportedSignatureAlgorithms: [Certificate.SignatureAlgorithm] { [.ed25519] }

    func signSynchronously(bytes: some DataProtocol, signatureAlgorithm: Certificate.SignatureAlgorithm) throws -> Certificate.Signature {
        guard signatureAlgorithm == .ed25519 else {
            throw QKDError(.pkiUnsupportedKey, "an Ed25519 key cannot sign with \(signatureAlgorithm)")
        }
        let signature = key.signature(for: Array(bytes))
        return try Certificate.Signature(signatureAlgorithm: .ed25519, signatureBytes: ASN1BitString(bytes: signature[...]))
    }

    static var defaultPEMDiscriminator: String { "PRIVATE KEY" }

    func serialize(into coder: inout DER.Serializer) throws {
        var der = try PKCS8Key(algorithm: PKIObjectIdentifiers.ed25519, privateKey: Ed25519PKCS8.wrap(seed: key.rawRepresentation)).serialized()
        defer { secureZero(&der) }
        coder.serializeRawBytes(der)
    }

    static func == (lhs: Self, rhs: Self) -> Bool { lhs.key.publicKey == rhs.key.publicKey }
    func hash(into hasher: inout Hasher) { hasher.combine(key.publicKey) }
}

/// A throw-away PKI for tests and the demo (Spec/handshake.md 4.5): a self-signed Ed25519 CA
/// and one Ed25519 node certificate per name, all made with swift-certificates. Keys come from
/// the injected ``RandomSource``. ``PKIFiles/write(_:to:)`` writes them as PEM files that
/// ``PKIFiles`` (and openssl) read back.
public struct TestPKI: Sendable {
    /// One node: its certificate and keys.
    public struct Node: Sendable {
        /// The node's DNS name (SAN dNSName and subject CN).
        public let name: String
        /// The node certificate, issued by the CA.
        public let certificate: Certificate
        /// The node's Ed25519 key.
        public let signingKey: Ed25519.PrivateKey
        /// The node's ML-DSA-65 key, bound in its certificate, if requested.
        public let mlDSAKey: MLDSA65Signing.PrivateKey?

        /// The identity a session is configured with.
        /// - Returns: the node identity (chain = the node certificate alone).
        /// - Throws: not expected: the parts were made to match.
        public func identity() throws -> NodeIdentity {
            try NodeIdentity(chain: [certificate], signingKey: signingKey, mlDSAKey: mlDSAKey, source: "test PKI node '\(name)'")
        }
    }

    /// The CA certificate (the trust anchor).
    public let caCertificate: Certificate
    /// The CA key.
    public let caKey: Ed25519.PrivateKey
    /// The nodes, in the order of the names given.
    public let nodes: [Node]

    /// The CA as trust anchors.
    /// - Returns: anchors named "test CA".
    public func anchors() -> TrustAnchors {
        // One certificate: never empty.
        try! TrustAnchors([caCertificate], source: "the test CA")
    }

    /// Makes a CA and node certificates.
    /// - Parameters:
    ///   - nodeNames: the DNS names of the nodes, e.g. `["alice.example", "bob.example"]`.
    ///   - caName: the CA's subject CN.
    ///   - notBefore: start of validity of every certificate (injected: no clock).
    ///   - validity: seconds of validity from `notBefore`.
    ///   - withMLDSA: also make an ML-DSA-65 key per node and bind it with the extension of
    ///     Spec/handshake.md 4.4.
    ///   - random: the source of every key and serial number.
    /// - Returns: the PKI.
    /// - Throws: if swift-certificates refuses to build a certificate (not expected).
    public static func make(
        nodeNames: [String], caName: String = "QKDChannel test CA", notBefore: Date, validity: TimeInterval,
        withMLDSA: Bool = false, using random: inout some RandomSource
    ) throws -> TestPKI {
        let notAfter = notBefore.addingTimeInterval(validity)
        let caKey = Ed25519.PrivateKey(using: &random)
        let caSigner = Certificate.PrivateKey(SodiumEd25519CertificateKey(key: caKey))
        let caSubject = try DistinguishedName { CommonName(caName) }
        let caCertificate = try Certificate(
            version: .v3, serialNumber: serial(&random), publicKey: caSigner.publicKey,
            notValidBefore: notBefore, notValidAfter: notAfter, issuer: caSubject, subject: caSubject,
            signatureAlgorithm: .ed25519,
            extensions: Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: caSigner)
        var nodes: [Node] = []
        for name in nodeNames {
            let key = Ed25519.PrivateKey(using: &random)
            let mlDSAKey = withMLDSA ? try MLDSA65Signing.PrivateKey(using: &random) : nil
            var extensions = try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                SubjectAlternativeNames([.dnsName(name)])
            }
            if let mlDSAKey {
                try extensions.append(MLDSA65Binding.certificateExtension(for: mlDSAKey.publicKey))
            }
            let certificate = try Certificate(
                version: .v3, serialNumber: serial(&random), publicKey: Certificate.PublicKey(ed25519: key.publicKey),
                notValidBefore: notBefore, notValidAfter: notAfter, issuer: caSubject,
                subject: try DistinguishedName { CommonName(name) },
                signatureAlgorithm: .ed25519, extensions: extensions, issuerPrivateKey: caSigner)
            nodes.append(Node(name: name, certificate: certificate, signingKey: key, mlDSAKey: mlDSAKey))
        }
        return TestPKI(caCertificate: caCertificate, caKey: caKey, nodes: nodes)
    }

    /// A positive 16-byte serial number (RFC 5280 4.1.2.2: at most 20 octets, positive).
    private static func serial(_ random: inout some RandomSource) -> Certificate.SerialNumber {
        var bytes = random.bytes(count: 16)
        bytes[0] = (bytes[0] & 0x7F) | 0x01
        return Certificate.SerialNumber(bytes: bytes)
    }
}
