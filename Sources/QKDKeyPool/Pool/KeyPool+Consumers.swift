public import Foundation
import GRDB
import QKDCrypto

extension KeyPool {
    // MARK: - Consumer keys

    /// Delivers up to `count` available consumer keys, oldest first (by round id, then index),
    /// and marks them delivered: their bytes are wiped from storage in the same transaction (id
    /// and ledger entry stay), then the WAL is checkpointed and truncated so no old page image
    /// keeps them.
    /// - Parameter count: the most keys to deliver.
    /// - Returns: the keys (fewer if fewer are available).
    /// - Throws: a storage error; then nothing is delivered.
    public func deliverConsumerKeys(count: Int) throws -> [ConsumerKey] {
        let tag = KeySplit.linkTag(linkID)
        return try state.withLock { state throws -> [ConsumerKey] in
            guard !state.closed else { throw QKDError(.storageFailure, "the key pool was closed") }
            // Keys before the cursor were all delivered or discarded by this process: the scan
            // starts there instead of walking every delivered row again.
            let cursor: (Int64, Int) = state.deliveryCursor ?? (Int64.min, 0)
            do {
                let keys = try db.write { db -> [(ConsumerKey, Int64, Int)] in
                    var keys: [(ConsumerKey, Int64, Int)] = []
                    let rows = try Row.fetchCursor(db, sql: """
                        SELECT round, idx, key FROM consumer_key WHERE (round, idx) >= (?, ?) AND state = 'available'
                        ORDER BY round, idx LIMIT ?
                        """, arguments: [cursor.0, cursor.1, count])
                    while let row = try rows.next() {
                        let round: Int64 = row[0], index: Int = row[1]
                        keys.append((try Self.consumerKey(row, keyColumn: 2, tag: tag, round: round, index: index), round, index))
                    }
                    try Self.markDelivered(db, keys)
                    return keys
                }
                if let last = keys.last { state.deliveryCursor = (last.1, last.2 + 1) }
                if !keys.isEmpty { try scrubWAL() }
                return keys.map(\.0)
            } catch {
                throw storageError(error, "delivering consumer keys")
            }
        }
    }

    /// Delivers the consumer keys with these ids (the peer side of a key request).
    /// - Parameter ids: the ids.
    /// - Returns: the keys in the order of `ids`.
    /// - Throws: ``QKDError/Code/consumerKeyUnavailable`` if any id is unknown or not available
    ///   (nothing is delivered), or a storage error.
    public func deliverConsumerKeys(ids: [UUID]) throws -> [ConsumerKey] {
        let tag = KeySplit.linkTag(linkID)
        return try state.withLock { state throws -> [ConsumerKey] in
            guard !state.closed else { throw QKDError(.storageFailure, "the key pool was closed") }
            do {
                let keys = try db.write { db -> [(ConsumerKey, Int64, Int)] in
                    var keys: [(ConsumerKey, Int64, Int)] = []
                    var seen = Set<UUID>()
                    for id in ids where seen.insert(id).inserted {
                        let (round, index) = try Self.locate(id, tag: tag)
                        let rows = try Row.fetchCursor(db, sql: "SELECT key FROM consumer_key WHERE round = ? AND idx = ? AND state = 'available'",
                                                       arguments: [round, index])
                        guard let row = try rows.next() else {
                            throw QKDError(.consumerKeyUnavailable, "consumer key \(id.uuidString.lowercased()) is unknown or no longer available; nothing was delivered")
                        }
                        keys.append((try Self.consumerKey(row, keyColumn: 0, tag: tag, round: round, index: index), round, index))
                    }
                    try Self.markDelivered(db, keys)
                    return keys
                }
                if !keys.isEmpty { try scrubWAL() }
                let byID = Dictionary(uniqueKeysWithValues: keys.map { ($0.0.id, $0.0) })
                return ids.compactMap { byID[$0] }
            } catch {
                throw storageError(error, "delivering consumer keys")
            }
        }
    }

