#if canImport(FoundationEssentials)
public import FoundationEssentials  // Date
#else
public import Foundation
#endif
public import QKDCrypto
public import QKDWire

/// The real ``PKIAuthenticator`` (Spec/handshake.md sections 2 to 4 and 6): X.509 chains
/// validated with swift-certificates against configured trust anchors at an injected time,
/// Ed25519 transcript signatures (plus ML-DSA-65 when a certificate binds a key, section 4.4),
/// and an ephemeral X25519 or X25519 + ML-KEM-768 key agreement (section 2.3).
///
/// One instance serves one handshake (it holds Alice's ephemeral key-agreement keys between
/// the ClientHello and the ServerHello); make a new one per session.
///
/// ML-DSA-65: a node whose identity has an ML-DSA-65 key always adds the second signature.
/// The peer's second signature is **required** whenever the peer's validated leaf binds an
/// ML-DSA-65 key (the binding is covered by the CA's signature, so an attacker cannot strip
/// it), and also for every peer when ``requirePeerMLDSA`` is set.
public final class X509Authenticator: PKIAuthenticator {
    /// This node's chain and keys.
    public let identity: NodeIdentity
    /// The anchors the peer's chain must lead to.
    public let anchors: TrustAnchors
    /// The name the peer's certificate must carry (Spec/handshake.md 4.2 rule 3).
    public let peerName: String
    /// The calendar time certificates are checked at (injected: the session has no clock).
    public let validationTime: Date
    /// Key-agreement groups in preference order: Alice offers them, Bob accepts them.
    public let kexGroups: [KeyAgreementSuite]
    /// Refuse peers whose certificate binds no ML-DSA-65 key.
    public let requirePeerMLDSA: Bool
    /// Alice's ephemeral keys, from the offer until the key agreement is finished.
    private var initiator: KeyAgreementInitiator?

    /// Creates an authenticator.
    /// - Parameters:
    ///   - identity: this node's certificate chain and keys (``PKIFiles/loadIdentity(certificateChainPath:privateKeyPath:mlDSAKeyPath:)``).
    ///   - anchors: the trust anchors.
    ///   - peerName: the configured name of the peer, e.g. `bob.example`.
    ///   - validationTime: the time certificates must be valid at (normally "now" from the
    ///     embedding program's wall clock).
    ///   - kexGroups: the groups offered / accepted, preferred first; not empty. Default: the
    ///     hybrid group first, then X25519.
    ///   - requirePeerMLDSA: demand an ML-DSA-65 signature from every peer.
    public init(identity: NodeIdentity, anchors: TrustAnchors, peerName: String, validationTime: Date,
                kexGroups: [KeyAgreementSuite] = [.x25519MLKEM768, .x25519], requirePeerMLDSA: Bool = false) {
        precondition(!kexGroups.isEmpty && Set(kexGroups).count == kexGroups.count, "offer at least one key-agreement group, each once")
        self.identity = identity
        self.anchors = anchors
        self.peerName = peerName
        self.validationTime = validationTime
        self.kexGroups = kexGroups
        self.requirePeerMLDSA = requirePeerMLDSA
    }

    private static func signer(_ direction: Direction) -> HandshakeRole {
        direction == .aliceToBob ? .initiator : .responder
    }

    /// Alice: fresh X25519 (and, if offered, ML-KEM-768) keys from `random`.
    /// - Parameter random: the injected source.
    /// - Returns: the offer.
    /// - Throws: ``QKDError/Code/postQuantumFailure`` if swift-crypto refuses the ML-KEM seed.
    public func makeClientOffer(random: inout any RandomSource) throws -> PKIClientOffer {
        let initiator = try KeyAgreementInitiator(offerHybrid: kexGroups.contains(.x25519MLKEM768), using: &random)
        self.initiator = initiator
        return PKIClientOffer(kexGroups: kexGroups.map(\.rawValue), x25519Share: initiator.x25519Share,
                              mlkem768EncapsulationKey: initiator.mlkemEncapsulationKey ?? [])
    }

    /// Bob: the first group of Alice's preference list that this node accepts.
    /// - Parameters:
    ///   - offer: Alice's offer.
    ///   - clientHelloHash: `TH_ka`.
    ///   - random: the source of Bob's X25519 scalar.
    /// - Returns: the answer and the shared secret.
    /// - Throws: ``QKDError/Code/sessionNoCommonSuite``; ``QKDError/Code/sessionMalformedHandshake``
    ///   for a share or key the key agreement refuses.
    public func respond(to offer: PKIClientOffer, clientHelloHash: [UInt8], random: inout any RandomSource) throws
        -> (kexGroup: UInt8, x25519Share: [UInt8], mlkem768Ciphertext: [UInt8], secret: SecretBytes) {
        guard let suite = offer.kexGroups.lazy.compactMap({ KeyAgreementSuite(rawValue: $0) }).first(where: { self.kexGroups.contains($0) }) else {
            throw QKDError(.sessionNoCommonSuite, "no key-agreement group in common: the peer offers \(offer.kexGroups), this node accepts \(kexGroups.map(\.description))")
        }
        do {
            let response = try KeyAgreementResponder.respond(
                suite: suite, x25519Share: offer.x25519Share,
                mlkemEncapsulationKey: offer.mlkem768EncapsulationKey.isEmpty ? nil : offer.mlkem768EncapsulationKey,
                transcriptHash: clientHelloHash, using: &random)
            return (suite.rawValue, response.x25519Share, response.mlkemCiphertext ?? [], response.sharedSecret)
        } catch let error as QKDError {
            throw QKDError(.sessionMalformedHandshake, "the peer's key-agreement share was refused (\(error.code)): \(error.detail)")
        }
    }

