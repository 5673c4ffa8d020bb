import Testing
@testable import QKDCrypto

/// Verification rejects a wrong tag, a wrong length, a wrong domain, a wrong pad and a wrong key,
/// for both suites. Each check is exhaustive over bit positions where that is cheap.
@Suite struct MACRejectionTests {
    struct Fixture {
        let key: HashKey
        let padBytes: [UInt8]
        let domain: [UInt8]
        let message: [UInt8]
        let tag: AuthenticationTag

        init(_ suite: MACSuite, seed: UInt64, messageLength: Int = 100) {
            var random = DeterministicRandomSource(seed: seed)
            key = HashKey.random(suite: suite, using: &random)
            padBytes = random.bytes(count: 16)
            domain = Array("QKDChannel/1 frame".utf8) + random.bytes(count: 18)
            message = random.bytes(count: messageLength)
            tag = WegmanCarter.authenticationTag(for: message, domain: domain, hashKey: key,
                                                 pad: try! OneTimePad(rawRepresentation: padBytes))
        }

        func verifies(tag: AuthenticationTag? = nil, message: [UInt8]? = nil, domain: [UInt8]? = nil,
                      pad: [UInt8]? = nil, key: HashKey? = nil) -> Bool {
            WegmanCarter.isValidAuthenticationTag(
                tag ?? self.tag, authenticating: message ?? self.message, domain: domain ?? self.domain,
                hashKey: key ?? self.key, pad: try! OneTimePad(rawRepresentation: pad ?? padBytes))
        }
    }

    @Test(arguments: MACSuite.allCases)
    func genuineTagVerifies(_ suite: MACSuite) {
        #expect(Fixture(suite, seed: 1).verifies())
    }

    @Test(arguments: MACSuite.allCases)
    func everyFlippedTagBitIsRejected(_ suite: MACSuite) throws {
        let f = Fixture(suite, seed: 2)
        for bit in 0..<128 {
            var raw = f.tag.rawRepresentation
            raw[bit / 8] ^= 1 << (bit % 8)
            #expect(!f.verifies(tag: try AuthenticationTag(rawRepresentation: raw)), "tag bit \(bit)")
        }
    }

    @Test(arguments: MACSuite.allCases)
    func everyFlippedMessageBitIsRejected(_ suite: MACSuite) {
        let f = Fixture(suite, seed: 3, messageLength: 40)
        for bit in 0..<(f.message.count * 8) {
            var m = f.message
            m[bit / 8] ^= 1 << (bit % 8)
            #expect(!f.verifies(message: m), "message bit \(bit)")
        }
    }

