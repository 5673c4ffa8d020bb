import QKDCrypto
import QKDWire
import QKDFuzzChecks
import Testing
@testable import QKDSession

/// A stand-in for the X.509 code, to test the PKI wiring of the session (Spec/session.md
/// section 5.2) without certificates: the one the fuzz targets use (QKDFuzzChecks).
typealias StandInPKI = FuzzStandInPKI

extension Fixture {
    static func pkiPair(seed: UInt64 = 1, aliceExpects: String = "bob", bobExpects: String = "alice") -> Pair {
        let alice = SessionConfiguration(role: .alice, mode: .pki, linkID: linkID, splitPolicy: policy)
        let bob = SessionConfiguration(role: .bob, acceptedModes: [.pool, .pskKDF, .pki], linkID: linkID, splitPolicy: policy)
        var pair = Pair(alice: alice, bob: bob, aliceStore: InMemoryKeyStore.empty(), bobStore: InMemoryKeyStore.empty(), seed: seed)
        pair.alice = Session(configuration: alice, keyStore: pair.aliceStore, random: DeterministicRandomSource(seed: seed),
                             pki: StandInPKI(name: "alice", expectedPeer: aliceExpects))
        pair.bob = Session(configuration: bob, keyStore: pair.bobStore, random: DeterministicRandomSource(seed: seed &+ 0x5eed),
                           pki: StandInPKI(name: "bob", expectedPeer: bobExpects))
        return pair
    }
}

@Suite struct StandInPKITests {
    @Test func pkiModeCompletesThroughTheHook() async {
        var pair = Fixture.pkiPair()
        pair.start()
        await pair.settle()
        #expect(pair.aliceErrors.isEmpty && pair.bobErrors.isEmpty)
        #expect(pair.alice.securityLevel == .computational && pair.bob.securityLevel == .computational)
        pair.onAlice { try $0.send([1, 2, 3]) }
        await pair.settle()
        #expect(Pair.delivered(pair.bobEvents) == [[1, 2, 3]])
    }

    @Test func wrongPeerNameIsABadCertificate() async {
        var aliceRefuses = Fixture.pkiPair(aliceExpects: "mallory")
        aliceRefuses.start()
        await aliceRefuses.settle()
        #expect(aliceRefuses.aliceErrors == [QKDError(.sessionBadCertificate)])
        #expect(aliceRefuses.bobErrors == [QKDError(.sessionBadCertificate)])
        var bobRefuses = Fixture.pkiPair(bobExpects: "mallory")
        bobRefuses.start()
        await bobRefuses.settle()
        #expect(bobRefuses.bobErrors == [QKDError(.sessionBadCertificate)])
        #expect(bobRefuses.aliceErrors == [QKDError(.sessionBadCertificate)])
        let open = bobRefuses.alice.isEstablished || bobRefuses.bob.isEstablished
        #expect(!open)
    }

    @Test func pkiIsRefusedWithoutAnAuthenticator() async {
        var pair = Fixture.pkiPair()
        pair.bob = Session(configuration: SessionConfiguration(role: .bob, acceptedModes: [.pool, .pskKDF, .pki], linkID: Fixture.linkID,
                                                               splitPolicy: Fixture.policy),
                           keyStore: pair.bobStore, random: DeterministicRandomSource(seed: 3))
        pair.start()
        await pair.settle()
        #expect(pair.bobErrors == [QKDError(.sessionUnsupportedMode)])
    }
}
