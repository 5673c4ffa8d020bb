import Foundation
import QKDCrypto
import QKDKeyPool
@testable import QKDNode
import QKDPostProcessing
import Testing

/// The node payload codec (Spec/quantum-link.md section 5) and the schedule Alice's
/// `roundStart` names (section 5.1).
@Suite struct NodeMessageTests {
    @Test(arguments: [ReconciliationSchedule.improved, .leastLeakage, .original])
    func roundStartCarriesTheSchedule(schedule: ReconciliationSchedule) throws {
        let m = NodeMessage.roundStart(id: 0x0102_0304_0506_0708, slotCount: 70_000, deliverable: true, schedule: schedule)
        let bytes = m.encoded
        // kind, u64 id, u32 slots, u8 deliverable, u8 schedule (section 5's table).
        #expect(bytes.count == 1 + 8 + 4 + 1 + 1)
        #expect(bytes.last == [ReconciliationSchedule.improved: UInt8(0), .leastLeakage: 1, .original: 2][schedule])
        #expect(try NodeMessage(decoding: bytes) == m)
    }

    @Test func unknownScheduleOrShortRoundStartIsMalformed() throws {
        var bytes = NodeMessage.roundStart(id: 9, slotCount: 1, deliverable: false, schedule: .improved).encoded
        for code: UInt8 in [3, 0x80, 0xff] {
            bytes[bytes.count - 1] = code
            #expect(throws: QKDError(.nodeMalformed)) { try NodeMessage(decoding: bytes) }
        }
        // The former 14-byte roundStart (no schedule byte) is short now, not silently improved.
        #expect(throws: QKDError(.nodeMalformed)) { try NodeMessage(decoding: Array(bytes.dropLast())) }
        #expect(throws: QKDError(.nodeMalformed)) { try NodeMessage(decoding: bytes.dropLast() + [0, 0]) }
    }

    /// Alice runs `leastLeakage`, Bob's own configuration says `improved`: Bob must reconcile
    /// with the schedule Alice's roundStart names. Had he used his own, the two engines would
    /// expect different parity counts at the first Cascade step and every round would abort.
    @Test func bobFollowsTheScheduleAliceNames() async throws {
        let dir = TempDir()
        let (pa, pb, _) = try makePools(dir)
        defer { pa.close(); pb.close() }
        let classical = Switchboard("classical"), quantum = Switchboard("quantum")
        var ca = nodeConfiguration(.alice, rounds: 2)
        ca.postProcessing.reconciliation = .leastLeakage
        let cb = nodeConfiguration(.bob, rounds: 2)
        #expect(cb.postProcessing.reconciliation == .improved)
        let alice = try QKDLinkNode(configuration: ca, pool: pa, links: links(.alice, classical, quantum))
        let bob = try QKDLinkNode(configuration: cb, pool: pb, links: links(.bob, classical, quantum))
        let (ea, eb) = try await runPair(alice: alice, bob: bob)
        let ra = ea.compactMap { $0.finishedReport }, rb = eb.compactMap { $0.finishedReport }
        #expect(ra.count == 2 && rb.count == 2, "rounds aborted: \(ea) / \(eb)")
        #expect(ra.map(\.summary.finalBits) == rb.map(\.summary.finalBits))
        #expect(ra.map(\.summary.roundTrips) == rb.map(\.summary.roundTrips))
        let ka = try await alice.fetchKeys(count: 1 << 20), kb = try await bob.fetchKeys(count: 1 << 20)
        #expect(!ka.isEmpty && ka.map(\.id) == kb.map(\.id))
        #expect(ka.map(hex) == kb.map(hex))
    }
}
