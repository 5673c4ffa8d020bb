import Testing
import QKDTestSupport
import QKDCrypto

/// ML-KEM-768 hybrid key agreement, the combiner, and ML-DSA-65 (Spec/handshake.md 2.3, 2.4).
@Suite struct KeyAgreementTests {
    static let transcript = KeyDerivation.sha256([UInt8]("client hello".utf8))

    @Test(arguments: KeyAgreementSuite.allCases)
    func bothSidesAgree(_ suite: KeyAgreementSuite) throws {
        var random = DeterministicRandomSource(seed: 1)
        let initiator = try KeyAgreementInitiator(suite: suite, using: &random)
        #expect(initiator.share.count == suite.initiatorShareByteCount)
        let (share, responderSecret) = try KeyAgreementResponder.respond(
            suite: suite, initiatorShare: initiator.share, transcriptHash: Self.transcript, using: &random)
        #expect(share.count == suite.responderShareByteCount)
        let initiatorSecret = try initiator.sharedSecret(responderShare: share, transcriptHash: Self.transcript)
        #expect(initiatorSecret == responderSecret)
        #expect(initiatorSecret.count == 32)
        // A different transcript hash on one side gives a different secret.
        let other = try initiator.sharedSecret(responderShare: share, transcriptHash: KeyDerivation.sha256([UInt8]("other".utf8)))
        #expect(other != responderSecret)
    }

    /// ML-KEM's implicit rejection (FIPS 203 Algorithm 18): a tampered ciphertext does not throw,
    /// it yields an unrelated secret, so the handshake fails later at key confirmation.
    @Test func tamperedCiphertextGivesADifferentSecret() throws {
        var random = DeterministicRandomSource(seed: 2)
        let initiator = try KeyAgreementInitiator(suite: .x25519MLKEM768, using: &random)
        let (share, responderSecret) = try KeyAgreementResponder.respond(
            suite: .x25519MLKEM768, initiatorShare: initiator.share, transcriptHash: Self.transcript, using: &random)
        for position in [0, 500, 1087] {  // inside ct_M
            var tampered = share
            tampered[position] ^= 0x01
            let secret = try initiator.sharedSecret(responderShare: tampered, transcriptHash: Self.transcript)
            #expect(secret != responderSecret)
        }
        // Tampering the X25519 half changes it too.
        var tampered = share
        tampered[1088 + 5] ^= 0x40
        #expect(try initiator.sharedSecret(responderShare: tampered, transcriptHash: Self.transcript) != responderSecret)
    }

