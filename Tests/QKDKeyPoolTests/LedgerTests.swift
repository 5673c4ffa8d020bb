import Foundation
import GRDB
import QKDCrypto
import Testing
@testable import QKDKeyPool
#if canImport(Glibc)
import Glibc
#endif

/// DESIGN.md invariant 4: every bit is accounted for, and `pool verify` notices when not.
@Suite struct LedgerTests {
    @Test func ledgerReconcilesAfterAMixOfOperations() throws {
        let dir = TempDir()
        var (alice, _) = try makePair(dir, pskBytes: 2000, configuration: .init(chunkPads: 16))
        let policy = RefillPolicy(padBytesPerRound: 256, roundsAhead: 2, reserveBytes: 512, newHashKeys: true, consumerKeyBytes: 48)
        var produced = 2000
        for round in UInt64(1)...4 {
            let n = 3000 + Int(round) * 111
            try alice.absorbDistilledKey(roundID: round, bytes: testSecret(n, seed: round), policy: policy)
            produced += n
            _ = try drain(alice, .outbound, pads: 7)
            _ = try drain(alice, .inbound, pads: 3)
        }
        #expect(throws: QKDError(.roundAlreadyAbsorbed)) { try alice.absorbDistilledKey(roundID: 2, bytes: testSecret(99, seed: 0), policy: policy) }
        let delivered = try alice.deliverConsumerKeys(count: 5)
        try alice.discardConsumerKeys(ids: Array(try alice.deliverConsumerKeys(count: 0).map(\.id)))  // no-op
        let available = try alice.status().consumerKeys["available"]!
        let toDiscard = try alice.deliverConsumerKeys(count: 2)  // delivered too
        #expect(throws: QKDError(.consumerKeyUnavailable)) { try alice.discardConsumerKeys(ids: [toDiscard[0].id]) }
        #expect(throws: QKDError(.consumerKeyUnavailable)) { try alice.deliverConsumerKeys(ids: [delivered[0].id]) }
        let w = alice.watermarks()
        try alice.advance(to: Watermarks(outbound: w.outbound + 64, inbound: w.inbound))
        // Restart: unserved pads of the open chunks are wasted, still accounted for.
        alice.close()
        alice = try KeyPool.open(directory: dir.sub("alice"))
        _ = try drain(alice, .outbound, pads: 2)

        let status = try alice.status()
        let l = status.ledger
        #expect(l.reconciles)
        #expect(l.produced == produced)
        #expect(l.delivered == 7 * 48)
        #expect(status.consumerKeys["available"] == available - 2)
        #expect(l.padSkipped["a2b"] == 64)
        #expect(l.toHashKeys == 32 * 5)  // PSK + 4 rounds.
        #expect(UInt64(l.padReserved["a2b"]! + l.padSkipped["a2b"]!) == alice.watermarks().outbound)
        #expect(try PoolVerifier.verify(directory: alice.directory).isEmpty)
    }

    @Test func hashKeyEpochsRotateCountUsesAndWipeOldKeys() throws {
        let dir = TempDir()
        let (alice, _) = try makePair(dir)
        #expect(try alice.currentHashKey(direction: .outbound)?.epoch == 1)  // From the PSK.
        try alice.recordHashKeyUses(direction: .outbound, epoch: 1, count: 5)
        #expect(try alice.currentHashKey(direction: .outbound)?.uses == 5)
        #expect(try alice.currentHashKey(direction: .inbound)?.uses == 0)
        let policy = RefillPolicy(padBytesPerRound: 0, roundsAhead: 0, reserveBytes: 0, newHashKeys: true, consumerKeyBytes: 32)
        for round in UInt64(1)...3 { try alice.absorbDistilledKey(roundID: round, bytes: testSecret(64, seed: round), policy: policy) }
        #expect(try alice.currentHashKey(direction: .outbound)?.epoch == 4)
        let kept = try alice.db.read { try Int.fetchAll($0, sql: "SELECT DISTINCT epoch FROM hash_key WHERE key IS NOT NULL ORDER BY epoch") }
        #expect(kept == [3, 4])  // The previous epoch stays for tags in flight; older keys are wiped.
        #expect(try PoolVerifier.verify(directory: alice.directory).isEmpty)
    }

