import QKDCrypto
@testable import QKDNode
import QKDSimulation
import Testing

/// The quantum link's pulse frame (Spec/quantum-link.md sections 2 and 3): the word-at-a-time
/// codec against a reference written here one photon at a time from the spec's layout, every
/// malformed-frame rule, the incremental parser, and random damage to valid frames.
@Suite struct PulseFrameTests {
    /// A frame of n photons with random slots below `slotCount`, bases and bits.
    static func randomFrame(photons n: Int, slotCount: UInt32, round: UInt64, _ random: inout DeterministicRandomSource) -> PulseFrame {
        precondition(n <= Int(slotCount))
        // n distinct slots: choose each slot with probability n / slotCount until n are taken.
        var slots: [UInt32] = []
        var s: UInt32 = 0
        while slots.count < n {
            let left = Int(slotCount) - Int(s), need = n - slots.count
            if left == need || random.next() % UInt64(left) < UInt64(need) { slots.append(s) }
            s += 1
        }
        let bases = (0..<n).map { _ in random.next() & 1 == 1 }
        let bits = (0..<n).map { _ in random.next() & 1 == 1 }
        return PulseFrame(roundID: round, slotCount: slotCount, slots: slots, bases: bases, bits: bits)
    }

    /// Spec/quantum-link.md section 2, byte by byte: u32 body length, version 1, type 1, u64
    /// round, u32 N, u32 n, n big-endian u32 slots, then the basis and the bit bitmaps, bit i
    /// of photon i in byte i / 8 counted from the most significant bit.
    static func referenceEncoding(_ f: PulseFrame) -> [UInt8] {
        func be<T: FixedWidthInteger>(_ v: T) -> [UInt8] { (0..<(T.bitWidth / 8)).reversed().map { UInt8(truncatingIfNeeded: v >> ($0 * 8)) } }
        let n = f.slots.count
        var body: [UInt8] = [1, 1] + be(f.roundID) + be(f.slotCount) + be(UInt32(n))
        for s in f.slots { body += be(s) }
        for flags in [f.bases, f.bits] {
            var packed = [UInt8](repeating: 0, count: (n + 7) / 8)
            for i in 0..<n where flags[i] { packed[i / 8] |= 0x80 >> UInt8(i % 8) }
            body += packed
        }
        return be(UInt32(body.count)) + body
    }

    static func parseAll(_ bytes: [UInt8]) throws -> [PulseFrame] {
        var parser = PulseFrameParser()
        parser.append(bytes)
        var frames: [PulseFrame] = []
        while let f = try parser.nextFrame() { frames.append(f) }
        return frames
    }

    @Test(arguments: [0, 1, 7, 8, 9, 63, 64, 65, 127, 128, 129, 1000, 4097])
    func codecMatchesTheSpecLayout(photons n: Int) throws {
        var random = DeterministicRandomSource(seed: UInt64(n) &+ 11)
        for slotCount in [UInt32(n), UInt32(n) + 1, UInt32(3 * n + 5)] where slotCount >= 1 || n == 0 {
            let frame = Self.randomFrame(photons: n, slotCount: slotCount, round: random.next(), &random)
            var bytes: [UInt8] = []
            frame.encode(into: &bytes)
            #expect(bytes == Self.referenceEncoding(frame), "n \(n), N \(slotCount)")
            let parsed = try Self.parseAll(bytes)
            #expect(parsed == [frame])
            #expect(parsed.first?.bases == frame.bases && parsed.first?.bits == frame.bits)
            // The packed view and the one-value-per-photon view describe the same photons.
            let packedBases = (0..<n).map { (frame.basisWords[$0 >> 6] >> UInt64($0 & 63)) & 1 == 1 }
            let packedBits = (0..<n).map { (frame.bitWords[$0 >> 6] >> UInt64($0 & 63)) & 1 == 1 }
            #expect(packedBases == frame.bases && packedBits == frame.bits)
        }
    }

    /// The channel's packed arrivals travel unchanged: Bob's detector sees what Alice's channel
    /// produced, photon for photon.
    @Test func arrivalsSurviveTheLink() throws {
        let p = LinkParameters(pulsesPerRound: 50_001, probabilityZ: 0.75, channelLossDB: 1, misalignment: 0.02, interceptFraction: 0.1)
        var alice = AliceDevice(probabilityZ: p.probabilityZ, seed: 4)
        var channel = QuantumChannel(transmittance: p.channelTransmittance, interceptFraction: p.interceptFraction, seed: 4)
        let (_, photons) = alice.emit(pulses: p.pulsesPerRound)
        let arrivals = channel.transmit(photons)
        let frame = PulseFrame(roundID: 9, arrivals: arrivals)
        var bytes: [UInt8] = []
        frame.encode(into: &bytes)
        let back = try #require(try Self.parseAll(bytes).first)
        let rebuilt = Arrivals(roundSlotCount: Int(back.slotCount), slots: back.slots, basisWords: back.basisWords, bitWords: back.bitWords)
        #expect(rebuilt.photonSlots == arrivals.photonSlots && rebuilt.photonBases == arrivals.photonBases && rebuilt.photonBits == arrivals.photonBits)
        #expect(back.bases == arrivals.photonBases && back.bits == arrivals.photonBits)
        #expect(back.arrivals == arrivals)
    }

    /// One body, changed as `edit` says, behind a correct length prefix.
    static func reframed(_ frame: PulseFrame, _ edit: (inout [UInt8]) -> Void) -> [UInt8] {
        var bytes: [UInt8] = []
        frame.encode(into: &bytes)
        var body = Array(bytes[4...])
        edit(&body)
        let len = UInt32(body.count)
        return [UInt8(len >> 24), UInt8((len >> 16) & 0xFF), UInt8((len >> 8) & 0xFF), UInt8(len & 0xFF)] + body
    }

