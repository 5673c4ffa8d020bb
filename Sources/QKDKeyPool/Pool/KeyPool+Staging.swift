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

extension QKDError.Code {
    /// The pool's staged round breaks its invariants (Spec/quantum-link.md section 5.3): its id
    /// is not above the last absorbed round, or its key bytes are missing or of an impossible
    /// size. The database was altered or damaged.
    public static let stagedRoundCorrupt = QKDError.Code("keypool.staged-round-corrupt")
}

extension KeyPool {
    /// Durably stages a round's distilled key before this side sends its closing tag.
    ///
    /// Why: the peer absorbs a round as soon as it verifies this side's closing tag. If this
    /// process dies before it verifies the peer's tag (or during its own absorb), a key held
    /// only in memory is lost and the two pools differ for ever. With the key staged first, a
    /// restarted node finds it and absorbs it when the peer's `hello` says the peer accepted
    /// the round (Spec/quantum-link.md section 5.3). At most one round is staged; staging
    /// replaces an older one; absorbing a round removes its staging in the same transaction, so
    /// a staged round's id is always above the last absorbed round (``PoolVerifier`` checks
    /// it). The staged key is pool material at rest (DESIGN.md invariant 5): the file is
    /// owner-only, and ``clearStagedRound()`` wipes it from the database and the WAL.
    /// - Parameters:
    ///   - roundID: the round id, above ``lastAbsorbedRoundID()``.
    ///   - key: the round's distilled key, 1 to ``maximumDistilledKeyBytes`` bytes.
    ///   - deliverable: whether its consumer keys may be delivered.
    /// - Throws: ``QKDError/Code/roundAlreadyAbsorbed`` if `roundID` is not above the last
    ///   absorbed round; ``QKDError/Code/invalidPolicy`` for an empty or oversized key; a
    ///   storage error. Nothing is staged on error.
    public func stageRound(roundID: UInt64, key: SecretBytes, deliverable: Bool) throws {
        guard (1...Self.maximumDistilledKeyBytes).contains(key.count) else {
            throw QKDError(.invalidPolicy, "a staged round key must have 1 to \(Self.maximumDistilledKeyBytes) bytes, got \(key.count)")
        }
        do {
            try db.write { db in
                if let last = try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM round"), Int64(bitPattern: roundID) <= last {
                    throw QKDError(.roundAlreadyAbsorbed, "round \(roundID) cannot be staged: round \(last) was absorbed already, and round ids only grow")
                }
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
    /// - Throws: ``QKDError/Code/stagedRoundCorrupt`` if its key bytes are missing or of an
    ///   impossible size; a storage error.
    public func stagedRound() throws -> StagedRound? {
        do {
            return try db.read { db -> StagedRound? in
                guard try db.tableExists("staged_round"),
                      let row = try Row.fetchOne(db, sql: "SELECT round, deliverable, key FROM staged_round WHERE slot = 0") else { return nil }
                let roundID = UInt64(bitPattern: row[0])
                let key = try row.withUnsafeData(atIndex: 2) { data -> SecretBytes in
                    guard let data, (1...Self.maximumDistilledKeyBytes).contains(data.count) else {
                        throw QKDError(.stagedRoundCorrupt, "the staged round \(roundID) has \(data.map { "\($0.count)" } ?? "no") key bytes: the pool was altered or damaged; run 'qkd-node pool verify', then restore the state directory from a backup taken while the node was stopped")
                    }
                    return data.withUnsafeBytes { SecretBytes(copying: $0) }
                }
                return StagedRound(roundID: roundID, deliverable: row[1], key: key)
            }
        } catch {
            throw storageError(error, "reading the staged round")
        }
    }

    /// Removes the staged round (absorbed or discarded) and wipes its key: the row's cells are
    /// zeroed by `secure_delete` (on for every pool connection, PoolSchema.open), and a
    /// truncating checkpoint then moves the zeroed pages into the database file and empties the
    /// WAL, whose older page images still held the key (the same scrub as consumer-key
    /// delivery). If another process holds a read transaction past the busy timeout the
    /// checkpoint is left to the next clear or delivery (the delete itself is committed).
    /// - Throws: a storage error.
    public func clearStagedRound() throws {
        do {
            let removed = try db.write { db -> Bool in
                guard try db.tableExists("staged_round") else { return false }
                try db.execute(sql: "DELETE FROM staged_round")
                return db.changesCount > 0
            }
            if removed {
                do {
                    try db.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
                } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED {
                    // Another process held a read transaction past the busy timeout: the row is
                    // deleted and zeroed in the database pages; its old page images leave the
                    // WAL at the next truncating checkpoint (the next clear or key delivery).
                }
            }
        } catch {
            throw storageError(error, "clearing the staged round")
        }
    }

    /// Drops the staging of `roundID` (and of any older round) inside the transaction that
    /// absorbs it: the key is then pool material, and the staged id stays above the last
    /// absorbed round even if the process dies right after the absorb.
    static func dropStagedRound(_ db: Database, through roundID: UInt64) throws {
        guard try db.tableExists("staged_round") else { return }
        try db.execute(sql: "DELETE FROM staged_round WHERE round <= ?", arguments: [Int64(bitPattern: roundID)])
    }

    private static func createStagingTable(_ db: Database) throws {
        try db.execute(sql: "CREATE TABLE IF NOT EXISTS staged_round (slot INTEGER PRIMARY KEY CHECK (slot = 0), round INTEGER NOT NULL, deliverable INTEGER NOT NULL, key BLOB NOT NULL)")
    }

    /// The staged round's invariants, for ``PoolVerifier``: at most one row, an id above the
    /// last absorbed round, a 0/1 deliverable flag, and 1 to ``maximumDistilledKeyBytes`` key
    /// bytes.
    /// - Returns: one ``QKDError/Code/stagedRoundCorrupt`` error per violation.
    static func stagedRoundViolations(_ db: Database) throws -> [QKDError] {
        guard try db.tableExists("staged_round") else { return [] }
        var out: [QKDError] = []
        func corrupt(_ what: String) {
            out.append(QKDError(.stagedRoundCorrupt, "\(what): the pool was altered or damaged; restore the state directory from a backup taken while the node was stopped, or re-initialise the link"))
        }
        let last = try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM round")
        let rows = try Row.fetchAll(db, sql: "SELECT slot, round, deliverable, typeof(key), length(key) FROM staged_round")
        if rows.count > 1 { corrupt("\(rows.count) rounds are staged, at most one may be") }
        for row in rows {
            let round: Int64 = row[1], deliverable: Int64 = row[2], type: String = row[3], length: Int64 = (row[4] as Int64?) ?? 0
            if (row[0] as Int64) != 0 { corrupt("the staged round sits in slot \(row[0] as Int64), not 0") }
            if round < 1 { corrupt("the staged round has id \(round)") }
            if let last, round <= last {
                corrupt("staged round \(round) is not above the last absorbed round \(last) (absorbing a round removes its staging in the same transaction)")
            }
            if deliverable != 0 && deliverable != 1 { corrupt("staged round \(round) has deliverable flag \(deliverable)") }
            if type != "blob" || !(1...Int64(maximumDistilledKeyBytes)).contains(length) {
                corrupt("staged round \(round) has \(type == "blob" ? "\(length) key bytes" : "a \(type) key"), expected 1 to \(maximumDistilledKeyBytes) bytes")
            }
        }
        return out
    }
}
