import Testing
import QKDTestSupport
import QKDCrypto

/// Known-answer tests for the public-key building blocks of the bootstrap handshake:
/// RFC 8032 7.1 (Ed25519), RFC 7748 5.2 and 6.1 (X25519), RFC 5869 A.1-A.3 (HKDF-SHA256).
@Suite struct PublicKeyVectorTests {
    struct Ed25519Case: Decodable, CustomTestStringConvertible {
        let name: String
        let secret_key: HexBytes
        let public_key: HexBytes
        let message: HexBytes
        let signature: HexBytes
        var testDescription: String { name }
    }

    struct X25519Case: Decodable, CustomTestStringConvertible {
        let name: String
        let kind: String
        let scalar: HexBytes?
        let u: HexBytes?
        let output: HexBytes?
        let iterations: Int?
        let alice_private: HexBytes?
        let alice_public: HexBytes?
        let bob_private: HexBytes?
        let bob_public: HexBytes?
        let shared: HexBytes?
        var testDescription: String { name }
    }

    struct HKDFCase: Decodable, CustomTestStringConvertible {
        let name: String
        let ikm: HexBytes
        let salt: HexBytes
        let info: HexBytes
        let length: Int
        let prk: HexBytes
        let okm: HexBytes
        var testDescription: String { name }
    }

    static let ed25519 = try! VectorFile<Ed25519Case>.load("ed25519-rfc8032.json").cases
    static let x25519 = try! VectorFile<X25519Case>.load("x25519-rfc7748.json").cases
    static let hkdf = try! VectorFile<HKDFCase>.load("hkdf-sha256-rfc5869.json").cases

    @Test func vectorFilesAreComplete() {
        #expect(Self.ed25519.count == 3)
        #expect(Self.x25519.filter { $0.kind == "scalarmult" }.count == 2)
        #expect(Self.x25519.filter { $0.kind == "iterated" }.count == 2)
        #expect(Self.x25519.filter { $0.kind == "dh" }.count == 1)
        #expect(Self.hkdf.count == 3)
    }

    @Test(arguments: ed25519)
    func ed25519Vector(_ c: Ed25519Case) throws {
        let key = try Ed25519.PrivateKey(rawRepresentation: c.secret_key.bytes)
        #expect(key.publicKey.rawRepresentation == c.public_key.bytes)
        #expect(key.signature(for: c.message.bytes) == c.signature.bytes)
        #expect(key.rawRepresentation == SecretBytes(copying: c.secret_key.bytes))
        let pub = try Ed25519.PublicKey(rawRepresentation: c.public_key.bytes)
        #expect(pub.isValidSignature(c.signature.bytes, for: c.message.bytes))
        // Any single flipped bit of the signature or message is refused.
        for bit in stride(from: 0, to: 512, by: 37) {
            var sig = c.signature.bytes
            sig[bit / 8] ^= 1 << (bit % 8)
            #expect(!pub.isValidSignature(sig, for: c.message.bytes))
        }
        #expect(!pub.isValidSignature(c.signature.bytes, for: c.message.bytes + [0]))
        #expect(!pub.isValidSignature(c.signature.bytes.dropLast(), for: c.message.bytes))
    }

