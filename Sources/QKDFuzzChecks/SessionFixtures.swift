public import QKDCrypto
public import QKDWire
public import QKDSession

/// A stand-in for the X.509 PKI authenticator (the session tests use it too, as `StandInPKI`): "certificates" are names, "signatures" are
/// BLAKE2b-256 over name, transcript hash and role, the "key agreement" hashes both public
/// shares with `TH_ka`. It exercises every PKI branch of the state machine (offer, response,
/// proofs in the hellos and in Alice's Finished) without the cost of Ed25519 and X.509 per
/// fuzz input; the certificate parsers have their own target (FuzzCertificateChain).
public final class FuzzStandInPKI: PKIAuthenticator {
    let name: [UInt8]
    let expectedPeer: [UInt8]
    private var share: [UInt8] = []

    /// A stand-in named `name` that accepts only a peer named `expectedPeer`.
    public init(name: String, expectedPeer: String) {
        self.name = Array(name.utf8)
        self.expectedPeer = Array(expectedPeer.utf8)
    }

    convenience init(role: SessionRole) {
        self.init(name: role == .alice ? "alice" : "bob", expectedPeer: role == .alice ? "bob" : "alice")
    }

    public static func signature(_ name: [UInt8], _ hash: [UInt8], _ role: Direction) -> [UInt8] {
        KeyDerivation.blake2b256(Array("fuzz-stand-in-signing-key".utf8) + name + hash + [role.rawValue]) + [UInt8](repeating: 0, count: 32)
    }

    public func makeClientOffer(random: inout any RandomSource) throws -> PKIClientOffer {
        share = random.bytes(count: HandshakeLimits.x25519ShareByteCount)
        return PKIClientOffer(kexGroups: [1], x25519Share: share, mlkem768EncapsulationKey: [])
    }

    public func respond(to offer: PKIClientOffer, clientHelloHash: [UInt8], random: inout any RandomSource) throws
        -> (kexGroup: UInt8, x25519Share: [UInt8], mlkem768Ciphertext: [UInt8], secret: SecretBytes) {
        guard offer.kexGroups.contains(1) else { throw QKDError(.sessionNoCommonSuite, "the stand-in PKI only speaks group 1") }
        let mine = random.bytes(count: HandshakeLimits.x25519ShareByteCount)
        return (1, mine, [], SecretBytes(copying: KeyDerivation.blake2b256(clientHelloHash + offer.x25519Share + mine)))
    }

    public func prove(transcriptHash: [UInt8], role: Direction) throws -> PKIIdentityProof {
        PKIIdentityProof(certificateChain: [name], ed25519Signature: Self.signature(name, transcriptHash, role), mldsa65Signature: [])
    }

    public func validationRequest(for proof: PKIIdentityProof, peerRole: Direction) -> PeerValidationRequest {
        let expected = expectedPeer
        return PeerValidationRequest(certificateChain: proof.certificateChain, peerRole: peerRole) { chain in
            guard chain.first == expected else {
                throw QKDError(.sessionBadCertificate, "the peer's stand-in certificate does not name the configured peer")
            }
            return expected
        }
    }

    public func verify(_ proof: PKIIdentityProof, transcriptHash: [UInt8], peerRole: Direction, peer: any Sendable) throws {
        guard let name = peer as? [UInt8], proof.ed25519Signature == Self.signature(name, transcriptHash, peerRole) else {
            throw QKDError(.sessionBadCertificate, "the peer's stand-in transcript signature does not verify")
        }
    }

    public func finishKeyAgreement(with response: PKIServerResponse, clientHelloHash: [UInt8]) throws -> SecretBytes {
        guard response.x25519Share.count == HandshakeLimits.x25519ShareByteCount else {
            throw QKDError(.sessionMalformedHandshake, "the stand-in key share is not 32 bytes")
        }
        return SecretBytes(copying: KeyDerivation.blake2b256(clientHelloHash + share + response.x25519Share))
    }
}

/// Configurations, stores and honest reference runs shared by the session targets. Everything
/// is deterministic (fixed seeds), so a fuzzed session built here behaves byte for byte like the
/// honest one it stands in for, until the input makes it differ.
enum SessionFixture {
    static let linkID = [UInt8](repeating: 0x42, count: 16)
    static let policy: [UInt8] = [1, 0, 32]
    static let aliceSeed: UInt64 = 0xA11CE
    static let bobSeed: UInt64 = 0xB0B
    static let storeSeed: UInt64 = 0xF0220
    static let slots = 64
    static let chunk: UInt64 = 8

