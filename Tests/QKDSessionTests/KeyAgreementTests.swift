import Testing
import QKDTestSupport
import QKDCrypto

/// ML-KEM-768 hybrid key agreement, the combiner, and ML-DSA-65 (Spec/handshake.md 2.3, 2.4).
@Suite struct KeyAgreementTests {
    static let transcript = KeyDerivation.sha256([UInt8]("client hello".utf8))

    /// Runs both halves; returns the initiator's secret, the response and the initiator.
    static func run(_ suite: KeyAgreementSuite, seed: UInt64, transcript: [UInt8] = transcript)
        throws -> (SecretBytes, KeyAgreementResponse, KeyAgreementInitiator)
    {
        var random = DeterministicRandomSource(seed: seed)
        let initiator = try KeyAgreementInitiator(offerHybrid: suite == .x25519MLKEM768, using: &random)
        let response = try KeyAgreementResponder.respond(
            suite: suite, x25519Share: initiator.x25519Share, mlkemEncapsulationKey: initiator.mlkemEncapsulationKey,
            transcriptHash: transcript, using: &random)
        let secret = try initiator.sharedSecret(
            suite: suite, responderX25519Share: response.x25519Share, mlkemCiphertext: response.mlkemCiphertext,
            transcriptHash: transcript)
        return (secret, response, initiator)
    }

    @Test(arguments: KeyAgreementSuite.allCases)
    func bothSidesAgree(_ suite: KeyAgreementSuite) throws {
        let (secret, response, initiator) = try Self.run(suite, seed: 1)
        #expect(secret == response.sharedSecret)
        #expect(secret.count == 32)
        #expect(initiator.x25519Share.count == 32 && response.x25519Share.count == 32)
        #expect(initiator.mlkemEncapsulationKey?.count == (suite == .x25519 ? nil : KeyAgreementSuite.mlkemPublicKeyByteCount))
        #expect(response.mlkemCiphertext?.count == (suite == .x25519 ? nil : KeyAgreementSuite.mlkemCiphertextByteCount))
        // A different transcript hash on one side gives a different secret.
        let other = try initiator.sharedSecret(
            suite: suite, responderX25519Share: response.x25519Share, mlkemCiphertext: response.mlkemCiphertext,
            transcriptHash: KeyDerivation.sha256([UInt8]("other".utf8)))
        #expect(other != response.sharedSecret)
    }

