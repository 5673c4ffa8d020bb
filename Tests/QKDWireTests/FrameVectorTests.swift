import Testing
@testable import QKDWire
import QKDCrypto
import QKDTestSupport

/// Spec/vectors/frames.json, made by Spec/vectors/gen_frames.py (an independent Python
/// implementation of Spec/wire.md).
struct FrameVectorCase: Decodable, Sendable, CustomTestStringConvertible {
    struct Header: Decodable, Sendable {
        let version: UInt8
        let type: UInt8
        let flags: UInt8
        let keyKind: UInt8
        let sequenceNumber: UInt64
        let epoch: UInt32
        let slot: UInt64
        let payloadLength: Int
    }
    struct Auth: Decodable, Sendable {
        let suite: String
        let direction: UInt8
        let sessionID: HexBytes
        let hashKey: HexBytes
        let pad: HexBytes
    }
    struct Round: Decodable, Sendable {
        let suite: String
        let direction: UInt8
        let sessionID: HexBytes
        let roundNumber: UInt64
        let hashKey: HexBytes
        let pad: HexBytes
        let frames: [HexBytes]
        let closingTag: HexBytes
    }
    let name: String
    let kind: String
    let frame: HexBytes?
    let header: Header?
    let payload: HexBytes?
    let tag: HexBytes?
    let auth: Auth?
    let limit: Int?
    let error: String?
    let framesBefore: Int?
    let round: Round?

    var testDescription: String { name }
    var limits: FrameLimits { try! limit.map { try FrameLimits(maxFrameByteCount: $0) } ?? .default }
}

private let vectors: [FrameVectorCase] = {
    do { return try VectorFile<FrameVectorCase>.load("frames.json").cases } catch { fatalError("frames.json: \(error)") }
}()

private func authenticator(_ auth: FrameVectorCase.Auth) throws -> FrameAuthenticator {
    let suite = try #require(MACSuite(name: auth.suite))
    return FrameAuthenticator(hashKey: try HashKey(suite: suite, rawRepresentation: auth.hashKey.bytes),
                              direction: try #require(Direction(rawValue: auth.direction)),
                              sessionID: try SessionID(rawRepresentation: auth.sessionID.bytes))
}

@Suite("Frame vectors (Spec/vectors/frames.json)")
struct FrameVectorTests {
    @Test("the vector file covers every error code and both suites")
    func coverage() {
        let errors = Set(vectors.compactMap(\.error))
        for code: QKDError.Code in [.frameBadVersion, .frameUnknownType, .frameReservedBitsSet, .frameUnknownKeyKind,
                                    .frameKeyReferenceMismatch, .frameOversize, .frameTruncated,
                                    .frameTrailingGarbage, .frameTagLengthMismatch] {
            #expect(errors.contains(code.identifier), "no invalid vector for \(code)")
        }
        #expect(Set(vectors.compactMap { $0.auth?.suite }) == ["poly1305-otp", "gf128-otp"])
        #expect(Set(vectors.compactMap { $0.round?.suite }) == ["poly1305-otp", "gf128-otp"])
    }

