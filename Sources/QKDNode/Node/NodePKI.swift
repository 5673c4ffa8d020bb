#if canImport(FoundationEssentials)
public import FoundationEssentials  // Date, UUID
#else
public import Foundation
#endif
public import QKDCrypto
public import QKDSession
import X509

/// Which ephemeral key agreement a PKI bootstrap uses (Spec/handshake.md section 2.3). The
/// choice is strict: a node configured for the hybrid group neither offers nor accepts X25519
/// alone, so a man in the middle cannot talk it down to the classical group.
public enum NodeKeyAgreement: String, Sendable, Hashable, CaseIterable {
    /// X25519 alone.
    case x25519
    /// X25519 + ML-KEM-768 (secure while either holds).
    case hybrid

    /// The groups the authenticator offers (Alice) and accepts (Bob).
    var groups: [KeyAgreementSuite] { self == .hybrid ? [.x25519MLKEM768] : [.x25519] }
}

/// A node's PKI bootstrap (DESIGN.md "Bootstrap handshake", Spec/session.md section 5.2): its
/// certificate chain and keys, the trust anchors the peer's chain must lead to, the name the
/// peer's certificate must carry, the key agreement, and the clock certificates are checked
/// against.
///
/// The PKI handshake is only the first contact: its keys are computational, so the session
/// starts ``QKDSession/SecurityLevel/computational`` and switches to the pool (information-
/// theoretic) once both sides absorbed distilled key. A later connection with a pool that holds
/// pads resumes in pool mode and needs no certificate check (DESIGN.md, "Resume").
public struct NodePKI: Sendable {
    /// This node's chain (leaf first), Ed25519 key and optional ML-DSA-65 key.
    public var identity: NodeIdentity
    /// The anchors the peer's chain must lead to.
    public var anchors: TrustAnchors
    /// The name the peer's certificate must carry (Spec/handshake.md 4.2 rule 3).
    public var peerName: String
    /// X25519 or the hybrid group.
    public var keyAgreement: NodeKeyAgreement
    /// Refuse a peer whose certificate binds no ML-DSA-65 key (Spec/handshake.md 4.4).
    public var requirePeerMLDSA: Bool
    /// The calendar time certificates are validated at, read once per handshake (injected so
    /// tests can check expiry without waiting; the session itself has no clock).
    public var validationTime: @Sendable () -> Date

    /// Creates a PKI configuration.
    /// - Parameters:
    ///   - identity: this node's chain and keys (``QKDSession/PKIFiles/loadIdentity(certificateChainPath:privateKeyPath:mlDSAKeyPath:)``).
    ///   - anchors: the trust anchors (``QKDSession/PKIFiles/loadTrustAnchors(_:)``).
    ///   - peerName: the peer's DNS name, e.g. `bob.example`.
    ///   - keyAgreement: the key agreement (default: hybrid).
    ///   - requirePeerMLDSA: demand an ML-DSA-65 signature from the peer.
    ///   - validationTime: the wall clock (default: the system's).
    public init(identity: NodeIdentity, anchors: TrustAnchors, peerName: String, keyAgreement: NodeKeyAgreement = .hybrid,
                requirePeerMLDSA: Bool = false, validationTime: @escaping @Sendable () -> Date = { Date() }) {
        self.identity = identity
        self.anchors = anchors
        self.peerName = peerName
        self.keyAgreement = keyAgreement
        self.requirePeerMLDSA = requirePeerMLDSA
        self.validationTime = validationTime
    }

    /// The name this node's own certificate carries: its first subjectAltName dNSName, else
    /// its subject common name (the rule the peer applies, Spec/handshake.md 4.2 rule 3).
    public var localName: String? {
        let leaf = identity.leaf
        if let san = (try? leaf.extensions.subjectAlternativeNames) ?? nil {
            for name in san { if case .dnsName(let value) = name { return value } }
        }
        for rdn in leaf.subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName { return String(attribute.value) }
        }
        return nil
    }

    /// The link id of a pool bootstrapped by PKI: both nodes derive the same one from the two
    /// names, `BLAKE2b-128("QKDChannel pki link id v1" || alice name || 0x00 || bob name)`, names
    /// lower-cased without a trailing dot (Spec/quantum-link.md section 6). A PSK-seeded pool
    /// uses the PSK id instead (Spec/keypool.md section 5).
    /// - Parameters:
    ///   - alice: Alice's certificate name.
    ///   - bob: Bob's certificate name.
    /// - Returns: the 16-byte id as a UUID.
    public static func linkID(alice: String, bob: String) -> UUID {
        func normalise(_ name: String) -> [UInt8] {
            var n = name.lowercased()
            if n.hasSuffix(".") { n.removeLast() }
            return Array(n.utf8)
        }
        let digest = GenericHash.hash([Array("QKDChannel pki link id v1".utf8), normalise(alice), [0], normalise(bob)], outputByteCount: 16)
        return UUID(uuid: (digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7],
                           digest[8], digest[9], digest[10], digest[11], digest[12], digest[13], digest[14], digest[15]))
    }

    /// The link id for a node of `role` with this configuration.
    /// - Parameter role: the node's role.
    /// - Returns: the id, or nil if this node's certificate carries no name.
    public func linkID(role: SessionRole) -> UUID? {
        guard let own = localName else { return nil }
        return role == .alice ? Self.linkID(alice: own, bob: peerName) : Self.linkID(alice: peerName, bob: own)
    }

    /// A fresh authenticator for one handshake (it holds Alice's ephemeral keys).
    func authenticator() -> X509Authenticator {
        X509Authenticator(identity: identity, anchors: anchors, peerName: peerName, validationTime: validationTime(),
                          kexGroups: keyAgreement.groups, requirePeerMLDSA: requirePeerMLDSA)
    }
}