    @Test(arguments: KeyAgreementSuite.allCases)
    func wrongShareLengthsAreTypedErrors(_ suite: KeyAgreementSuite) throws {
        var random = DeterministicRandomSource(seed: 3)
        let initiator = try KeyAgreementInitiator(suite: suite, using: &random)
        #expect(throws: QKDError(.invalidPublicKey)) {
            _ = try KeyAgreementResponder.respond(suite: suite, initiatorShare: initiator.share.dropLast(), transcriptHash: Self.transcript, using: &random)
        }
        #expect(throws: QKDError(.invalidPublicKey)) {
            _ = try initiator.sharedSecret(responderShare: [UInt8](repeating: 1, count: suite.responderShareByteCount + 1), transcriptHash: Self.transcript)
        }
        // A small-order X25519 point inside a correctly sized share.
        var share = [UInt8](repeating: 0, count: suite.responderShareByteCount)
        if suite == .x25519MLKEM768 {
            let (good, _) = try KeyAgreementResponder.respond(suite: suite, initiatorShare: initiator.share, transcriptHash: Self.transcript, using: &random)
            share = Array(good.prefix(KeyAgreementSuite.mlkemCiphertextByteCount)) + [UInt8](repeating: 0, count: 32)
        }
        #expect(throws: QKDError(.zeroSharedSecret)) {
            _ = try initiator.sharedSecret(responderShare: share, transcriptHash: Self.transcript)
        }
    }

    /// The initiator's keys (X25519 scalar and ML-KEM seed) come from the injected source.
    @Test func initiatorKeysFollowTheRandomSource() throws {
        var r1 = DeterministicRandomSource(seed: 9)
        var r2 = DeterministicRandomSource(seed: 9)
        let a = try KeyAgreementInitiator(suite: .x25519MLKEM768, using: &r1)
        let b = try KeyAgreementInitiator(suite: .x25519MLKEM768, using: &r2)
        #expect(a.share == b.share)
    }

    /// Every input of the hybrid combiner changes its output (Spec/handshake.md 2.3).
    @Test func combinerDependsOnEveryInput() throws {
        var random = DeterministicRandomSource(seed: 4)
        func bytes(_ n: Int) -> [UInt8] { random.bytes(count: n) }
        let ssM = bytes(32), ssX = bytes(32), ct = bytes(1088), ek = bytes(1184), pkI = bytes(32), pkR = bytes(32), th = bytes(32)
        func run(_ ssM: [UInt8], _ ssX: [UInt8], _ ct: [UInt8], _ ek: [UInt8], _ pkI: [UInt8], _ pkR: [UInt8], _ th: [UInt8]) throws -> SecretBytes {
            try HybridCombiner.combine(
                suite: .x25519MLKEM768, mlkemSecret: SecretBytes(copying: ssM), x25519Secret: SecretBytes(copying: ssX),
                mlkemCiphertext: ct, mlkemPublicKey: ek, initiatorX25519: pkI, responderX25519: pkR, transcriptHash: th)
        }
        func flip(_ b: [UInt8], _ i: Int) -> [UInt8] { var c = b; c[i] ^= 0x80; return c }
        let base = try run(ssM, ssX, ct, ek, pkI, pkR, th)
        #expect(try run(ssM, ssX, ct, ek, pkI, pkR, th) == base)
        let variants = [
            try run(flip(ssM, 31), ssX, ct, ek, pkI, pkR, th),
            try run(ssM, flip(ssX, 0), ct, ek, pkI, pkR, th),
            try run(ssM, ssX, flip(ct, 1000), ek, pkI, pkR, th),
            try run(ssM, ssX, ct, flip(ek, 1183), pkI, pkR, th),
            try run(ssM, ssX, ct, ek, flip(pkI, 3), pkR, th),
            try run(ssM, ssX, ct, ek, pkI, flip(pkR, 3), th),
            try run(ssM, ssX, ct, ek, pkI, pkR, flip(th, 0)),
            try run(ssM, ssX, ct, ek, pkR, pkI, th),  // roles swapped
            try run(ssX, ssM, ct, ek, pkI, pkR, th),  // secrets swapped
        ]
        for v in variants { #expect(v != base) }
        #expect(Set(variants.map { $0.withUnsafeBytes { Hex.encode($0) } }).count == variants.count)
        // The x25519-only suite with the same X25519 inputs is domain-separated from the hybrid.
        let classical = try HybridCombiner.combine(
            suite: .x25519, mlkemSecret: nil, x25519Secret: SecretBytes(copying: ssX), mlkemCiphertext: [], mlkemPublicKey: [],
            initiatorX25519: pkI, responderX25519: pkR, transcriptHash: th)
        #expect(classical != base)
        #expect(throws: QKDError(.invalidKeyLength)) { _ = try run(ssM, ssX, Array(ct.dropLast()), ek, pkI, pkR, th) }
    }

    @Test func mlDSA65SignsAndVerifies() throws {
        var random = DeterministicRandomSource(seed: 5)
        let key = try MLDSA65Signing.PrivateKey(using: &random)
        #expect(key.publicKey.rawRepresentation.count == MLDSA65Signing.publicKeyByteCount)
        let message = [UInt8]("transcript hash".utf8)
        let signature = try key.signature(for: message)
        #expect(signature.count == MLDSA65Signing.signatureByteCount)
        let pub = try MLDSA65Signing.PublicKey(rawRepresentation: key.publicKey.rawRepresentation)
        #expect(pub.isValidSignature(signature, for: message))
        #expect(!pub.isValidSignature(signature, for: message + [0]))
        #expect(!pub.isValidSignature(signature, for: message, context: Array("other context".utf8)))
        var bad = signature; bad[100] ^= 1
        #expect(!pub.isValidSignature(bad, for: message))
        #expect(!pub.isValidSignature(signature.dropLast(), for: message))
        // The seed determines the key.
        let again = try key.seedRepresentation.withUnsafeBytes { try MLDSA65Signing.PrivateKey(seedRepresentation: $0) }
        #expect(again.publicKey == key.publicKey)
        #expect(throws: QKDError(.invalidPublicKey)) { _ = try MLDSA65Signing.PublicKey(rawRepresentation: [UInt8](repeating: 0, count: 10)) }
        #expect(throws: QKDError(.invalidKeyLength)) { _ = try MLDSA65Signing.PrivateKey(seedRepresentation: [UInt8](repeating: 0, count: 31)) }
    }
}
