import Testing
@testable import QKDWire
import QKDCrypto

@Suite("Frame codec properties")
struct FrameCodecTests {
    @Test("encode then decode is the identity for random frames")
    func roundTrip() throws {
        var rng = DeterministicRandomSource(seed: 1)
        for _ in 0..<2_000 {
            let frame = randomFrame(maxPayload: 300, using: &rng)
            let bytes = try FrameEncoder().encode(frame)
            #expect(bytes.count == frame.frameByteCount)
            let decoded = try Frame(decoding: bytes)
            #expect(decoded == frame)
            #expect(try FrameEncoder().encode(decoded) == bytes)
            var headerBytes: [UInt8] = []
            frame.header.encode(into: &headerBytes)
            #expect(try FrameHeader(decoding: headerBytes) == frame.header)
        }
    }

    @Test("any chunking of a stream yields the same frames, one-byte drip included")
    func chunking() throws {
        var rng = DeterministicRandomSource(seed: 2)
        for round in 0..<60 {
            let frames = (0..<Int.random(in: 1...8, using: &rng)).map { _ in randomFrame(maxPayload: 200, using: &rng) }
            let stream = encoded(frames)
            let expected = DecodeOutcome(frames: frames, error: nil)
            #expect(decodeStream(stream) == expected)
            if round % 4 == 0 {
                #expect(decodeStream(stream, pieces: Array(repeating: 1, count: stream.count)) == expected)
            }
            for maxPiece in [2, 17, 100, 1000] {
                let pieces = randomPieces(total: stream.count, maxPiece: maxPiece, using: &rng)
                #expect(decodeStream(stream, pieces: pieces) == expected)
                #expect(decodeStream(stream, pieces: pieces, useArrayAppend: false) == expected)
            }
        }
    }

    @Test("a frame's payload is a slice of the appended array, not a copy")
    func noCopy() throws {
        let frame = Frame(type: .data, sequenceNumber: 1, keyReference: .none, payload: Array(repeating: 7, count: 1000))
        let bytes = try FrameEncoder().encode(frame)
        var decoder = FrameDecoder()
        decoder.append(bytes)
        let decoded = try #require(try decoder.nextFrame())
        #expect(decoder.bufferedByteCount == 0)
        let same = bytes.withUnsafeBufferPointer { whole in
            decoded.payload.withUnsafeBufferPointer { $0.baseAddress == whole.baseAddress! + FrameHeader.byteCount }
        }
        #expect(same)
    }

