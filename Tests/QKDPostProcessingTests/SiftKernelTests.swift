import Testing
import QKDCrypto
@testable import QKDPostProcessing

/// The word-at-a-time Rice coder and the branch-free sifting loops against bit-by-bit references
/// written from Spec/postprocessing.md sections 2.3 and 3, on random inputs whose lengths are
/// mostly not multiples of 64.
@Suite struct SiftKernelTests {
    /// Reference Rice encoder: one bit at a time (q ones, a zero, r low bits LSB first).
    static func referenceEncode(_ slots: [UInt64], r: Int) -> [Bool] {
        var out: [Bool] = []
        var previous: UInt64 = 0
        for s in slots {
            let gap = s - previous
            previous = s + 1
            for _ in 0..<(gap >> UInt64(r)) { out.append(true) }
            out.append(false)
            for k in 0..<r { out.append((gap >> UInt64(k)) & 1 == 1) }
        }
        return out
    }

    /// Random sorted slots: mostly geometric gaps with mean `mean`, some very long gaps (unary
    /// parts over 64 bits, the slow path), and sometimes adjacent slots (gap 0).
    static func randomSlots(count: Int, mean: UInt64, _ g: inout TestRNG) -> (slots: [UInt64], slotCount: UInt64) {
        var slots: [UInt64] = []
        var next: UInt64 = 0
        for _ in 0..<count {
            let kind = g.next() % 100
            // Long gaps: unary parts of 64 bits and more for small r.
            let gap: UInt64 = kind < 3 ? UInt64.random(in: 0...(4 * mean + 300), using: &g)
                : kind < 10 ? 0 : UInt64.random(in: 0...(2 * mean), using: &g)
            slots.append(next + gap)
            next += gap + 1
        }
        return (slots, next + UInt64.random(in: 0...5, using: &g))
    }