    static func psk() -> PreSharedKey {
        PreSharedKey(id: [UInt8](repeating: 7, count: 16), secret: SecretBytes(copying: [UInt8](repeating: 9, count: 32)))
    }

    /// Both nodes' stores: linked pad streams of `slots` slots per direction.
    static func stores(slots: Int = SessionFixture.slots, chunk: UInt64 = SessionFixture.chunk) -> (alice: InMemoryKeyStore, bob: InMemoryKeyStore) {
        var random = DeterministicRandomSource(seed: storeSeed)
        return InMemoryKeyStore.pair(slotsPerDirection: slots, reservationChunk: chunk, random: &random)
    }

    /// A configuration: Alice asks for `mode`; Bob accepts every mode; both hold the PSK.
    static func configuration(_ role: SessionRole, mode: HandshakeMode) -> SessionConfiguration {
        SessionConfiguration(role: role, mode: mode, acceptedModes: [.pool, .pskKDF, .pki], linkID: linkID,
                             splitPolicy: policy, preSharedKeys: [psk()])
    }

    static func session(_ configuration: SessionConfiguration, store: InMemoryKeyStore, seed: UInt64) -> Session {
        Session(configuration: configuration, keyStore: store, random: DeterministicRandomSource(seed: seed),
                pki: FuzzStandInPKI(role: configuration.role))
    }

    /// Per-frame payloads the honest sender sends after the handshake, then the payloads of its
    /// round 1.
    static let honestPayloads: [[UInt8]] = [Array("first payload".utf8), Array(0..<40), [0xff]]
    static let honestRoundPayloads: [[UInt8]] = [Array("round one, frame one".utf8), [UInt8](repeating: 0xa5, count: 33)]

    /// What an honest pair put on the wire in one mode when one side (the "sender") sends the
    /// honest payloads and round 1 and the other only answers.
    struct HonestRun: Sendable {
        var aliceFrames: [[UInt8]] = []
        var bobFrames: [[UInt8]] = []
        var aliceHandedOut: [UInt64] = []
        var bobHandedOut: [UInt64] = []
    }

    /// Runs an honest pair in memory with the fixture's seeds.
    static func honestRun(mode: HandshakeMode, aliceSends: Bool) -> HonestRun {
        let (aliceStore, bobStore) = stores()
        var alice = session(configuration(.alice, mode: mode), store: aliceStore, seed: aliceSeed)
        var bob = session(configuration(.bob, mode: mode), store: bobStore, seed: bobSeed)
        var run = HonestRun()
        func pump() {
            var moved = true
            while moved {
                moved = false
                var toBob: [[UInt8]] = []
                var toAlice: [[UInt8]] = []
                var aliceValidations: [PeerValidationRequest] = []
                var bobValidations: [PeerValidationRequest] = []
                while let action = alice.nextAction() {
                    if case .transmit(let f) = action { toBob.append(f); run.aliceFrames.append(f) }
                    if case .validatePeer(let r) = action { aliceValidations.append(r) }
                }
                while let action = bob.nextAction() {
                    if case .transmit(let f) = action { toAlice.append(f); run.bobFrames.append(f) }
                    if case .validatePeer(let r) = action { bobValidations.append(r) }
                }
                for r in aliceValidations { moved = true; try? alice.peerValidated(SessionProbe.validate(r), now: 0) }
                for r in bobValidations { moved = true; try? bob.peerValidated(SessionProbe.validate(r), now: 0) }
                for f in toBob where !bob.isClosed { moved = true; try? bob.receive(f, now: 0) }
                for f in toAlice where !alice.isClosed { moved = true; try? alice.receive(f, now: 0) }
            }
        }
        try? alice.start(now: 0)
        pump()
        func script(_ s: inout Session) {
            guard s.isEstablished else { return }
            for p in honestPayloads { try? s.send(p) }
            try? s.beginRound(1)
            for p in honestRoundPayloads { try? s.send(p) }
            try? s.closeRound()
        }
        if aliceSends { script(&alice) } else { script(&bob) }
        pump()
        precondition(alice.isEstablished && bob.isEstablished, "the honest \(mode) reference run must succeed")
        run.aliceHandedOut = aliceStore.handedOut
        run.bobHandedOut = bobStore.handedOut
        return run
    }

