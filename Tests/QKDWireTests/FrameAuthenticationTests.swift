import Testing
@testable import QKDWire
import QKDCrypto

private let padHex = "0103808afb0db2fd4abff6af4149f51b"
private let otherPadHex = "0103808afb0db2fd4abff6af4149f51c"
private let keyBytes = Hex.decode("85d6be7857556d337f4452fe42d506a8")!
private let session = try! SessionID(rawRepresentation: Hex.decode("5e551011000000000000000000000001")!)
private let otherSession = try! SessionID(rawRepresentation: Hex.decode("5e551011000000000000000000000002")!)

private func key(_ suite: MACSuite, _ bytes: [UInt8] = keyBytes) -> HashKey {
    try! HashKey(suite: suite, rawRepresentation: bytes)
}

private func sealedFrame(_ suite: MACSuite, payload: [UInt8]) -> Frame {
    var frame = Frame(type: .data, sequenceNumber: 42, keyReference: .padSlot(epoch: 3, slot: 77), payload: payload)
    FrameAuthenticator(hashKey: key(suite), direction: .aliceToBob, sessionID: session).seal(&frame, pad: pad(padHex))
    return frame
}

/// Whether the receiver accepts `bytes`: they decode to one frame and its tag verifies.
private func accepts(_ bytes: [UInt8], _ authenticator: FrameAuthenticator, padHex: String = padHex) -> Bool {
    guard let frame = try? Frame(decoding: bytes) else { return false }
    return authenticator.isValidAuthenticationTag(of: frame, pad: pad(padHex))
}

@Suite("Frame authentication")
struct FrameAuthenticationTests {
    @Test("a valid tag verifies; a flipped bit anywhere in header, payload or tag is rejected", arguments: MACSuite.allCases)
    func bitFlips(_ suite: MACSuite) throws {
        let receiver = FrameAuthenticator(hashKey: key(suite), direction: .aliceToBob, sessionID: session)
        let bytes = try FrameEncoder().encode(sealedFrame(suite, payload: Array(0..<37)))
        #expect(accepts(bytes, receiver))
        try receiver.verify(try Frame(decoding: bytes), pad: pad(padHex))
        for bit in 0..<(bytes.count * 8) {
            var flipped = bytes
            flipped[bit / 8] ^= 1 << (bit % 8)
            #expect(!accepts(flipped, receiver), "bit \(bit) flipped was accepted")
        }
    }

    @Test("wrong direction, session, suite, pad or hash key are rejected", arguments: MACSuite.allCases)
    func wrongContext(_ suite: MACSuite) throws {
        let frame = sealedFrame(suite, payload: Array("hello, bob".utf8))
        let bytes = try FrameEncoder().encode(frame)
        let other: MACSuite = suite == .poly1305OTP ? .gf128OTP : .poly1305OTP
        var otherKeyBytes = keyBytes
        otherKeyBytes[15] ^= 0x01
        #expect(accepts(bytes, FrameAuthenticator(hashKey: key(suite), direction: .aliceToBob, sessionID: session)))
        #expect(!accepts(bytes, FrameAuthenticator(hashKey: key(suite), direction: .bobToAlice, sessionID: session)))
        #expect(!accepts(bytes, FrameAuthenticator(hashKey: key(suite), direction: .aliceToBob, sessionID: otherSession)))
        #expect(!accepts(bytes, FrameAuthenticator(hashKey: key(other), direction: .aliceToBob, sessionID: session)))
        #expect(!accepts(bytes, FrameAuthenticator(hashKey: key(suite), direction: .aliceToBob, sessionID: session), padHex: otherPadHex))
        #expect(!accepts(bytes, FrameAuthenticator(hashKey: key(suite, otherKeyBytes), direction: .aliceToBob, sessionID: session)))
        let wrong = FrameAuthenticator(hashKey: key(suite), direction: .bobToAlice, sessionID: session)
        #expect(throws: QKDError(.frameAuthenticationFailed)) { try wrong.verify(frame, pad: pad(padHex)) }
    }