    @Test(arguments: x25519)
    func x25519Vector(_ c: X25519Case) throws {
        switch c.kind {
        case "scalarmult":
            let key = try X25519.PrivateKey(rawRepresentation: try #require(c.scalar).bytes)
            let out = try key.sharedSecretFromKeyAgreement(with: X25519.PublicKey(rawRepresentation: try #require(c.u).bytes))
            #expect(out == SecretBytes(copying: try #require(c.output).bytes))
        case "iterated":
            // RFC 7748 5.2: k = u = 9; repeat (k, u) = (X25519(k, u), k).
            var k = [UInt8](repeating: 0, count: 32); k[0] = 9
            var u = k
            for _ in 0..<(try #require(c.iterations)) {
                let out = try X25519.PrivateKey(rawRepresentation: k).sharedSecretFromKeyAgreement(with: X25519.PublicKey(rawRepresentation: u))
                u = k
                k = out.withUnsafeBytes { [UInt8]($0) }
            }
            #expect(k == (try #require(c.output)).bytes)
        case "dh":
            let a = try X25519.PrivateKey(rawRepresentation: try #require(c.alice_private).bytes)
            let b = try X25519.PrivateKey(rawRepresentation: try #require(c.bob_private).bytes)
            #expect(a.publicKey.rawRepresentation == c.alice_public?.bytes)
            #expect(b.publicKey.rawRepresentation == c.bob_public?.bytes)
            let k1 = try a.sharedSecretFromKeyAgreement(with: b.publicKey)
            let k2 = try b.sharedSecretFromKeyAgreement(with: a.publicKey)
            #expect(k1 == k2)
            #expect(k1 == SecretBytes(copying: try #require(c.shared).bytes))
        default:
            Issue.record("unknown case kind \(c.kind)")
        }
    }

    /// Low-order points give the all-zero secret, which is refused (RFC 7748 section 6.1).
    @Test func x25519RefusesLowOrderPoints() throws {
        var random = DeterministicRandomSource(seed: 7)
        let key = X25519.PrivateKey(using: &random)
        let zero = [UInt8](repeating: 0, count: 32)
        var one = zero; one[0] = 1
        // A point of order 8 (from the list in libsodium's and Bernstein's small-order blacklist).
        let order8 = Hex.decode("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")!
        for point in [zero, one, order8] {
            #expect(throws: QKDError(.zeroSharedSecret)) {
                _ = try key.sharedSecretFromKeyAgreement(with: X25519.PublicKey(rawRepresentation: point))
            }
        }
        #expect(throws: QKDError(.invalidPublicKey)) { _ = try X25519.PublicKey(rawRepresentation: [UInt8](repeating: 9, count: 31)) }
        #expect(throws: QKDError(.invalidKeyLength)) { _ = try X25519.PrivateKey(rawRepresentation: [UInt8](repeating: 9, count: 33)) }
    }

    @Test(arguments: hkdf)
    func hkdfVector(_ c: HKDFCase) throws {
        let ikm = SecretBytes(copying: c.ikm.bytes)
        let prk = KeyDerivation.extract(inputKeyMaterial: ikm, salt: c.salt.bytes)
        #expect(prk == SecretBytes(copying: c.prk.bytes))
        let okm = try KeyDerivation.hkdfSHA256(inputKeyMaterial: ikm, salt: c.salt.bytes, info: c.info.bytes, outputByteCount: c.length)
        #expect(okm == SecretBytes(copying: c.okm.bytes))
        let expanded = try KeyDerivation.expand(pseudoRandomKey: prk, info: c.info.bytes, outputByteCount: c.length)
        #expect(expanded == okm)
    }

    @Test func hkdfRefusesOutOfRangeLengths() {
        let ikm = SecretBytes(copying: [UInt8](repeating: 1, count: 32))
        #expect(throws: QKDError(.kdfOutputTooLong)) {
            _ = try KeyDerivation.hkdfSHA256(inputKeyMaterial: ikm, salt: [UInt8](), info: [UInt8](), outputByteCount: 255 * 32 + 1)
        }
        #expect(throws: QKDError(.kdfOutputTooLong)) {
            _ = try KeyDerivation.hkdfSHA256(inputKeyMaterial: ikm, salt: [UInt8](), info: [UInt8](), outputByteCount: 0)
        }
    }

    /// Ed25519 keys drawn from the injected source are reproducible, and the private key's
    /// description never shows the seed.
    @Test func ed25519KeyGenerationFollowsTheRandomSource() {
        var r1 = DeterministicRandomSource(seed: 42)
        var r2 = DeterministicRandomSource(seed: 42)
        let k1 = Ed25519.PrivateKey(using: &r1)
        let k2 = Ed25519.PrivateKey(using: &r2)
        #expect(k1.publicKey == k2.publicKey)
        let seedHex = k1.rawRepresentation.withUnsafeBytes { Hex.encode($0) }
        #expect(!"\(k1)".contains(seedHex))
        var r3 = DeterministicRandomSource(seed: 43)
        #expect(Ed25519.PrivateKey(using: &r3).publicKey != k1.publicKey)
    }

    @Test func sha256KnownAnswer() {
        // FIPS 180-4 example "abc".
        #expect(Hex.encode(KeyDerivation.sha256([UInt8]("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}
