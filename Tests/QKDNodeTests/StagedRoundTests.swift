import Foundation
import QKDCrypto
import QKDKeyPool
import QKDNode
import Testing

/// Regression for the kill -9 test (ReliabilityTests): a node killed after it sent its round's
/// closing tag but before it verified the peer's (or during its own absorb) lost the round's
/// key, which lived only in memory, while the peer had absorbed it; on restart the `hello`
/// exchange stopped the link for ever with `node.pool-diverged`. The node now stages the key
/// durably in the pool before its closing tag leaves and settles it from there after a restart.
@Suite struct StagedRoundTests {
    private static func randomKey(_ seed: UInt64, bytes: Int = 2048) -> SecretBytes {
        var random = DeterministicRandomSource(seed: seed)
        return SecretBytes(count: bytes) { random.fill($0) }
    }

    @Test func aStagedRoundSurvivesReopeningAndClears() throws {
        let dir = TempDir()
        let (pa, pb, _) = try makePools(dir)
        pa.close()
        #expect(try pb.stagedRound() == nil)
        let key = Self.randomKey(1)
        try pb.stageRound(roundID: 4, key: key, deliverable: true)
        try pb.stageRound(roundID: 5, key: key, deliverable: false)  // replaces round 4
        pb.close()
        let reopened = try KeyPool.open(directory: dir.sub("bob"))
        defer { reopened.close() }
        let staged = try #require(try reopened.stagedRound())
        #expect(staged.roundID == 5 && !staged.deliverable)
        #expect(staged.key.withUnsafeBytes { Array($0) } == key.withUnsafeBytes { Array($0) })
        #expect(try PoolVerifier.verify(directory: dir.sub("bob")).isEmpty)
        try reopened.clearStagedRound()
        #expect(try reopened.stagedRound() == nil)
    }

    /// Alice absorbed round 1; Bob staged it and "crashed" (a new node object on the same pool,
    /// nothing in memory). The link resumes, Bob absorbs round 1 from staging, and both pools
    /// hold the same consumer keys.
    @Test func aRoundStagedBeforeACrashIsAbsorbedWhenThePeerAcceptedIt() async throws {
        let dir = TempDir()
        let (pa, pb, _) = try makePools(dir)
        defer { pa.close(); pb.close() }
        let key = Self.randomKey(2)
        _ = try pa.absorbDistilledKey(roundID: 1, bytes: key, policy: RefillPolicy())
        try pb.stageRound(roundID: 1, key: key, deliverable: true)
        try await runOneRoundAndCompare(pa, pb)
        #expect(try pb.lastAbsorbedRoundID() == 2 && pa.lastAbsorbedRoundID() == 2)
        #expect(try pb.stagedRound() == nil && pa.stagedRound() == nil)
    }

    /// Bob staged round 1 but Alice never absorbed it: Bob discards it, and the link goes on.
    @Test func aStagedRoundThePeerNeverAcceptedIsDiscarded() async throws {
        let dir = TempDir()
        let (pa, pb, _) = try makePools(dir)
        defer { pa.close(); pb.close() }
        try pb.stageRound(roundID: 1, key: Self.randomKey(3), deliverable: true)
        try await runOneRoundAndCompare(pa, pb)
        #expect(try pb.stagedRound() == nil)
        #expect(try pa.lastAbsorbedRoundID() == pb.lastAbsorbedRoundID())
    }

    private func runOneRoundAndCompare(_ pa: KeyPool, _ pb: KeyPool) async throws {
        let classical = Switchboard("classical"), quantum = Switchboard("quantum")
        let alice = try QKDLinkNode(configuration: nodeConfiguration(.alice, rounds: 1), pool: pa, links: links(.alice, classical, quantum))
        let bob = try QKDLinkNode(configuration: nodeConfiguration(.bob, rounds: 1), pool: pb, links: links(.bob, classical, quantum))
        let (ea, eb) = try await runPair(alice: alice, bob: bob)
        #expect(ea.compactMap { $0.finishedReport }.count == 1, "alice: \(ea)")
        if case .closed(nil)? = eb.last {} else { Issue.record("Bob should end with a graceful close, got \(String(describing: eb.last))") }
        let ka = try await alice.fetchKeys(count: 10_000), kb = try await bob.fetchKeys(count: 10_000)
        #expect(!ka.isEmpty)
        #expect(ka.map(\.id) == kb.map(\.id))
        #expect(ka.map(hex) == kb.map(hex))
    }
}