    /// Discards consumer keys without delivering them (e.g. the peer reported them lost):
    /// bytes wiped, ledgered as `consumer-discarded`.
    /// - Parameter ids: the ids; unknown or not available ids throw.
    /// - Throws: ``QKDError/Code/consumerKeyUnavailable`` (nothing discarded) or a storage error.
    public func discardConsumerKeys(ids: [UUID]) throws {
        let tag = KeySplit.linkTag(linkID)
        try state.withLock { state throws in
            guard !state.closed else { throw QKDError(.storageFailure, "the key pool was closed") }
            do {
                try db.write { db in
                    for id in Set(ids) {
                        let text = id.uuidString.lowercased()
                        let (round, index) = try Self.locate(id, tag: tag)
                        guard let length = try Int.fetchOne(db, sql: "SELECT length FROM consumer_key WHERE round = ? AND idx = ? AND state = 'available'", arguments: [round, index]) else {
                            throw QKDError(.consumerKeyUnavailable, "consumer key \(text) is unknown or no longer available; nothing was discarded")
                        }
                        try db.execute(sql: "UPDATE consumer_key SET state = 'discarded', key = NULL WHERE round = ? AND idx = ?", arguments: [round, index])
                        try PoolSchema.ledger(db, .consumerDiscarded, bytes: length, ref: "key:\(text)")
                    }
                }
                try scrubWAL()
            } catch {
                throw storageError(error, "discarding consumer keys")
            }
        }
    }

    private static func locate(_ id: UUID, tag: UInt32) throws -> (Int64, Int) {
        guard let (round, index) = KeySplit.decodeConsumerKeyID(id, linkTag: tag) else {
            throw QKDError(.consumerKeyUnavailable, "\(id.uuidString.lowercased()) is not a consumer key id of this link")
        }
        return (Int64(bitPattern: round), index)
    }

    /// Copies a row's key bytes straight into locked memory (no unwiped `Data` copy).
    private static func consumerKey(_ row: Row, keyColumn: Int, tag: UInt32, round: Int64, index: Int) throws -> ConsumerKey {
        let roundID = UInt64(bitPattern: round)
        let bytes = try row.withUnsafeData(atIndex: keyColumn) { data -> SecretBytes in
            guard let data else { throw QKDError(.storageCorrupt, "available consumer key (round \(roundID), index \(index)) has no bytes") }
            return data.withUnsafeBytes { SecretBytes(copying: $0) }
        }
        return ConsumerKey(id: KeySplit.consumerKeyID(linkTag: tag, roundID: roundID, index: index), roundID: roundID, index: index, bytes: bytes)
    }

    private static func markDelivered(_ db: Database, _ keys: [(ConsumerKey, Int64, Int)]) throws {
        for (key, round, index) in keys {
            try db.cachedStatement(sql: "UPDATE consumer_key SET state = 'delivered', key = NULL WHERE round = ? AND idx = ?")
                .execute(arguments: [round, index])
            try PoolSchema.ledger(db, .delivered, bytes: key.bytes.count, ref: "key:\(key.id.uuidString.lowercased())")
        }
    }

    /// Copies the WAL into the database and truncates it, so page images that held wiped bytes
    /// leave the WAL file (secure_delete already zeroed them in the database pages).
    private func scrubWAL() throws {
        try db.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
    }

    // MARK: - Hash keys

    /// The newest hash-key epoch for `direction` (outbound: the key this node's tags use;
    /// inbound: the key it checks the peer's tags with).
    /// - Parameter direction: outbound or inbound.
    /// - Returns: the epoch, or nil if none was ever stored.
    /// - Throws: a storage error.
    public func currentHashKey(direction: Direction) throws -> HashKeyEpoch? {
        let stream = role.stream(for: direction)
        do {
            return try db.read { db -> HashKeyEpoch? in
                guard let row = try Row.fetchOne(db, sql: "SELECT epoch, suite, key, uses FROM hash_key WHERE stream = ? ORDER BY epoch DESC LIMIT 1", arguments: [stream.rawValue]) else { return nil }
                let suiteName: String = row[1]
                guard let suite = MACSuite(name: suiteName) else { throw QKDError(.storageCorrupt, "hash key suite '\(suiteName)' is unknown") }
                let secret = try row.withUnsafeData(atIndex: 2) { data -> SecretBytes in
                    guard let data else { throw QKDError(.storageCorrupt, "the newest hash key of \(stream) has no bytes") }
                    return data.withUnsafeBytes { SecretBytes(copying: $0) }
                }
                return HashKeyEpoch(epoch: row[0], key: try HashKey(suite: suite, secret: secret), uses: row[3])
            }
        } catch {
            throw storageError(error, "reading the hash key")
        }
    }