    /// An initiator that offered the hybrid can still finish x25519 (the responder's choice),
    /// and the two suites give different secrets; an initiator that did not offer the hybrid
    /// refuses it.
    @Test func responderChoosesTheSuite() throws {
        var random = DeterministicRandomSource(seed: 6)
        let initiator = try KeyAgreementInitiator(offerHybrid: true, using: &random)
        let classical = try KeyAgreementResponder.respond(
            suite: .x25519, x25519Share: initiator.x25519Share, mlkemEncapsulationKey: nil, transcriptHash: Self.transcript, using: &random)
        let secret = try initiator.sharedSecret(suite: .x25519, responderX25519Share: classical.x25519Share, mlkemCiphertext: nil, transcriptHash: Self.transcript)
        #expect(secret == classical.sharedSecret)
        #expect(throws: QKDError(.keyAgreementNotOffered)) {
            _ = try initiator.sharedSecret(suite: .x25519, responderX25519Share: classical.x25519Share, mlkemCiphertext: [1], transcriptHash: Self.transcript)
        }
        let plain = try KeyAgreementInitiator(offerHybrid: false, using: &random)
        #expect(plain.mlkemEncapsulationKey == nil)
        #expect(throws: QKDError(.keyAgreementNotOffered)) {
            _ = try plain.sharedSecret(suite: .x25519MLKEM768, responderX25519Share: classical.x25519Share,
                                       mlkemCiphertext: [UInt8](repeating: 0, count: 1088), transcriptHash: Self.transcript)
        }
    }

    /// ML-KEM's implicit rejection (FIPS 203 Algorithm 18): a tampered ciphertext does not throw,
    /// it yields an unrelated secret, so the handshake fails later at key confirmation.
    @Test func tamperedCiphertextGivesADifferentSecret() throws {
        let (_, response, initiator) = try Self.run(.x25519MLKEM768, seed: 2)
        let ciphertext = try #require(response.mlkemCiphertext)
        for position in [0, 500, 1087] {
            var tampered = ciphertext
            tampered[position] ^= 0x01
            let secret = try initiator.sharedSecret(
                suite: .x25519MLKEM768, responderX25519Share: response.x25519Share, mlkemCiphertext: tampered, transcriptHash: Self.transcript)
            #expect(secret != response.sharedSecret)
        }
        var share = response.x25519Share
        share[5] ^= 0x40
        #expect(try initiator.sharedSecret(
            suite: .x25519MLKEM768, responderX25519Share: share, mlkemCiphertext: ciphertext, transcriptHash: Self.transcript) != response.sharedSecret)
    }

    @Test func wrongLengthsAndLowOrderPointsAreTypedErrors() throws {
        var random = DeterministicRandomSource(seed: 3)
        let initiator = try KeyAgreementInitiator(offerHybrid: true, using: &random)
        #expect(throws: QKDError(.invalidPublicKey)) {
            _ = try KeyAgreementResponder.respond(suite: .x25519, x25519Share: Array(initiator.x25519Share.dropLast()),
                                                  mlkemEncapsulationKey: nil, transcriptHash: Self.transcript, using: &random)
        }
        #expect(throws: QKDError(.invalidPublicKey)) {
            _ = try KeyAgreementResponder.respond(suite: .x25519MLKEM768, x25519Share: initiator.x25519Share,
                                                  mlkemEncapsulationKey: initiator.mlkemEncapsulationKey.map { Array($0.dropLast()) },
                                                  transcriptHash: Self.transcript, using: &random)
        }
        #expect(throws: QKDError(.invalidPublicKey)) {
            _ = try KeyAgreementResponder.respond(suite: .x25519MLKEM768, x25519Share: initiator.x25519Share,
                                                  mlkemEncapsulationKey: nil, transcriptHash: Self.transcript, using: &random)
        }
        // An encapsulation key whose coefficients are not reduced mod q (FIPS 203 7.2).
        #expect(throws: QKDError(.invalidPublicKey)) {
            _ = try KeyAgreementResponder.respond(suite: .x25519MLKEM768, x25519Share: initiator.x25519Share,
                                                  mlkemEncapsulationKey: [UInt8](repeating: 0xFF, count: 1184),
                                                  transcriptHash: Self.transcript, using: &random)
        }
        let response = try KeyAgreementResponder.respond(
            suite: .x25519MLKEM768, x25519Share: initiator.x25519Share, mlkemEncapsulationKey: initiator.mlkemEncapsulationKey,
            transcriptHash: Self.transcript, using: &random)
        #expect(throws: QKDError(.invalidPublicKey)) {
            _ = try initiator.sharedSecret(suite: .x25519MLKEM768, responderX25519Share: response.x25519Share,
                                           mlkemCiphertext: response.mlkemCiphertext.map { Array($0.dropLast()) }, transcriptHash: Self.transcript)
        }
        let zero = [UInt8](repeating: 0, count: 32)
        #expect(throws: QKDError(.zeroSharedSecret)) {
            _ = try initiator.sharedSecret(suite: .x25519MLKEM768, responderX25519Share: zero, mlkemCiphertext: response.mlkemCiphertext, transcriptHash: Self.transcript)
        }
        #expect(throws: QKDError(.zeroSharedSecret)) {
            _ = try KeyAgreementResponder.respond(suite: .x25519, x25519Share: zero, mlkemEncapsulationKey: nil, transcriptHash: Self.transcript, using: &random)
        }
    }

    /// The initiator's keys (X25519 scalar and ML-KEM seed) come from the injected source.
    @Test func initiatorKeysFollowTheRandomSource() throws {
        var r1 = DeterministicRandomSource(seed: 9)
        var r2 = DeterministicRandomSource(seed: 9)
        let a = try KeyAgreementInitiator(offerHybrid: true, using: &r1)
        let b = try KeyAgreementInitiator(offerHybrid: true, using: &r2)
        #expect(a.x25519Share == b.x25519Share)
        #expect(a.mlkemEncapsulationKey == b.mlkemEncapsulationKey)
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
