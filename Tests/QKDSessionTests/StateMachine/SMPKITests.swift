import QKDCrypto
import QKDWire
import Testing
@testable import QKDSession

/// A stand-in for the `QKDSession` module's X.509 code, to test the PKI wiring of the session
/// (Spec/session.md section 5.2) without certificates: the "certificate" is a name, the
/// "signature" a BLAKE2b-256 of a per-name secret with the transcript hash, and the "key
/// agreement" a hash of both shares. Not cryptography: a test double with the same data flow.
final class StandInPKI: PKIAuthenticator {
    let name: [UInt8]
    let expectedPeer: [UInt8]
    private var share: [UInt8] = []

    init(name: String, expectedPeer: String) {
        self.name = Array(name.utf8)
        self.expectedPeer = Array(expectedPeer.utf8)
    }

    static func signature(_ name: [UInt8], _ hash: [UInt8], _ role: Direction) -> [UInt8] {
        KeyDerivation.blake2b256(Array("test-signing-key".utf8) + name + hash + [role.rawValue]) + [UInt8](repeating: 0, count: 32)
    }

    func makeClientOffer(random: inout any RandomSource) throws -> PKIClientOffer {
        share = random.bytes(count: 32)
        return PKIClientOffer(kexGroups: [1], x25519Share: share, mlkem768EncapsulationKey: [])
    }

    func respond(to offer: PKIClientOffer, clientHelloHash: [UInt8], random: inout any RandomSource) throws
        -> (kexGroup: UInt8, x25519Share: [UInt8], mlkem768Ciphertext: [UInt8], secret: SecretBytes) {
        guard offer.kexGroups.contains(1) else { throw QKDError(.sessionNoCommonSuite, "no group") }
        let mine = random.bytes(count: 32)
        return (1, mine, [], SecretBytes(copying: KeyDerivation.blake2b256(clientHelloHash + offer.x25519Share + mine)))
    }

    func prove(transcriptHash: [UInt8], role: Direction) throws -> PKIIdentityProof {
        PKIIdentityProof(certificateChain: [name], ed25519Signature: Self.signature(name, transcriptHash, role), mldsa65Signature: [])
    }

    func validationRequest(for proof: PKIIdentityProof, peerRole: Direction) -> PeerValidationRequest {
        let expected = expectedPeer
        return PeerValidationRequest(certificateChain: proof.certificateChain, peerRole: peerRole) { chain in
            guard chain.first == expected else {
                throw QKDError(.sessionBadCertificate, "the peer's certificate does not name the configured peer")
            }
            return expected
        }
    }

    func verify(_ proof: PKIIdentityProof, transcriptHash: [UInt8], peerRole: Direction, peer: any Sendable) throws {
        guard let name = peer as? [UInt8], proof.ed25519Signature == Self.signature(name, transcriptHash, peerRole) else {
            throw QKDError(.sessionBadCertificate, "the peer's transcript signature does not verify")
        }
    }

    func finishKeyAgreement(with response: PKIServerResponse, clientHelloHash: [UInt8]) throws -> SecretBytes {
        SecretBytes(copying: KeyDerivation.blake2b256(clientHelloHash + share + response.x25519Share))
    }
}

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
