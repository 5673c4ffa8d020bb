public import QKDCrypto

extension QKDError.Code {
    /// The peer's transcript signature (Ed25519 or ML-DSA-65) does not verify
    /// (Spec/handshake.md 3.3): a tampered handshake or an impostor.
    public static let badTranscriptSignature = QKDError.Code("pki.bad-transcript-signature", peerMisbehaviour: true)
    /// The hybrid signature option was negotiated but a side has no ML-DSA-65 key bound in its
    /// certificate, or sent no ML-DSA-65 signature (Spec/handshake.md 3.3, 4.4).
    public static let missingMLDSASignature = QKDError.Code("pki.missing-mldsa-signature", peerMisbehaviour: true)
}

/// Which side of the handshake signs (Spec/session.md 3): the label differs per role, so a
/// signature can never be reflected back to its maker.
public enum HandshakeRole: Sendable, CaseIterable {
    /// Alice, the side that opened the connection ("client signature").
    case initiator
    /// Bob, the side that answered ("server signature").
    case responder

    var signatureLabel: [UInt8] {
        switch self {
        case .initiator: Array("QKDChannel/1 client signature".utf8)
        case .responder: Array("QKDChannel/1 server signature".utf8)
        }
    }
}

/// The transcript signatures of the PKI bootstrap (Spec/session.md 3, Spec/handshake.md 3.3).
public enum TranscriptSignature {
    /// The signatures one side sends.
    public struct Signatures: Sendable, Equatable {
        /// The Ed25519 signature (64 bytes).
        public var ed25519: [UInt8]
        /// The ML-DSA-65 signature (3309 bytes), present when the hybrid option is negotiated.
        public var mlDSA65: [UInt8]?

        /// Creates a value, e.g. from decoded wire fields.
        /// - Parameters:
        ///   - ed25519: the Ed25519 signature.
        ///   - mlDSA65: the ML-DSA-65 signature, if any.
        public init(ed25519: [UInt8], mlDSA65: [UInt8]?) {
            self.ed25519 = ed25519
            self.mlDSA65 = mlDSA65
        }
    }

    /// The signed message of Spec/session.md 3: `"QKDChannel/1 server signature" || TH` for
    /// Bob, `"QKDChannel/1 client signature" || TH` for Alice, where `TH` is the BLAKE2b-256
    /// transcript hash so far (``TranscriptHash``).
    /// - Parameters:
    ///   - role: the signer's role.
    ///   - transcriptHash: `TH`.
    /// - Returns: the bytes both schemes sign.
    public static func message(role: HandshakeRole, transcriptHash: [UInt8]) -> [UInt8] {
        role.signatureLabel + transcriptHash
    }

    /// Signs the transcript with this node's identity.
    /// - Parameters:
    ///   - identity: this node's keys.
    ///   - role: this node's role.
    ///   - transcriptHash: `TH_sig`.
    ///   - hybrid: whether the ML-DSA-65 option was negotiated.
    /// - Returns: the signatures.
    /// - Throws: ``QKDError/Code/missingMLDSASignature`` if `hybrid` and the identity has no
    ///   ML-DSA-65 key; ``QKDError/Code/postQuantumFailure`` if ML-DSA signing fails.
    public static func sign(identity: NodeIdentity, role: HandshakeRole, transcriptHash: [UInt8], hybrid: Bool) throws -> Signatures {
        let m = message(role: role, transcriptHash: transcriptHash)
        var result = Signatures(ed25519: identity.signingKey.signature(for: m), mlDSA65: nil)
        if hybrid {
            guard let key = identity.mlDSAKey else {
                throw QKDError(.missingMLDSASignature, "the hybrid ML-DSA-65 signature was negotiated but this node has no ML-DSA-65 key configured")
            }
            result.mlDSA65 = try key.signature(for: m)
        }
        return result
    }

    /// Verifies the peer's signatures. Both must verify when `hybrid` (an attacker must break
    /// Ed25519 *and* ML-DSA-65).
    /// - Parameters:
    ///   - signatures: what the peer sent.
    ///   - peer: the validated peer (its keys come from its certificate).
    ///   - role: the peer's role.
    ///   - transcriptHash: `TH_sig` as this side computed it.
    ///   - hybrid: whether the ML-DSA-65 option was negotiated.
    /// - Throws: ``QKDError/Code/badTranscriptSignature`` if a signature does not verify;
    ///   ``QKDError/Code/missingMLDSASignature`` if `hybrid` and the peer's certificate binds no
    ///   ML-DSA-65 key or the ML-DSA-65 signature is absent.
    public static func verify(_ signatures: Signatures, from peer: ValidatedPeer, role: HandshakeRole, transcriptHash: [UInt8], hybrid: Bool) throws {
        let m = message(role: role, transcriptHash: transcriptHash)
        guard peer.signingKey.isValidSignature(signatures.ed25519, for: m) else {
            throw QKDError(.badTranscriptSignature, "the Ed25519 transcript signature of '\(peer.name)' does not verify: the handshake was altered in transit or the peer does not hold the certificate's key")
        }
        guard hybrid else { return }
        guard let key = peer.mlDSAKey else {
            throw QKDError(.missingMLDSASignature, "the hybrid ML-DSA-65 signature was negotiated but the certificate of '\(peer.name)' binds no ML-DSA-65 key")
        }
        guard let mlSignature = signatures.mlDSA65 else {
            throw QKDError(.missingMLDSASignature, "the hybrid ML-DSA-65 signature was negotiated but '\(peer.name)' sent none")
        }
        guard key.isValidSignature(mlSignature, for: m) else {
            throw QKDError(.badTranscriptSignature, "the ML-DSA-65 transcript signature of '\(peer.name)' does not verify: the handshake was altered in transit or the peer does not hold the bound key")
        }
    }
}