    @Test("10^5 random byte strings and mutated frames give frames or errors, never a crash")
    func fuzz() {
        var rng = DeterministicRandomSource(seed: 3)
        let seeds = (0..<16).map { _ in encoded((0..<Int.random(in: 1...3, using: &rng)).map { _ in randomFrame(maxPayload: 40, using: &rng) }) }
        let limits = try! FrameLimits(maxFrameByteCount: 4096)
        var outcomes = [0, 0]
        var firstFailure: String? = nil
        for i in 0..<100_000 {
            var input: [UInt8]
            if i % 2 == 0 {
                input = rng.bytes(count: Int.random(in: 0...96, using: &rng))
                if i % 4 == 0, input.count >= 8 {
                    // Plausible prefix so that the header checks, not only the length check, run.
                    input[0] = 0; input[1] = 0; input[4] = 1
                    input[5] = UInt8.random(in: 0...5, using: &rng)
                    input[6] = UInt8.random(in: 0...2, using: &rng)
                    input[7] = UInt8.random(in: 0...3, using: &rng)
                }
            } else {
                input = seeds[i % seeds.count]
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    let at = Int.random(in: 0..<max(input.count, 1), using: &rng)
                    switch Int.random(in: 0..<6, using: &rng) {
                    case 0 where !input.isEmpty: input[at] ^= 1 << UInt8.random(in: 0...7, using: &rng)
                    case 1 where !input.isEmpty: input[at] = UInt8.random(in: 0...255, using: &rng)
                    case 2: input.insert(UInt8.random(in: 0...255, using: &rng), at: min(at, input.count))
                    case 3 where !input.isEmpty: input.remove(at: at)
                    case 4: input = Array(input.prefix(at))
                    default: input += rng.bytes(count: Int.random(in: 1...20, using: &rng))
                    }
                }
            }
            let whole = decodeStream(input, limits: limits)
            outcomes[whole.error == nil ? 0 : 1] += 1
            // Plain checks in the loop (an #expect per input would dominate the run time); the
            // first failing input is reported below.
            var broken: String? = nil
            // Canonical encoding: the frames handed out re-encode to exactly the bytes they came
            // from, the whole input when it was accepted, a prefix of it otherwise.
            let reencoded = encoded(whole.frames)
            if whole.error == nil ? reencoded != input : !input.starts(with: reencoded) {
                broken = "frames do not re-encode to the input"
            }
            if let error = whole.error, !error.code.isPeerMisbehaviour {
                broken = "\(error.code) is not a peer-misbehaviour code"
            }
            // Chunking must not change the outcome of malformed input either.
            if i % 50 == 0,
               decodeStream(input, pieces: randomPieces(total: input.count, maxPiece: 5, using: &rng), limits: limits) != whole {
                broken = "chunking changed the outcome"
            }
            if let broken, firstFailure == nil { firstFailure = "\(broken): \(Hex.encode(input))" }
        }
        #expect(firstFailure == nil)
        // Both outcomes occur, so the inputs exercise the decoder, not just its first check.
        #expect(outcomes[0] > 1000 && outcomes[1] > 1000, "\(outcomes)")
    }

    @Test("an error poisons the decoder: every later call throws the same error")
    func poisoning() throws {
        var decoder = FrameDecoder()
        let good = try FrameEncoder().encode(Frame(type: .control, sequenceNumber: 0, keyReference: .none, payload: [1, 2]))
        var bad = good
        bad[4] = 2  // version 2
        decoder.append(good + bad + good)
        #expect(try decoder.nextFrame() != nil)
        #expect(throws: QKDError(.frameBadVersion)) { try decoder.nextFrame() }
        decoder.append(good)
        for _ in 0..<3 {
            #expect(throws: QKDError(.frameBadVersion)) { try decoder.nextFrame() }
        }
        #expect(throws: QKDError(.frameBadVersion)) { try decoder.finish() }
        #expect(decoder.error == QKDError(.frameBadVersion))
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test("end of stream inside a frame is truncation, and poisons")
    func finish() throws {
        var decoder = FrameDecoder()
        try decoder.finish()  // Nothing buffered: a clean end.
        let good = try FrameEncoder().encode(Frame(type: .alert, sequenceNumber: 9, keyReference: .none, payload: [0]))
        decoder.append(Array(good.dropLast()))
        #expect(try decoder.nextFrame() == nil)
        #expect(throws: QKDError(.frameTruncated)) { try decoder.finish() }
        #expect(throws: QKDError(.frameTruncated)) { try decoder.nextFrame() }
    }

    @Test("the size limit is checked on the length field alone, before the frame is buffered")
    func oversizeEarly() throws {
        let limits = try FrameLimits(maxFrameByteCount: 1000)
        var decoder = FrameDecoder(limits: limits)
        decoder.append([0, 0, 0x03])
        #expect(try decoder.nextFrame() == nil)
        decoder.append([0xe5])  // 0x3e5 = 997 bytes after the length field: 1001 in all.
        #expect(throws: QKDError(.frameOversize)) { try decoder.nextFrame() }

        var atLimit = FrameDecoder(limits: limits)
        atLimit.append([0, 0, 0x03, 0xe4])  // 1000 in all: waits for the rest.
        #expect(try atLimit.nextFrame() == nil)

        var defaultLimit = FrameDecoder()
        defaultLimit.append([0x00, 0x10, 0x00, 0x00])  // 1 MiB + 4
        #expect(throws: QKDError(.frameOversize)) { try defaultLimit.nextFrame() }
    }

    @Test("limits can be lowered but never raised above 1 MiB")
    func limits() throws {
        #expect(FrameLimits.default.maxFrameByteCount == 1 << 20)
        #expect(throws: QKDError(.frameInvalidLimit)) { try FrameLimits(maxFrameByteCount: (1 << 20) + 1) }
        #expect(throws: QKDError(.frameInvalidLimit)) { try FrameLimits(maxFrameByteCount: 47) }
        let smallest = try FrameLimits(maxFrameByteCount: 48)
        #expect(smallest.maxPayloadByteCount(tagged: true) == 0)
        #expect(smallest.maxPayloadByteCount(tagged: false) == 16)
    }

    @Test("the encoder refuses a frame over its limit and leaves the output unchanged")
    func encoderLimit() throws {
        let limits = try FrameLimits(maxFrameByteCount: 100)
        let encoder = FrameEncoder(limits: limits)
        var output: [UInt8] = [9]
        try encoder.encode(Frame(type: .data, sequenceNumber: 0, keyReference: .none, payload: [UInt8](repeating: 0, count: 68)), into: &output)
        #expect(output.count == 101)
        let tooBig = Frame(type: .data, sequenceNumber: 0, keyReference: .none, payload: [UInt8](repeating: 0, count: 69))
        #expect(throws: QKDError(.framePayloadTooLarge)) { try encoder.encode(tooBig, into: &output) }
        #expect(output.count == 101)
        let maxDefault = Frame(type: .data, sequenceNumber: 0, keyReference: .none,
                               payload: [UInt8](repeating: 0, count: FrameLimits.default.maxPayloadByteCount(tagged: false)))
        let bytes = try FrameEncoder().encode(maxDefault)
        #expect(bytes.count == 1 << 20)
        #expect(try Frame(decoding: bytes) == maxDefault)
    }

    @Test("decoding one frame: short input is truncation, extra bytes are trailing garbage")
    func singleFrame() throws {
        let bytes = try FrameEncoder().encode(Frame(type: .handshake, sequenceNumber: 3, keyReference: .none, payload: [1, 2, 3]))
        #expect(throws: QKDError(.frameTruncated)) { try Frame(decoding: Array(bytes.dropLast())) }
        #expect(throws: QKDError(.frameTrailingGarbage)) { try Frame(decoding: bytes + [0]) }
        #expect(throws: QKDError(.frameTruncated)) { try FrameHeader(decoding: Array(bytes.prefix(31))) }
    }
}
