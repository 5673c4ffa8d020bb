import Foundation
import GRDB
public import QKDCrypto

/// A distilled round key held durably between the two sides' round authentications.
public struct StagedRound: Sendable {
    /// The round id.
    public let roundID: UInt64
    /// Whether the round's consumer keys may be delivered.
    public let deliverable: Bool
    /// The distilled key.
    public let key: SecretBytes
}

extension KeyPool {
    /// Durably stages a round's distilled key before this side sends its closing tag.
    ///
    /// Why: the peer absorbs a round as soon as it verifies this side's closing tag. If this
    /// process dies before it verifies the peer's tag (or during its own absorb), a key held
    /// only in memory is lost and the two pools differ for ever. With the key staged first, a
    /// restarted node finds it and absorbs it when the peer's `hello` says the peer accepted
    /// the round (Spec/quantum-link.md section 5.3). At most one round is staged; staging
    /// replaces an older one. The staged key is pool material at rest (DESIGN.md invariant 5:
    /// owner-only file, `secure_delete` wipes it when cleared).
    /// - Parameters:
    ///   - roundID: the round id.
    ///   - key: the round's distilled key.
    ///   - deliverable: whether its consumer keys may be delivered.
    /// - Throws: a storage error.
    public func stageRound(roundID: UInt64, key: SecretBytes, deliverable: Bool) throws {
        do {
            try db.write { db in
                try Self.createStagingTable(db)
                try key.withUnsafeBytes { raw in
                    // No copy: SQLite binds the bytes directly (as the consumer-key insert does).
                    try PoolSchema.withBlob(raw) { data in try db.execute(sql: "INSERT OR REPLACE INTO staged_round (slot, round, deliverable, key) VALUES (0, ?, ?, ?)",
                                   arguments: [Int64(bitPattern: roundID), deliverable, data]) }
                }
            }
        } catch {
            throw storageError(error, "staging round \(roundID)")
        }
    }

    /// The staged round, if any (see ``stageRound(roundID:key:deliverable:)``).
    /// - Returns: the staged round or nil.
    /// - Throws: a storage error.
    public func stagedRound() throws -> StagedRound? {
        do {
            return try db.read { db -> StagedRound? in
                guard try db.tableExists("staged_round"),
                      let row = try Row.fetchOne(db, sql: "SELECT round, deliverable, key FROM staged_round WHERE slot = 0") else { return nil }
                let key = try row.withUnsafeData(atIndex: 2) { data -> SecretBytes in
                    guard let data else { throw QKDError(.storageCorrupt, "the staged round has no key bytes") }
                    return data.withUnsafeBytes { SecretBytes(copying: $0) }
                }
                return StagedRound(roundID: UInt64(bitPattern: row[0]), deliverable: row[1], key: key)
            }
        } catch {
            throw storageError(error, "reading the staged round")
        }
    }

    /// Removes the staged round (absorbed or discarded).
    /// - Throws: a storage error.
    public func clearStagedRound() throws {
        do {
            try db.write { db in
                guard try db.tableExists("staged_round") else { return }
                try db.execute(sql: "DELETE FROM staged_round")
            }
        } catch {
            throw storageError(error, "clearing the staged round")
        }
    }

    private static func createStagingTable(_ db: Database) throws {
        try db.execute(sql: "CREATE TABLE IF NOT EXISTS staged_round (slot INTEGER PRIMARY KEY CHECK (slot = 0), round INTEGER NOT NULL, deliverable INTEGER NOT NULL, key BLOB NOT NULL)")
    }
}