    /// Adds `count` to the use counter of an epoch's hash key (the rotation policy reads it).
    /// - Parameters:
    ///   - direction: outbound or inbound.
    ///   - epoch: the epoch the tags used.
    ///   - count: tags made or checked.
    /// - Throws: a storage error.
    public func recordHashKeyUses(direction: Direction, epoch: Int, count: Int) throws {
        do {
            try db.write { db in
                try db.execute(sql: "UPDATE hash_key SET uses = uses + ? WHERE epoch = ? AND stream = ?",
                               arguments: [count, epoch, role.stream(for: direction).rawValue])
            }
        } catch {
            throw storageError(error, "recording hash key uses")
        }
    }

    // MARK: - Status

    /// Levels, watermarks and ledger totals; never key bytes.
    /// - Returns: the status.
    /// - Throws: a storage error.
    public func status() throws -> PoolStatus {
        let servedOffsets = state.withLock { s in Direction.allCases.map { s.windows[$0]!.served } }
        do {
            return try db.read { db in
                var streams: [StreamStatus] = []
                for (i, d) in Direction.allCases.enumerated() {
                    let s = role.stream(for: d)
                    let row = try PoolSchema.streamRow(db, s)
                    let served = max(servedOffsets[i], row.watermark)  // Another process may have moved on.
                    streams.append(StreamStatus(direction: d, linkStream: s, length: row.length, durableWatermark: row.watermark,
                                                servedOffset: served, syncedWatermark: row.synced, remaining: row.length - served))
                }
                var consumers: [String: Int] = ["available": 0, "delivered": 0, "discarded": 0]
                for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) FROM consumer_key GROUP BY state") { consumers[row[0]] = row[1] }
                return PoolStatus(role: role, linkID: linkID, streams: streams, consumerKeys: consumers,
                                  hashKeyEpoch: try Int.fetchOne(db, sql: "SELECT MAX(epoch) FROM hash_key"),
                                  roundsAbsorbed: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM round") ?? 0,
                                  pskImported: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM psk") ?? 0,
                                  ledger: try Self.ledgerTotals(db))
            }
        } catch {
            throw storageError(error, "reading the status")
        }
    }

    static func ledgerTotals(_ db: Database) throws -> LedgerTotals {
        var t = LedgerTotals()
        for s in LinkStream.allCases {
            t.toPadStream[s.rawValue] = 0
            t.padReserved[s.rawValue] = 0
            t.padSkipped[s.rawValue] = 0
        }
        for row in try Row.fetchAll(db, sql: "SELECT kind, stream, SUM(bytes) FROM ledger GROUP BY kind, stream") {
            let kindText: String = row[0]
            let stream: String? = row[1]
            let bytes: Int = row[2]
            guard let kind = LedgerKind(rawValue: kindText) else {
                throw QKDError(.storageCorrupt, "the ledger has an unknown entry kind '\(kindText)'")
            }
            switch kind {
            case .produced: t.produced += bytes
            case .toPadStream: t.toPadStream[stream ?? "?", default: 0] += bytes
            case .toHashKey: t.toHashKeys += bytes
            case .toConsumer: t.toConsumer += bytes
            case .discardedAtSplit: t.discardedAtSplit += bytes
            case .padReserved: t.padReserved[stream ?? "?", default: 0] += bytes
            case .padSkipped: t.padSkipped[stream ?? "?", default: 0] += bytes
            case .delivered: t.delivered += bytes
            case .consumerDiscarded: t.consumerDiscarded += bytes
            }
        }
        return t
    }
}
