import Foundation
import QKDCrypto
import QKDWire
import Testing
@testable import QKDSession

/// PKI mode of the session with real X.509 (Spec/session.md 5.2, Spec/handshake.md sections 4
/// and 6): ``X509Authenticator`` over certificates made by ``TestPKI`` and by the `openssl`
/// command, chain validation as a sans-IO pause answered by the harness like a real driver,
/// typed refusals with no pad consumed, downgrades detected, hybrid key agreement, and the
/// switch to pool pads.
@Suite struct X509SessionTests {
    static let start = Date(timeIntervalSince1970: 1_790_000_000)
    static let inValidity = start.addingTimeInterval(3600)

    /// One CA with alice.example and bob.example (optionally with bound ML-DSA-65 keys).
    static func testPKI(seed: UInt64 = 31, withMLDSA: Bool = false) throws -> TestPKI {
        var random = DeterministicRandomSource(seed: seed)
        return try TestPKI.make(nodeNames: ["alice.example", "bob.example"], notBefore: start, validity: 86_400,
                                withMLDSA: withMLDSA, using: &random)
    }

    struct Side {
        var identity: NodeIdentity
        var anchors: TrustAnchors
        var peerName: String
        var time: Date = X509SessionTests.inValidity
        var groups: [KeyAgreementSuite] = [.x25519MLKEM768, .x25519]
        var requireMLDSA = false

        func authenticator() -> X509Authenticator {
            X509Authenticator(identity: identity, anchors: anchors, peerName: peerName, validationTime: time,
                              kexGroups: groups, requirePeerMLDSA: requireMLDSA)
        }
    }

    static func sides(_ pki: TestPKI) throws -> (Side, Side) {
        (Side(identity: try pki.nodes[0].identity(), anchors: pki.anchors(), peerName: "bob.example"),
         Side(identity: try pki.nodes[1].identity(), anchors: pki.anchors(), peerName: "alice.example"))
    }

    /// A PKI pair; both stores hold pool material (for the later switch and to prove PKI
    /// handshakes touch no pool pad).
    static func pair(_ alice: Side, _ bob: Side, seed: UInt64 = 5, stores: (any SessionKeyStore, any SessionKeyStore)? = nil) -> Pair {
        let aliceConfig = SessionConfiguration(role: .alice, mode: .pki, linkID: Fixture.linkID, splitPolicy: Fixture.policy)
        let bobConfig = SessionConfiguration(role: .bob, acceptedModes: [.pool, .pskKDF, .pki], linkID: Fixture.linkID, splitPolicy: Fixture.policy)
        let (a, b): (any SessionKeyStore, any SessionKeyStore) = stores ?? Fixture.stores(seed: seed)
        var pair = Pair(alice: aliceConfig, bob: bobConfig, aliceStore: a, bobStore: b, seed: seed)
        pair.alice = Session(configuration: aliceConfig, keyStore: a, random: DeterministicRandomSource(seed: seed), pki: alice.authenticator())
        pair.bob = Session(configuration: bobConfig, keyStore: b, random: DeterministicRandomSource(seed: seed &+ 0x5eed), pki: bob.authenticator())
        return pair
    }

    static func established(_ events: [SessionAction]) -> SecurityLevel? {
        for case .established(let level) in events { return level }
        return nil
    }

    static func validations(_ events: [SessionAction]) -> Int {
        events.filter { if case .validatePeer = $0 { true } else { false } }.count
    }

    /// Both open at computational level, one validation each, data both ways, no pool pad touched.
    static func expectCompletes(_ pair: inout Pair) async {
        pair.start()
        await pair.settle()
        #expect(pair.aliceErrors.isEmpty && pair.bobErrors.isEmpty, "\(pair.aliceErrors) \(pair.bobErrors)")
        #expect(established(pair.aliceEvents) == .computational && established(pair.bobEvents) == .computational)
        #expect(validations(pair.aliceEvents) == 1 && validations(pair.bobEvents) == 1)
        pair.onAlice { try $0.send(Array("to bob".utf8)) }
        pair.onBob { try $0.send(Array("to alice".utf8)) }
        await pair.settle()
        #expect(Pair.delivered(pair.bobEvents) == [Array("to bob".utf8)])
        #expect(Pair.delivered(pair.aliceEvents) == [Array("to alice".utf8)])
        expectNoPoolPadTouched(pair)
    }

