import Foundation
import Testing
import QKDTestSupport
import QKDCrypto
@testable import QKDSession

/// The bootstrap streams and psk-kdf (Spec/session.md 5.1, 5.3) and the BLAKE2b transcript hash
/// against independent Python code, and the transcript signatures (Spec/session.md 3).
@Suite struct KeyScheduleTests {
    struct Case: Decodable, CustomTestStringConvertible {
        let name: String
        let kind: String
        let direction: UInt8?
        let secret: HexBytes?
        let hash_key: HexBytes?
        let pad_slot_1: HexBytes?
        let pad_slot_3: HexBytes?
        let pad_slot_1029: HexBytes?
        let pads_1_to_12_sha256: HexBytes?
        let psk: HexBytes?
        let nonce_a: HexBytes?
        let nonce_b: HexBytes?
        let transcript_hash: HexBytes?
        let message: HexBytes?
        let digest: HexBytes?
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

    /// A pad, observed through the tag it makes (pads are opaque): tag(pad) == tag(raw bytes).
    func samePad(_ pad: consuming OneTimePad, _ raw: [UInt8]) throws -> Bool {
        let key = try HashKey(suite: .gf128OTP, rawRepresentation: [UInt8](repeating: 3, count: 16))
        let t1 = WegmanCarter.authenticationTag(for: [UInt8](), domain: [UInt8](), hashKey: key, pad: pad)
        let t2 = WegmanCarter.authenticationTag(for: [UInt8](), domain: [UInt8](), hashKey: key, pad: try OneTimePad(rawRepresentation: raw))
        return t1 == t2
    }

    @Test func vectorFileIsComplete() {
        #expect(Self.cases.filter { $0.kind == "stream" }.count == 2)
        #expect(Self.cases.filter { $0.kind == "psk-kdf" }.count == 1)
        #expect(Self.cases.filter { $0.kind == "blake2b-256" }.count == 3)
    }

    @Test(arguments: cases)
    func vector(_ c: Case) throws {
        switch c.kind {
        case "stream":
            let rawDirection = try #require(c.direction)
            let direction = try #require(HandshakeDirection(rawValue: rawDirection))
            let stream = try BootstrapStream(secret: SecretBytes(copying: try #require(c.secret).bytes), direction: direction)
            for suite in MACSuite.allCases {
                #expect(try sameKey(stream.hashKey(suite: suite), try #require(c.hash_key).bytes, suite: suite))
            }
            #expect(try samePad(stream.pad(slot: 1), try #require(c.pad_slot_1).bytes))
            #expect(try samePad(stream.pad(slot: 3), try #require(c.pad_slot_3).bytes))
            #expect(try samePad(stream.pad(slot: 1029), try #require(c.pad_slot_1029).bytes))
            let bulk = stream.padBytes(slots: 1..<13)
            #expect(bulk.withUnsafeBytes { KeyDerivation.sha256($0) } == c.pads_1_to_12_sha256?.bytes)
            // Random access agrees with the bulk window.
            #expect(bulk.slice(32..<48) == stream.padBytes(slots: 3..<4))
        case "psk-kdf":
            let secret = PSKKeyDerivation.secret(
                psk: SecretBytes(copying: try #require(c.psk).bytes), nonceA: try #require(c.nonce_a).bytes,
                nonceB: try #require(c.nonce_b).bytes, transcriptHash: try #require(c.transcript_hash).bytes)
            #expect(secret == SecretBytes(copying: try #require(c.secret).bytes))
        case "blake2b-256":
            let message = try #require(c.message).bytes
            #expect(KeyDerivation.blake2b256(message) == c.digest?.bytes)
            var t = TranscriptHash()
            t.append(message.prefix(message.count / 3))
            _ = t.current  // a snapshot does not end the transcript
            t.append(message.dropFirst(message.count / 3))
            #expect(t.current == c.digest?.bytes)
        default:
            Issue.record("unknown case kind \(c.kind)")
        }
    }

    @Test func directionsAndSecretsSeparateStreams() throws {
        let secret = SecretBytes(copying: [UInt8](repeating: 1, count: 32))
        let a0 = try BootstrapStream(secret: secret, direction: .initiatorToResponder)
        let a1 = try BootstrapStream(secret: secret, direction: .responderToInitiator)
        let b0 = try BootstrapStream(secret: SecretBytes(copying: [UInt8](repeating: 2, count: 32)), direction: .initiatorToResponder)
        #expect(a0.padBytes(slots: 1..<5) != a1.padBytes(slots: 1..<5))
        #expect(a0.padBytes(slots: 1..<5) != b0.padBytes(slots: 1..<5))
        #expect(a0.padBytes(slots: 1..<5) == (try BootstrapStream(secret: secret, direction: .initiatorToResponder)).padBytes(slots: 1..<5))
        #expect(throws: QKDError(.invalidKeyLength)) { _ = try BootstrapStream(secret: SecretBytes(copying: [UInt8](repeating: 1, count: 16)), direction: .initiatorToResponder) }
        // The last slot is reachable; the keystream refuses to run past its end.
        #expect(a0.padBytes(slots: BootstrapStream.maximumSlot..<(BootstrapStream.maximumSlot + 1)).count == 16)
        #expect(throws: QKDError(.kdfOutputTooLong)) {
            _ = try KeyDerivation.chacha20KeyStream(key: secret, byteOffset: KeyDerivation.chacha20StreamByteCount - 8, count: 16)
        }
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
        let initiator = try KeyAgreementInitiator(offerHybrid: true, using: &random)
        transcript.append(initiator.x25519Share + (initiator.mlkemEncapsulationKey ?? []))
        let response = try KeyAgreementResponder.respond(
            suite: .x25519MLKEM768, x25519Share: initiator.x25519Share, mlkemEncapsulationKey: initiator.mlkemEncapsulationKey,
            transcriptHash: transcript.current, using: &random)
        let aliceSecret = try initiator.sharedSecret(
            suite: .x25519MLKEM768, responderX25519Share: response.x25519Share, mlkemCiphertext: response.mlkemCiphertext,
            transcriptHash: transcript.current)
        transcript.append(response.x25519Share + (response.mlkemCiphertext ?? []))
        let thKeys = transcript.current
        for direction in HandshakeDirection.allCases {
            let alice = try BootstrapStream(secret: aliceSecret, direction: direction)
            let bob = try BootstrapStream(secret: response.sharedSecret, direction: direction)
            #expect(alice.padBytes(slots: 1..<9) == bob.padBytes(slots: 1..<9))
        }

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