    @Test func verifyReportsBrokenInvariants() throws {
        let dir = TempDir()
        let (alice, _) = try makePair(dir)
        try alice.absorbDistilledKey(roundID: 1, bytes: testSecret(30_000, seed: 1), policy: RefillPolicy())
        _ = try drain(alice, .outbound, pads: 2)
        #expect(try PoolVerifier.verify(directory: alice.directory).isEmpty)
        // A watermark moved backward behind the ledger's back (a restored old copy, say).
        try alice.db.write { try $0.execute(sql: "UPDATE stream SET watermark = 0 WHERE name = 'a2b'") }
        var violations = try PoolVerifier.verify(directory: alice.directory)
        #expect(violations.contains { $0.contains("watermark") })
        try alice.db.write { try $0.execute(sql: "UPDATE stream SET watermark = ? WHERE name = 'a2b'", arguments: [Int64(alice.watermarks().outbound)]) }
        #expect(try PoolVerifier.verify(directory: alice.directory).isEmpty)
        // A delivered key that still holds bytes.
        try alice.db.write { try $0.execute(sql: "UPDATE consumer_key SET state = 'delivered' WHERE round = 1 AND idx = 0") }
        violations = try PoolVerifier.verify(directory: alice.directory)
        #expect(violations.contains { $0.contains("still hold bytes") })
        #expect(violations.contains { $0.contains("delivered keys total") })
        // A PSK record removed (its material could be imported again).
        try alice.db.write { try $0.execute(sql: "DELETE FROM psk") }
        violations = try PoolVerifier.verify(directory: alice.directory)
        #expect(violations.contains { $0.contains("no PSK record") })
    }

    @Test func deliveryByCountIsOldestFirstAcrossIdAndOutOfOrderRounds() throws {
        let dir = TempDir()
        let (alice, _) = try makePair(dir, pskBytes: 64)
        let policy = RefillPolicy(padBytesPerRound: 0, roundsAhead: 0, reserveBytes: 0, consumerKeyBytes: 16)
        let r5 = try alice.absorbDistilledKey(roundID: 5, bytes: testSecret(16 * 6, seed: 5), policy: policy).consumerKeyIDs
        #expect(try alice.deliverConsumerKeys(count: 2).map(\.id) == Array(r5[0..<2]))
        #expect(try alice.deliverConsumerKeys(ids: [r5[3]]).map(\.id) == [r5[3]])  // The peer asked for this one.
        let r2 = try alice.absorbDistilledKey(roundID: 2, bytes: testSecret(16 * 2, seed: 2), policy: policy).consumerKeyIDs
        // Round 2 is older than the cursor: it comes first; r5[3] is skipped, not delivered twice.
        #expect(try alice.deliverConsumerKeys(count: 10).map(\.id) == r2 + [r5[2], r5[4], r5[5]])
        #expect(try alice.deliverConsumerKeys(count: 10).isEmpty)
        #expect(throws: QKDError(.consumerKeyUnavailable)) { try alice.deliverConsumerKeys(ids: [UUID()]) }
        #expect(try PoolVerifier.verify(directory: alice.directory).isEmpty)
    }

    @Test func deliveredKeysAreWipedFromStorage() throws {
        let dir = TempDir()
        let (alice, _) = try makePair(dir)
        try alice.absorbDistilledKey(roundID: 1, bytes: testSecret(30_000, seed: 5), policy: RefillPolicy(consumerKeyBytes: 64))
        let keys = try alice.deliverConsumerKeys(count: 3)
        #expect(keys.count == 3)
        alice.close()
        // No 16-byte window of a delivered key remains anywhere in the state directory's files.
        var files: [UInt8] = []
        for name in StateDirectory.databaseFiles {
            if let d = FileManager.default.contents(atPath: (dir.sub("alice") as NSString).appendingPathComponent(name)) { files += Array(d) }
        }
        #expect(files.count > 0)
        for key in keys {
            let probe = key.bytes.withUnsafeBytes { Array($0.prefix(16)) }
            let found = (0...(files.count - probe.count)).contains { i in files[i] == probe[0] && Array(files[i..<(i + 16)]) == probe }
            #expect(!found, "delivered key \(key.id) still on disk")
        }
    }
}
