import Foundation
import Testing
import QKDTestSupport
import QKDCrypto
import QKDWire
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
            // Through the session's own key schedule (Session/KeySchedule.swift): slots 1, 3,
            // 1029 and the hash key are KDFTests'; here the 12-slot window and random access.
            let rawDirection = try #require(c.direction)
            let direction = try #require(Direction(rawValue: rawDirection))
            let streams = try BootstrapStreams(secret: SecretBytes(copying: try #require(c.secret).bytes), outbound: direction)
            for suite in MACSuite.allCases {
                let key = try BootstrapStreams.slot(0, of: streams.outbound).hashKey(suite: suite)
                #expect(try sameKey(key, try #require(c.hash_key).bytes, suite: suite))
            }
            #expect(try samePad(BootstrapStreams.slot(1029, of: streams.outbound).pad(), try #require(c.pad_slot_1029).bytes))
            var window: [UInt8] = []
            for slot in 1..<13 as Range<UInt64> { window += try BootstrapStreams.slot(slot, of: streams.outbound).bytes }
            #expect(KeyDerivation.sha256(window) == c.pads_1_to_12_sha256?.bytes)
            #expect(try streams.outbound.bytes(at: 16, count: 12 * 16).withUnsafeBytes { Array($0) } == window)
        case "psk-kdf":
            let secret = try bootstrapSecret(
                ikm: SecretBytes(copying: try #require(c.psk).bytes), label: KeyScheduleLabel.pskKDF, nonceA: try #require(c.nonce_a).bytes,
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
        let a = try BootstrapStreams(secret: secret, outbound: .aliceToBob)
        let b = try BootstrapStreams(secret: secret, outbound: .bobToAlice)
        let other = try BootstrapStreams(secret: SecretBytes(copying: [UInt8](repeating: 2, count: 32)), outbound: .aliceToBob)
        func slots(_ s: ChaCha20KeyStream) throws -> [UInt8] { try (1..<5 as Range<UInt64>).flatMap { try BootstrapStreams.slot($0, of: s).bytes } }
        #expect(try slots(a.outbound) != slots(a.inbound))
        #expect(try slots(a.outbound) == slots(b.inbound) && slots(a.inbound) == slots(b.outbound))
        #expect(try slots(a.outbound) != slots(other.outbound))
        #expect(throws: QKDError(.invalidKeyLength)) { _ = try BootstrapStreams(secret: SecretBytes(copying: [UInt8](repeating: 1, count: 16)), outbound: .aliceToBob) }
        // The keystream refuses to run past its end.
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
        let aliceStreams = try BootstrapStreams(secret: aliceSecret, outbound: .aliceToBob)
        let bobStreams = try BootstrapStreams(secret: response.sharedSecret, outbound: .bobToAlice)
        for slot in 0..<9 as Range<UInt64> {
            #expect(try BootstrapStreams.slot(slot, of: aliceStreams.outbound).bytes == BootstrapStreams.slot(slot, of: bobStreams.inbound).bytes)
            #expect(try BootstrapStreams.slot(slot, of: aliceStreams.inbound).bytes == BootstrapStreams.slot(slot, of: bobStreams.outbound).bytes)
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
