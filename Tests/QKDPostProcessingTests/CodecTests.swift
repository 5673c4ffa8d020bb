import Testing
import QKDCrypto
@testable import QKDPostProcessing

struct TestRNG: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}

func randomBits(_ n: Int, _ g: inout TestRNG) -> BitVector {
    var v = BitVector(count: n)
    for i in 0..<n where g.next() & 1 == 1 { v[i] = true }
    return v
}

func randomBytes(_ n: Int, _ g: inout TestRNG) -> [UInt8] { (0..<n).map { _ in UInt8.random(in: 0...255, using: &g) } }

func randomMessage(_ type: Int, _ g: inout TestRNG, size: Int = 5000) -> PostProcessingMessage {
    switch type {
    case 1:
        let slots = UInt64.random(in: 0...UInt64(size), using: &g)
        let density = Double.random(in: 0...1, using: &g)
        var positions: [UInt64] = []
        for s in 0..<slots where Double.random(in: 0..<1, using: &g) < density { positions.append(s) }
        return .detections(DetectionReport(slotCount: slots, positions: positions, bases: randomBits(positions.count, &g)))
    case 2:
        return .siftResponse(SiftResponse(matches: randomBits(Int.random(in: 0...(size * 3 / 5), using: &g), &g),
                                          testBits: randomBits(Int.random(in: 0...700, using: &g), &g),
                                          cascadeSeed: randomBytes(32, &g)))
    case 3: return .estimation(testErrors: UInt32.random(in: 0...UInt32.max, using: &g))
    case 4: return .cascadeParities(CascadeBits(step: UInt32.random(in: 0...1000, using: &g), bits: randomBits(Int.random(in: 0...999, using: &g), &g)))
    case 5: return .cascadeReplies(CascadeBits(step: UInt32.random(in: 0...1000, using: &g), bits: randomBits(Int.random(in: 0...999, using: &g), &g)))
    case 6:
        let w = Int.random(in: 0...(size / 2), using: &g)
        return .verification(VerificationRequest(hashKey: randomBytes(16, &g), tag: randomBytes(16, &g), finalLength: g.next(),
                                                 multiplier: randomBits(w, &g), addend: randomBits(w, &g)))
    case 7: return .verificationResult(matched: g.next() & 1 == 1)
    default: return .abort(AbortCode.allCases.randomElement(using: &g)!)
    }
}

@Suite struct CodecTests {
    @Test(arguments: 1...8)
    func roundTrip(type: Int) throws {
        var g = TestRNG(state: UInt64(type))
        for i in 0..<60 {
            let m = randomMessage(type, &g)
            let id = g.next()
            let bytes = m.encoded(roundID: id)
            #expect(bytes.count == m.encodedByteCount)
            #expect(bytes[1] == UInt8(type))
            let (decodedID, decoded) = try PostProcessingMessage.decode(bytes)
            #expect(decodedID == id)
            #expect(decoded == m, "case \(i)")
        }
    }

    /// 10^4 random byte strings per message type (valid header, random body), plus mutations of
    /// valid encodings: the decoder must throw a typed error or succeed, never crash.
    @Test(arguments: 1...8)
    func randomBytesNeverCrash(type: Int) {
        var g = TestRNG(state: 0xF00D + UInt64(type))
        var accepted = 0
        for i in 0..<10_000 {
            var bytes: [UInt8]
            if i % 2 == 0 {
                bytes = [1, UInt8(type)] + randomBytes(8, &g) + randomBytes(Int.random(in: 0...64, using: &g), &g)
            } else {
                bytes = randomMessage(type, &g, size: 200).encoded(roundID: 1)
                for _ in 0..<Int.random(in: 1...4, using: &g) {
                    let at = Int.random(in: 0..<bytes.count, using: &g)
                    switch g.next() % 3 {
                    case 0: bytes[at] ^= UInt8(1 << (g.next() % 8))
                    case 1: bytes.removeLast(min(bytes.count - 1, Int(g.next() % 4)))
                    default: bytes.insert(UInt8(truncatingIfNeeded: g.next()), at: at)
                    }
                }
            }
            do {
                _ = try PostProcessingMessage.decode(bytes)
                accepted += 1
            } catch let e as QKDError {
                #expect(e.code == .ppMalformed || e.code == .ppUnknownType)
            } catch {
                Issue.record("untyped error \(error)")
            }
        }
        #expect(accepted < 10_000)
    }

