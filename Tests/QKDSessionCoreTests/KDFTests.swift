import QKDCrypto
import QKDTestSupport
import Testing

/// HKDF-SHA256 (RFC 5869) and the ChaCha20 bootstrap stream (Spec/session.md section 5.3),
/// in Sources/QKDCrypto/KDF.
@Suite struct KDFTests {
    struct Case: Decodable {
        let name: String
        let ikm: HexBytes
        let salt: HexBytes
        let info: HexBytes
        let length: Int
        let prk: HexBytes
        let okm: HexBytes
    }

    static func bytes(_ secret: SecretBytes) -> [UInt8] { secret.withUnsafeBytes { Array($0) } }

    @Test func rfc5869Vectors() throws {
        let file = try VectorFile<Case>.load("hkdf-rfc5869.json")
        #expect(file.cases.count == 3)
        for c in file.cases {
            let prk = HKDF.extract(salt: c.salt.bytes, inputKeyMaterial: SecretBytes(copying: c.ikm.bytes))
            #expect(Self.bytes(prk) == c.prk.bytes, "\(c.name) PRK")
            let okm = try HKDF.expand(pseudorandomKey: prk, info: c.info.bytes, outputByteCount: c.length)
            #expect(Self.bytes(okm) == c.okm.bytes, "\(c.name) OKM")
            let oneShot = try HKDF.deriveKey(inputKeyMaterial: SecretBytes(copying: c.ikm.bytes), salt: c.salt.bytes, info: c.info.bytes, outputByteCount: c.length)
            #expect(oneShot == okm)
        }
    }

    @Test func expandRejectsBadLengths() throws {
        let prk = HKDF.extract(salt: [UInt8](), inputKeyMaterial: [UInt8](repeating: 1, count: 8))
        #expect(throws: QKDError(.invalidKeyLength)) { try HKDF.expand(pseudorandomKey: prk, info: [UInt8](), outputByteCount: 255 * 32 + 1) }
        #expect(throws: QKDError(.invalidKeyLength)) { try HKDF.expand(pseudorandomKey: SecretBytes(copying: [UInt8](repeating: 0, count: 16)), info: [UInt8](), outputByteCount: 32) }
        #expect(try HKDF.expand(pseudorandomKey: prk, info: [UInt8](), outputByteCount: 255 * 32).count == 255 * 32)
    }

    /// RFC 8439 Appendix A.1, test vector 1: key 0, nonce 0, block counter 0.
    @Test func chacha20ZeroKeyVector() throws {
        let stream = try ChaCha20KeyStream(key: SecretBytes(copying: [UInt8](repeating: 0, count: 32)))
        let expected = Hex.decode("76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586")!
        #expect(Self.bytes(try stream.bytes(at: 0, count: 64)) == expected)
    }

    /// Reading at an offset gives the same bytes as reading from 0, across block boundaries.
    @Test func keystreamOffsetsAgree() throws {
        var random = DeterministicRandomSource(seed: 5)
        let stream = try ChaCha20KeyStream(key: SecretBytes(randomCount: 32, using: &random))
        let whole = Self.bytes(try stream.bytes(at: 0, count: 1000))
        for (offset, count) in [(0, 16), (16, 16), (48, 32), (60, 10), (64, 64), (500, 300), (999, 1)] {
            #expect(Self.bytes(try stream.bytes(at: UInt64(offset), count: count)) == Array(whole[offset..<offset + count]))
        }
        for (offset, count) in [(0, 16), (16, 16), (60, 10), (500, 300)] {
            #expect(try stream.withBytes(at: UInt64(offset), count: count) { Array($0) } == Array(whole[offset..<offset + count]))
        }
        #expect(throws: QKDError(.invalidKeyLength)) { try stream.bytes(at: ChaCha20KeyStream.maximumByteCount, count: 1) }
        #expect(throws: QKDError(.invalidKeyLength)) { try stream.withBytes(at: ChaCha20KeyStream.maximumByteCount, count: 1) { _ in } }
    }
}
