import Foundation
import GRDB
import QKDCrypto

/// The SQLite schema of a pool (Spec/keypool.md, "Data model"), and the helpers that read and
/// write key material without leaving unwiped copies behind.
enum PoolSchema {
    /// Identifies the file as a key pool (`meta.format`).
    static let format = "qkd-keypool"
    /// Schema version (`meta.version`).
    static let version = 1
    /// The largest pad segment row: top-ups are stored in pieces of at most this many bytes, so a
    /// chunk reservation reads (and a reservation wipes) little more than it needs.
    static let maximumSegmentBytes = 64 * 1024

    static let statements = [
        "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)",
        // One row per link stream: total appended bytes, durable watermark, agreed watermark.
        "CREATE TABLE stream (name TEXT PRIMARY KEY NOT NULL, length INTEGER NOT NULL, watermark INTEGER NOT NULL, synced INTEGER NOT NULL, CHECK (synced <= watermark AND watermark <= length))",
        // Unreserved pad bytes. Rows wholly below the watermark are deleted (secure_delete wipes them).
        "CREATE TABLE pad_segment (id INTEGER PRIMARY KEY, stream TEXT NOT NULL, start INTEGER NOT NULL, bytes BLOB NOT NULL, UNIQUE (stream, start))",
        "CREATE TABLE hash_key (epoch INTEGER NOT NULL, stream TEXT NOT NULL, suite TEXT NOT NULL, key BLOB, length INTEGER NOT NULL, uses INTEGER NOT NULL DEFAULT 0, source TEXT NOT NULL, PRIMARY KEY (epoch, stream))",
        // Keyed by (round, idx): consumer key ids decode to these (KeySplit.consumerKeyID), so
        // inserts append in key order and no random-order id index is needed.
        "CREATE TABLE consumer_key (round INTEGER NOT NULL, idx INTEGER NOT NULL, length INTEGER NOT NULL, state TEXT NOT NULL CHECK (state IN ('available', 'delivered', 'discarded')), key BLOB, PRIMARY KEY (round, idx)) WITHOUT ROWID",
        "CREATE TABLE round (id INTEGER PRIMARY KEY NOT NULL, byte_count INTEGER NOT NULL)",
        "CREATE TABLE psk (id TEXT PRIMARY KEY NOT NULL, checksum BLOB NOT NULL UNIQUE, byte_count INTEGER NOT NULL)",
        "CREATE TABLE ledger (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, stream TEXT, bytes INTEGER NOT NULL CHECK (bytes >= 0), ref TEXT)",
    ]

