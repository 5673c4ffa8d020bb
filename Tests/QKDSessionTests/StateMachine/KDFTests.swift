import QKDCrypto
import QKDTestSupport
import QKDWire
import Testing
@testable import QKDSession

/// The bootstrap key schedule as the session computes it (Spec/session.md sections 5.1 and
/// 5.3), against `Spec/vectors/bootstrap-key-schedule.json` (independent Python code, written
/// with Spec/handshake.md 3.2), and the ChaCha20 keystream reads in Sources/QKDCrypto/KDF.
@Suite struct KDFTests {
    struct Case: Decodable {
        let name: String
        let kind: String
        let direction: UInt8?
        let secret: HexBytes?
        let hash_key: HexBytes?
        let pad_slot_1: HexBytes?
        let pad_slot_3: HexBytes?
        let pad_slot_1029: HexBytes?
        let psk: HexBytes?
        let nonce_a: HexBytes?
        let nonce_b: HexBytes?
        let transcript_hash: HexBytes?
    }

    static func bytes(_ secret: SecretBytes) -> [UInt8] { secret.withUnsafeBytes { Array($0) } }

    @Test func sessionKeyScheduleMatchesTheVectors() throws {
        let file = try VectorFile<Case>.load("bootstrap-key-schedule.json")
        var checked = 0
        for c in file.cases {
            switch c.kind {
            case "stream":
                let rawDirection = try #require(c.direction)
                let direction = try #require(Direction(rawValue: rawDirection))
                let streams = try BootstrapStreams(secret: SecretBytes(copying: try #require(c.secret).bytes), outbound: direction)
                #expect(try BootstrapStreams.slot(0, of: streams.outbound).bytes == c.hash_key?.bytes, "\(c.name)")
                #expect(try BootstrapStreams.slot(1, of: streams.outbound).bytes == c.pad_slot_1?.bytes, "\(c.name)")
                #expect(try BootstrapStreams.slot(3, of: streams.outbound).bytes == c.pad_slot_3?.bytes, "\(c.name)")
                #expect(try BootstrapStreams.slot(1029, of: streams.outbound).bytes == c.pad_slot_1029?.bytes, "\(c.name)")
                // The peer's inbound stream is this direction's outbound stream.
                let peer = try BootstrapStreams(secret: SecretBytes(copying: try #require(c.secret).bytes), outbound: direction.reversed)
                #expect(try BootstrapStreams.slot(3, of: peer.inbound).bytes == c.pad_slot_3?.bytes, "\(c.name)")
                checked += 1
            case "psk-kdf":
                let secret = try bootstrapSecret(ikm: SecretBytes(copying: try #require(c.psk).bytes), label: KeyScheduleLabel.pskKDF,
                                                 nonceA: try #require(c.nonce_a).bytes, nonceB: try #require(c.nonce_b).bytes,
                                                 transcriptHash: try #require(c.transcript_hash).bytes)
                #expect(Self.bytes(secret) == c.secret?.bytes, "\(c.name)")
                checked += 1
            default:
                continue
            }
        }
        #expect(checked == 3)
    }

    /// RFC 8439 Appendix A.1, test vector 1: key 0, nonce 0, block counter 0.
    @Test func chacha20ZeroKeyVector() throws {
        let stream = try ChaCha20KeyStream(key: SecretBytes(copying: [UInt8](repeating: 0, count: 32)))
        let expected = Hex.decode("76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586")!
        #expect(Self.bytes(try stream.bytes(at: 0, count: 64)) == expected)
        #expect(try stream.withBytes(at: 0, count: 64) { Array($0) } == expected)
    }

    /// Reading at an offset gives the same bytes as reading from 0, across block boundaries,
    /// and the same bytes as `KeyDerivation.chacha20KeyStream`.
    @Test func keystreamOffsetsAgree() throws {
        var random = DeterministicRandomSource(seed: 5)
        let key = SecretBytes(randomCount: 32, using: &random)
        let stream = try ChaCha20KeyStream(key: key)
        let whole = Self.bytes(try stream.bytes(at: 0, count: 1000))
        #expect(whole == Self.bytes(try KeyDerivation.chacha20KeyStream(key: key, byteOffset: 0, count: 1000)))
        for (offset, count) in [(0, 16), (16, 16), (48, 32), (60, 10), (64, 64), (500, 300), (999, 1)] {
            #expect(Self.bytes(try stream.bytes(at: UInt64(offset), count: count)) == Array(whole[offset..<offset + count]))
            #expect(try stream.withBytes(at: UInt64(offset), count: count) { Array($0) } == Array(whole[offset..<offset + count]))
        }
        #expect(throws: QKDError(.invalidKeyLength)) { try stream.bytes(at: ChaCha20KeyStream.maximumByteCount, count: 1) }
        #expect(throws: QKDError(.invalidKeyLength)) { try stream.withBytes(at: ChaCha20KeyStream.maximumByteCount, count: 1) { _ in } }
    }
}