    @Test("valid frames decode to their fields and re-encode byte for byte", arguments: vectors.filter { $0.kind == "valid" })
    func valid(_ v: FrameVectorCase) throws {
        let bytes = try #require(v.frame).bytes
        let h = try #require(v.header)
        let frame = try Frame(decoding: bytes, limits: v.limits)
        #expect(FrameHeader.version == h.version)
        #expect(frame.header.type.rawValue == h.type)
        #expect(frame.header.keyReference.flags == h.flags)
        #expect(frame.header.keyReference.kind == h.keyKind)
        #expect(frame.header.sequenceNumber == h.sequenceNumber)
        #expect(frame.header.keyReference.epoch == h.epoch)
        #expect((frame.header.keyReference.slot ?? 0) == h.slot)
        #expect(frame.header.payloadLength == h.payloadLength)
        #expect(Array(frame.payload) == v.payload?.bytes)
        #expect(frame.tag?.rawRepresentation == v.tag?.bytes)
        #expect(try FrameEncoder(limits: v.limits).encode(frame) == bytes)
        // The header on its own.
        let header = try FrameHeader(decoding: Array(bytes.prefix(FrameHeader.byteCount)), limits: v.limits)
        #expect(header == frame.header)
        var headerBytes: [UInt8] = []
        header.encode(into: &headerBytes)
        #expect(headerBytes == Array(bytes.prefix(FrameHeader.byteCount)))
        // One byte at a time.
        let drip = decodeStream(bytes, pieces: Array(repeating: 1, count: bytes.count), limits: v.limits)
        #expect(drip == DecodeOutcome(frames: [frame], error: nil))

        if let auth = v.auth {
            let authenticator = try authenticator(auth)
            let valid = authenticator.isValidAuthenticationTag(of: frame, pad: pad(Hex.encode(auth.pad.bytes)))
            #expect(valid)
            try authenticator.verify(frame, pad: pad(Hex.encode(auth.pad.bytes)))
            // Sealing the same header and payload gives the vector's tag.
            var unsealed = Frame(header: frame.header, payload: frame.payload)
            authenticator.seal(&unsealed, pad: pad(Hex.encode(auth.pad.bytes)))
            #expect(unsealed.tag?.rawRepresentation == v.tag?.bytes)
        }
    }

    @Test("invalid streams give their error code, however they are chunked", arguments: vectors.filter { $0.kind == "invalid" })
    func invalid(_ v: FrameVectorCase) throws {
        let bytes = try #require(v.frame).bytes
        let expected = try #require(v.error)
        let whole = decodeStream(bytes, limits: v.limits)
        #expect(whole.error?.code.identifier == expected, "\(whole.error.map(String.init(describing:)) ?? "no error")")
        #expect(whole.frames.count == (v.framesBefore ?? 0))
        let drip = decodeStream(bytes, pieces: Array(repeating: 1, count: bytes.count), limits: v.limits)
        #expect(drip == whole)
        let copied = decodeStream(bytes, pieces: Array(repeating: 7, count: bytes.count), limits: v.limits, useArrayAppend: false)
        #expect(copied == whole)
    }

    @Test("round transcripts reproduce the closing tag", arguments: vectors.filter { $0.kind == "round" })
    func round(_ v: FrameVectorCase) throws {
        let r = try #require(v.round)
        let suite = try #require(MACSuite(name: r.suite))
        let key = try HashKey(suite: suite, rawRepresentation: r.hashKey.bytes)
        let direction = try #require(Direction(rawValue: r.direction))
        let session = try SessionID(rawRepresentation: r.sessionID.bytes)
        let frames = try r.frames.map { try Frame(decoding: $0.bytes) }
        #expect(frames.last?.tag?.rawRepresentation == r.closingTag.bytes)
        for (frame, hex) in zip(frames, r.frames) { #expect(try FrameEncoder().encode(frame) == hex.bytes) }

        // Receiver: absorb, then check the closing frame.
        var receiver = RoundTranscript(hashKey: key, direction: direction, sessionID: session, round: r.roundNumber)
        for frame in frames.dropLast() { receiver.absorb(frame) }
        try receiver.verifyClosingFrame(frames.last!, pad: pad(Hex.encode(r.pad.bytes)))

        // Sender: absorb, then seal the closing frame.
        var sender = RoundTranscript(hashKey: key, direction: direction, sessionID: session, round: r.roundNumber)
        for frame in frames.dropLast() { sender.absorb(frame) }
        var closing = Frame(header: frames.last!.header, payload: frames.last!.payload)
        sender.sealClosingFrame(&closing, pad: pad(Hex.encode(r.pad.bytes)))
        #expect(closing.tag?.rawRepresentation == r.closingTag.bytes)

        // The bare digest, sealed by hand.
        var manual = RoundTranscript(hashKey: key, direction: direction, sessionID: session, round: r.roundNumber)
        for frame in frames { manual.absorb(frame) }
        #expect(manual.frameCount == frames.count)
        let tag = WegmanCarter.seal(manual.close(), with: pad(Hex.encode(r.pad.bytes)))
        #expect(tag.rawRepresentation == r.closingTag.bytes)
    }
}