    static func expectNoPoolPadTouched(_ pair: Pair) {
        #expect(pair.aliceStore.handedOut.isEmpty && pair.bobStore.handedOut.isEmpty)
        #expect(pair.aliceStore.consumedInbound.isEmpty && pair.bobStore.consumedInbound.isEmpty)
    }

    /// Neither side open, both closed with `session.bad-certificate` (one refused, the other
    /// got the alert), nothing delivered, no pool pad used.
    static func expectRefused(_ pair: inout Pair, code: QKDError.Code = .sessionBadCertificate, detail: String? = nil) async {
        pair.start()
        await pair.settle()
        let open = pair.alice.isEstablished || pair.bob.isEstablished
        #expect(!open)
        #expect(pair.alice.error?.code == code && pair.bob.error?.code == code, "\(String(describing: pair.alice.error)) / \(String(describing: pair.bob.error))")
        if let detail {
            let text = (pair.alice.error?.description ?? "") + (pair.bob.error?.description ?? "")
            #expect(text.contains(detail), "\(text)")
        }
        #expect(Pair.delivered(pair.aliceEvents).isEmpty && Pair.delivered(pair.bobEvents).isEmpty)
        expectNoPoolPadTouched(pair)
    }

    /// The ServerHello's key-agreement group, read off the wire.
    static func chosenGroup(_ frames: [[UInt8]]) throws -> UInt8 {
        let frame = try Frame(decoding: frames[1])
        guard case .serverHello(let hello) = try HandshakeMessage(decoding: frame.payload),
              case .pki(let response) = hello.body else { throw QKDError(.sessionInternalError, "no PKI ServerHello") }
        return response.kexGroup
    }

    // MARK: Completes

    @Test(arguments: [[KeyAgreementSuite.x25519], [.x25519MLKEM768, .x25519]], [false, true])
    func completesWithTestPKICertificates(groups: [KeyAgreementSuite], mlDSA: Bool) async throws {
        let pki = try Self.testPKI(withMLDSA: mlDSA)
        var (alice, bob) = try Self.sides(pki)
        alice.groups = groups
        var pair = Self.pair(alice, bob)
        pair.adversary = RecordingWire()
        await Self.expectCompletes(&pair)
        #expect(try Self.chosenGroup((pair.adversary as! RecordingWire).frames) == groups[0].rawValue)
        if mlDSA {
            let frame = try Frame(decoding: (pair.adversary as! RecordingWire).frames[1])
            guard case .serverHello(let hello) = try HandshakeMessage(decoding: frame.payload), case .pki(let r) = hello.body else {
                Issue.record("no PKI ServerHello"); return
            }
            #expect(r.proof.mldsa65Signature.count == MLDSA65Signing.signatureByteCount)
        }
        // Bob prefers X25519 alone: Alice's first acceptable choice wins (her preference order).
        bob.groups = [.x25519]
        var classical = Self.pair(alice, bob, seed: 6)
        classical.adversary = RecordingWire()
        await Self.expectCompletes(&classical)
        #expect(try Self.chosenGroup((classical.adversary as! RecordingWire).frames) == KeyAgreementSuite.x25519.rawValue)
    }

    @Test(arguments: [false, true])
    func completesDripFedWithBytesWaitingDuringTheValidationPause(drip: Bool) async throws {
        let (alice, bob) = try Self.sides(try Self.testPKI())
        var pair = Self.pair(alice, bob)
        pair.drip = drip
        pair.validationDelay = 3
        await Self.expectCompletes(&pair)
    }

