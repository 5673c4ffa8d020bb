import Testing
import QKDCrypto
@testable import QKDPostProcessing

/// Alice decodes a detection report and sifts it in one pass (`qkd_rice_decode_sift_alice`,
/// reached through `AliceRound.receive(bytes:)`). It must accept exactly the streams the plain
/// decoder accepts and give what decoding then sifting gives, on every kernel path; and the round
/// must answer every report, well formed or not, as the general path does.
@Suite(.serialized) struct FusedSiftTests {
    enum Path: String, CaseIterable { case native, portable, codeAtATime }

    /// Selects the kernel path (process-wide switches, hence the serialized suite).
    static func select(_ path: Path, on: Bool) {
        switch path {
        case .native: break
        case .portable: SiftKernels.forcePortable(on)
        case .codeAtATime: GolombRice.setCodeAtATimeKernel(on)
        }
    }

    /// One stream, count and slot count: the fused kernel's outcome against decode-then-sift.
    /// - Returns: the decoder's status, nil if the arguments fail the checks made before decoding.
    @discardableResult
    static func check(_ stream: BitVector, count: Int, r: Int, slotCount: Int, _ g: inout TestRNG,
                      _ label: String) throws -> Int32? {
        guard (try? GolombRice.checkArguments(streamBits: stream.count, count: count, parameter: r,
                                              slotCount: UInt64(slotCount))) != nil else { return nil }
        let aliceBases = randomBits(slotCount, &g), aliceBits = randomBits(slotCount, &g), bobBases = randomBits(count, &g)
        let (status, positions, _) = GolombRice.kernelDecode(stream, count: count, parameter: r, slotCount: UInt64(slotCount))
        let fused = SiftKernels.alice(stream: stream, count: count, parameter: r, slotCount: slotCount, aliceBases: aliceBases,
                                      aliceBits: aliceBits, bobBases: bobBases)
        guard status == QKD_RICE_OK_STATUS else {
            #expect(fused == nil, "\(label): the decoder says \(status), the fused kernel accepted")
            return status
        }
        let expected = try SiftKernels.alice(positions: positions, slotCount: slotCount, aliceBases: aliceBases,
                                             aliceBits: aliceBits, bobBases: bobBases)
        guard let fused else {
            Issue.record("\(label): the decoder accepts, the fused kernel does not")
            return status
        }
        #expect(fused.matches == expected.matches && fused.key == expected.key && fused.tests == expected.tests, "\(label)")
        return status
    }

    @Test(arguments: Path.allCases)
    func fusedKernelEqualsDecodeThenSift(path: Path) throws {
        var statuses: Set<Int32> = []
        Self.select(path, on: true)
        defer { Self.select(path, on: false) }
        do {
            var g = TestRNG(state: 31)
            for trial in 0..<160 {
                let count = trial < 12 ? trial : Int.random(in: 1...2_000, using: &g)
                // Dense (r = 0, the word-at-a-time path), moderate and sparse.
                let mean = [UInt64(0), 1, 3, 12, 100][trial % 5]
                let (slots, total) = SiftKernelTests.randomSlots(count: count, mean: mean, &g)
                let slotCount = Int(total)
                guard slotCount <= 400_000 else { continue }
                let r = GolombRice.parameter(count: count, slots: total)
                let stream = slots.withUnsafeBufferPointer { GolombRice.encode($0, parameter: r) }
                #expect(try Self.check(stream, count: count, r: r, slotCount: slotCount, &g, "\(path) trial \(trial)") == 0)
                guard let last = slots.last, stream.count > 0 else { continue }
                // Every slot checked against the slot count, also those in a batch.
                let variants: [(Int, Int, String)] = [(count, Int(last), "short slot count"), (count + 1, slotCount, "count + 1"),
                                                      (count - 1, slotCount, "count - 1")]
                for (c, n, what) in variants {
                    if let s = try Self.check(stream, count: c, r: r, slotCount: n, &g, "\(path) trial \(trial) \(what)") { statuses.insert(s) }
                }
                var words = stream.words
                let at = Int.random(in: 0..<stream.count, using: &g)
                words[at >> 6] ^= UInt64(1) << UInt64(at & 63)
                for (damaged, what) in [(BitVector(words: words, count: stream.count), "flipped bit \(at)"),
                                         (BitVector(words: stream.words, count: Int.random(in: 0..<stream.count, using: &g)), "cut")] {
                    if let s = try Self.check(damaged, count: count, r: r, slotCount: slotCount, &g, "\(path) trial \(trial) \(what)") {
                        statuses.insert(s)
                    }
                }
            }
            // Garbage of every length with parameters around the plausible ones.
            for trial in 0..<300 {
                let bits = Int(g.next() % 600)
                let words = (0..<((bits + 63) >> 6)).map { _ in trial % 3 == 0 ? ~UInt64(0) : g.next() & g.next() }
                if let s = try Self.check(BitVector(words: words, count: bits), count: Int(g.next() % 120), r: Int(g.next() % 6),
                                          slotCount: Int(g.next() % 3_000) + 1, &g, "\(path) garbage \(trial)") {
                    statuses.insert(s)
                }
            }
        }
        // Every outcome was reached: OK, truncated, out of range, leftover.
        #expect(statuses == [0, 1, 2, 3], "\(path): \(statuses.sorted())")
    }