    /// The explicit length block: appending or removing zero bytes changes the tag, even where
    /// the padded blocks would otherwise be identical.
    @Test(arguments: MACSuite.allCases)
    func wrongLengthIsRejected(_ suite: MACSuite) {
        var random = DeterministicRandomSource(seed: 4)
        let key = HashKey.random(suite: suite, using: &random)
        let pad = random.bytes(count: 16)
        let domain = Array("QKDChannel/1 frame".utf8)
        let message: [UInt8] = random.bytes(count: 20) + [0, 0, 0]  // ends in zeros
        let tag = WegmanCarter.authenticationTag(for: message, domain: domain, hashKey: key,
                                                 pad: try! OneTimePad(rawRepresentation: pad))
        let variants: [[UInt8]] = [
            message + [0],                       // one trailing zero more: same padded blocks
            Array(message.dropLast()),           // one trailing zero less: same padded blocks
            Array(message.dropLast(3)),
            message + [UInt8](repeating: 0, count: 16),  // a whole zero block more
            [UInt8](repeating: 0, count: 16) + message,  // a leading zero block
            [],
        ]
        for variant in variants {
            #expect(!WegmanCarter.isValidAuthenticationTag(
                tag, authenticating: variant, domain: domain, hashKey: key,
                pad: try! OneTimePad(rawRepresentation: pad)), "length \(variant.count)")
        }
    }

    @Test(arguments: MACSuite.allCases)
    func wrongDomainIsRejected(_ suite: MACSuite) {
        let f = Fixture(suite, seed: 5)
        for bit in 0..<(f.domain.count * 8) {
            var d = f.domain
            d[bit / 8] ^= 1 << (bit % 8)
            #expect(!f.verifies(domain: d), "domain bit \(bit)")
        }
        #expect(!f.verifies(domain: f.domain + [0]))
        #expect(!f.verifies(domain: Array(f.domain.dropLast())))
        #expect(!f.verifies(domain: []))
        // Moving bytes across the domain/message boundary is a different input.
        #expect(!f.verifies(message: [f.domain.last!] + f.message, domain: Array(f.domain.dropLast())))
        #expect(!f.verifies(message: Array(f.message.dropFirst()), domain: f.domain + [f.message[0]]))
    }

    @Test(arguments: MACSuite.allCases)
    func wrongPadOrKeyIsRejected(_ suite: MACSuite) {
        let f = Fixture(suite, seed: 6)
        for bit in 0..<128 {
            var p = f.padBytes
            p[bit / 8] ^= 1 << (bit % 8)
            #expect(!f.verifies(pad: p), "pad bit \(bit)")
        }
        var random = DeterministicRandomSource(seed: 7)
        #expect(!f.verifies(key: HashKey.random(suite: suite, using: &random)))
        let other: MACSuite = suite == .poly1305OTP ? .gf128OTP : .poly1305OTP
        #expect(!f.verifies(key: try! HashKey(suite: other, secret: f.key.raw)))
    }

    @Test func lengthsAreChecked() {
        #expect(throws: QKDError(.invalidKeyLength)) { try HashKey(suite: .poly1305OTP, rawRepresentation: [UInt8](repeating: 1, count: 15)) }
        #expect(throws: QKDError(.invalidKeyLength)) { try HashKey(suite: .gf128OTP, rawRepresentation: [UInt8](repeating: 1, count: 32)) }
        #expect(throws: QKDError(.invalidKeyLength)) { _ = try OneTimePad(rawRepresentation: [UInt8](repeating: 1, count: 17)) }
        #expect(throws: QKDError(.invalidKeyLength)) { try AuthenticationTag(rawRepresentation: [UInt8]()) }
        #expect(throws: QKDError(.unknownSuite)) { try MACSuite(wireValue: 0) }
        #expect(throws: QKDError(.unknownSuite)) { try MACSuite(wireValue: 3) }
    }

    /// A zero hash key makes the hash constant (every message gets the tag `s`), so it is refused.
    /// Found by Fuzz/FuzzMAC (Fuzz/FailCases/FuzzMAC/zero-hash-key); for Poly1305 the check
    /// applies after clamping, so a key whose only set bits are clamped away is weak too.
    @Test func weakHashKeysAreRefused() throws {
        for suite in MACSuite.allCases {
            #expect(throws: QKDError(.weakHashKey)) { try HashKey(suite: suite, rawRepresentation: [UInt8](repeating: 0, count: 16)) }
        }
        var clampedAway = [UInt8](repeating: 0, count: 16)
        clampedAway[3] = 0xf0; clampedAway[4] = 0x03; clampedAway[15] = 0xf0
        #expect(throws: QKDError(.weakHashKey)) { try HashKey(suite: .poly1305OTP, rawRepresentation: clampedAway) }
        _ = try HashKey(suite: .gf128OTP, rawRepresentation: clampedAway)  // not weak for GHASH
        var one = [UInt8](repeating: 0, count: 16); one[0] = 1
        for suite in MACSuite.allCases { _ = try HashKey(suite: suite, rawRepresentation: one) }
    }

    @Test func suiteNamesRoundTrip() throws {
        for suite in MACSuite.allCases {
            #expect(MACSuite(name: suite.description) == suite)
            #expect(try MACSuite(wireValue: suite.rawValue) == suite)
        }
        #expect(MACSuite(name: "hmac-sha256") == nil)
    }

    @Test func forgeryBoundsMatchSpec() {
        // 1 KiB message: ceil(1024/16) + 1 = 65 blocks.
        #expect(MACSuite.poly1305OTP.forgeryBound(hashedBytes: 1024) == 8 * 65 / 0x1p106)
        #expect(MACSuite.gf128OTP.forgeryBound(hashedBytes: 1024) == 65 / 0x1p128)
    }
}
