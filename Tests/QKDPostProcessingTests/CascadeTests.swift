import Testing
import QKDCrypto
@testable import QKDPostProcessing

@Suite struct CascadeTests {
    @Test(arguments: [1, 2, 3, 64, 1000, 4097, 65_536, 100_003])
    func permutationIsABijection(n: Int) {
        var shared = DeterministicRandomSource(seed: UInt64(n))
        var random = Xoshiro256StarStar(seedingFrom: &shared)
        let perm = PassPermutation(size: n, random: &random)
        let p = perm.backward
        var seen = [Bool](repeating: false, count: n)
        for j in p { #expect(Int(j) < n && !seen[Int(j)]); seen[Int(j)] = true }
        #expect(p.count == n)
        for (j, i) in p.enumerated() where j % 7 == 0 { #expect(perm.forward(Int(i)) == j) }
        if n > 1000 { #expect(p != (0..<n).map { UInt32($0) }) }
    }

    /// xoshiro256** from state (1, 2, 3, 4): values computed by a separate Python transcription
    /// of Blackman and Vigna's reference C code.
    @Test func xoshiroKnownAnswer() {
        var g = Xoshiro256StarStar(state: (1, 2, 3, 4))
        #expect((0..<6).map { _ in g.next() } == [11520, 0, 1_509_978_240, 1_215_971_899_390_074_240, 1_216_172_134_540_287_360, 607_988_272_756_665_600])
    }

    /// The sub-block parity cache against a Dictionary, through growth and toggles.
    @Test func parityCacheMatchesDictionary() {
        var g = TestRNG(state: 77)
        var cache = ParityCache()
        var reference: [UInt64: Bool] = [:]
        for _ in 0..<20_000 {
            let key = ParityCache.key(pass: Int(g.next() % 10), block: Int(g.next() % 3000), node: 1 + Int(g.next() % 64))
            switch g.next() % 3 {
            case 0:
                let v = g.next() & 1 == 1
                cache.set(key, v)
                reference[key] = v
            case 1:
                #expect(cache.toggle(key) == (reference[key] != nil))
                reference[key]?.toggle()
            default:
                #expect(cache.get(key) == reference[key])
            }
        }
        #expect(cache.count == reference.count)
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
