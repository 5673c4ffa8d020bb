import Foundation
import Testing
import QKDTestSupport
import QKDCrypto
@testable import QKDSession

/// The bootstrap key schedule (Spec/handshake.md 3.2) against an independent Python HKDF, and
/// the transcript signatures (3.3).
@Suite struct KeyScheduleTests {
    struct Case: Decodable, CustomTestStringConvertible {
        let name: String
        let secret: HexBytes
        let transcript_hash: HexBytes
        let prk: HexBytes?
        let hash_key_i2r: HexBytes?
        let hash_key_r2i: HexBytes?
        let pad_block_i2r_0_sha256: HexBytes?
        let pad_block_r2i_7_first32: HexBytes?
        let session_id: HexBytes?
        let psk: HexBytes?
        let psk_id: HexBytes?
        var testDescription: String { name }
    }

    static let cases = try! VectorFile<Case>.load("bootstrap-key-schedule.json").cases

    /// Two hash keys are the same iff they give the same tag for the same message and pad.
    func sameKey(_ a: HashKey, _ raw: [UInt8], suite: MACSuite) throws -> Bool {
        let b = try HashKey(suite: suite, rawRepresentation: raw)
        let message = [UInt8]("probe".utf8), domain = [UInt8]("test".utf8)
        let t1 = WegmanCarter.authenticationTag(for: message, domain: domain, hashKey: a, pad: try OneTimePad(rawRepresentation: [UInt8](repeating: 7, count: 16)))
        let t2 = WegmanCarter.authenticationTag(for: message, domain: domain, hashKey: b, pad: try OneTimePad(rawRepresentation: [UInt8](repeating: 7, count: 16)))
        return t1 == t2
    }