    static func expectMalformed(_ bytes: [UInt8], _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try parseAll(bytes)
            Issue.record("accepted a malformed frame (\(fragment))", sourceLocation: sourceLocation)
        } catch let error as QKDError {
            #expect(error.code == .nodeMalformed, sourceLocation: sourceLocation)
            #expect(error.description.contains(fragment), "\(error)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("untyped error \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func everyMalformedFrameIsATypedError() {
        var random = DeterministicRandomSource(seed: 77)
        let frame = Self.randomFrame(photons: 13, slotCount: 40, round: 5, &random)  // bitmaps of 2 bytes, 3 padding bits
        let slots = 18, bitmaps = 18 + 4 * 13
        Self.expectMalformed(Self.reframed(frame) { $0[0] = 2 }, "version 2")
        Self.expectMalformed(Self.reframed(frame) { $0[1] = 7 }, "type 7")
        Self.expectMalformed(Self.reframed(frame) { $0[10...13] = [0x08, 0, 0, 1] }, "slot limit")  // N = 2^27 + 1
        Self.expectMalformed(Self.reframed(frame) { $0[10...13] = [0, 0, 0, 12] }, "13 photons in a round of 12 slots")
        Self.expectMalformed(Self.reframed(frame) { $0.removeLast() }, "must carry")
        Self.expectMalformed(Self.reframed(frame) { $0.append(0) }, "must carry")
        // Slots: equal neighbours, a decrease, the last one at N.
        Self.expectMalformed(Self.reframed(frame) { $0[(slots + 4)..<(slots + 8)] = $0[slots..<(slots + 4)] }, "increase strictly")
        Self.expectMalformed(Self.reframed(frame) { $0[slots..<(slots + 4)] = [0, 0, 0, 39] }, "increase strictly")
        Self.expectMalformed(Self.reframed(frame) { $0[(slots + 48)..<(slots + 52)] = [0, 0, 0, 40] }, "stay below 40")
        // A padding bit (the lowest three of each bitmap's last byte) in either bitmap.
        for offset in [bitmaps + 1, bitmaps + 3] {
            for bit in 0..<3 { Self.expectMalformed(Self.reframed(frame) { $0[offset] |= UInt8(1) << UInt8(bit) }, "padding bits") }
        }
        // Length prefixes outside 18 ... 64 MiB, checked before the body arrives.
        for length: UInt32 in [0, 17, UInt32(QuantumLinkLimits.maxBodyByteCount) + 1, .max] {
            let prefix = [UInt8(length >> 24), UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)]
            Self.expectMalformed(prefix, "outside")
        }
    }

    /// Frames arrive in pieces of any size: the parser returns each frame once it is whole and
    /// the same frames as from one piece.
    @Test func parserIsIncremental() throws {
        var random = DeterministicRandomSource(seed: 5)
        let frames = [Self.randomFrame(photons: 100, slotCount: 300, round: 1, &random),
                      Self.randomFrame(photons: 0, slotCount: 10, round: 2, &random),
                      Self.randomFrame(photons: 65, slotCount: 65, round: 3, &random)]
        var stream: [UInt8] = []
        for f in frames { f.encode(into: &stream) }
        for chunk in [1, 3, 7, 64, stream.count] {
            var parser = PulseFrameParser()
            var got: [PulseFrame] = []
            var i = 0
            while i < stream.count {
                parser.append(Array(stream[i..<min(stream.count, i + chunk)]))
                i += chunk
                while let f = try parser.nextFrame() { got.append(f) }
            }
            #expect(got == frames, "chunk \(chunk)")
        }
    }

    /// Random damage to valid frames (a changed byte, a cut, an insertion, a changed length):
    /// every outcome is a frame that re-encodes to its own bytes or a `node.malformed` error,
    /// never a crash (the quantum link is unauthenticated, like a fibre).
    @Test func damagedFramesAreRejectedOrCanonical() throws {
        var random = DeterministicRandomSource(seed: 2026)
        var accepted = 0, rejected = 0
        for trial in 0..<3000 {
            let n = Int(random.next() % 80)
            let frame = Self.randomFrame(photons: n, slotCount: UInt32(n) + UInt32(random.next() % 50), round: UInt64(trial), &random)
            var bytes: [UInt8] = []
            frame.encode(into: &bytes)
            switch random.next() % 4 {
            case 0: let i = Int(random.next() % UInt64(bytes.count)); bytes[i] ^= UInt8(1) << UInt8(random.next() % 8)
            case 1: bytes.removeLast(Int(random.next() % UInt64(bytes.count - 3)))
            case 2: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: 4 + Int(random.next() % UInt64(bytes.count - 3)))
            default: bytes[3] = bytes[3] &+ UInt8(truncatingIfNeeded: random.next() % 9) &- 4
            }
            do {
                for f in try Self.parseAll(bytes) {
                    var again: [UInt8] = []
                    f.encode(into: &again)
                    #expect(Array(bytes.prefix(again.count)) == again, "trial \(trial): a frame that is not its own encoding")
                    #expect(zip(f.slots, f.slots.dropFirst()).allSatisfy { $0 < $1 } && (f.slots.last.map { $0 < f.slotCount } ?? true))
                    accepted += 1
                }
            } catch let error as QKDError {
                #expect(error.code == .nodeMalformed)
                rejected += 1
            }
        }
        // Both outcomes occur (a flipped bitmap bit or round-id bit still decodes).
        #expect(accepted > 100 && rejected > 100, "accepted \(accepted), rejected \(rejected)")
    }
}
