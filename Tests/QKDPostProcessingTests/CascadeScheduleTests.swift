import Testing
@testable import QKDPostProcessing

/// The block sizes both sides derive from the shared QBER estimate (Spec/postprocessing.md
/// section 5.1). A change here changes the wire transcript (CascadeTranscriptTests).
@Suite struct CascadeScheduleTests {
    static let n = 1 << 20
    static let half = n / 2

    /// The rows of the Spec 5.1 tables: k1 = 2^floor(log2(1/Q)), k2 = 2 k1 where k1 >= 32 and
    /// Q k1 >= 0.85, 4 k1 where k1 >= 16 and Q k1 >= 5/8, else 8 k1 (8 k1 everywhere for
    /// leastLeakage), then n/2, 16 passes.
    @Test(arguments: [(0.005, 128, 512, 1024), (0.01, 64, 256, 512), (0.016, 32, 256, 256), (0.02, 32, 128, 256),
                      (0.025, 32, 128, 256), (0.03, 32, 64, 256), (0.014, 64, 128, 512), (0.0074, 128, 256, 1024),
                      (0.034, 16, 128, 128), (0.059, 16, 64, 128),
                      (0.04, 16, 64, 128), (0.05, 16, 64, 128), (0.06, 16, 64, 128), (0.065, 8, 64, 64), (0.08, 8, 64, 64)])
    func schedulesMatchTheSpecTable(q: Double, k1: Int, k2: Int, leastLeakageK2: Int) {
        #expect(CascadeSchedule.improved(qber: q, keyBits: Self.n).blockSizes == [k1, k2] + Array(repeating: Self.half, count: 14))
        #expect(CascadeSchedule.leastLeakage(qber: q, keyBits: Self.n).blockSizes
                == [k1, leastLeakageK2] + Array(repeating: Self.half, count: 14))
        #expect(ReconciliationSchedule.leastLeakage.schedule(qber: q, keyBits: Self.n) == CascadeSchedule.leastLeakage(qber: q, keyBits: Self.n))
    }

    /// The second pass is 8 k1 where k1 drops from 16 to 8, and just above each power of two
    /// (Q k1 below 5/8); 4 k1 from Q k1 = 5/8 on; 2 k1 from Q k1 = 0.85 on where k1 >= 32.
    @Test func k2FactorSwitches() {
        #expect(CascadeSchedule.improved(qber: 0.0625, keyBits: Self.n).blockSizes.prefix(2) == [16, 64])
        #expect(CascadeSchedule.improved(qber: 0.0626, keyBits: Self.n).blockSizes.prefix(2) == [8, 64])
        #expect(CascadeSchedule.improved(qber: 0.625 / 16, keyBits: Self.n).blockSizes.prefix(2) == [16, 64])
        #expect(CascadeSchedule.improved(qber: 0.039, keyBits: Self.n).blockSizes.prefix(2) == [16, 128])
        #expect(CascadeSchedule.improved(qber: 0.0313, keyBits: Self.n).blockSizes.prefix(2) == [16, 128])
        #expect(CascadeSchedule.improved(qber: 0.03125, keyBits: Self.n).blockSizes.prefix(2) == [32, 64])
        #expect(CascadeSchedule.improved(qber: 0.0195, keyBits: Self.n).blockSizes.prefix(2) == [32, 256])
        #expect(CascadeSchedule.improved(qber: 0.01953125, keyBits: Self.n).blockSizes.prefix(2) == [32, 128])
        // 2 k1 from Q k1 = 0.85 on, for k1 >= 32 only.
        #expect(CascadeSchedule.improved(qber: 0.85 / 32, keyBits: Self.n).blockSizes.prefix(2) == [32, 64])
        #expect(CascadeSchedule.improved(qber: 0.0265, keyBits: Self.n).blockSizes.prefix(2) == [32, 128])
        #expect(CascadeSchedule.improved(qber: 0.85 / 64, keyBits: Self.n).blockSizes.prefix(2) == [64, 128])
        #expect(CascadeSchedule.improved(qber: 0.0132, keyBits: Self.n).blockSizes.prefix(2) == [64, 256])
        #expect(CascadeSchedule.improved(qber: 0.06, keyBits: Self.n).blockSizes.prefix(2) == [16, 64])
    }

    /// k1 halves exactly when Q crosses a power of two (the boundary belongs to the larger block).
    @Test func k1StepsAtPowersOfTwo() {
        #expect(CascadeSchedule.improved(qber: 0.0625, keyBits: Self.n).blockSizes[0] == 16)
        #expect(CascadeSchedule.improved(qber: 0.0626, keyBits: Self.n).blockSizes[0] == 8)
        #expect(CascadeSchedule.improved(qber: 0.125, keyBits: Self.n).blockSizes[0] == 8)
        #expect(CascadeSchedule.improved(qber: 0.126, keyBits: Self.n).blockSizes[0] == 4)
    }

    /// Over a sweep of Q: 16 passes, power-of-two k1 with Q k1 in (0.5, 1], k2 = 2 k1 where
    /// k1 >= 32 and Q k1 >= 0.85, 4 k1 where k1 >= 16 and Q k1 >= 5/8, else 8 k1, later passes
    /// n/2, and k1 never grows as Q grows.
    @Test func improvedShapeOverASweep() {
        var previous = Int.max
        for step in 1...400 {
            let q = Double(step) * 0.0005  // 0.05% .. 20%
            let s = CascadeSchedule.improved(qber: q, keyBits: Self.n).blockSizes
            #expect(s.count == 16)
            let k1 = s[0]
            #expect(k1.nonzeroBitCount == 1)
            #expect(q * Double(k1) > 0.5 && q * Double(k1) <= 1, "Q=\(q) k1=\(k1)")
            let factor = k1 >= 32 && q * Double(k1) >= 0.85 ? 2 : (k1 >= 16 && q * Double(k1) >= 0.625 ? 4 : 8)
            #expect(s[1] == factor * k1, "Q=\(q) k1=\(k1)")
            #expect(s[2...].allSatisfy { $0 == Self.half })
            #expect(k1 <= previous)
            previous = k1
        }
    }

    /// Sizes are capped at ceil(n/2) (k2 and later) and n (k1), and stay >= 1 for tiny n and
    /// out-of-range estimates.
    @Test func capsAndClamps() {
        #expect(CascadeSchedule.improved(qber: 0.01, keyBits: 100).blockSizes == [64] + Array(repeating: 50, count: 15))
        #expect(CascadeSchedule.improved(qber: 0.01, keyBits: 1001).blockSizes == [64, 256] + Array(repeating: 501, count: 14))
        #expect(CascadeSchedule.leastLeakage(qber: 0.01, keyBits: 1001).blockSizes == [64] + Array(repeating: 501, count: 15))
        #expect(CascadeSchedule.improved(qber: 0.01, keyBits: 40).blockSizes == [40] + Array(repeating: 20, count: 15))
        #expect(CascadeSchedule.improved(qber: 0.02, keyBits: 1).blockSizes == Array(repeating: 1, count: 16))
        // Q = 0 is read as 1e-4 (k1 = 8192); Q above 25% as 25% (k1 = 4).
        #expect(CascadeSchedule.improved(qber: 0, keyBits: Self.n).blockSizes.prefix(2) == [8192, 32768])
        #expect(CascadeSchedule.improved(qber: 0.4, keyBits: Self.n).blockSizes.prefix(2) == [4, 32])
    }
}
