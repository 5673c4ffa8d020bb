import Foundation
import GRDB
import QKDCrypto
import QKDTestSupport
import Testing
@testable import QKDKeyPool

/// The staged round (KeyPool+Staging): its invariants as the verifier checks them, and the
/// wipe of its key when it is cleared (DESIGN.md invariant 5).
@Suite struct StagingTests {
    /// Every 32-byte window of `key` at offsets 0, 32, 64, ... that occurs in `files`.
    static func leakedWindows(of key: SecretBytes, in files: [String]) -> Int {
        let bytes = key.withUnsafeBytes { Array($0) }
        let contents = files.compactMap { FileManager.default.contents(atPath: $0) }
        var found = 0
        for start in stride(from: 0, through: bytes.count - 32, by: 32) {
            let window = Data(bytes[start..<(start + 32)])
            if contents.contains(where: { $0.range(of: window) != nil }) { found += 1 }
        }
        return found
    }

    static func files(_ pool: KeyPool) -> [String] {
        let db = StateDirectory.databasePath(pool.directory)
        return [db, db + "-wal", db + "-shm"]
    }

    /// Proves: after `clearStagedRound()` no 32-byte window of a staged key (a small one kept
    /// in its row, then a larger one on overflow pages that replaced it) is left in the
    /// database, its WAL or its shared-memory file, with the pool still open (a running node)
    /// and after closing it. The control: before the clear the same search finds the key, so
    /// the search can fail.
    @Test func clearingAStagedRoundLeavesNoKeyBytesInTheFiles() throws {
        let dir = TempDir()
        let (alice, bob) = try makePair(dir)
        bob.close()
        let small = testSecret(256, seed: 71), large = testSecret(12_288, seed: 72)
        try alice.stageRound(roundID: 1, key: small, deliverable: true)
        #expect(Self.leakedWindows(of: small, in: Self.files(alice)) > 0, "control: the staged key is in the files")
        try alice.stageRound(roundID: 2, key: large, deliverable: false)
        #expect(Self.leakedWindows(of: large, in: Self.files(alice)) > 0, "control: the staged key is in the files")
        try alice.clearStagedRound()
        #expect(try alice.stagedRound() == nil)
        #expect(Self.leakedWindows(of: small, in: Self.files(alice)) == 0, "the replaced staged key is still readable")
        #expect(Self.leakedWindows(of: large, in: Self.files(alice)) == 0, "the cleared staged key is still readable")
        alice.close()
        #expect(Self.leakedWindows(of: small, in: Self.files(alice)) + Self.leakedWindows(of: large, in: Self.files(alice)) == 0)
        #expect(try PoolVerifier.check(directory: alice.directory).isEmpty)
    }

    /// Proves: absorbing a round removes its staging in the same transaction (so a crash
    /// after the absorb cannot leave a staged id at or below the last absorbed round), and
    /// `stageRound` refuses an id that is not above the last absorbed round and impossible
    /// key sizes.
    @Test func absorbRemovesTheStagingAndStagingRefusesOldIds() throws {
        let dir = TempDir()
        let (alice, bob) = try makePair(dir)
        defer { alice.close(); bob.close() }
        let key = testSecret(2048, seed: 73)
        try alice.stageRound(roundID: 6, key: key, deliverable: true)
        _ = try alice.absorbDistilledKey(roundID: 6, bytes: key, policy: RefillPolicy())
        #expect(try alice.stagedRound() == nil, "the absorb dropped the staging")
        #expect(throws: QKDError(.roundAlreadyAbsorbed)) { try alice.stageRound(roundID: 6, key: key, deliverable: true) }
        #expect(throws: QKDError(.roundAlreadyAbsorbed)) { try alice.stageRound(roundID: 2, key: key, deliverable: true) }
        #expect(throws: QKDError(.invalidPolicy)) { try alice.stageRound(roundID: 7, key: SecretBytes(count: 0) { _ in }, deliverable: true) }
        try alice.stageRound(roundID: 7, key: key, deliverable: true)
        #expect(try alice.stagedRound()?.roundID == 7)
        #expect(try PoolVerifier.check(directory: alice.directory).isEmpty)
    }

    /// Proves: the verifier (and `qkd-node pool verify`, exit status 1) reports each broken
    /// invariant of the staged round with the typed `keypool.staged-round-corrupt` error: an id
    /// at or below the last absorbed round, an empty key, a key that is not a blob; and
    /// `stagedRound()` refuses to load a key of impossible size with the same code.
    @Test func theVerifierReportsACorruptStagedRound() async throws {
        try await offThePool {
            let dir = TempDir()
            let (alice, bob) = try makePair(dir)
            bob.close()
            let key = testSecret(1024, seed: 74)
            _ = try alice.absorbDistilledKey(roundID: 5, bytes: key, policy: RefillPolicy())
            try alice.stageRound(roundID: 8, key: key, deliverable: true)
            alice.close()
            #expect(try PoolVerifier.check(directory: alice.directory).isEmpty)

            func tamper(_ sql: String) throws {
                let db = try PoolSchema.open(path: StateDirectory.databasePath(alice.directory))
                try db.write { try $0.execute(sql: sql) }
                try db.close()
            }
            func stagedErrors() throws -> [QKDError] {
                try PoolVerifier.check(directory: alice.directory).filter { $0.code == .stagedRoundCorrupt }
            }

            try tamper("UPDATE staged_round SET round = 5")
            var errors = try stagedErrors()
            #expect(errors.count == 1 && errors.first?.detail.contains("not above the last absorbed round 5") == true, "\(errors)")
            #expect(try PoolVerifier.verify(directory: alice.directory).count == 1)
            if let binary = QKDNodeBinary.locate() {
                let r = try await QKDNodeBinary.run(binary, ["pool", "verify", "--state", alice.directory])
                #expect(r.status == 1 && r.stderr.contains("keypool.staged-round-corrupt"), "\(r)")
            }

            try tamper("UPDATE staged_round SET round = 9, key = x''")
            errors = try stagedErrors()
            #expect(errors.count == 1 && errors.first?.detail.contains("0 key bytes") == true, "\(errors)")
            let reopened = try KeyPool.open(directory: alice.directory)
            #expect(throws: QKDError(.stagedRoundCorrupt)) { try reopened.stagedRound() }
            reopened.close()

            try tamper("UPDATE staged_round SET key = 'text', deliverable = 7")
            errors = try stagedErrors()
            #expect(errors.count == 2, "a text key and a bad flag: \(errors)")
        }
    }
}