    /// A report of `count` detections in `slots` slots, encoded, with Alice's matching input.
    static func report(slots: Int, density: Double, _ g: inout TestRNG) -> [UInt8] {
        var positions: [UInt64] = []
        for s in 0..<slots where Double(g.next() % 10_000) < density * 10_000 { positions.append(UInt64(s)) }
        let report = DetectionReport(slotCount: UInt64(slots), positions: positions, bases: randomBits(positions.count, &g))
        return PostProcessingMessage.detections(report).encoded(roundID: 5)
    }

    /// What Alice's round does with `bytes`: the fused path (`receive(bytes:)`) or the general one
    /// (decode, then `receive(_:)`), as the actions it hands out or the error it throws.
    static func outcome(_ bytes: [UInt8], fused: Bool, slots: Int, _ seed: UInt64) -> String {
        var g = TestRNG(state: seed)
        var alice = AliceRound(roundID: 5, configuration: .init(), bits: randomBits(slots, &g), bases: randomBits(slots, &g),
                               random: DeterministicRandomSource(seed: seed))
        do {
            if fused {
                try alice.receive(bytes: bytes)
            } else {
                let (id, message) = try PostProcessingMessage.decode(bytes)
                guard id == 5 else { throw QKDError(.ppRoundMismatch, "message for round \(id) given to Alice's round 5") }
                try alice.receive(message)
            }
        } catch let e as QKDError {
            return "error \(e.code) \(e.detail)"
        } catch {
            return "untyped \(error)"
        }
        var actions: [String] = []
        while let a = alice.nextAction() {
            if case .send(let m) = a { actions.append("send \(m.encoded(roundID: 5))") } else { actions.append("\(a)") }
        }
        return actions.joined(separator: "\n")
    }

    /// Well-formed reports (sparse and dense) and every single-byte change, truncation and
    /// extension of small ones: the round's response or error is the general path's.
    @Test func aliceRoundAnswersEveryReportAsTheGeneralPath() {
        var g = TestRNG(state: 32)
        for (slots, density) in [(700, 0.08), (700, 0.45), (5_000, 0.3), (64, 0.5), (1, 1.0), (300, 0.0)] {
            let bytes = Self.report(slots: slots, density: density, &g)
            #expect(Self.outcome(bytes, fused: true, slots: slots, 1) == Self.outcome(bytes, fused: false, slots: slots, 1))
            #expect(Self.outcome(bytes, fused: true, slots: slots, 1).hasPrefix("send"), "\(slots) slots: a well-formed report is answered")
            #expect(Self.outcome(bytes, fused: true, slots: slots + 1, 1) == Self.outcome(bytes, fused: false, slots: slots + 1, 1))
            guard bytes.count < 200 else { continue }
            var variants: [[UInt8]] = [bytes + [0], Array(bytes.dropLast())]
            for i in bytes.indices {
                for flip: UInt8 in [0x01, 0x80, 0xff] {
                    var b = bytes
                    b[i] ^= flip
                    variants.append(b)
                }
            }
            for (k, b) in variants.enumerated() {
                let fused = Self.outcome(b, fused: true, slots: slots, UInt64(k)), general = Self.outcome(b, fused: false, slots: slots, UInt64(k))
                #expect(fused == general, "\(slots) slots, variant \(k)")
            }
        }
    }
}

/// QKD_RICE_OK as the Swift side sees it (the C macro is 0).
let QKD_RICE_OK_STATUS: Int32 = 0
