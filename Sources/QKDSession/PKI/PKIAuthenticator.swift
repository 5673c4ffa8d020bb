public import QKDCrypto
public import QKDWire

/// The hook through which PKI mode (Spec/session.md section 5.2, Spec/handshake.md) plugs into
/// the session: certificates, signatures and the key agreement live in the `QKDSession` module
/// (X.509 with swift-certificates, X25519, ML-KEM-768, Ed25519, ML-DSA-65); the session core
/// only carries their bytes in the handshake messages and turns the agreed secret into the
/// epoch-0 bootstrap streams (section 5.3), exactly as for `psk-kdf`.
///
/// Transcript hashes passed in are BLAKE2b-256 over the handshake frames so far (header and
/// payload of each); for the ServerHello signature, over the ClientHello frame and the
/// ServerHello payload up to (not including) its `certificate_chain` field (Spec/session.md
/// section 5.2). The validation time is the implementation's: it is injected when the
/// authenticator is built (the session's `now` is a monotonic clock, not a calendar time).
///
/// ``Session`` drives PKI mode through this protocol when one is passed to
/// ``Session/init(configuration:keyStore:random:pki:)``; without one, a ClientHello with mode
/// `pki` is refused with `session.unsupported-mode`. The tests drive it with a stand-in
/// (`StandInPKI`), not with X.509.
public protocol PKIAuthenticator: AnyObject {
    /// Alice: draws ephemeral key-agreement keys and returns the offer.
    /// - Parameter random: the injected source.
    /// - Returns: the offer for the ClientHello.
    /// - Throws: a local error if keys cannot be made.
    func makeClientOffer(random: inout any RandomSource) throws -> PKIClientOffer

    /// Bob: answers an offer: chooses a group, encapsulates, and derives the shared secret.
    /// - Parameters:
    ///   - offer: Alice's offer.
    ///   - clientHelloHash: BLAKE2b-256 of the ClientHello frame (`TH_ka`, the combiner's salt
    ///     in Spec/handshake.md 2.3).
    ///   - random: the injected source.
    /// - Returns: the group, Bob's share, the ML-KEM ciphertext (or empty) and the shared secret.
    /// - Throws: ``QKDError/Code/sessionNoCommonSuite`` if no offered group is acceptable.
    func respond(to offer: PKIClientOffer, clientHelloHash: [UInt8], random: inout any RandomSource) throws
        -> (kexGroup: UInt8, x25519Share: [UInt8], mlkem768Ciphertext: [UInt8], secret: SecretBytes)

    /// Signs a transcript hash with this node's key(s) and attaches its chain.
    /// - Parameters:
    ///   - transcriptHash: 32 bytes.
    ///   - role: which label to sign under ("server signature" for Bob, "client signature" for Alice).
    /// - Returns: the proof.
    /// - Throws: a local error if signing fails.
    func prove(transcriptHash: [UInt8], role: Direction) throws -> PKIIdentityProof

    /// Validates the peer's chain against the trust anchors at the injected validation time,
    /// checks its name against the configured peer name, and its signatures over
    /// `transcriptHash`.
    /// - Parameters:
    ///   - proof: the peer's proof.
    ///   - transcriptHash: 32 bytes.
    ///   - peerRole: the direction the peer sends in.
    /// - Throws: ``QKDError/Code/sessionBadCertificate`` on any failure.
    func verify(_ proof: PKIIdentityProof, transcriptHash: [UInt8], peerRole: Direction) throws

    /// Alice: completes the key agreement with Bob's answer.
    /// - Parameters:
    ///   - response: Bob's answer.
    ///   - clientHelloHash: BLAKE2b-256 of the ClientHello frame (`TH_ka`).
    /// - Returns: the shared secret.
    /// - Throws: ``QKDError/Code/sessionMalformedHandshake`` for a share that does not decode.
    func finishKeyAgreement(with response: PKIServerResponse, clientHelloHash: [UInt8]) throws -> SecretBytes
}
