import Foundation
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

    struct LinkCase: CustomTestStringConvertible, Sendable {
        let lossDB, efficiency, dark, misalignment, eve, pZ: Double
        var testDescription: String { "loss \(lossDB) dB, eta \(efficiency), dark \(dark), mis \(misalignment), eve \(eve), pZ \(pZ)" }
    }

    /// Every path of the word-at-a-time simulation against the physics, from one round of
    /// 400 000 pulses: the detection rate 1 - (1 - t eta)(1 - d), Bob's basis bias, and the
    /// QBER of the matched detections, where a detected photon errs with the misalignment
    /// (intercepted: half the time Eve's basis is right, else a uniform bit) and a dark count
    /// alone in its slot with probability 1/2. The cases take: every photon arriving and
    /// clicking (whole words at once); loss by word masks (t >= 1/6) and by geometric skips
    /// (t < 1/6, where dark counts dominate); a detector efficiency below 1 (photon by photon);
    /// misalignment by word masks and by skips (below 1/6); Eve on some or all photons.
    @Test(arguments: [
        LinkCase(lossDB: 0, efficiency: 1, dark: 0, misalignment: 0.02, eve: 0, pZ: 0.75),
        LinkCase(lossDB: 1, efficiency: 1, dark: 0, misalignment: 0.18, eve: 0, pZ: 0.5),
        LinkCase(lossDB: 30, efficiency: 1, dark: 1e-3, misalignment: 0.02, eve: 0, pZ: 0.9),
        LinkCase(lossDB: 3, efficiency: 0.6, dark: 1e-4, misalignment: 0.01, eve: 0.2, pZ: 0.5),
        LinkCase(lossDB: 0, efficiency: 0.9, dark: 1e-2, misalignment: 0, eve: 1, pZ: 0.6),
    ])
    func everyPathFollowsThePhysics(_ c: LinkCase) {
        let pulses = 400_000
        var link = BB84Link(parameters: LinkParameters(pulsesPerRound: pulses, probabilityZ: c.pZ, channelLossDB: c.lossDB,
                                                       detectorEfficiency: c.efficiency, darkCountProbability: c.dark,
                                                       misalignment: c.misalignment, interceptFraction: c.eve), seed: 21)
        let (a, b) = link.runRound()
        let t = pow(10, -c.lossDB / 10), click = t * c.efficiency
        let p = 1 - (1 - click) * (1 - c.dark)
        func near(_ x: Double, _ expected: Double, _ trials: Double, _ what: String) {
            let sigma = (expected * (1 - expected) / trials).squareRoot()
            #expect(abs(x - expected) <= 5 * sigma + 1e-4, "\(what): \(x) against \(expected) (sigma \(sigma))")
        }
        near(Double(b.detectionCount) / Double(pulses), p, Double(pulses), "detection rate")
        near(fractionX(b.bases, b.detectionCount), 1 - c.pZ, Double(b.detectionCount), "Bob's X fraction")
        #expect(zip(b.slots, b.slots.dropFirst()).allSatisfy { $0 < $1 } && (b.slots.last ?? 0) < UInt64(pulses))
        var matched = 0, errors = 0
        for (i, s) in b.slots.enumerated() {
            let s = Int(s)
            guard (a.bases[s >> 6] >> UInt64(s & 63)) & 1 == (b.bases[i >> 6] >> UInt64(i & 63)) & 1 else { continue }
            matched += 1
            if (a.bits[s >> 6] >> UInt64(s & 63)) & 1 != (b.bits[i >> 6] >> UInt64(i & 63)) & 1 { errors += 1 }
        }
        let photonError = (1 - c.eve) * c.misalignment + c.eve * (c.misalignment / 2 + 0.25)
        let darkOnly = c.dark * (1 - click)
        let qber = (click * photonError + darkOnly * 0.5) / p
        near(Double(errors) / Double(matched), qber, Double(matched), "QBER")
    }
}
