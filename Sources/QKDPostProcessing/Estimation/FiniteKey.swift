#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Security parameters of a round (Spec/postprocessing.md section 4).
public struct SecurityParameters: Sendable, Equatable {
    /// Secrecy parameter ε_sec of Tomamichel, Lim, Gisin and Renner (2012).
    public var epsilonSecrecy: Double
    /// Correctness parameter ε_cor: the probability that Alice and Bob accept different keys.
    /// The verification tag (Spec/postprocessing.md section 6) guarantees at most 2^-83 at the
    /// largest round, so any ε_cor >= 2^-83 holds; the tag's 128 bits are what the key pays.
    public var epsilonCorrectness: Double
    /// Abort when the estimated QBER (test-set error fraction) exceeds this. Default 11%, just
    /// under the 11.0% Shor-Preskill limit of one-way BB84.
    public var qberThreshold: Double

    /// Creates parameters.
    /// - Parameters:
    ///   - epsilonSecrecy: ε_sec, in (0, 1).
    ///   - epsilonCorrectness: ε_cor, in (0, 1).
    ///   - qberThreshold: abort threshold, in (0, 0.5).
    public init(epsilonSecrecy: Double = 1e-10, epsilonCorrectness: Double = 1e-15, qberThreshold: Double = 0.11) {
        precondition(epsilonSecrecy > 0 && epsilonSecrecy < 1 && epsilonCorrectness < 1)
        precondition(epsilonCorrectness >= 0x1p-83, "the 128-bit verification tag guarantees ε_cor >= 2^-83 only (Spec/postprocessing.md section 6)")
        precondition(qberThreshold > 0 && qberThreshold < 0.5)
        self.epsilonSecrecy = epsilonSecrecy
        self.epsilonCorrectness = epsilonCorrectness
        self.qberThreshold = qberThreshold
    }
}

/// The finite-key bound of Tomamichel, Lim, Gisin and Renner, "Tight finite-key analysis for
/// quantum cryptography", Nat. Commun. 3:634 (2012), Theorem 2 (Eq. (2); Supplementary Eqs.
/// (S3)-(S4)), for BB84 (q = 1) with key bits from the Z basis and the phase error estimated on
/// k disclosed X-basis bits (Spec/postprocessing.md section 4.2):
///
///     ℓ = floor( n (1 - h(min(1/2, Q_X + μ))) - leak_EC - leak_ver - 2 log2(1/ε_sec) )
///     μ = sqrt( (n + k) / (n k) · (k + 1) / k · ln(4 / ε_sec) )
///
/// Theorem 2 holds for every ε, ε̃ with 2ε + ε̃ <= ε_sec; we take ε = ε_sec/4 (smoothing, hence
/// ln(4/ε_sec) in μ: Serfling's bound for sampling without replacement, Eq. (S10)-(S15)) and
/// ε̃ = ε_sec/2 (leftover hash lemma, 2 log2(1/(2ε̃)) = 2 log2(1/ε_sec)). The paper's error
/// verification reveals a ⌈log2(1/ε_cor)⌉-bit hash, bounded there by log2(2/ε_cor), which
/// with the 2 log2(1/ε_sec) gives Eq. (2)'s log2(2/(ε_sec² ε_cor)); ours reveals a 128-bit tag,
/// so leak_ver = 128 is subtracted instead. With leak_ver = log2(2/ε_cor) the formula is Eq. (2)
/// exactly. leak_EC counts the parity bits Alice disclosed during Cascade.
public enum FiniteKey {
    /// Binary entropy h(p) in bits; h(0) = h(1) = 0.
    /// - Parameter p: a probability.
    /// - Returns: h(p).
    public static func binaryEntropy(_ p: Double) -> Double {
        if p <= 0 || p >= 1 { return 0 }
        return -p * log2(p) - (1 - p) * log2(1 - p)
    }

    /// The statistical correction μ (TLGR 2012, Eq. (2), with ε = ε_sec/4 in Eq. (S4)).
    /// - Parameters:
    ///   - keyBits: n.
    ///   - testBits: k.
    ///   - epsilonSecrecy: ε_sec.
    /// - Returns: μ, or +infinity if either count is zero.
    public static func statisticalCorrection(keyBits n: Int, testBits k: Int, epsilonSecrecy: Double) -> Double {
        guard n > 0, k > 0 else { return .infinity }
        let nd = Double(n), kd = Double(k)
        return ((nd + kd) / (nd * kd) * (kd + 1) / kd * log(4 / epsilonSecrecy)).squareRoot()
    }

    /// The upper confidence bound Q_X + μ on the phase-error rate, capped at 0.5.
    /// - Parameters:
    ///   - keyBits: n.
    ///   - testBits: k.
    ///   - testErrors: e.
    ///   - epsilonSecrecy: ε_sec.
    /// - Returns: the bound.
    public static func phaseErrorBound(keyBits n: Int, testBits k: Int, testErrors e: Int, epsilonSecrecy: Double) -> Double {
        guard k > 0 else { return 0.5 }
        return min(0.5, Double(e) / Double(k) + statisticalCorrection(keyBits: n, testBits: k, epsilonSecrecy: epsilonSecrecy))
    }

    /// The secret key length ℓ (0 if the bound leaves nothing).
    /// - Parameters:
    ///   - keyBits: n, the sifted Z-basis bits that enter reconciliation.
    ///   - testBits: k, the disclosed X-basis bits.
    ///   - testErrors: e, errors among them.
    ///   - leakedBits: leak_EC + leak_ver, every bit disclosed about the key.
    ///   - security: ε_sec (ε_cor is met by the verification tag, whose bits are in `leakedBits`).
    /// - Returns: ℓ >= 0.
    public static func secretLength(keyBits n: Int, testBits k: Int, testErrors e: Int, leakedBits: Int,
                                    security: SecurityParameters) -> Int {
        guard n > 0, k > 0 else { return 0 }
        let bound = phaseErrorBound(keyBits: n, testBits: k, testErrors: e, epsilonSecrecy: security.epsilonSecrecy)
        let value = Double(n) * (1 - binaryEntropy(bound)) - Double(leakedBits)
            - 2 * log2(1 / security.epsilonSecrecy)
        guard value >= 1 else { return 0 }
        return Int(value.rounded(.down))
    }
}