    /// Signs `label || transcriptHash` with Ed25519 (and ML-DSA-65 if this identity has a key).
    /// - Parameters:
    ///   - transcriptHash: 32 bytes.
    ///   - role: this node's direction.
    /// - Returns: the chain and signatures.
    /// - Throws: ``QKDError/Code/postQuantumFailure`` if ML-DSA signing fails.
    public func prove(transcriptHash: [UInt8], role: Direction) throws -> PKIIdentityProof {
        let signatures = try TranscriptSignature.sign(identity: identity, role: Self.signer(role), transcriptHash: transcriptHash,
                                                      hybrid: identity.mlDSAKey != nil)
        return PKIIdentityProof(certificateChain: try identity.chainDER(), ed25519Signature: signatures.ed25519,
                                mldsa65Signature: signatures.mlDSA65 ?? [])
    }

    /// The chain validation of Spec/handshake.md 4.2 as an asynchronous request.
    /// - Parameters:
    ///   - proof: the peer's proof.
    ///   - peerRole: the peer's direction.
    /// - Returns: a request whose result carries a ``ValidatedPeer``.
    public func validationRequest(for proof: PKIIdentityProof, peerRole: Direction) -> PeerValidationRequest {
        let validator = PeerCertificateValidator(anchors: anchors)
        let name = peerName, time = validationTime
        return PeerValidationRequest(certificateChain: proof.certificateChain, peerRole: peerRole) { chain in
            try await validator.validate(chainDER: chain, peerName: name, at: time)
        }
    }

    /// Checks the transcript signatures with the validated leaf's keys (Spec/handshake.md 3.3).
    /// - Parameters:
    ///   - proof: the peer's proof.
    ///   - transcriptHash: 32 bytes.
    ///   - peerRole: the peer's direction.
    ///   - peer: the ``ValidatedPeer`` the request produced.
    /// - Throws: ``QKDError/Code/badTranscriptSignature``, ``QKDError/Code/missingMLDSASignature``
    ///   (the session reports both as `session.bad-certificate`).
    public func verify(_ proof: PKIIdentityProof, transcriptHash: [UInt8], peerRole: Direction, peer: any Sendable) throws {
        guard let validated = peer as? ValidatedPeer else {
            throw QKDError(.sessionInternalError, "the peer validation result is not from an X509Authenticator request")
        }
        let hybrid = validated.mlDSAKey != nil || requirePeerMLDSA
        if !hybrid && !proof.mldsa65Signature.isEmpty {
            throw QKDError(.missingMLDSASignature, "'\(validated.name)' sent an ML-DSA-65 signature but its certificate binds no ML-DSA-65 key")
        }
        let signatures = TranscriptSignature.Signatures(ed25519: proof.ed25519Signature,
                                                        mlDSA65: proof.mldsa65Signature.isEmpty ? nil : proof.mldsa65Signature)
        try TranscriptSignature.verify(signatures, from: validated, role: Self.signer(peerRole), transcriptHash: transcriptHash, hybrid: hybrid)
    }

    /// Alice: the shared secret for the group Bob chose.
    /// - Parameters:
    ///   - response: Bob's answer.
    ///   - clientHelloHash: `TH_ka`.
    /// - Returns: the secret.
    /// - Throws: ``QKDError/Code/sessionNoCommonSuite`` for a group this node did not offer;
    ///   ``QKDError/Code/sessionMalformedHandshake`` for a share the key agreement refuses.
    public func finishKeyAgreement(with response: PKIServerResponse, clientHelloHash: [UInt8]) throws -> SecretBytes {
        guard let initiator else {
            throw QKDError(.sessionInternalError, "finishKeyAgreement without an offer: use one X509Authenticator per session")
        }
        guard let suite = KeyAgreementSuite(rawValue: response.kexGroup), kexGroups.contains(suite) else {
            throw QKDError(.sessionNoCommonSuite, "the peer chose key-agreement group \(response.kexGroup), which this node did not offer")
        }
        defer { self.initiator = nil }
        do {
            return try initiator.sharedSecret(suite: suite, responderX25519Share: response.x25519Share,
                                              mlkemCiphertext: response.mlkem768Ciphertext.isEmpty ? nil : response.mlkem768Ciphertext,
                                              transcriptHash: clientHelloHash)
        } catch let error as QKDError {
            throw QKDError(.sessionMalformedHandshake, "the peer's key-agreement answer was refused (\(error.code)): \(error.detail)")
        }
    }
}