    @Test func vectors() throws {
        #expect(Self.cases.count == 2)
        let schedule = try #require(Self.cases.first { $0.psk == nil })
        let s = BootstrapKeySchedule(bootstrapSecret: SecretBytes(copying: schedule.secret.bytes), transcriptHash: schedule.transcript_hash.bytes)
        for suite in MACSuite.allCases {
            #expect(try sameKey(s.hashKey(suite: suite, direction: .initiatorToResponder), try #require(schedule.hash_key_i2r).bytes, suite: suite))
            #expect(try sameKey(s.hashKey(suite: suite, direction: .responderToInitiator), try #require(schedule.hash_key_r2i).bytes, suite: suite))
            #expect(try !sameKey(s.hashKey(suite: suite, direction: .initiatorToResponder), try #require(schedule.hash_key_r2i).bytes, suite: suite))
        }
        let block0 = s.padBlock(direction: .initiatorToResponder, index: 0)
        #expect(block0.count == BootstrapKeySchedule.padBlockByteCount)
        #expect(block0.withUnsafeBytes { KeyDerivation.sha256($0) } == schedule.pad_block_i2r_0_sha256?.bytes)
        let block7 = s.padBlock(direction: .responderToInitiator, index: 7)
        #expect(block7.withUnsafeBytes { Array($0.prefix(32)) } == schedule.pad_block_r2i_7_first32?.bytes)
        #expect(s.sessionID == schedule.session_id?.bytes)

        let psk = try #require(Self.cases.first { $0.psk != nil })
        let secret = BootstrapKeySchedule.pskSecret(psk: SecretBytes(copying: try #require(psk.psk).bytes), pskID: try #require(psk.psk_id).bytes, transcriptHash: psk.transcript_hash.bytes)
        #expect(secret == SecretBytes(copying: psk.secret.bytes))
    }

    @Test func inputsSeparateOutputs() throws {
        let secret = SecretBytes(copying: [UInt8](repeating: 1, count: 32))
        let th = KeyDerivation.sha256([UInt8]("a".utf8))
        let a = BootstrapKeySchedule(bootstrapSecret: secret, transcriptHash: th)
        let b = BootstrapKeySchedule(bootstrapSecret: secret, transcriptHash: KeyDerivation.sha256([UInt8]("b".utf8)))
        #expect(a.sessionID != b.sessionID)
        #expect(a.padBlock(direction: .initiatorToResponder, index: 0) != a.padBlock(direction: .responderToInitiator, index: 0))
        #expect(a.padBlock(direction: .initiatorToResponder, index: 0) != a.padBlock(direction: .initiatorToResponder, index: 1))
        #expect(a.padBlock(direction: .initiatorToResponder, index: 0) == BootstrapKeySchedule(bootstrapSecret: secret, transcriptHash: th).padBlock(direction: .initiatorToResponder, index: 0))
    }

    /// Full PKI building-block run: key agreement, schedule on both sides, transcript
    /// signatures (Ed25519 + ML-DSA-65) verified with the keys from validated certificates.
    @Test func pkiBuildingBlocksEndToEnd() async throws {
        var random = DeterministicRandomSource(seed: 21)
        let start = Date(timeIntervalSince1970: 1_790_000_000)
        let pki = try TestPKI.make(nodeNames: ["alice.example", "bob.example"], notBefore: start, validity: 86_400, withMLDSA: true, using: &random)
        let alice = try pki.nodes[0].identity(), bob = try pki.nodes[1].identity()
        let validator = PeerCertificateValidator(anchors: pki.anchors())
        let now = start.addingTimeInterval(10)

        var transcript = TranscriptHash()
        let initiator = try KeyAgreementInitiator(suite: .x25519MLKEM768, using: &random)
        transcript.append(initiator.share)
        let (share, bobSecret) = try KeyAgreementResponder.respond(suite: .x25519MLKEM768, initiatorShare: initiator.share, transcriptHash: transcript.current, using: &random)
        let aliceSecret = try initiator.sharedSecret(responderShare: share, transcriptHash: transcript.current)
        transcript.append(share)
        let thKeys = transcript.current
        let aliceSchedule = BootstrapKeySchedule(bootstrapSecret: aliceSecret, transcriptHash: thKeys)
        let bobSchedule = BootstrapKeySchedule(bootstrapSecret: bobSecret, transcriptHash: thKeys)
        #expect(aliceSchedule.sessionID == bobSchedule.sessionID)

        let sig = try TranscriptSignature.sign(identity: bob, role: .responder, transcriptHash: thKeys, hybrid: true)
        let bobSeenByAlice = try await validator.validate(chainDER: bob.chainDER(), peerName: "bob.example", at: now)
        try TranscriptSignature.verify(sig, from: bobSeenByAlice, role: .responder, transcriptHash: thKeys, hybrid: true)
        // Reflection (wrong role), another transcript, and each signature tampered: refused.
        #expect(throws: QKDError(.badTranscriptSignature)) {
            try TranscriptSignature.verify(sig, from: bobSeenByAlice, role: .initiator, transcriptHash: thKeys, hybrid: true)
        }
        #expect(throws: QKDError(.badTranscriptSignature)) {
            try TranscriptSignature.verify(sig, from: bobSeenByAlice, role: .responder, transcriptHash: KeyDerivation.sha256(thKeys), hybrid: true)
        }
        var badML = sig; badML.mlDSA65![17] ^= 1
        #expect(throws: QKDError(.badTranscriptSignature)) {
            try TranscriptSignature.verify(badML, from: bobSeenByAlice, role: .responder, transcriptHash: thKeys, hybrid: true)
        }
        var noML = sig; noML.mlDSA65 = nil
        #expect(throws: QKDError(.missingMLDSASignature)) {
            try TranscriptSignature.verify(noML, from: bobSeenByAlice, role: .responder, transcriptHash: thKeys, hybrid: true)
        }
        // Ed25519 alone suffices when the hybrid option was not negotiated.
        try TranscriptSignature.verify(noML, from: bobSeenByAlice, role: .responder, transcriptHash: thKeys, hybrid: false)
        // Alice's signature does not pass as Bob's.
        let aliceSig = try TranscriptSignature.sign(identity: alice, role: .responder, transcriptHash: thKeys, hybrid: true)
        #expect(throws: QKDError(.badTranscriptSignature)) {
            try TranscriptSignature.verify(aliceSig, from: bobSeenByAlice, role: .responder, transcriptHash: thKeys, hybrid: true)
        }
    }
}
