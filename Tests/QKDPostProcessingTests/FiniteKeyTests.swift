import Foundation
import Testing
@testable import QKDPostProcessing

/// An independent evaluation of Tomamichel, Lim, Gisin and Renner (2012), Theorem 2 (Eq. (S3)
/// with ε = ε_sec/4 and ε̃ = ε_sec/2), written from the paper and not from the implementation:
/// ℓ = n(1 - h(Q + μ)) - leak - 2 log2(1/(2 ε̃)), μ = sqrt((n+k)/(nk) (k+1)/k ln(1/ε)), where `leak`
/// holds the verification bits in place of the paper's log2(2/ε_cor).
func referenceLength(n: Double, k: Double, e: Double, leak: Double, epsSec: Double) -> Int {
    let eps = epsSec / 4, epsPA = epsSec / 2
    let mu = sqrt((n + k) / (n * k) * (k + 1) / k * Foundation.log(1 / eps))
    let q = min(0.5, e / k + mu)
    let h = q <= 0 ? 0 : -q * Foundation.log2(q) - (1 - q) * Foundation.log2(1 - q)
    let l = n * (1 - h) - leak - 2 * Foundation.log2(1 / (2 * epsPA))
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
        let ref = referenceLength(n: Double(n), k: Double(k), e: Double(e), leak: Double(leak), epsSec: es)
        #expect(abs(mine - ref) <= 1, "n=\(n) k=\(k): \(mine) vs \(ref)")
        #expect(mine == ref)
    }

    /// Known answer, worked by hand (digits from a pocket calculation, checked with Python):
    /// n = 10^6, k = 10^5, e = 1000 (Q = 1%), leak = 60 000 + 128, ε_sec = 1e-10:
    ///   ln(4/ε_sec) = ln 4 + 10 ln 10 = 24.4121452
    ///   μ² = (1.1e6 / 1e11) · (100001/100000) · 24.4121452 = 2.6853631e-4, μ = 0.0163870767
    ///   Q + μ = 0.0263870767, h(Q + μ) = 0.1759362505
    ///   n (1 - h) = 824 063.7495; minus 60 128; minus 2 log2(1e10) = 66.4385619
    ///   ℓ = floor(763 869.311) = 763 869.
    /// The earlier code (ln(2/ε_sec) in μ, log2(2/(ε_sec² ε_cor)) beside the tag bits) gave 765 039.
    @Test func handComputedKnownAnswer() {
        let s = SecurityParameters(epsilonSecrecy: 1e-10, epsilonCorrectness: 1e-15)
        #expect(abs(FiniteKey.statisticalCorrection(keyBits: 1_000_000, testBits: 100_000, epsilonSecrecy: 1e-10) - 0.0163870767) < 1e-9)
        #expect(FiniteKey.secretLength(keyBits: 1_000_000, testBits: 100_000, testErrors: 1000, leakedBits: 60_128, security: s) == 763_869)
        // A second one: n = 10^5, k = 2*10^4, e = 400, leak = 9128, ε_sec = 1e-6:
        // μ = 0.0302018857, h(0.0502018857) = 0.2872539348, ℓ = floor(62 106.743) = 62 106.
        let s2 = SecurityParameters(epsilonSecrecy: 1e-6, epsilonCorrectness: 1e-12)
        #expect(FiniteKey.secretLength(keyBits: 100_000, testBits: 20_000, testErrors: 400, leakedBits: 9_128, security: s2) == 62_106)
    }

    @Test func entropy() {
        #expect(FiniteKey.binaryEntropy(0.5) == 1)
        #expect(abs(FiniteKey.binaryEntropy(0.11) - 0.4999) < 1e-3)
        #expect(FiniteKey.binaryEntropy(0) == 0)
    }
}
