import Testing
import QKDCrypto
@testable import QKDPostProcessing

/// The Cascade engine's step runs in the C kernel `qkd_cascade_engine` behind a class handle:
/// these tests check that the Swift value keeps value semantics (copy on write) and that peer
/// input the kernel cannot accept comes back as typed errors, never a crash.
@Suite struct CascadeEngineTests {
    /// Runs both sides to the end from the given engines; returns the digest of the exchanged
    /// bitmaps and Bob's key.
    private static func finish(_ a: inout CascadeEngine, _ b: inout CascadeEngine) throws -> (UInt64, BitVector) {
        var digest: UInt64 = 0xcbf2_9ce4_8422_2325
        while a.pending != .done {
            let parities = a.parities()
            let replies = try b.replies(to: parities)
            for byte in parities.packedBytes() + replies.packedBytes() { digest = (digest ^ UInt64(byte)) &* 0x100_0000_01b3 }
            try b.apply(replies)
            try a.apply(replies)
        }
        return (digest, b.key)
    }

    /// Copies of both engines taken mid-run (searches open, cache filled, passes built) finish
    /// with the same bitmaps and key as the originals, although the originals ran to the end
    /// first: a copy shares no mutable state.
    @Test(arguments: [(20_000, 0.03, 9), (70_001, 0.06, 40), (4_099, 0.02, 3)])
    func copiesMidRunFinishLikeTheOriginals(n: Int, qber: Double, forkStep: Int) throws {
        var g = TestRNG(state: UInt64(n) &+ 5)
        let alice = randomBits(n, &g)
        var bob = alice
        for i in 0..<n where Double(g.next() >> 11) * 0x1p-53 < qber { bob.flip(i) }
        let plan = ReconciliationSchedule.improved.schedule(qber: qber, keyBits: n)
        let seed = (0..<32).map { UInt8($0) }
        var a = try CascadeEngine(role: .alice, key: alice, schedule: plan, seed: seed)
        var b = try CascadeEngine(role: .bob, key: bob, schedule: plan, seed: seed)
        for _ in 0..<forkStep where a.pending != .done {
            let replies = try b.replies(to: a.parities())
            try b.apply(replies)
            try a.apply(replies)
        }
        try #require(a.pending != .done, "the fork point must lie inside the run")
        var a2 = a, b2 = b
        let (d1, k1) = try Self.finish(&a, &b)
        let (d2, k2) = try Self.finish(&a2, &b2)
        #expect(k1 == alice && k2 == alice)
        #expect(d1 == d2)
        #expect(a.steps == a2.steps && b.corrections == b2.corrections && a.corrections == b.corrections)
    }

    /// Replies that are not Bob's (random bits, as a tampering peer could send) either reconcile
    /// to some key or end in `pp.inconsistent` (a bit corrected twice), never a crash; over
    /// these seeds at least one run hits the typed error.
    @Test func randomRepliesGiveTypedErrors() throws {
        var inconsistent = 0
        for seed in UInt64(1)...12 {
            var g = TestRNG(state: seed &* 0x9e37_79b9)
            let n = 3_000 + Int(seed) * 101
            let key = randomBits(n, &g)
            let plan = ReconciliationSchedule.improved.schedule(qber: 0.05, keyBits: n)
            for role in [CascadeEngine.Role.alice, .bob] {
                var e = try CascadeEngine(role: role, key: key, schedule: plan, seed: (0..<32).map { UInt8(truncatingIfNeeded: $0 &+ Int(seed)) })
                do {
                    while e.pending != .done && e.steps < 4096 {
                        let count = e.parities().count
                        var replies = BitVector(count: 0)
                        // Mostly zeros: a dense random reply would open every block at once.
                        for _ in 0..<count { replies.append(g.next() % 7 == 0) }
                        try e.apply(replies)
                    }
                } catch let error as QKDError {
                    #expect(error == QKDError(.ppInconsistent))
                    inconsistent += 1
                }
                e.wipe()
            }
        }
        #expect(inconsistent > 0)
    }

