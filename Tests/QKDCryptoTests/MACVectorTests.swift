import Testing
import QKDTestSupport
@testable import QKDCrypto

/// Known-answer tests: RFC 8439 for Poly1305 itself, and our own vectors (Spec/vectors/
/// mac-suites.json, made by an independent Python reference) for both Wegman-Carter suites.
@Suite struct MACVectorTests {
    struct RawPoly1305Case: Decodable, CustomTestStringConvertible {
        let name: String
        let key: HexBytes
        let message: HexBytes
        let tag: HexBytes
        var testDescription: String { name }
    }

    struct SuiteCase: Decodable, CustomTestStringConvertible {
        let name: String
        let suite: String
        let hash_key: HexBytes
        let pad: HexBytes
        let domain: HexBytes
        let message: HexBytes
        let tag: HexBytes
        var testDescription: String { name }
        var macSuite: MACSuite { MACSuite(name: suite)! }
    }

    static let rfc8439 = try! VectorFile<RawPoly1305Case>.load("poly1305-rfc8439.json").cases
    static let suites = try! VectorFile<SuiteCase>.load("mac-suites.json").cases

    @Test func vectorFilesAreComplete() {
        #expect(Self.rfc8439.count == 12)  // 2.5.2 and A.3 #1-#11
        #expect(Self.suites.contains { $0.macSuite == .poly1305OTP })
        #expect(Self.suites.contains { $0.macSuite == .gf128OTP })
    }

    /// Poly1305 with key r || s equals our digest (r || 0^16) plus s mod 2^128: the split that
    /// lets the hash key be recycled while s comes fresh from the pad stream.
    @Test(arguments: rfc8439)
    func rfc8439Poly1305(_ c: RawPoly1305Case) throws {
        // Unchecked: A.3 #1 and #2 use r = 0, which the public initialiser refuses as weak.
        let key = HashKey(suite: .poly1305OTP, checkedSecret: SecretBytes(copying: c.key.bytes[0..<16]))
        let stream = Poly1305Stream(key: key)
        c.message.bytes.withUnsafeBytes { stream.update($0) }
        let (w0, w1) = stream.finish()
        let digest = UniversalHashDigest(word0: w0, word1: w1, suite: .poly1305OTP)
        let tag = WegmanCarter.seal(digest, with: try OneTimePad(rawRepresentation: c.key.bytes[16..<32]))
        #expect(tag.rawRepresentation == c.tag.bytes)
    }

    @Test(arguments: suites)
    func suiteVector(_ c: SuiteCase) throws {
        let key = try HashKey(suite: c.macSuite, rawRepresentation: c.hash_key.bytes)
        let tag = WegmanCarter.authenticationTag(
            for: c.message.bytes, domain: c.domain.bytes, hashKey: key,
            pad: try OneTimePad(rawRepresentation: c.pad.bytes))
        #expect(tag.rawRepresentation == c.tag.bytes)
        let expected = try AuthenticationTag(rawRepresentation: c.tag.bytes)
        #expect(WegmanCarter.isValidAuthenticationTag(
            expected, authenticating: c.message.bytes, domain: c.domain.bytes, hashKey: key,
            pad: try OneTimePad(rawRepresentation: c.pad.bytes)))
    }

    /// The digest depends only on the concatenated message, not on how it is fed.
    @Test(arguments: suites)
    func streamingInRandomPiecesGivesTheSameTag(_ c: SuiteCase) throws {
        let key = try HashKey(suite: c.macSuite, rawRepresentation: c.hash_key.bytes)
        var random = DeterministicRandomSource(seed: UInt64(c.message.bytes.count))
        for _ in 0..<8 {
            var hash = UniversalHash(key: key, domain: c.domain.bytes)
            var offset = 0
            let message = c.message.bytes
            while offset < message.count {
                let n = min(message.count - offset, Int(random.next() % 40))
                hash.update(Array(message[offset..<offset + n]))
                offset += n
            }
            let tag = WegmanCarter.seal(hash.finalize(), with: try OneTimePad(rawRepresentation: c.pad.bytes))
            #expect(tag.rawRepresentation == c.tag.bytes)
        }
    }
}

/// The prepared-domain fast path (MACContext) computes exactly what UniversalHash computes.
@Suite struct MACContextTests {
    @Test(arguments: MACSuite.allCases)
    func contextMatchesStreamingHashAndVectors(_ suite: MACSuite) throws {
        var random = DeterministicRandomSource(seed: 77)
        for trial in 0..<200 {
            let key = HashKey.random(suite: suite, using: &random)
            let domain = random.bytes(count: Int(random.next() % 70))
            let message = random.bytes(count: Int(random.next() % 300))
            var streaming = UniversalHash(key: key, domain: domain)
            streaming.update(message)
            let expected = streaming.finalize()
            let context = MACContext(hashKey: key, domain: domain)
            let cut = message.isEmpty ? 0 : Int(random.next() % UInt64(message.count))
            let pieces = context.digest { sink in
                message[0..<cut].withUnsafeBytes { sink.update($0) }
                message[cut...].withUnsafeBytes { sink.update($0) }
            }
            let whole = message.withUnsafeBytes { context.digest(of: $0) }
            #expect(pieces.word0 == expected.word0 && pieces.word1 == expected.word1, "trial \(trial)")
            #expect(whole.word0 == expected.word0 && whole.word1 == expected.word1, "trial \(trial)")
            // The same context serves many messages: the prepared state is not consumed.
            let again = message.withUnsafeBytes { context.digest(of: $0) }
            #expect(again.word0 == expected.word0 && again.word1 == expected.word1)
        }
    }

    @Test(arguments: MACVectorTests.suites)
    func contextReproducesSuiteVectors(_ c: MACVectorTests.SuiteCase) throws {
        let key = try HashKey(suite: c.macSuite, rawRepresentation: c.hash_key.bytes)
        let context = MACContext(hashKey: key, domain: c.domain.bytes)
        let tag = c.message.bytes.withUnsafeBytes {
            context.authenticationTag(for: $0, pad: try! OneTimePad(rawRepresentation: c.pad.bytes))
        }
        #expect(tag.rawRepresentation == c.tag.bytes)
        let ok = c.message.bytes.withUnsafeBytes {
            context.isValidAuthenticationTag(tag, authenticating: $0, pad: try! OneTimePad(rawRepresentation: c.pad.bytes))
        }
        #expect(ok)
    }
}
