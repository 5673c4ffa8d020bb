#if canImport(FoundationEssentials)
public import FoundationEssentials  // Date
#else
public import Foundation
#endif
@_spi(FixedExpiryValidationTime) public import X509
import SwiftASN1
public import QKDCrypto

/// Declares to swift-certificates' `Verifier` the critical extensions QKDChannel processes
/// itself after path validation (Spec/handshake.md 4.2): subjectAltName (critical when the
/// subject is empty, RFC 5280 4.2.1.6; checked by the name rule) and the ML-DSA-65 binding.
/// It adds no condition of its own.
struct QKDHandledExtensionsPolicy: VerifierPolicy {
    let verifyingCriticalExtensions: [ASN1ObjectIdentifier] = [
        .X509ExtensionID.subjectAlternativeName, PKIObjectIdentifiers.mlDSA65BindingExtension,
    ]

    func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) -> PolicyEvaluationResult { .meetsPolicy }
}

/// What a successful validation of the peer's chain yields (Spec/handshake.md 4.2 and 4.3).
public struct ValidatedPeer: Sendable {
    /// The peer's leaf certificate.
    public let leaf: Certificate
    /// The validated chain, leaf first, ending at a trust anchor.
    public let chain: [Certificate]
    /// The key that must verify the peer's transcript signature.
    public let signingKey: Ed25519.PublicKey
    /// The ML-DSA-65 key bound in the leaf, if it carries one (Spec/handshake.md 4.4).
    public let mlDSAKey: MLDSA65Signing.PublicKey?
    /// The configured peer name that matched.
    public let name: String
}

/// Validates a peer's certificate chain (Spec/handshake.md 4.2): path building and RFC 5280
/// checks with swift-certificates' `Verifier` against the configured anchors at an injected
/// time, then the peer name, then the Ed25519 key and the optional ML-DSA-65 binding.
///
/// `Verifier.validate` is `async` in swift-certificates (its certificate stores may fetch), so
/// this is too; with in-memory anchors it never waits on I/O. The sans-IO handshake state
/// machine hands the chain out as an action and takes the ``ValidatedPeer`` (or error) back in.
public struct PeerCertificateValidator: Sendable {
    /// The anchors chains must lead to.
    public let anchors: TrustAnchors

    /// Creates a validator.
    /// - Parameter anchors: the configured trust anchors.
    public init(anchors: TrustAnchors) {
        self.anchors = anchors
    }

    /// Parses and validates a chain received as DER (leaf first).
    /// - Parameters:
    ///   - chainDER: the certificates as sent by the peer.
    ///   - peerName: the configured name of the peer (a DNS name such as `bob.example`).
    ///   - time: the validation time (injected: the core has no clock).
    /// - Returns: the validated peer.
    /// - Throws: ``QKDError/Code/pkiBadCertificate`` for an empty, over-long or unparsable chain,
    ///   and every error of ``validate(chain:peerName:at:)``.
    public func validate(chainDER: [[UInt8]], peerName: String, at time: Date) async throws -> ValidatedPeer {
        guard !chainDER.isEmpty, chainDER.count <= PKILimits.maximumChainLength else {
            throw QKDError(.pkiBadCertificate, "the peer sent \(chainDER.count) certificates; a chain must hold 1 to \(PKILimits.maximumChainLength)")
        }
        let chain = try chainDER.enumerated().map { index, der in
            try PKIParsing.certificate(der: der, source: "certificate \(index + 1) from the peer", peer: true)
        }
        return try await validate(chain: chain, peerName: peerName, at: time)
    }

    /// Validates a parsed chain (leaf first; the order of the rest does not matter).
    /// - Parameters:
    ///   - chain: the peer's certificates.
    ///   - peerName: the configured name of the peer.
    ///   - time: the validation time.
    /// - Returns: the validated peer.
    /// - Throws: ``QKDError/Code/pkiUnsupportedKey`` if the leaf key is not Ed25519;
    ///   ``QKDError/Code/pkiExpired`` / ``QKDError/Code/pkiNotYetValid`` if the only chains to
    ///   an anchor contain a certificate outside its validity at `time`;
    ///   ``QKDError/Code/pkiUntrusted`` if no chain leads to an anchor;
    ///   ``QKDError/Code/pkiNameMismatch`` if the leaf does not name `peerName`;
    ///   ``QKDError/Code/pkiBadMLDSABinding`` for a malformed binding extension.
    public func validate(chain: [Certificate], peerName: String, at time: Date) async throws -> ValidatedPeer {
        guard let leaf = chain.first, chain.count <= PKILimits.maximumChainLength else {
            throw QKDError(.pkiBadCertificate, "the peer's chain holds \(chain.count) certificates; it must hold 1 to \(PKILimits.maximumChainLength)")
        }
        // Only Ed25519 leaves (Spec/handshake.md 4.2 rule 1): checked first, so an RSA or EC
        // certificate gets this clear error whatever its issuer.
        let signingKey = try leaf.ed25519PublicKey(source: "the peer's certificate")

        var verifier = Verifier(rootCertificates: CertificateStore(anchors.certificates)) {
            RFC5280Policy(fixedExpiryValidationTime: time)
            QKDHandledExtensionsPolicy()
        }
        // The verifier silently refuses a leaf with a critical extension no policy handles;
        // say so instead of "not signed by any trust anchor".
        let handled = verifier.policy.verifyingCriticalExtensions
        if let unknown = leaf.extensions.first(where: { $0.critical && !handled.contains($0.oid) }) {
            throw QKDError(.pkiUntrusted, "certificate for '\(leaf.displayName)' has a critical extension \(unknown.oid) that QKDChannel does not process; reissue it without that extension or mark it non-critical")
        }
        let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore(chain.dropFirst()))
        let validated: [Certificate]
        switch result {
        case .validCertificate(let path):
            validated = Array(path)
        case .couldNotValidate(let failures):
            throw classify(failures: failures, leaf: leaf, time: time)
        }