    /// Certificates and keys as an operator makes them with openssl: a CA, node keys from
    /// `openssl genpkey -algorithm ed25519`, certificates from `openssl x509 -req`; Bob sends
    /// his certificate with an intermediate CA.
    @Test func completesWithOpenSSLCertificates() async throws {
        let ssl = try OpenSSL()
        defer { ssl.remove() }
        try ssl.makeCA("ca")
        try ssl.makeNode("alice", cn: "alice.example", san: "alice.example", ca: "ca")
        try ssl.makeNode("inter", cn: "Intermediate CA", san: nil, ca: "ca", isCA: true)
        try ssl.makeNode("bob", cn: "bob.example", san: "bob.example", ca: "inter")
        try ssl.write("bob-chain.pem", try ssl.read("bob.pem") + ssl.read("inter.pem"))
        let anchors = try PKIFiles.loadTrustAnchors(ssl.path("ca.pem"))
        let now = Date()  // openssl's certificates are valid from now on: the injected time is the wall clock
        let alice = Side(identity: try PKIFiles.loadIdentity(certificateChainPath: ssl.path("alice.pem"), privateKeyPath: ssl.path("alice.key")),
                         anchors: anchors, peerName: "bob.example", time: now)
        let bob = Side(identity: try PKIFiles.loadIdentity(certificateChainPath: ssl.path("bob-chain.pem"), privateKeyPath: ssl.path("bob.key")),
                       anchors: anchors, peerName: "alice.example", time: now)
        #expect(bob.identity.chain.count == 2)
        var pair = Self.pair(alice, bob)
        await Self.expectCompletes(&pair)

        // An openssl CA the nodes do not trust: refused.
        try ssl.makeCA("other")
        var strangers = Self.pair(alice, Side(identity: bob.identity, anchors: try PKIFiles.loadTrustAnchors(ssl.path("other.pem")),
                                              peerName: "alice.example", time: now))
        await Self.expectRefused(&strangers, detail: "pki.untrusted")
    }

    // MARK: Refused

    @Test func wrongCAIsRefusedByEitherSide() async throws {
        let (alice, bob) = try Self.sides(try Self.testPKI())
        let other = try Self.testPKI(seed: 99).anchors()
        var bobRefuses = Self.pair(alice, Side(identity: bob.identity, anchors: other, peerName: "alice.example"))
        await Self.expectRefused(&bobRefuses, detail: "pki.untrusted")
        var aliceRefuses = Self.pair(Side(identity: alice.identity, anchors: other, peerName: "bob.example"), bob)
        await Self.expectRefused(&aliceRefuses, detail: "pki.untrusted")
        #expect(aliceRefuses.bobEvents.contains { if case .alertReceived(.badCertificate, _) = $0 { true } else { false } })
    }

    @Test func expiredAndNotYetValidCertificatesAreRefused() async throws {
        let (alice, bob) = try Self.sides(try Self.testPKI())
        var late = alice
        late.time = Self.start.addingTimeInterval(2 * 86_400)
        var expired = Self.pair(late, bob)
        await Self.expectRefused(&expired, detail: "pki.expired")
        var early = bob
        early.time = Self.start.addingTimeInterval(-60)
        var notYet = Self.pair(alice, early)
        await Self.expectRefused(&notYet, detail: "pki.not-yet-valid")
    }

    @Test func wrongPeerNameIsRefused() async throws {
        var (alice, bob) = try Self.sides(try Self.testPKI())
        alice.peerName = "mallory.example"
        var aliceRefuses = Self.pair(alice, bob)
        await Self.expectRefused(&aliceRefuses, detail: "pki.name-mismatch")
        alice.peerName = "bob.example"
        bob.peerName = "carol.example"
        var bobRefuses = Self.pair(alice, bob)
        await Self.expectRefused(&bobRefuses, detail: "pki.name-mismatch")
    }

