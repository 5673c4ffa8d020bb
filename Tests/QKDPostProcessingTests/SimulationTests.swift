import Testing
import QKDCrypto
import QKDSimulation

@Suite struct SimulationTests {
    func fractionX(_ words: [UInt64], _ count: Int) -> Double {
        Double(words.reduce(0) { $0 + $1.nonzeroBitCount }) / Double(count)
    }

    @Test(arguments: [0.5, 0.75, 0.9])
    func basisBiasAndDetectionRate(pZ: Double) {
        var link = BB84Link(parameters: LinkParameters(pulsesPerRound: 200_000, probabilityZ: pZ, channelLossDB: 10,
                                                       detectorEfficiency: 0.5, darkCountProbability: 1e-3), seed: 3)
        let (a, b) = link.runRound()
        #expect(abs(fractionX(a.bases, a.slotCount) - (1 - pZ)) < 0.01)
        #expect(abs(fractionX(b.bases, b.detectionCount) - (1 - pZ)) < 0.03)
        // p = 1 - (1 - eta)(1 - d), eta = 0.1 * 0.5.
        let p = 1 - (1 - 0.05) * (1 - 1e-3)
        #expect(abs(Double(b.detectionCount) / 200_000 - p) < 0.003)
        #expect(zip(b.slots, b.slots.dropFirst()).allSatisfy { $0 < $1 })
    }

    @Test func misalignmentSetsQBERAndEveGivesAQuarter() {
        for (mis, eve, expected) in [(0.03, 0.0, 0.03), (0.0, 1.0, 0.25), (0.0, 0.4, 0.10)] {
            var link = BB84Link(parameters: LinkParameters(pulsesPerRound: 100_000, misalignment: mis, interceptFraction: eve), seed: 8)
            let (a, b) = link.runRound()
            var matched = 0, errors = 0
            for (i, s) in b.slots.enumerated() {
                let s = Int(s)
                let ab = (a.bases[s >> 6] >> UInt64(s & 63)) & 1, bb = (b.bases[i >> 6] >> UInt64(i & 63)) & 1
                guard ab == bb else { continue }
                matched += 1
                if (a.bits[s >> 6] >> UInt64(s & 63)) & 1 != (b.bits[i >> 6] >> UInt64(i & 63)) & 1 { errors += 1 }
            }
            #expect(abs(Double(errors) / Double(matched) - expected) < 0.01, "mis \(mis) eve \(eve)")
        }
    }

    @Test func sameSeedSameRound() {
        let p = LinkParameters(pulsesPerRound: 10_000, probabilityZ: 0.8, channelLossDB: 3, misalignment: 0.02)
        var l1 = BB84Link(parameters: p, seed: 5), l2 = BB84Link(parameters: p, seed: 5), l3 = BB84Link(parameters: p, seed: 6)
        let r1 = l1.runRound(), r2 = l2.runRound(), r3 = l3.runRound()
        #expect(r1.alice == r2.alice && r1.bob == r2.bob)
        #expect(r1.bob != r3.bob)
    }
}
