import Foundation
import QKDCrypto
import QKDKeyPool
import QKDNode
import QKDSession
import Testing

/// The node's authentication granularity (issue 6): per-round rounds really use the two pads
/// per direction of Spec/session.md section 6, per-frame rounds one pad per frame
/// (Spec/quantum-link.md section 5.5), and both give the same keys on both sides.
@Suite struct GranularityTests {
    struct Run {
        var alice: [RoundReport]
        var bob: [RoundReport]
        /// Every pad bit Alice used (her tags and Bob's she verified), from the node's counter.
        var padBitsTotal: Double
        /// Both pools hold the same pad streams and consumer keys.
        var poolsAgree: Bool
    }

    static func run(_ granularity: AuthenticationGranularity, rounds: Int = 3, syncs: Bool = false) async throws -> Run {
        let dir = TempDir()
        // Per-frame rounds of 40 000 pulses use more pads (~2.4 KB) than they distil (~0.85 KB):
        // a PSK large enough for every round of the run.
        let (pa, pb, _) = try makePools(dir, pskBytes: 1 << 17)
        defer { pa.close(); pb.close() }
        let metrics = TestMetrics()
        let classical = Switchboard("classical"), quantum = Switchboard("quantum")
        var ca = nodeConfiguration(.alice, rounds: rounds, metrics: metrics), cb = nodeConfiguration(.bob, rounds: rounds, metrics: metrics)
        ca.granularity = granularity
        cb.granularity = granularity
        // No watermark sync in these few rounds (its threshold is a quarter of the target
        // level): a sync frame Alice sends just before a round would land in that round's count.
        if !syncs {
            ca.refillPolicy = RefillPolicy(roundsAhead: 64)
            cb.refillPolicy = ca.refillPolicy
        }
        let alice = try QKDLinkNode(configuration: ca, pool: pa, links: links(.alice, classical, quantum))
        let bob = try QKDLinkNode(configuration: cb, pool: pb, links: links(.bob, classical, quantum))
        let (ea, eb) = try await runPair(alice: alice, bob: bob)
        let ka = try await alice.fetchKeys(count: 1 << 20), kb = try await bob.fetchKeys(count: 1 << 20)
        let la = pa.streamLengths(), lb = pb.streamLengths()
        return Run(alice: ea.compactMap { $0.finishedReport }, bob: eb.compactMap { $0.finishedReport },
                   padBitsTotal: metrics.counter("qkd_node_pad_bits_used", role: "alice"),
                   poolsAgree: la.outbound == lb.inbound && la.inbound == lb.outbound && la.outbound > 0 && ka.map(hex) == kb.map(hex))
    }

    static let padBits = 8 * MACSuite.padByteCount

    @Test func perRoundUsesTwoPadsPerDirectionPerRound() async throws {
        let r = try await Self.run(.perRound)
        #expect(r.alice.count == 3 && r.bob.count == 3)
        #expect(r.poolsAgree)
        // Spec/session.md section 6: a closing tag and a roundVerified per direction, whatever
        // the number of frames: 4 pads per round as seen by one node (its own two and the
        // peer's two it verified).
        for (a, b) in zip(r.alice, r.bob) {
            #expect(a.padBitsUsed == 4 * Self.padBits, "round \(a.roundID): \(a.padBitsUsed / Self.padBits) pads")
            #expect(b.padBitsUsed == 4 * Self.padBits, "round \(b.roundID): \(b.padBitsUsed / Self.padBits) pads")
            // The round had many frames: per-round tags really replaced per-frame ones.
            #expect(a.summary.messagesSent + b.summary.messagesSent > 4)
        }
    }

    @Test func perFrameUsesOnePadPerFrame() async throws {
        let r = try await Self.run(.perFrame)
        #expect(r.alice.count == 3 && r.bob.count == 3)
        #expect(r.poolsAgree)
        // Spec/quantum-link.md section 5.5: roundStart, every post-processing message of both
        // sides, and one roundClosed per direction each carry a tag.
        for (a, b) in zip(r.alice, r.bob) {
            let frames = 1 + a.summary.messagesSent + b.summary.messagesSent + 2
            #expect(a.padBitsUsed == frames * Self.padBits, "round \(a.roundID): \(a.padBitsUsed / Self.padBits) pads for \(frames) frames")
            #expect(a.summary.finalBits == b.summary.finalBits)
            // Bob's window opens at roundStart's delivery (its tag already verified) and closes
            // at his own absorb: at most one pad off Alice's.
            #expect(abs(b.padBitsUsed - a.padBitsUsed) <= Self.padBits, "round \(b.roundID): Bob \(b.padBitsUsed / Self.padBits) pads, Alice \(a.padBitsUsed / Self.padBits)")
        }
    }

    @Test func perRoundCostsFewerPadsThanPerFrame() async throws {
        let frame = try await Self.run(.perFrame), round = try await Self.run(.perRound)
        #expect(frame.alice.count == 3 && round.alice.count == 3)
        #expect(round.padBitsTotal < frame.padBitsTotal)
        #expect(round.alice.reduce(0) { $0 + $1.padBitsUsed } < frame.alice.reduce(0) { $0 + $1.padBitsUsed })
    }

    /// Per-frame rounds use pads fast enough to trigger a watermark sync after nearly every
    /// round, and Alice's per-frame roundStart right after her sync may be verified by Bob's
    /// session before his node applies the sync (Spec/quantum-link.md section 5.5).
    @Test func perFrameRoundsSurviveWatermarkSyncs() async throws {
        let r = try await Self.run(.perFrame, rounds: 4, syncs: true)
        #expect(r.alice.count == 4 && r.bob.count == 4)
        #expect(r.poolsAgree)
    }

    @Test func mismatchedGranularitiesFailTheHandshake() async throws {
        let dir = TempDir()
        let (pa, pb, _) = try makePools(dir)
        defer { pa.close(); pb.close() }
        let classical = Switchboard("classical"), quantum = Switchboard("quantum")
        var ca = nodeConfiguration(.alice, rounds: 1), cb = nodeConfiguration(.bob, rounds: 1)
        ca.granularity = .perRound
        cb.granularity = .perFrame
        ca.maxReconnectAttempts = 1
        cb.maxReconnectAttempts = 1
        let alice = try QKDLinkNode(configuration: ca, pool: pa, links: links(.alice, classical, quantum))
        let bob = try QKDLinkNode(configuration: cb, pool: pb, links: links(.bob, classical, quantum))
        await #expect(throws: (any Error).self) { _ = try await runPair(alice: alice, bob: bob) }
        #expect(try pa.status().roundsAbsorbed == 0)
        #expect(try pb.status().roundsAbsorbed == 0)
    }
}