    /// Modes with an honest reference run (pki pauses for an asynchronous validation the
    /// synchronous harness answers with a failure: see ``SessionProbe/validate(_:)``).
    static let referenceModes: [HandshakeMode] = [.pool, .pskKDF]

    /// The honest runs of every reference mode, computed once per process: `.responder` runs have Alice
    /// send (their Alice frames are the responder's seeds), `.initiator` runs have Bob send.
    static let responderRuns: [HandshakeMode: HonestRun] = Dictionary(uniqueKeysWithValues: referenceModes.map { ($0, honestRun(mode: $0, aliceSends: true)) })
    static let initiatorRuns: [HandshakeMode: HonestRun] = Dictionary(uniqueKeysWithValues: referenceModes.map { ($0, honestRun(mode: $0, aliceSends: false)) })
}

/// Helpers to read a session's output.
enum SessionProbe {
    /// Answers a PKI validation pause. `PeerValidationRequest.run()` is async and a success
    /// result can only come from it; blocking on a `Task` from the synchronous check hung the
    /// test runner (cooperative pool), so the harness answers every pause with a typed failure.
    /// The pki paths up to the pause, the pause itself and its failure handling are fuzzed; the
    /// success path after validation is covered by the session tests (SMPKITests,
    /// X509SessionTests), not here.
    static func validate(_ request: PeerValidationRequest) -> PeerValidationResult {
        request.failed(QKDError(.sessionBadCertificate, "the fuzz harness answers every validation pause with a failure"))
    }

    /// Runs one session call. A thrown ``QKDError`` must have closed the session with that
    /// error (or be the graceful-close error of an already closed session); anything else
    /// thrown is a violation. `nonFatal` lists codes that may leave the session open.
    static func call(_ session: inout Session, _ what: String, nonFatal: Set<QKDError.Code> = [],
                     _ body: (inout Session) throws -> Void) throws(FuzzInvariantViolation) -> QKDError? {
        do {
            try body(&session)
            return nil
        } catch let error as QKDError {
            if !session.isClosed {
                guard nonFatal.contains(error.code) else {
                    throw FuzzInvariantViolation("\(what) threw \(error) but left the session open")
                }
                return error
            }
            let poison = session.error?.code ?? .sessionClosed
            guard poison == error.code else {
                throw FuzzInvariantViolation("\(what) threw \(error.code) but the session is closed with \(poison)")
            }
            return error
        } catch {
            throw FuzzInvariantViolation("\(what) threw an untyped error \(error)")
        }
    }

    /// A closed session stays poisoned: the next call throws the same code.
    static func checkPoisoned(_ session: inout Session, _ what: String) throws(FuzzInvariantViolation) {
        guard session.isClosed else { return }
        let expected = session.error?.code ?? .sessionClosed
        do {
            try session.receive([0], now: 0)
            throw FuzzInvariantViolation("\(what): a closed session accepted more bytes")
        } catch let error as QKDError {
            guard error.code == expected else {
                throw FuzzInvariantViolation("\(what): the poisoned session changed its error from \(expected) to \(error.code)")
            }
        } catch let violation as FuzzInvariantViolation {
            throw violation
        } catch {
            throw FuzzInvariantViolation("\(what): untyped error \(error)")
        }
    }

    /// The control message of a tagged control frame, if `bytes` is one.
    static func control(in bytes: [UInt8]) -> ControlMessage? {
        guard let frame = try? Frame(decoding: bytes), frame.header.type == .control else { return nil }
        return try? ControlMessage(decoding: frame.payload)
    }

    /// The decoded frame, if `bytes` is exactly one frame.
    static func frame(_ bytes: [UInt8]) -> Frame? { try? Frame(decoding: bytes) }

    /// Whether the values are strictly increasing.
    static func strictlyIncreasing(_ values: [UInt64]) -> Bool {
        zip(values, values.dropFirst()).allSatisfy { $0 < $1 }
    }
}