    /// Rewrites the handshake message of frame `index` (a hello or Finished) and re-frames it:
    /// hellos carry no tag of their own, so the attacker can do this undetected by the frame
    /// layer; Finished keeps its (now wrong) tag.
    static func rewrite(frame index: Int, _ change: @escaping (inout HandshakeMessage) -> Void) -> RewriteFrame {
        RewriteFrame(frameIndex: index) { bytes in
            let frame = try! Frame(decoding: bytes)
            var message = try! HandshakeMessage(decoding: frame.payload)
            change(&message)
            let rewritten = Frame(type: frame.header.type, sequenceNumber: frame.header.sequenceNumber,
                                  keyReference: frame.header.keyReference, payload: message.encoded, tag: frame.tag)
            var out: [UInt8] = []
            try! FrameEncoder().encode(rewritten, into: &out)
            return [out]
        }
    }

    @Test(arguments: [0, 1, 2])
    func tamperedSignatureIsRefused(which: Int) async throws {
        let (alice, bob) = try Self.sides(try Self.testPKI(withMLDSA: which == 2))
        var pair = Self.pair(alice, bob)
        switch which {
        case 0:  // Bob's Ed25519 signature in the ServerHello
            pair.adversary = Self.rewrite(frame: 1) { m in
                if case .serverHello(var h) = m, case .pki(var r) = h.body { r.proof.ed25519Signature[5] ^= 1; h.body = .pki(r); m = .serverHello(h) }
            }
        case 1:  // Alice's Ed25519 signature in her Finished
            pair.adversary = Self.rewrite(frame: 2) { m in
                if case .finished(var f) = m { f.clientProof!.ed25519Signature[63] ^= 0x80; m = .finished(f) }
            }
        default:  // Bob's ML-DSA-65 signature stripped: his certificate binds a key, so it is required
            pair.adversary = Self.rewrite(frame: 1) { m in
                if case .serverHello(var h) = m, case .pki(var r) = h.body { r.proof.mldsa65Signature = []; h.body = .pki(r); m = .serverHello(h) }
            }
        }
        await Self.expectRefused(&pair, detail: which == 2 ? "pki.missing-mldsa-signature" : "pki.bad-transcript-signature")
    }

    @Test func peerWithoutMLDSAIsRefusedWhenRequired() async throws {
        let (honest, bob) = try Self.sides(try Self.testPKI())
        var alice = honest
        alice.requireMLDSA = true
        var pair = Self.pair(alice, bob)
        await Self.expectRefused(&pair, detail: "pki.missing-mldsa-signature")
    }

    /// Single bit flips in each of the four handshake frames under real X.509 (a seeded sample
    /// of 48 positions per frame; `TamperTests` flips every bit with the `StandInPKI` double):
    /// never established, typed errors on both sides, nothing delivered, no pool pad used.
    @Test(arguments: 0..<4)
    func bitFlipsInRealPKIHandshakeFramesAreRejected(frame: Int) async throws {
        var (alice, bob) = try Self.sides(try Self.testPKI())
        alice.groups = [.x25519]
        bob.groups = [.x25519]
        var probe = Self.pair(alice, bob)
        probe.adversary = RecordingWire()
        probe.start()
        await probe.settle()
        let size = (probe.adversary as! RecordingWire).frames[frame].count
        var random = DeterministicRandomSource(seed: UInt64(frame) + 100)
        for _ in 0..<48 {
            let bit = Int.random(in: 0..<(size * 8), using: &random)
            var pair = Self.pair(alice, bob)
            pair.adversary = FlipOneBit(frameIndex: frame, bit: bit)
            pair.start()
            await pair.settle()
            if !pair.alice.isClosed { pair.onAlice { try $0.handleTimeout(now: .max) } }
            if !pair.bob.isClosed { pair.onBob { try $0.handleTimeout(now: .max) } }
            await pair.settle()
            let open = pair.alice.isEstablished || pair.bob.isEstablished
            #expect(!open, "frame \(frame) bit \(bit)")
            #expect(pair.alice.error != nil && pair.bob.error != nil, "frame \(frame) bit \(bit)")
            #expect(Pair.delivered(pair.aliceEvents).isEmpty && Pair.delivered(pair.bobEvents).isEmpty)
            Self.expectNoPoolPadTouched(pair)
        }
    }

