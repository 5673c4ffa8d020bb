public import QKDCrypto
public import QKDWire

/// The hook through which PKI mode (Spec/session.md section 5.2, Spec/handshake.md sections 3
/// and 6) plugs into the session: certificates, signatures and the key agreement
/// (``X509Authenticator``: X.509 with swift-certificates, X25519, ML-KEM-768, Ed25519,
/// ML-DSA-65); the session only carries their bytes in the handshake messages and turns the
/// agreed secret into the epoch-0 bootstrap streams (section 5.3), exactly as for `psk-kdf`.
///
/// Transcript hashes passed in are BLAKE2b-256 over the handshake frames so far (header and
/// payload of each); for the ServerHello signature, over the ClientHello frame and the
/// ServerHello payload up to (not including) its `certificate_chain` field (Spec/session.md
/// section 5.2). The validation time is the implementation's: it is injected when the
/// authenticator is built (the session's `now` is a monotonic clock, not a calendar time).
///
/// Chain validation is asynchronous (swift-certificates' `Verifier.validate` is `async`), and
/// the session never blocks on it: it asks for a ``PeerValidationRequest``
/// (``validationRequest(for:peerRole:)``), hands it out as ``SessionAction/validatePeer(_:)``
/// and pauses; the embedding program runs ``PeerValidationRequest/run()`` and passes the
/// result to ``Session/peerValidated(_:now:)``. The signature check itself
/// (``verify(_:transcriptHash:peerRole:peer:)``) is synchronous and runs inside the session with
/// the validated keys (Spec/handshake.md section 6).
///
/// ``Session`` drives PKI mode through this protocol when one is passed to
/// ``Session/init(configuration:keyStore:random:pki:)``; without one, a ClientHello with mode
/// `pki` is refused with `session.unsupported-mode`.
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
    /// - Throws: ``QKDError/Code/sessionNoCommonSuite`` if no offered group is acceptable;
    ///   ``QKDError/Code/sessionMalformedHandshake`` for a share the key agreement refuses.
    func respond(to offer: PKIClientOffer, clientHelloHash: [UInt8], random: inout any RandomSource) throws
        -> (kexGroup: UInt8, x25519Share: [UInt8], mlkem768Ciphertext: [UInt8], secret: SecretBytes)

    /// Signs a transcript hash with this node's key(s) and attaches its chain.
    /// - Parameters:
    ///   - transcriptHash: 32 bytes.
    ///   - role: the direction this node sends in ("client signature" for Alice, "server
    ///     signature" for Bob).
    /// - Returns: the proof.
    /// - Throws: a local error if signing fails.
    func prove(transcriptHash: [UInt8], role: Direction) throws -> PKIIdentityProof

    /// Describes the asynchronous validation of the peer's chain (against the trust anchors, at
    /// the injected validation time, for the configured peer name). Does no work itself.
    /// - Parameters:
    ///   - proof: the peer's proof, as received.
    ///   - peerRole: the direction the peer sends in.
    /// - Returns: the request the session hands out as ``SessionAction/validatePeer(_:)``.
    func validationRequest(for proof: PKIIdentityProof, peerRole: Direction) -> PeerValidationRequest

    /// Verifies the peer's transcript signatures with the keys of its validated chain
    /// (synchronous: called inside the session once ``Session/peerValidated(_:now:)`` delivered
    /// a successful validation).
    /// - Parameters:
    ///   - proof: the peer's proof.
    ///   - transcriptHash: 32 bytes.
    ///   - peerRole: the direction the peer sends in.
    ///   - peer: the value the validation produced (``PeerValidationResult/peer``).
    /// - Throws: ``QKDError/Code/sessionBadCertificate`` (or a `pki.*` code, which the session
    ///   reports as `session.bad-certificate`) on any failure.
    func verify(_ proof: PKIIdentityProof, transcriptHash: [UInt8], peerRole: Direction, peer: any Sendable) throws

    /// Alice: completes the key agreement with Bob's answer.
    /// - Parameters:
    ///   - response: Bob's answer.
    ///   - clientHelloHash: BLAKE2b-256 of the ClientHello frame (`TH_ka`).
    /// - Returns: the shared secret.
    /// - Throws: ``QKDError/Code/sessionMalformedHandshake`` for a share that does not decode;
    ///   ``QKDError/Code/sessionNoCommonSuite`` for a group that was not offered.
    func finishKeyAgreement(with response: PKIServerResponse, clientHelloHash: [UInt8]) throws -> SecretBytes
}

/// The peer chain validation a PKI session waits for (Spec/handshake.md section 6, "the
/// validation pause"): the chain as received and the asynchronous check to run on it.
///
/// The embedding program runs it outside the session and hands the result back:
///
/// ```swift
/// case .validatePeer(let request):
///     let result = await request.run()
///     try session.peerValidated(result, now: clock.now)
/// ```
public struct PeerValidationRequest: Sendable {
    /// The peer's certificate chain as received (DER, leaf first).
    public let certificateChain: [[UInt8]]
    /// The direction the peer sends in.
    public let peerRole: Direction
    private let check: @Sendable ([[UInt8]]) async throws -> any Sendable

    /// Creates a request.
    /// - Parameters:
    ///   - certificateChain: the chain to validate.
    ///   - peerRole: the peer's direction.
    ///   - check: validates the chain; returns what ``PKIAuthenticator/verify(_:transcriptHash:peerRole:peer:)``
    ///     needs (e.g. ``ValidatedPeer``), or throws a `QKDError`.
    public init(certificateChain: [[UInt8]], peerRole: Direction, check: @escaping @Sendable ([[UInt8]]) async throws -> any Sendable) {
        self.certificateChain = certificateChain
        self.peerRole = peerRole
        self.check = check
    }

    /// Runs the validation. Never throws: a failure is carried in the result, so the session
    /// closes with a typed error and an alert.
    /// - Returns: the result for ``Session/peerValidated(_:now:)``.
    public func run() async -> PeerValidationResult {
        do {
            return PeerValidationResult(certificateChain: certificateChain, outcome: .success(try await check(certificateChain)))
        } catch let error as QKDError {
            return PeerValidationResult(certificateChain: certificateChain, outcome: .failure(error))
        } catch {
            return PeerValidationResult(certificateChain: certificateChain,
                                        outcome: .failure(QKDError(.sessionBadCertificate, "the peer's certificate chain could not be validated: \(error)")))
        }
    }

    /// A failed result without running the check (e.g. the driver gave up waiting).
    /// - Parameter error: why.
    /// - Returns: the result for ``Session/peerValidated(_:now:)``.
    public func failed(_ error: QKDError) -> PeerValidationResult {
        PeerValidationResult(certificateChain: certificateChain, outcome: .failure(error))
    }
}

/// The outcome of a ``PeerValidationRequest``: the validated peer (opaque to the session) or
/// the error. It names the chain it is about, so the session can refuse a result for another
/// request (a programming error of the driver).
public struct PeerValidationResult: Sendable {
    /// The chain that was validated.
    public let certificateChain: [[UInt8]]
    /// The validated peer, or why the chain was refused.
    public let outcome: Result<any Sendable, QKDError>

    /// The validated peer, if the validation succeeded.
    public var peer: (any Sendable)? {
        if case .success(let peer) = outcome { return peer }
        return nil
    }

    /// The error, if the validation failed.
    public var error: QKDError? {
        if case .failure(let error) = outcome { return error }
        return nil
    }
}