    /// A reply bitmap of the wrong length is `pp.inconsistent`, at a new pass and mid-bisection,
    /// and leaves the engine usable for the right one.
    @Test func wrongReplyCountIsRefused() throws {
        var g = TestRNG(state: 4)
        let n = 10_000
        let alice = randomBits(n, &g)
        var bob = alice
        for i in stride(from: 0, to: n, by: 97) { bob.flip(i) }
        let plan = ReconciliationSchedule.improved.schedule(qber: 0.01, keyBits: n)
        let seed = [UInt8](repeating: 7, count: 32)
        var a = try CascadeEngine(role: .alice, key: alice, schedule: plan, seed: seed)
        var b = try CascadeEngine(role: .bob, key: bob, schedule: plan, seed: seed)
        var sawBisect = false
        while a.pending != .done {
            if a.pending == .bisect { sawBisect = true }
            let parities = a.parities()
            let replies = try b.replies(to: parities)
            var long = replies
            long.append(false)
            #expect(throws: QKDError(.ppInconsistent)) { try a.apply(long) }
            #expect(throws: QKDError(.ppInconsistent)) { _ = try b.replies(to: long) }
            try b.apply(replies)
            try a.apply(replies)
        }
        #expect(sawBisect)
        #expect(b.key == alice)
    }
    /// The C step against the Swift engine it replaced (``ReferenceCascadeEngine``), both sides,
    /// every bitmap, over random keys: sizes around word and block edges, QBERs from 0.5% to
    /// 11%, the improved and original schedules and odd explicit plans (non-powers of two,
    /// blocks of 1 bit and of the whole key, two-block passes at different sizes).
    @Test(arguments: 0..<32)
    func matchesTheSwiftReference(index: Int) throws {
        var g = TestRNG(state: UInt64(index) &* 0x2545_f491_4f6c_dd1d &+ 1)
        // Multiples of 128 split two-block passes on a word boundary (the half mask and the
        // scatter then meet at whole words); the other sizes do not.
        let sizes = [1, 2, 63, 64, 65, 1000, 4097, 20_000, 33_333, 16_384, 32_768, 65_536]
        let random = 500 + Int(g.next() % 30_000)
        let n = index < sizes.count ? sizes[index] : index % 4 != 1 ? random & ~127 : random
        let qber = [0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.11][index % 7]
        let alice = randomBits(n, &g)
        var bob = alice
        for i in 0..<n where Double(g.next() >> 11) * 0x1p-53 < qber { bob.flip(i) }
        let plan: CascadeSchedule
        switch index % 4 {
        case 0: plan = ReconciliationSchedule.improved.schedule(qber: qber, keyBits: n)
        case 1: plan = ReconciliationSchedule.leastLeakage.schedule(qber: qber, keyBits: n)
        case 2: plan = ReconciliationSchedule.original.schedule(qber: qber, keyBits: n)
        default:
            let half = max(1, (n + 1) / 2)
            // Two-block passes early (they then find errors: searches and flips in passes
            // arranged late), a non-power of two, 1-bit blocks, one block of the whole key.
            plan = CascadeSchedule(blockSizes: [max(1, min(n, 3 + Int(g.next() % 40))), half, max(1, min(n, 97)), half, max(1, half - 1), 1, max(1, n), half])
        }
        let seed = (0..<32).map { _ in UInt8(truncatingIfNeeded: g.next()) }
        var a = try CascadeEngine(role: .alice, key: alice, schedule: plan, seed: seed)
        var b = try CascadeEngine(role: .bob, key: bob, schedule: plan, seed: seed)
        var ra = try ReferenceCascadeEngine(role: .alice, key: alice, schedule: plan, seed: seed)
        var rb = try ReferenceCascadeEngine(role: .bob, key: bob, schedule: plan, seed: seed)
        while ra.pending != .done {
            let parities = a.parities(), reference = ra.parities()
            try #require(parities == reference, "step \(ra.steps): Alice's parities differ")
            let replies = try b.replies(to: parities), referenceReplies = try rb.replies(to: reference)
            try #require(replies == referenceReplies, "step \(ra.steps): Bob's replies differ")
            try b.apply(replies)
            try a.apply(replies)
            try rb.apply(referenceReplies)
            try ra.apply(referenceReplies)
        }
        #expect(a.pending == .done && b.pending == .done)
        #expect(b.key == rb.key && a.key == alice)
        #expect(a.steps == ra.steps && a.disclosedParities == ra.disclosedParities)
        #expect(a.corrections == ra.corrections && b.corrections == rb.corrections)
    }
}