    // MARK: Downgrades

    /// The ClientHello is changed in flight (suite list reordered; the hybrid group stripped,
    /// with its key): Bob signs what he received, Alice checks against what she sent.
    @Test(arguments: ["suites", "kex-groups"])
    func downgradeInFlightIsDetected(field: String) async throws {
        let (alice, bob) = try Self.sides(try Self.testPKI())
        var pair = Self.pair(alice, bob)
        pair.adversary = Self.rewrite(frame: 0) { m in
            guard case .clientHello(var h) = m else { return }
            if field == "suites" {
                h.suites.reverse()
            } else if case .pki(var offer) = h.body {
                offer.kexGroups = [KeyAgreementSuite.x25519.rawValue]
                offer.mlkem768EncapsulationKey = []
                h.body = .pki(offer)
            }
            m = .clientHello(h)
        }
        await Self.expectRefused(&pair, detail: "pki.bad-transcript-signature")
    }

    /// A ServerHello whose group is changed in flight breaks Bob's signature as well.
    @Test func serverChoiceChangedInFlightIsDetected() async throws {
        let (alice, bob) = try Self.sides(try Self.testPKI())
        var pair = Self.pair(alice, bob)
        pair.adversary = Self.rewrite(frame: 1) { m in
            if case .serverHello(var h) = m { h.suite = h.suite == .poly1305OTP ? .gf128OTP : .poly1305OTP; m = .serverHello(h) }
        }
        await Self.expectRefused(&pair, detail: "pki.bad-transcript-signature")
    }

    // MARK: Security level and the pause

    @Test func computationalUntilPoolReadySwitchesToPoolPads() async throws {
        let (alice, bob) = try Self.sides(try Self.testPKI())
        var pair = Self.pair(alice, bob)
        await Self.expectCompletes(&pair)
        #expect(pair.alice.securityLevel == .computational && pair.bob.securityLevel == .computational)
        pair.onAlice { try $0.poolReady() }
        pair.onBob { try $0.poolReady() }
        await pair.settle()
        #expect(pair.alice.securityLevel == .informationTheoretic && pair.bob.securityLevel == .informationTheoretic)
        pair.onAlice { try $0.send([7]) }
        await pair.settle()
        #expect(Pair.delivered(pair.bobEvents).last == [7])
        #expect(!pair.aliceStore.handedOut.isEmpty && !pair.aliceStore.reusedAnOutboundSlot)
        #expect(Set(pair.bobStore.consumedInbound).isSubset(of: pair.aliceStore.handedOut))
    }

    /// While paused the session processes nothing, its deadline still runs, and a failed
    /// validation closes it with `session.bad-certificate` and an alert.
    @Test func pauseKeepsTheDeadlineAndAFailedResultCloses() async throws {
        let (alice, bob) = try Self.sides(try Self.testPKI())
        var pair = Self.pair(alice, bob)
        pair.start()
        pair.drive()
        #expect(pair.alice.isAwaitingPeerValidation && pair.aliceValidations.count == 1)
        #expect(pair.alice.nextDeadline != nil)
        var timedOut = pair
        timedOut.onAlice { try $0.handleTimeout(now: .max) }
        #expect(timedOut.aliceErrors == [QKDError(.sessionTimeout)])

        let request = pair.aliceValidations.removeFirst()
        #expect(request.certificateChain == (try bob.identity.chainDER()))
        pair.onAlice { try $0.peerValidated(request.failed(QKDError(.pkiUntrusted, "the driver refused")), now: 0) }
        await pair.settle()
        #expect(pair.aliceErrors == [QKDError(.sessionBadCertificate)])
        #expect(pair.bobErrors == [QKDError(.sessionBadCertificate)])
        #expect(pair.aliceEvents.contains { if case .alertSent(.badCertificate) = $0 { true } else { false } })
    }
}