    @Test func riceEncoderMatchesReferenceAndDecodes() throws {
        var g = TestRNG(state: 7)
        for trial in 0..<120 {
            let count = trial < 20 ? trial : Int.random(in: 0...1_500, using: &g)
            let mean = [UInt64(0), 1, 3, 12, 100, 2_000][trial % 6]
            let (slots, slotCount) = Self.randomSlots(count: count, mean: mean, &g)
            // The chosen parameter, a large one, and a small one.
            let small = mean <= 100 ? [trial % 5] : []  // r = 0...4 stresses long unary parts
            for r in [GolombRice.parameter(count: count, slots: slotCount), 17] + small {
                let stream = slots.withUnsafeBufferPointer { GolombRice.encode($0, parameter: r) }
                let reference = Self.referenceEncode(slots, r: r)
                #expect(stream.count == reference.count, "trial \(trial) r \(r)")
                #expect(slots.withUnsafeBufferPointer { GolombRice.streamBits($0, parameter: r) } == reference.count)
                #expect(reference.count <= GolombRice.maxStreamBits(count: count, slotCount: slotCount, parameter: r))
                #expect((0..<stream.count).allSatisfy { stream[$0] == reference[$0] }, "trial \(trial) r \(r)")
                #expect(try GolombRice.decode(stream, count: count, parameter: r, slotCount: slotCount) == slots)
                if let last = slots.last {
                    // Every slot checked against the slot count, also inside a batch.
                    #expect(throws: QKDError(.ppMalformed)) {
                        try GolombRice.decode(stream, count: count, parameter: r, slotCount: last)
                    }
                }
                if count > 0 {
                    #expect(throws: QKDError(.ppMalformed)) {
                        try GolombRice.decode(stream, count: count + 1, parameter: r, slotCount: slotCount)
                    }
                    #expect(throws: QKDError(.ppMalformed)) {
                        try GolombRice.decode(stream, count: count - 1, parameter: r, slotCount: slotCount)
                    }
                }
            }
        }
    }

    /// Truncated and bit-flipped streams give a typed error or other slots, never a crash.
    @Test func riceDecoderRejectsDamagedStreams() {
        var g = TestRNG(state: 8)
        for _ in 0..<200 {
            let (slots, slotCount) = Self.randomSlots(count: Int.random(in: 1...500, using: &g), mean: 9, &g)
            let r = GolombRice.parameter(count: slots.count, slots: slotCount)
            let stream = slots.withUnsafeBufferPointer { GolombRice.encode($0, parameter: r) }
            var words = stream.words
            let at = Int.random(in: 0..<stream.count, using: &g)
            words[at >> 6] ^= UInt64(1) << UInt64(at & 63)
            let damaged = BitVector(words: words, count: stream.count)
            let cut = BitVector(words: stream.words, count: Int.random(in: 0..<stream.count, using: &g))
            for s in [damaged, cut] {
                do {
                    let decoded = try GolombRice.decode(s, count: slots.count, parameter: r, slotCount: slotCount)
                    #expect(decoded.count == slots.count)
                    #expect(zip(decoded, decoded.dropFirst()).allSatisfy { $0 < $1 } && decoded.last! < slotCount)
                } catch let e as QKDError {
                    #expect(e.code == .ppMalformed)
                } catch {
                    Issue.record("untyped error \(error)")
                }
            }
        }
    }

    @Test func bitPackerAppendsOnlyTakenBits() {
        var g = TestRNG(state: 9)
        for n in [0, 1, 63, 64, 65, 200, 1_000] {
            var reference: [Bool] = []
            var words = [UInt64](repeating: 0, count: n / 64 + 1)
            let count = words.withUnsafeMutableBufferPointer { w in
                var p = BitPacker(w.baseAddress!)
                for _ in 0..<n {
                    let bit = g.next() & 1, take = g.next() & 1
                    if take == 1 { reference.append(bit == 1) }
                    p.append(bit, if: take)
                }
                return p.finish()
            }
            #expect(count == reference.count)
            #expect(BitVector(words: words, count: count) == BitVector(bits: reference))
        }
    }

    @Test func compressBitsMatchesReference() {
        var g = TestRNG(state: 11)
        for trial in 0..<2_000 {
            let value = g.next()
            // Densities from empty to full, both sides of the dense/sparse switch at 32 bits.
            var mask: UInt64 = 0
            let density = trial % 66
            for j in 0..<64 where Int(g.next() % 64) < density { mask |= UInt64(1) << UInt64(j) }
            var expected: UInt64 = 0, k: UInt64 = 0
            for j in 0..<64 where (mask >> UInt64(j)) & 1 == 1 {
                expected |= ((value >> UInt64(j)) & 1) << k
                k += 1
            }
            #expect(compressBits(value, mask) == expected, "value \(value) mask \(mask)")
        }
        #expect(compressBits(~0, ~0) == ~0 && compressBits(~0, 0) == 0)
    }

    @Test func bitPackerAppendsWords() {
        var g = TestRNG(state: 12)
        var reference: [Bool] = []
        var words = [UInt64](repeating: 0, count: 400)  // 300 x (64 + 1) bits at most
        let count = words.withUnsafeMutableBufferPointer { w in
            var p = BitPacker(w.baseAddress!)
            for _ in 0..<300 {
                let width = Int(g.next() % 65)
                let value = width == 64 ? g.next() : g.next() & ((UInt64(1) << UInt64(width)) - 1)
                for j in 0..<width { reference.append((value >> UInt64(j)) & 1 == 1) }
                p.append(word: value, width: width)
                if g.next() % 4 == 0 {
                    let bit = g.next() & 1
                    reference.append(bit == 1)
                    p.append(bit, if: 1)
                }
            }
            return p.finish()
        }
        #expect(count == reference.count)
        #expect(BitVector(words: words, count: count) == BitVector(bits: reference))
    }

    /// Both sides' sifting (the word-level loops) equals a per-detection reference: match bitmap,
    /// Alice's key and test bits, Bob's key bits.
    @Test func siftingMatchesReference() throws {
        var g = TestRNG(state: 10)
        for trial in 0..<12 {
            let slotCount = [1, 63, 64, 65, 130, 1_000, 4_097, 20_000][trial % 8] + trial
            let aliceBits = randomBits(slotCount, &g), aliceBases = randomBits(slotCount, &g)
            var positions: [UInt64] = []
            for s in 0..<slotCount where g.next() % 3 != 0 { positions.append(UInt64(s)) }
            guard !positions.isEmpty else { continue }
            let d = positions.count
            let bobBases = randomBits(d, &g)
            let bobBits = randomBits(d, &g)
            let bobMatches = randomBits(d, &g)
            var matches: [Bool] = [], tests: [Bool] = []
            var bobKey: [Bool] = [], bobTests: [Bool] = []
            for (i, s) in positions.enumerated() {
                let a = aliceBases[Int(s)]
                matches.append(a == bobBases[i])
                // Alice's key bits stay inside her round; RoundTests check both keys agree.
                if a == bobBases[i] && a { tests.append(aliceBits[Int(s)]) }
                if bobMatches[i] {
                    if bobBases[i] { bobTests.append(bobBits[i]) } else { bobKey.append(bobBits[i]) }
                }
            }
            // Bob: his key and test bits under an arbitrary match bitmap.
            let (k, t) = BobRound.siftedBits(matches: bobMatches, bases: bobBases, bits: bobBits)
            #expect(k == BitVector(bits: bobKey) && t == BitVector(bits: bobTests), "trial \(trial)")
            // Alice: the match bitmap and test bits she sends back.
            var bob = BobRound(roundID: 1, configuration: .init(), slotCount: UInt64(slotCount), positions: positions,
                               bases: bobBases, bits: bobBits)
            var alice = AliceRound(roundID: 1, configuration: .init(), bits: aliceBits, bases: aliceBases,
                                   random: DeterministicRandomSource(seed: UInt64(trial)))
            guard case .send(let report) = bob.nextAction() else { Issue.record("no report"); continue }
            try alice.receive(bytes: report.encoded(roundID: 1))
            guard case .send(let reply) = alice.nextAction(), case .siftResponse(let response) = reply else {
                Issue.record("no sift response"); continue
            }
            #expect(response.matches == BitVector(bits: matches), "trial \(trial)")
            #expect(response.testBits == BitVector(bits: tests), "trial \(trial)")
        }
    }

    /// The C sifting kernels give the same results on the PEXT path (where this CPU has it) and
    /// the portable path, both equal to the per-detection reference above; the dispatched
    /// compress equals a bit-by-bit reference on both paths.
    @Test(.serialized, arguments: [false, true])
    func siftingKernelsBothPaths(portable: Bool) throws {
        SiftKernels.forcePortable(portable)
        defer { SiftKernels.forcePortable(false) }
        if portable { #expect(!SiftKernels.usesPEXT) }
        var g = TestRNG(state: portable ? 21 : 22)
        for trial in 0..<500 {
            let value = g.next()
            var mask: UInt64 = 0
            for j in 0..<64 where Int(g.next() % 64) < trial % 66 { mask |= UInt64(1) << UInt64(j) }
            var expected: UInt64 = 0, k: UInt64 = 0
            for j in 0..<64 where (mask >> UInt64(j)) & 1 == 1 {
                expected |= ((value >> UInt64(j)) & 1) << k
                k += 1
            }
            #expect(SiftKernels.compress(value, mask) == expected)
        }
        for trial in 0..<10 {
            let slotCount = [1, 64, 65, 127, 128, 129, 3_000, 10_001][trial % 8] + trial
            let aliceBits = randomBits(slotCount, &g), aliceBases = randomBits(slotCount, &g)
            var positions: [UInt64] = []
            for s in 0..<slotCount where g.next() % 4 != 0 { positions.append(UInt64(s)) }
            let d = positions.count
            let bobBases = randomBits(d, &g), bobBits = randomBits(d, &g)
            var matches: [Bool] = [], key: [Bool] = [], tests: [Bool] = [], bobKey: [Bool] = [], bobTests: [Bool] = []
            for (i, s) in positions.enumerated() {
                let a = aliceBases[Int(s)], m = a == bobBases[i]
                matches.append(m)
                if m { if a { tests.append(aliceBits[Int(s)]) } else { key.append(aliceBits[Int(s)]) } }
                if m { if bobBases[i] { bobTests.append(bobBits[i]) } else { bobKey.append(bobBits[i]) } }
            }
            let alice = try SiftKernels.alice(positions: positions, slotCount: slotCount, aliceBases: aliceBases,
                                              aliceBits: aliceBits, bobBases: bobBases)
            #expect(BitVector(words: alice.matches, count: d) == BitVector(bits: matches), "trial \(trial)")
            #expect(alice.key == BitVector(bits: key) && alice.tests == BitVector(bits: tests), "trial \(trial)")
            let bob = SiftKernels.bob(matches: BitVector(bits: matches), bases: bobBases, bits: bobBits)
            #expect(bob.key == BitVector(bits: bobKey) && bob.tests == BitVector(bits: bobTests), "trial \(trial)")
            // Rice coding on this path too.
            let r = GolombRice.parameter(count: d, slots: UInt64(slotCount))
            let stream = positions.withUnsafeBufferPointer { GolombRice.encode($0, parameter: r) }
            #expect(stream == BitVector(bits: Self.referenceEncode(positions, r: r)))
            #expect(try GolombRice.decode(stream, count: d, parameter: r, slotCount: UInt64(slotCount)) == positions)
        }
    }

    /// A report built in memory with a position past the slot count is a typed error at Alice,
    /// never a read outside her bit vectors.
    @Test func aliceRejectsPositionPastSlotCount() {
        var g = TestRNG(state: 23)
        let bases = randomBits(100, &g), bits = randomBits(100, &g)
        #expect(throws: QKDError(.ppInconsistent)) {
            try SiftKernels.alice(positions: [3, 50, 100], slotCount: 100, aliceBases: bases, aliceBits: bits,
                                  bobBases: randomBits(3, &g))
        }
        #expect(throws: QKDError(.ppInconsistent)) {
            try SiftKernels.alice(positions: [UInt64](repeating: 1 << 40, count: 70), slotCount: 100, aliceBases: bases,
                                  aliceBits: bits, bobBases: randomBits(70, &g))
        }
    }

    /// Garbage streams of every length (all ones, random words, short) with counts and
    /// parameters around the plausible ones: a typed error or valid increasing slots, never a
    /// crash or a read past the stream (the kernel reads only the stream's own words).
    @Test func riceDecoderOnGarbage() {
        var g = TestRNG(state: 24)
        for trial in 0..<400 {
            let bits = Int(g.next() % 400)
            var words = (0..<((bits + 63) >> 6)).map { _ in trial % 3 == 0 ? ~UInt64(0) : g.next() }
            if trial % 5 == 0 { words = words.map { $0 & g.next() } }
            let stream = BitVector(words: words, count: bits)
            let r = Int(g.next() % 8) + (trial % 7 == 0 ? 55 : 0)
            let count = Int(g.next() % 80)
            let slotCount = trial % 4 == 0 ? UInt64(1) << 44 : g.next() % 5_000
            do {
                let slots = try GolombRice.decode(stream, count: count, parameter: r, slotCount: slotCount)
                #expect(slots.count == count)
                #expect(zip(slots, slots.dropFirst()).allSatisfy { $0 < $1 } && (slots.last ?? 0) < max(slotCount, 1))
            } catch let e as QKDError {
                #expect(e.code == .ppMalformed)
            } catch {
                Issue.record("untyped error \(error)")
            }
        }
        #expect(throws: QKDError(.ppMalformed)) {
            try GolombRice.decode(BitVector(count: 10), count: 1, parameter: 63, slotCount: 100)
        }
    }

    /// r = 0 (dense detections, D/N above ln 2 / 2) has a word-at-a-time coder: the stream is
    /// the complement of the slot bitmap up to the last detection. It must give the code-at-a-
    /// time kernel's stream bit for bit, and the same status and slots on every stream, valid,
    /// damaged, cut, padded or random, for counts and slot counts around the true ones.
    @Test(.serialized) func unaryFastPathEqualsTheGenericRiceKernel() {
        func encode(_ slots: [UInt64]) -> BitVector? {
            slots.withUnsafeBufferPointer { GolombRice.encodeWordsIfValid($0, parameter: 0) }.map { BitVector(words: $0.0, count: $0.1) }
        }
        func decode(_ stream: BitVector, _ count: Int, _ slotCount: UInt64) -> (status: Int32, slots: [UInt64]) {
            let r = GolombRice.kernelDecode(stream, count: count, parameter: 0, slotCount: slotCount)
            return (r.status, r.slots)
        }
        var g = TestRNG(state: 26)
        var statuses = Set<Int32>()
        for trial in 0..<800 {
            let count = trial < 10 ? trial : Int.random(in: 1...700, using: &g)
            var (slots, slotCount) = Self.randomSlots(count: count, mean: [0, 1, 2][trial % 3], &g)
            if trial % 11 == 0, count > 2 { slots[count / 2] = slots[count / 2 - 1] }  // not increasing
            let reference = GolombRice.withCodeAtATimeKernel { encode(slots) }
            let fast = encode(slots)
            #expect(fast == reference, "trial \(trial)")
            var stream = reference ?? BitVector(words: (0..<(count / 16 + 1)).map { _ in g.next() }, count: count * 4 + 3)
            switch trial % 6 {
            case 1 where stream.count > 0:  // one bit flipped
                var w = stream.words
                let at = Int.random(in: 0..<stream.count, using: &g)
                w[at >> 6] ^= UInt64(1) << UInt64(at & 63)
                stream = BitVector(words: w, count: stream.count)
            case 2:  // cut
                stream = BitVector(words: stream.words, count: Int.random(in: 0...stream.count, using: &g))
            case 3:  // padded with ones or zeros
                var bits = (0..<stream.count).map { stream[$0] }
                bits += Array(repeating: g.next() & 1 == 0, count: Int(g.next() % 130))
                stream = BitVector(bits: bits)
            case 4:  // garbage, sometimes all ones
                stream = BitVector(words: (0..<(stream.count / 64 + 1)).map { _ in trial % 4 == 0 ? ~0 : g.next() }, count: stream.count)
            default: break
            }
            let counts = [count, max(0, count - 1), count + 1, Int(g.next() % 40)]
            let slotCounts = [slotCount, slots.last ?? 0, UInt64(stream.count), g.next() % 900, UInt64(1) << 44]
            for c in counts {
                for n in slotCounts {
                    let expected = GolombRice.withCodeAtATimeKernel { decode(stream, c, n) }
                    let got = decode(stream, c, n)
                    #expect(got.status == expected.status, "trial \(trial) count \(c) slots \(n)")
                    #expect(got.slots == expected.slots, "trial \(trial) count \(c) slots \(n)")
                    statuses.insert(expected.status)
                }
            }
        }
        // Every outcome was exercised: OK, truncated, out of range, leftover.
        #expect(statuses == [0, 1, 2, 3])
    }

    /// The report codes its positions once at creation; the size and encoding agree with a
    /// fresh coding, also after the positions or slot count change, and a decoded report (not
    /// coded) encodes to the same bytes.
    @Test func detectionReportCodesOnce() throws {
        var g = TestRNG(state: 25)
        let (slots, slotCount) = Self.randomSlots(count: 700, mean: 11, &g)
        var report = DetectionReport(slotCount: slotCount, positions: slots, bases: randomBits(slots.count, &g))
        #expect(report.rice != nil)
        let message = PostProcessingMessage.detections(report)
        let bytes = message.encoded(roundID: 9)
        #expect(message.encodedByteCount == bytes.count)
        let decoded = try PostProcessingMessage.decode(bytes)
        guard case .detections(let back) = decoded.message else { Issue.record("not a report"); return }
        #expect(back == report && back.rice == nil)
        #expect(decoded.message.encoded(roundID: 9) == bytes && decoded.message.encodedByteCount == bytes.count)
        // A change drops the cached code; the encoding follows the new positions.
        report.positions = Array(report.positions.dropLast(5))
        report.bases = BitVector(words: report.bases.words, count: report.positions.count)
        #expect(report.rice == nil)
        let changed = PostProcessingMessage.detections(report)
        let fresh = PostProcessingMessage.detections(DetectionReport(slotCount: slotCount, positions: report.positions, bases: report.bases))
        #expect(changed.encoded(roundID: 9) == fresh.encoded(roundID: 9))
        #expect(changed.encodedByteCount == fresh.encodedByteCount)
        report.slotCount += 1_000_000
        #expect(report.rice == nil)
        // Positions that cannot be coded still make a report (encoding it would trap, as before).
        #expect(DetectionReport(slotCount: 10, positions: [5, 3], bases: BitVector(count: 2)).rice == nil)
    }
}

extension BitVector {
    init(bits: [Bool]) {
        self.init(count: bits.count)
        for (i, b) in bits.enumerated() where b { self[i] = true }
    }
}