    /// Opens the database with the durability settings of Spec/keypool.md, "Storage": WAL,
    /// `synchronous=FULL` (set after the WAL switch: GRDB's own WAL setup would pick NORMAL),
    /// `secure_delete=ON`, foreign keys irrelevant.
    static func open(path: String) throws -> DatabaseQueue {
        var config = Configuration()
        config.label = "QKDKeyPool"
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            let mode = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
            guard mode == "wal" else { throw DatabaseError(message: "could not switch to WAL mode") }
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA secure_delete = ON")
        }
        return try DatabaseQueue(path: path, configuration: config)
    }

    static func create(_ db: Database, role: Role, linkID: UUID) throws {
        for sql in statements { try db.execute(sql: sql) }
        for (k, v) in [("format", format), ("version", String(version)), ("role", role.rawValue),
                       ("link_id", linkID.uuidString.lowercased())] {
            try db.execute(sql: "INSERT INTO meta (key, value) VALUES (?, ?)", arguments: [k, v])
        }
        for stream in LinkStream.allCases {
            try db.execute(sql: "INSERT INTO stream (name, length, watermark, synced) VALUES (?, 0, 0, 0)", arguments: [stream.rawValue])
        }
    }

    /// Reads role and link id, refusing files that are not a pool of this version.
    static func readMeta(_ db: Database) throws -> (Role, UUID) {
        guard try db.tableExists("meta") else {
            throw QKDError(.storageCorrupt, "the database has no 'meta' table: it is not a key pool, or its creation never completed; restore the state directory from a backup taken while the node was stopped")
        }
        var meta: [String: String] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT key, value FROM meta") { meta[row[0]] = row[1] }
        guard meta["format"] == format else {
            throw QKDError(.storageCorrupt, "the database is not a key pool (format '\(meta["format"] ?? "none")')")
        }
        guard meta["version"] == String(version) else {
            throw QKDError(.storageCorrupt, "the key pool has schema version \(meta["version"] ?? "none"); this build reads version \(version)")
        }
        guard let roleText = meta["role"], let role = Role(rawValue: roleText),
              let idText = meta["link_id"], let linkID = UUID(uuidString: idText) else {
            throw QKDError(.storageCorrupt, "the key pool's role or link id is missing or malformed")
        }
        return (role, linkID)
    }

    /// Binds secret bytes without copying them into an unwiped `Data`: the `Data` aliases the
    /// locked buffer; SQLite copies it into its own page cache (wiped on free by secure_delete
    /// for freed pages; the page cache itself is SQLite's).
    static func withBlob<R>(_ bytes: UnsafeRawBufferPointer, _ body: (Data) throws -> R) rethrows -> R {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return try body(Data()) }
        let data = Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base), count: bytes.count, deallocator: .none)
        return try body(data)
    }

    /// Appends `bytes` to a stream as segments of at most ``maximumSegmentBytes``.
    static func appendSegments(_ db: Database, stream: LinkStream, start: UInt64, bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let n = min(maximumSegmentBytes, bytes.count - offset)
            try withBlob(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)])) { data in
                try db.cachedStatement(sql: "INSERT INTO pad_segment (stream, start, bytes) VALUES (?, ?, ?)")
                    .execute(arguments: [stream.rawValue, Int64(start) + Int64(offset), data])
            }
            offset += n
        }
    }

    /// Copies stream bytes `range` into `destination` (which has `range.count` bytes).
    static func readSegments(_ db: Database, stream: LinkStream, range: Range<UInt64>, into destination: UnsafeMutableRawBufferPointer) throws {
        var covered: UInt64 = 0
        let rows = try Row.fetchCursor(db, sql: """
            SELECT start, bytes FROM pad_segment WHERE stream = ? AND start < ? AND start + length(bytes) > ? ORDER BY start
            """, arguments: [stream.rawValue, Int64(range.upperBound), Int64(range.lowerBound)])
        while let row = try rows.next() {
            let start = UInt64(row[0] as Int64)
            try row.withUnsafeData(atIndex: 1) { data in
                guard let data else { return }
                data.withUnsafeBytes { seg in
                    let lo = max(start, range.lowerBound), hi = min(start + UInt64(seg.count), range.upperBound)
                    guard lo < hi else { return }
                    let dst = Int(lo - range.lowerBound)
                    (destination.baseAddress! + dst).copyMemory(from: seg.baseAddress! + Int(lo - start), byteCount: Int(hi - lo))
                    covered += hi - lo
                }
            }
        }
        guard covered == UInt64(range.count) else {
            throw QKDError(.storageCorrupt, "pad stream \(stream) is missing \(UInt64(range.count) - covered) bytes in \(range.lowerBound)..<\(range.upperBound): the database was altered or damaged; run 'qkd-node pool verify'")
        }
    }

    /// Deletes segments wholly below `watermark` (their pads are reserved or skipped; with
    /// secure_delete the freed cells are zeroed).
    static func dropSegments(_ db: Database, stream: LinkStream, below watermark: UInt64) throws {
        try db.execute(sql: "DELETE FROM pad_segment WHERE stream = ? AND start + length(bytes) <= ?",
                       arguments: [stream.rawValue, Int64(watermark)])
    }

    static func ledger(_ db: Database, _ kind: LedgerKind, stream: LinkStream? = nil, bytes: Int, ref: String? = nil) throws {
        guard bytes > 0 else { return }
        try db.cachedStatement(sql: "INSERT INTO ledger (kind, stream, bytes, ref) VALUES (?, ?, ?, ?)")
            .execute(arguments: [kind.rawValue, stream?.rawValue, bytes, ref])
    }

    struct StreamRow {
        var length: UInt64
        var watermark: UInt64
        var synced: UInt64
    }

    static func streamRow(_ db: Database, _ stream: LinkStream) throws -> StreamRow {
        guard let row = try Row.fetchOne(db, sql: "SELECT length, watermark, synced FROM stream WHERE name = ?", arguments: [stream.rawValue]) else {
            throw QKDError(.storageCorrupt, "the key pool has no row for stream \(stream)")
        }
        let values: [Int64] = [row[0], row[1], row[2]]
        guard values.allSatisfy({ $0 >= 0 }) else { throw QKDError(.storageCorrupt, "stream \(stream) has negative offsets") }
        return StreamRow(length: UInt64(values[0]), watermark: UInt64(values[1]), synced: UInt64(values[2]))
    }
}

/// The kinds of ledger entry (Spec/keypool.md, "Ledger").
enum LedgerKind: String, CaseIterable {
    /// Key material entering the pool (a PSK import or a distilled key).
    case produced
    /// Bytes appended to a pad stream.
    case toPadStream = "to-pad-stream"
    /// Bytes that became a hash key.
    case toHashKey = "to-hash-key"
    /// Bytes that became consumer keys.
    case toConsumer = "to-consumer"
    /// A split remainder shorter than one pad or one consumer key.
    case discardedAtSplit = "discarded-split"
    /// Pad bytes durably reserved (used by tags, or wasted by a crash: both count as spent).
    case padReserved = "pad-reserved"
    /// Pad bytes skipped by a forward resynchronisation.
    case padSkipped = "pad-skipped"
    /// Consumer key bytes delivered to the application (and wiped from storage).
    case delivered
    /// Consumer key bytes discarded without delivery (and wiped from storage).
    case consumerDiscarded = "consumer-discarded"
}

/// Maps SQLite failures to the pool's typed errors.
func storageError(_ error: any Error, _ what: String) -> QKDError {
    if let e = error as? QKDError { return e }
    if let e = error as? DatabaseError {
        switch e.resultCode {
        case .SQLITE_CORRUPT, .SQLITE_NOTADB:
            return QKDError(.storageCorrupt, "the key pool database is corrupt or truncated (\(what): SQLite \(e.resultCode)); stop the node, restore the state directory from a backup and resynchronise with the peer, never reuse an older copy without resynchronising")
        default:
            return QKDError(.storageFailure, "storage failure while \(what): \(e.message ?? "\(e.resultCode)")")
        }
    }
    return QKDError(.storageFailure, "storage failure while \(what): \(error)")
}
