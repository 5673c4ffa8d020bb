import Foundation
import Testing
@testable import QKDPostProcessing

/// An independent evaluation of Tomamichel, Lim, Gisin and Renner (2012), Eq. (2), written from
/// the paper and not from the implementation.
func referenceLength(n: Double, k: Double, e: Double, leak: Double, epsSec: Double, epsCor: Double) -> Int {
    let mu = sqrt((n + k) / (n * k) * (k + 1) / k * Foundation.log(2 / epsSec))
    let q = min(0.5, e / k + mu)
    let h = q <= 0 ? 0 : -q * Foundation.log2(q) - (1 - q) * Foundation.log2(1 - q)
    let l = n * (1 - h) - leak - Foundation.log2(2 / (epsSec * epsSec * epsCor))
    return l < 1 ? 0 : Int(Foundation.floor(l))
}

@Suite struct FiniteKeyTests {
    @Test(arguments: [
        (1_000_000, 100_000, 1_000, 60_000, 1e-10, 1e-15),
        (1_000_000, 1_000_000, 30_000, 250_000, 1e-9, 1e-12),
        (100_000, 20_000, 400, 9_000, 1e-10, 1e-15),
        (50_000, 50_000, 2_500, 15_000, 1e-6, 1e-10),
        (10_000, 1_000, 200, 5_000, 1e-10, 1e-15),
        (1 << 20, 1 << 18, 8_000, 80_000, 1e-12, 1e-12),
    ])
    func lengthMatchesIndependentFormula(_ p: (Int, Int, Int, Int, Double, Double)) {
        let (n, k, e, leak, es, ec) = p
        let mine = FiniteKey.secretLength(keyBits: n, testBits: k, testErrors: e, leakedBits: leak,
                                          security: SecurityParameters(epsilonSecrecy: es, epsilonCorrectness: ec))
        let ref = referenceLength(n: Double(n), k: Double(k), e: Double(e), leak: Double(leak), epsSec: es, epsCor: ec)
        #expect(abs(mine - ref) <= 1, "n=\(n) k=\(k): \(mine) vs \(ref)")
        #expect(mine == ref)
    }

    @Test func entropy() {
        #expect(FiniteKey.binaryEntropy(0.5) == 1)
        #expect(abs(FiniteKey.binaryEntropy(0.11) - 0.4999) < 1e-3)
        #expect(FiniteKey.binaryEntropy(0) == 0)
    }
}