        guard Self.certificate(leaf, names: peerName) else {
            throw QKDError(.pkiNameMismatch, "the peer's certificate is for \(Self.names(of: leaf)), not for the configured peer '\(peerName)'; check the peer name in the configuration or the certificate's subjectAltName")
        }
        let mlDSAKey = try MLDSA65Binding.publicKey(in: leaf, source: "the peer's certificate for '\(peerName)'")
        return ValidatedPeer(leaf: leaf, chain: validated, signingKey: signingKey, mlDSAKey: mlDSAKey, name: peerName)
    }

    /// Turns the verifier's failures into one typed error. swift-certificates only applies policy
    /// to candidate chains that reached an anchor with valid signatures, so: no failures means
    /// no chain to any anchor (untrusted); failures whose chain has a certificate outside its
    /// validity window mean expired / not yet valid; anything else is an RFC 5280 refusal.
    private func classify(failures: [CertificateValidationResult.PolicyFailure], leaf: Certificate, time: Date) -> QKDError {
        let name = leaf.displayName
        for failure in failures {
            for certificate in failure.chain {
                if time > certificate.notValidAfter {
                    return QKDError(.pkiExpired, "certificate '\(certificate.displayName)' in the chain for '\(name)' expired at \(certificate.notValidAfter) (validation time \(time)); renew it")
                }
                if time < certificate.notValidBefore {
                    return QKDError(.pkiNotYetValid, "certificate '\(certificate.displayName)' in the chain for '\(name)' is not valid before \(certificate.notValidBefore) (validation time \(time)); check both clocks")
                }
            }
        }
        if let first = failures.first {
            return QKDError(.pkiUntrusted, "certificate for '\(name)' chains to a trust anchor in \(anchors.source) but breaks RFC 5280 rules: \(first.policyFailureReason)")
        }
        return QKDError(.pkiUntrusted, "certificate for '\(name)' is not signed by any trust anchor in \(anchors.source); configure the CA that issued it, or have the peer send its intermediate certificates")
    }

    /// Whether `certificate` names `peerName` (Spec/handshake.md 4.2 rule 3): an exact,
    /// ASCII-case-insensitive match with a subjectAltName dNSName (a trailing dot ignored); the
    /// subject CN only if the certificate has no dNSName at all. No wildcards: a QKD node
    /// certificate names one node.
    static func certificate(_ certificate: Certificate, names peerName: String) -> Bool {
        let wanted = normalise(peerName)
        let dnsNames = Self.dnsNames(of: certificate)
        // A SAN extension that is present but unreadable fails closed: no fallback to the CN.
        let hasSAN = certificate.extensions[oid: .X509ExtensionID.subjectAlternativeName] != nil
        if hasSAN || !dnsNames.isEmpty {
            return dnsNames.contains { normalise($0) == wanted }
        }
        return certificate.subject.commonNames.contains { normalise($0) == wanted }
    }

    static func dnsNames(of certificate: Certificate) -> [String] {
        guard let san = (try? certificate.extensions.subjectAlternativeNames) ?? nil else { return [] }
        return san.compactMap { name in
            if case .dnsName(let value) = name { return value }
            return nil
        }
    }

    static func names(of certificate: Certificate) -> String {
        let dns = dnsNames(of: certificate)
        if !dns.isEmpty { return dns.map { "'\($0)'" }.joined(separator: ", ") }
        let cns = certificate.subject.commonNames
        return cns.isEmpty ? "no name" : cns.map { "'\($0)' (subject CN)" }.joined(separator: ", ")
    }

    private static func normalise(_ name: String) -> String {
        var n = name.lowercased()
        if n.hasSuffix(".") { n.removeLast() }
        return n
    }
}
