#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Block sizes of the Cascade passes (Spec/postprocessing.md section 5.1), chosen from the
/// estimated QBER that both sides share, so the schedule itself is never sent.
public struct CascadeSchedule: Sendable, Equatable {
    /// Top-level block size per pass.
    public var blockSizes: [Int]

    /// Creates a schedule.
    /// - Parameter blockSizes: one size >= 1 per pass.
    public init(blockSizes: [Int]) {
        precondition(!blockSizes.isEmpty && blockSizes.count < 128 && blockSizes.allSatisfy { $0 >= 1 }, "1 to 127 passes (the parity cache key holds the pass in 7 bits)")
        self.blockSizes = blockSizes
    }

    /// Original Cascade (Brassard and Salvail 1993): 4 passes, k1 = ceil(0.73 / Q), k_i = 2 k_{i-1}.
    /// - Parameters:
    ///   - qber: estimated QBER.
    ///   - keyBits: n.
    /// - Returns: the schedule.
    public static func original(qber: Double, keyBits n: Int) -> CascadeSchedule {
        let q = max(qber, 1e-4)
        let k1 = max(1, min(n, Int((0.73 / q).rounded(.up))))
        return CascadeSchedule(blockSizes: (0..<4).map { max(1, min(n, k1 << $0)) })
    }

    /// The improved schedule after Martinez-Mateo, Pacher, Peev, Ciurana and Martin,
    /// "Demystifying the information reconciliation protocol Cascade", QIC 15 (2015): block
    /// sizes are powers of two (a bisection of a block of size 2^m costs exactly m parities),
    /// k1 = 2^floor(log2(1/Q)), k2 = 2 k1 where k1 >= 32 and Q k1 >= 0.85, 4 k1 where k1 >= 16
    /// and Q k1 >= 5/8, else 8 k1, capped at
    /// n/2, later passes n/2, 16 passes in all. Tuned on 2^20-bit blocks with `qkd-node bench
    /// cascade-scan` (Spec/postprocessing.md section 5.1 has the tables): the size of the second
    /// block trades leak against round trips, which grow about in proportion to k2 (long
    /// back-tracking chains through big pass-2 blocks). k2 = 4 k1 keeps f <= 1.067 for Q < 1/16
    /// with about half the round trips of 8 k1 (every round trip is a wait for the peer over a
    /// real link), except just above a power of two (Q k1 in (1/2, 5/8): blocks small for the
    /// error rate), where it would reach 1.084 and 8 k1 keeps f <= 1.066; from Q = 1/16 on
    /// (k1 = 8) 4 k1 would leave f near 1.08, so there k2 = 8 k1 too. Just below a power of two
    /// (Q k1 >= 0.85: about one error per first block) with k1 >= 32 (Q < 1/32), 2 k1 halves the
    /// round trips again and keeps f <= 1.065 (3%: 1.059 against 1.045, 127 against 256 steps);
    /// at k1 = 16 it would give 1.074-1.079, so 4 k1 stays there.
    /// ``leastLeakage(qber:keyBits:)`` keeps 8 k1 everywhere. Later passes cost about two parity
    /// bits each unless they find an error, and each halves the chance that a residual error
    /// pair survives: with 8 of them about 0.3% of 20 000-bit frames (and about 1 in 12-20
    /// 2^20-bit frames at 5-8%) kept an error that only verification caught, with 14 of them
    /// 2 in 9000 (section 5.1).
    /// - Parameters:
    ///   - qber: estimated QBER.
    ///   - keyBits: n.
    /// - Returns: the schedule.
    public static func improved(qber: Double, keyBits n: Int) -> CascadeSchedule {
        powerOfTwo(qber: qber, keyBits: n) { k1, q in
            if k1 >= improvedNarrowK1 && q * Double(k1) >= improvedNarrowQK1 { return 2 }
            return k1 >= improvedWideK1 && q * Double(k1) >= improvedWideQK1 ? 4 : 8
        }
    }

    /// The improved schedule with k2 = 8 k1 at every QBER (the default until late on 2026-11-27): about
    /// 0.01 less f below Q = 1/16 (1.037 against 1.047 at 1%, 1.043 against 1.055 at 2%) for
    /// about twice the round trips. For links whose round trips are cheap (both roles on one
    /// machine, a dedicated low-latency channel) and every key bit counts.
    /// - Parameters:
    ///   - qber: estimated QBER.
    ///   - keyBits: n.
    /// - Returns: the schedule.
    public static func leastLeakage(qber: Double, keyBits n: Int) -> CascadeSchedule {
        powerOfTwo(qber: qber, keyBits: n) { _, _ in 8 }
    }

    /// k1 = 2^floor(log2(1/Q)), k2 = factor(k1, Q) k1 (Q clamped as for k1), then ceil(n/2), 16
    /// passes, all capped.
    private static func powerOfTwo(qber: Double, keyBits n: Int, k2Factor: (Int, Double) -> Int) -> CascadeSchedule {
        let q = min(max(qber, 1e-4), 0.25)
        let alpha = Int(log2(improvedK1Factor / q).rounded(.down))
        let k1 = max(1, min(n, 1 << max(0, alpha)))
        let half = max(1, (n + 1) / 2)
        let k2 = max(1, min(half, k1 * k2Factor(k1, q)))
        var sizes = [k1, k2]
        while sizes.count < improvedPasses { sizes.append(half) }
        return CascadeSchedule(blockSizes: sizes)
    }

    static let improvedK1Factor = 1.0
    /// The smallest k1 whose second pass can be 4 k1 in ``improved(qber:keyBits:)``: Q < 1/16.
    static let improvedWideK1 = 16
    /// The smallest Q k1 whose second pass is 4 k1 in ``improved(qber:keyBits:)``: below it
    /// (Q just above 1/k1) f with 4 k1 rises to about 1.08 (section 5.1).
    static let improvedWideQK1 = 0.625
    /// The smallest k1 whose second pass can be 2 k1 in ``improved(qber:keyBits:)``: Q < 1/32.
    static let improvedNarrowK1 = 32
    /// The smallest Q k1 whose second pass is 2 k1 in ``improved(qber:keyBits:)`` (section 5.1):
    /// at Q k1 = 0.8 f with 2 k1 is already 1.065.
    static let improvedNarrowQK1 = 0.85
    static let improvedPasses = 16
}
