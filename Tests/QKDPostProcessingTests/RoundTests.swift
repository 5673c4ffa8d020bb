import Testing
import QKDCrypto
@testable import QKDPostProcessing
import QKDSimulation

@Suite struct RoundTests {
    @Test(arguments: [0.005, 0.01, 0.02, 0.05, 0.08])
    func bothSidesAgreeOrAbortWithReason(qber: Double) throws {
        for seed: UInt64 in 1...3 {
            let (a, b) = simulate(qber: qber, pulses: 120_000, seed: seed &* 31 &+ UInt64(qber * 1000), probabilityZ: 0.75)
            var pair = Pair(alice: a, bob: b, seed: seed)
            pair.run()
            switch (pair.aliceOutcome, pair.bobOutcome) {
            case (.key(let ka), .key(let kb)):
                #expect(ka.key == kb.key, "a wrong key must never be accepted")
                #expect(ka.key.count * 8 == ka.summary.finalBits)
                #expect(ka.summary.finalBits > 0)
                #expect(ka.summary.correctedErrors == kb.summary.correctedErrors)
            case (.aborted(let ra, _), .aborted(let rb, _)):
                #expect(ra.code == rb.code)
                #expect(ra.initiatedByPeer != rb.initiatedByPeer)
            default:
                Issue.record("inconsistent outcomes: \(String(describing: pair.aliceOutcome)) / \(String(describing: pair.bobOutcome))")
            }
        }
    }
}