    @Test("trailing zero bytes appended to the payload (lengths adjusted) are rejected", arguments: MACSuite.allCases)
    func zeroExtension(_ suite: MACSuite) throws {
        let receiver = FrameAuthenticator(hashKey: key(suite), direction: .aliceToBob, sessionID: session)
        // A payload ending on a block boundary, then 1, 15, 16 and 32 zero bytes more.
        let frame = sealedFrame(suite, payload: Array(repeating: 0, count: 32))
        for extra in [1, 15, 16, 32] {
            let longer = Frame(header: FrameHeader(type: frame.header.type, sequenceNumber: frame.header.sequenceNumber,
                                                   keyReference: frame.header.keyReference, payloadLength: 32 + extra),
                               payload: ArraySlice(Array(frame.payload) + Array(repeating: 0, count: extra)), tag: frame.tag)
            let bytes = try FrameEncoder().encode(longer)
            #expect(try Frame(decoding: bytes) == longer)  // Well-formed, so only the MAC can refuse it.
            #expect(!accepts(bytes, receiver), "\(extra) zero bytes appended were accepted")
        }
    }

    @Test("a tag of one frame does not verify another frame, and untagged frames never verify")
    func misuse() throws {
        let receiver = FrameAuthenticator(hashKey: key(.poly1305OTP), direction: .aliceToBob, sessionID: session)
        let a = sealedFrame(.poly1305OTP, payload: [1])
        let moved = Frame(type: .data, sequenceNumber: 43, keyReference: .padSlot(epoch: 3, slot: 77), payload: [1], tag: a.tag)
        let valid = receiver.isValidAuthenticationTag(of: a, pad: pad(padHex))
        let replayed = receiver.isValidAuthenticationTag(of: moved, pad: pad(padHex))
        #expect(valid && !replayed)
        let untagged = Frame(type: .data, sequenceNumber: 42, keyReference: .none, payload: [1])
        #expect(throws: QKDError(.frameAuthenticationFailed)) { try receiver.verify(untagged, pad: pad(padHex)) }
    }

    @Test("round transcripts: the closing tag covers every frame, in order", arguments: MACSuite.allCases)
    func roundTranscript(_ suite: MACSuite) throws {
        var rng = DeterministicRandomSource(seed: 5)
        func frames() -> [Frame] {
            var result = (0..<4).map { i in
                Frame(type: .data, sequenceNumber: UInt64(i), keyReference: .roundTranscript(epoch: 2),
                      payload: rng.bytes(count: 10 + 7 * i))
            }
            result.append(Frame(type: .data, sequenceNumber: 4, keyReference: .roundClose(epoch: 2, slot: 9), payload: [5, 5]))
            return result
        }
        var sent = frames()
        var sender = RoundTranscript(hashKey: key(suite), direction: .bobToAlice, sessionID: session, round: 7)
        for frame in sent.dropLast() { sender.absorb(frame) }
        var closing = sent.removeLast()
        sender.sealClosingFrame(&closing, pad: pad(padHex))
        sent.append(closing)
        // Over the wire and back.
        let received = decodeStream(encoded(sent)).frames
        #expect(received == sent)

        func check(_ frames: [Frame], round: UInt64 = 7, direction: Direction = .bobToAlice, sessionID: SessionID = session,
                   hashKey: HashKey = key(suite), padHex: String = padHex) -> Bool {
            var receiver = RoundTranscript(hashKey: hashKey, direction: direction, sessionID: sessionID, round: round)
            for frame in frames.dropLast() { receiver.absorb(frame) }
            return receiver.isValidClosingFrame(frames.last!, pad: pad(padHex))
        }
        #expect(check(received))
        #expect(!check(received, round: 8))
        #expect(!check(received, direction: .aliceToBob))
        #expect(!check(received, sessionID: otherSession))
        #expect(!check(received, padHex: otherPadHex))
        #expect(!check(received, hashKey: key(suite == .poly1305OTP ? .gf128OTP : .poly1305OTP)))
        var dropped = received
        dropped.remove(at: 1)
        #expect(!check(dropped))
        var reordered = received
        reordered.swapAt(0, 1)
        #expect(!check(reordered))
        var altered = received
        altered[2] = Frame(header: altered[2].header, payload: ArraySlice(altered[2].payload.map { $0 ^ 0x80 }))
        #expect(!check(altered))
        var injected = received
        injected.insert(Frame(type: .control, sequenceNumber: 99, keyReference: .roundTranscript(epoch: 2), payload: []), at: 3)
        #expect(!check(injected))
        // A closing frame without ROUND_CLOSE never closes a round.
        var receiver = RoundTranscript(hashKey: key(suite), direction: .bobToAlice, sessionID: session, round: 7)
        for frame in received.dropLast() { receiver.absorb(frame) }
        do {
            try receiver.verifyClosingFrame(received[0], pad: pad(padHex))
            Issue.record("a frame without ROUND_CLOSE closed a round")
        } catch {
            #expect(error as? QKDError == QKDError(.frameAuthenticationFailed))
        }
    }
}
