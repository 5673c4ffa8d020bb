import Testing
import QKDCrypto
@testable import QKDPostProcessing

@Suite struct CascadeTests {
    @Test(arguments: [1, 2, 3, 64, 1000, 4097, 65_536, 100_003])
    func permutationIsABijection(n: Int) {
        var random = DeterministicRandomSource(seed: UInt64(n))
        let perm = PassPermutation(size: n, random: &random)
        let p = perm.backward
        var seen = [Bool](repeating: false, count: n)
        for j in p { #expect(Int(j) < n && !seen[Int(j)]); seen[Int(j)] = true }
        #expect(p.count == n)
        for (j, i) in p.enumerated() where j % 7 == 0 { #expect(perm.forward(Int(i)) == j) }
        if n > 1000 { #expect(p != (0..<n).map { UInt32($0) }) }
    }

    @Test(arguments: [0.01, 0.03, 0.08])
    func cascadeCorrectsAndLeakageIsPlausible(q: Double) throws {
        var g = TestRNG(state: UInt64(q * 1e4))
        let n = 1 << 14
        var failures = 0
        for seed in 0..<3 {
            let alice = randomBits(n, &g)
            var bob = alice
            var errors = 0
            for i in 0..<n where Double.random(in: 0..<1, using: &g) < q { bob.flip(i); errors += 1 }
            let r = try CascadeRunner.run(alice: alice, bob: bob, qber: q, schedule: .improved,
                                          seed: [UInt8](repeating: UInt8(seed), count: 32))
            // Cascade can leave an error (verification then discards the block); rarely.
            if r.residualErrors != 0 { failures += 1 }
            // Leakage is near the Shannon limit n h(Q): above 0.95 of it (sampling slack), below 1.5x.
            let h = FiniteKey.binaryEntropy(Double(errors) / Double(n))
            #expect(Double(r.leakedBits) > 0.95 * Double(n) * h)
            #expect(Double(r.leakedBits) < 1.5 * Double(n) * h)
            #expect(r.corrected >= errors - 2 * r.residualErrors)
        }
        #expect(failures <= 1)
    }
}