    @Test func riceCodeRoundTripsAndRejectsOutOfRange() throws {
        var g = TestRNG(state: 42)
        for _ in 0..<50 {
            let slots = UInt64.random(in: 1...100_000, using: &g)
            let p = Double.random(in: 0.0001...1, using: &g)
            var positions: [UInt64] = []
            for s in 0..<slots where Double.random(in: 0..<1, using: &g) < p { positions.append(s) }
            let r = GolombRice.parameter(count: positions.count, slots: slots)
            let stream = positions.withUnsafeBufferPointer { GolombRice.encode($0, parameter: r) }
            #expect(try GolombRice.decode(stream, count: positions.count, parameter: r, slotCount: slots) == positions)
            if let last = positions.last {
                #expect(throws: QKDError(.ppMalformed)) {
                    try GolombRice.decode(stream, count: positions.count, parameter: r, slotCount: last)
                }
            }
        }
    }

    /// The seed count is checked against its limit and the bytes present before any allocation.
    @Test func amplificationSeedCountIsChecked() {
        var bytes = PostProcessingMessage.verification(VerificationRequest(
            hashKey: [UInt8](repeating: 1, count: 16), tag: [UInt8](repeating: 2, count: 16), finalLength: 8,
            multiplier: BitVector(count: 20), addend: BitVector(count: 20))).encoded(roundID: 3)
        #expect(bytes.count == 10 + 16 + 16 + 8 + 4 + 3 + 3)
        let countAt = 10 + 16 + 16 + 8
        bytes[countAt] = 0x10  // 2^28 + 20 bits: over maxAmplificationSeedBits
        #expect(throws: QKDError(.ppMalformed)) { try PostProcessingMessage.decode(bytes) }
        bytes[countAt] = 0
        bytes[countAt + 3] = 21  // 2 x 3 bytes still, but padding bits now checked at bit 21
        #expect(throws: Never.self) { try PostProcessingMessage.decode(bytes) }
        bytes[countAt + 3] = 200  // 2 x 25 bytes: more than the message holds
        #expect(throws: QKDError(.ppMalformed)) { try PostProcessingMessage.decode(bytes) }
    }

    @Test func bitmapPaddingMustBeZero() {
        var bytes = PostProcessingMessage.cascadeParities(CascadeBits(step: 0, bits: BitVector(count: 3))).encoded(roundID: 0)
        bytes[bytes.count - 1] = 0x80
        #expect(throws: QKDError(.ppMalformed)) { try PostProcessingMessage.decode(bytes) }
    }
}

@Suite struct MachineFuzzTests {
    /// One random well-formed message replaces a real one at every stage of a round: each
    /// machine must throw a typed error, abort, or carry on; never crash, and never end with two
    /// different keys. (Without the session MAC a forged "verified" reply could still make Alice
    /// accept alone; the seeded cases here do not, and the session's closing tags rule it out.)
    @Test func randomMessagesAtEveryStage() {
        var g = TestRNG(state: 99)
        let (a, b) = simulate(qber: 0.02, pulses: 20_000, seed: 12, probabilityZ: 0.75, lossDB: 1)
        for stage in 0..<6 {
            for _ in 0..<40 {
                var pair = Pair(alice: a, bob: b, seed: 12)
                var delivered = 0
                var injected = false
                pair.run { fromAlice, _, bytes in
                    delivered += 1
                    guard delivered > stage, !injected else { return bytes }
                    injected = true
                    let type = Int.random(in: 1...8, using: &g)
                    return randomMessage(type, &g, size: 300).encoded(roundID: 7)
                }
                if case .key(let x) = pair.aliceOutcome, case .key(let y) = pair.bobOutcome { #expect(x.key == y.key) }
                if case .key = pair.bobOutcome, case .key = pair.aliceOutcome {} else if case .key = pair.aliceOutcome {
                    Issue.record("Alice accepted a key Bob did not produce")
                }
            }
        }
    }
}
