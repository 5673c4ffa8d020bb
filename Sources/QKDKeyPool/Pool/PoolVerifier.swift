import Foundation
import GRDB
public import QKDCrypto

/// Offline checks of every invariant that can be checked from the state directory alone
/// (Spec/keypool.md, "Invariants"). Used by `qkd-node pool verify` and by the tests.
public enum PoolVerifier {
    /// Checks the pool in `directory`.
    /// - Parameter directory: the state directory.
    /// - Returns: one sentence per violation; empty if every check passes.
    /// - Throws: ``QKDError/Code/poolNotFound``, ``QKDError/Code/insecurePermissions``,
    ///   ``QKDError/Code/storageCorrupt`` when the pool cannot be opened at all.
    public static func verify(directory: String) throws -> [String] {
        try check(directory: directory).map(\.detail)
    }

    /// Checks the pool in `directory`, each violation as a typed error.
    /// - Parameter directory: the state directory.
    /// - Returns: one error per violation: ``QKDError/Code/stagedRoundCorrupt`` for the staged
    ///   round (KeyPool+Staging), ``QKDError/Code/invariantViolated`` for the rest; empty if
    ///   every check passes.
    /// - Throws: ``QKDError/Code/poolNotFound``, ``QKDError/Code/insecurePermissions``,
    ///   ``QKDError/Code/storageCorrupt`` when the pool cannot be opened at all.
    public static func check(directory: String) throws -> [QKDError] {
        try StateDirectory.checkExisting(directory)  // Invariant 5 at rest.
        let db: DatabaseQueue
        do { db = try PoolSchema.open(path: StateDirectory.databasePath(directory)) } catch { throw storageError(error, "opening the pool") }
        defer { try? db.close() }
        do {
            return try db.read { db -> [QKDError] in
                var v: [String] = []
                let integrity = try String.fetchAll(db, sql: "PRAGMA integrity_check")
                if integrity != ["ok"] { v.append("SQLite integrity_check failed: \(integrity.prefix(5).joined(separator: "; "))") }
                if try String.fetchOne(db, sql: "PRAGMA journal_mode") != "wal" { v.append("the database is not in WAL mode") }
                if try Int.fetchOne(db, sql: "PRAGMA synchronous") != 2 { v.append("synchronous is not FULL") }
                _ = try PoolSchema.readMeta(db)
                let t = try KeyPool.ledgerTotals(db)
                // Invariant 4: the ledger reconciles, and matches the tables.
                if !t.reconciles { v.append("ledger does not reconcile: \(t)") }
                for s in LinkStream.allCases {
                    let row = try PoolSchema.streamRow(db, s)
                    if !(row.synced <= row.watermark && row.watermark <= row.length) {
                        v.append("stream \(s): offsets out of order (synced \(row.synced), watermark \(row.watermark), length \(row.length))")
                    }
                    if row.length % 16 != 0 || row.watermark % 16 != 0 { v.append("stream \(s): length or watermark not a multiple of 16") }
                    if UInt64(t.toPadStream[s.rawValue] ?? 0) != row.length {
                        v.append("stream \(s): ledger credits \(t.toPadStream[s.rawValue] ?? 0) bytes but the stream is \(row.length) bytes long")
                    }
                    let spent = (t.padReserved[s.rawValue] ?? 0) + (t.padSkipped[s.rawValue] ?? 0)
                    if UInt64(spent) != row.watermark {
                        v.append("stream \(s): ledger has \(spent) bytes reserved or skipped but the watermark is \(row.watermark)")
                    }
                    // Every unreserved byte is still stored, contiguously, up to the end.
                    var cursor: UInt64? = nil
                    for seg in try Row.fetchAll(db, sql: "SELECT start, length(bytes) FROM pad_segment WHERE stream = ? ORDER BY start", arguments: [s.rawValue]) {
                        let start = UInt64(seg[0] as Int64), n = UInt64(seg[1] as Int64)
                        if let c = cursor, c != start { v.append("stream \(s): gap or overlap in stored pads at \(start)") }
                        if cursor == nil, start > row.watermark { v.append("stream \(s): pads \(row.watermark)..<\(start) are missing") }
                        cursor = start + n
                    }
                    if (cursor ?? row.watermark) != row.length && row.watermark != row.length {
                        v.append("stream \(s): stored pads end at \(cursor ?? 0), the stream at \(row.length)")
                    }
                }
                let hashBytes = try Int.fetchOne(db, sql: "SELECT COALESCE(SUM(length), 0) FROM hash_key") ?? 0
                if hashBytes != t.toHashKeys { v.append("hash keys hold \(hashBytes) bytes, the ledger \(t.toHashKeys)") }
                var byState: [String: Int] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT state, COALESCE(SUM(length), 0) FROM consumer_key GROUP BY state") { byState[row[0]] = row[1] }
                if byState.values.reduce(0, +) != t.toConsumer { v.append("consumer keys hold \(byState.values.reduce(0, +)) bytes, the ledger credits \(t.toConsumer)") }
                if (byState["delivered"] ?? 0) != t.delivered { v.append("delivered keys total \(byState["delivered"] ?? 0) bytes, the ledger \(t.delivered)") }
                if (byState["discarded"] ?? 0) != t.consumerDiscarded { v.append("discarded keys total \(byState["discarded"] ?? 0) bytes, the ledger \(t.consumerDiscarded)") }
                // Delivered and discarded keys keep no bytes; available keys keep exactly theirs.
                let leftovers = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM consumer_key WHERE state != 'available' AND key IS NOT NULL") ?? 0
                if leftovers > 0 { v.append("\(leftovers) delivered or discarded consumer keys still hold bytes") }
                let badAvailable = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM consumer_key WHERE state = 'available' AND (key IS NULL OR length(key) != length)") ?? 0
                if badAvailable > 0 { v.append("\(badAvailable) available consumer keys have missing or wrong-sized bytes") }
                // Every consumed PSK and every absorbed round is recorded, with its ledger credit.
                for row in try Row.fetchAll(db, sql: "SELECT p.id, p.byte_count, length(p.checksum), (SELECT SUM(bytes) FROM ledger WHERE kind = 'produced' AND ref = 'psk:' || p.id) FROM psk p") {
                    let id: String = row[0]
                    if (row[2] as Int?) != 32 { v.append("PSK \(id): checksum is not 32 bytes") }
                    if (row[3] as Int?) != (row[1] as Int) { v.append("PSK \(id): recorded but its ledger credit does not match") }
                }
                let pskCredits = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM ledger WHERE kind = 'produced' AND ref LIKE 'psk:%' AND substr(ref, 5) NOT IN (SELECT id FROM psk)") ?? 0
                if pskCredits > 0 { v.append("\(pskCredits) PSK credits in the ledger have no PSK record") }
                let roundMismatch = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM round r WHERE r.byte_count != COALESCE((SELECT SUM(bytes) FROM ledger WHERE kind = 'produced' AND ref = 'round:' || r.id), -1)") ?? 0
                if roundMismatch > 0 { v.append("\(roundMismatch) absorbed rounds do not match their ledger credit") }
                return v.map { QKDError(.invariantViolated, $0) } + (try KeyPool.stagedRoundViolations(db))
            }
        } catch {
            throw storageError(error, "verifying the pool")
        }
    }
}
