public import Foundation
import GRDB
public import QKDCrypto
import Synchronization

/// The durable key pool of one link (Spec/keypool.md): two pad streams, hash-key epochs,
/// consumer keys and a ledger, in a SQLite database (WAL, `synchronous=FULL`) in a private
/// state directory.
///
/// Concurrency (Spec/keypool.md, "Concurrency"): a `final class` whose in-memory state sits in
/// a `Mutex` and whose database handle is a serial `DatabaseQueue`. Every operation holds the
/// mutex from start to end, including the durable transaction of a chunk reservation, so two
/// tasks can never be served overlapping pads and the served offset can never pass the durable
/// watermark. The hot path (a pad from the reserved chunk) is a lock, a 16-byte copy and a
/// wipe; an actor would add a suspension per tag for no extra safety, and a struct owned by one
/// task would force the session, the post-processing and the CLI through one owner.
public final class KeyPool: Sendable {
    /// Tuning that is local to this process (not part of the shared state).
    public struct Configuration: Sendable {
        /// Pads reserved per durable transaction. A crash wastes at most this many pads per
        /// direction. 4096 pads = 64 KiB.
        public var chunkPads: Int
        /// A stream whose remaining bytes fall below this raises ``PoolEvent/starving(direction:remainingBytes:)``.
        public var lowWaterBytes: UInt64

        /// Creates a configuration.
        /// - Parameters:
        ///   - chunkPads: pads per durable reservation (>= 1).
        ///   - lowWaterBytes: the starving threshold.
        public init(chunkPads: Int = 4096, lowWaterBytes: UInt64 = 16 * 1024) {
            precondition(chunkPads >= 1, "chunkPads must be at least 1")
            self.chunkPads = chunkPads
            self.lowWaterBytes = lowWaterBytes
        }
    }

    struct State: ~Copyable {
        var windows: [Direction: ReservationWindow]
        var starving: Set<Direction> = []
        var events: [PoolEvent] = []
        var closed = false
        /// Every consumer key before (round, idx) was delivered or discarded (nil: scan from the start).
        var deliveryCursor: (Int64, Int)? = nil
    }

    /// The largest distilled key one absorb takes: 1 GiB. With consumer keys of at least 16 bytes
    /// the index fits the 26 bits of a consumer key id (Spec/keypool.md, "Consumer key ids").
    public static let maximumDistilledKeyBytes = 1 << 30

    /// This node's role.
    public let role: Role
    /// The link id (shared by both sides; the first PSK's id by default).
    public let linkID: UUID
    /// The state directory.
    public let directory: String
    /// The process-local tuning.
    public let configuration: Configuration
    let db: DatabaseQueue
    let state: Mutex<State>

    private init(directory: String, db: DatabaseQueue, role: Role, linkID: UUID,
                 windows: [Direction: ReservationWindow], configuration: Configuration) {
        self.directory = directory
        self.db = db
        self.role = role
        self.linkID = linkID
        self.configuration = configuration
        self.state = Mutex(State(windows: windows))
    }

    // MARK: - Creating and opening

    /// Creates an empty pool in `directory` (created with mode 0700 if missing; if it exists it
    /// must already be private).
    /// - Parameters:
    ///   - directory: the state directory.
    ///   - role: this node's role.
    ///   - linkID: the link id both sides share (use the PSK's id).
    ///   - configuration: local tuning.
    /// - Returns: the open pool.
    /// - Throws: ``QKDError/Code/poolExists``, ``QKDError/Code/insecurePermissions`` or a storage error.
    public static func create(directory: String, role: Role, linkID: UUID,
                              configuration: Configuration = Configuration()) throws -> KeyPool {
        try StateDirectory.create(directory)
        let path = StateDirectory.databasePath(directory)
        do {
            let db = try PoolSchema.open(path: path)
            try db.write { try PoolSchema.create($0, role: role, linkID: linkID) }
            try db.close()
        } catch {
            // A half-created pool holds no key material yet; remove it so 'init' can be retried.
            for name in StateDirectory.databaseFiles {
                unlink((directory as NSString).appendingPathComponent(name))
            }
            throw storageError(error, "creating the pool")
        }
        return try open(directory: directory, configuration: configuration)
    }

    /// Opens the pool in `directory`, after checking permissions and the database's integrity
    /// (`PRAGMA quick_check`).
    /// - Parameters:
    ///   - directory: the state directory.
    ///   - configuration: local tuning.
    /// - Returns: the open pool; both served offsets start at the durable watermarks.
    /// - Throws: ``QKDError/Code/poolNotFound``, ``QKDError/Code/insecurePermissions``,
    ///   ``QKDError/Code/storageCorrupt`` or ``QKDError/Code/storageFailure``.
    public static func open(directory: String, configuration: Configuration = Configuration()) throws -> KeyPool {
        try StateDirectory.checkExisting(directory)
        let db: DatabaseQueue
        do {
            db = try PoolSchema.open(path: StateDirectory.databasePath(directory))
        } catch {
            throw storageError(error, "opening the pool")
        }
        do {
            let (role, linkID, windows) = try db.read { db -> (Role, UUID, [Direction: ReservationWindow]) in
                let check = try String.fetchAll(db, sql: "PRAGMA quick_check")
                guard check == ["ok"] else {
                    throw QKDError(.storageCorrupt, "the key pool database fails SQLite's quick_check (\(check.prefix(3).joined(separator: "; "))); restore the state directory and resynchronise with the peer")
                }
                let (role, linkID) = try PoolSchema.readMeta(db)
                var windows: [Direction: ReservationWindow] = [:]
                for direction in Direction.allCases {
                    let row = try PoolSchema.streamRow(db, role.stream(for: direction))
                    guard row.watermark <= row.length else {
                        throw QKDError(.storageCorrupt, "stream \(role.stream(for: direction)) has its watermark past its end")
                    }
                    windows[direction] = ReservationWindow(length: row.length, durable: row.watermark)
                }
                return (role, linkID, windows)
            }
            return KeyPool(directory: directory, db: db, role: role, linkID: linkID, windows: windows, configuration: configuration)
        } catch {
            try? db.close()
            throw storageError(error, "opening the pool")
        }
    }

    /// Closes the database. Later calls throw. Unserved pads of the current chunks are wasted
    /// (they stay below the durable watermark).
    public func close() {
        state.withLock { state in
            state.closed = true
            for d in Direction.allCases { state.windows[d]?.cache = nil }
        }
        try? db.close()
    }

    // MARK: - Pads

    /// Reserves `count` consecutive pads in `direction`. The new durable watermark is committed
    /// (fsync) before this returns; most calls are served from the chunk reserved earlier and do
    /// no I/O (Spec/keypool.md, "Served offset and durable watermark").
    /// - Parameters:
    ///   - direction: outbound (to make tags) or inbound (to check them).
    ///   - count: number of 16-byte pads, >= 1.
    /// - Returns: the pads and their stream offset.
    /// - Throws: ``QKDError/Code/poolExhausted`` if fewer remain (nothing is reserved), or a
    ///   storage error (nothing is served).
    public func reservePad(direction: Direction, count: Int) throws -> PadReservation {
        precondition(count >= 1, "reserve at least one pad")
        let n = count * MACSuite.padByteCount
        return try withWindow(direction, byteCount: n) { window in
            window.serve(byteCount: n) { offset, bytes in
                PadReservation(direction: direction, offset: offset, bytes: SecretBytes(copying: bytes))
            }
        }
    }

    /// Reserves one pad without allocating: the per-frame path. Same durability as
    /// ``reservePad(direction:count:)``.
    /// - Parameter direction: outbound or inbound.
    /// - Returns: the pad and its stream offset.
    /// - Throws: ``QKDError/Code/poolExhausted`` or a storage error; nothing is served then.
    public func reserveOnePad(direction: Direction) throws -> ReservedPad {
        let offsetAndPad = try withWindow(direction, byteCount: MACSuite.padByteCount) { window in
            window.serve(byteCount: MACSuite.padByteCount) { offset, bytes in
                (offset, bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self), bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            }
        }
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: MACSuite.padByteCount, alignment: 8)
        defer { secureZero(scratch); scratch.deallocate() }
        scratch.storeBytes(of: offsetAndPad.1, toByteOffset: 0, as: UInt64.self)
        scratch.storeBytes(of: offsetAndPad.2, toByteOffset: 8, as: UInt64.self)
        return ReservedPad(offset: offsetAndPad.0, pad: OneTimePad(UnsafeRawBufferPointer(scratch), offset: 0))
    }

    /// Reserves the next outbound pad and lends its 16 bytes to `body` in place, for callers
    /// that make tags from raw bytes (the session's ``SessionKeyStore`` boundary). Same
    /// durability as ``reservePad(direction:count:)``: the pad is durably reserved before `body`
    /// runs, and stays used whatever `body` does. The bytes live in a scratch buffer that is
    /// wiped when `body` returns.
    /// - Parameters:
    ///   - direction: outbound (tags this node makes) or inbound.
    ///   - body: receives the pad's stream offset and its 16 bytes; the pointer must not escape.
    /// - Returns: what `body` returns.
    /// - Throws: ``QKDError/Code/poolExhausted`` or a storage error (nothing is served then), or
    ///   what `body` throws (the pad stays used).
    public func withReservedPad<R>(direction: Direction,
                                   _ body: (_ offset: UInt64, _ bytes: UnsafeRawBufferPointer) throws -> R) throws -> R {
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: MACSuite.padByteCount, alignment: 16)
        defer { secureZero(scratch); scratch.deallocate() }
        let offset = try withWindow(direction, byteCount: MACSuite.padByteCount) { window in
            window.serve(byteCount: MACSuite.padByteCount) { offset, bytes in
                scratch.copyMemory(from: bytes)
                return offset
            }
        }
        return try body(offset, UnsafeRawBufferPointer(scratch))
    }

    /// Runs `serve` on the window once `byteCount` bytes are below the durable watermark,
    /// extending it by a chunk in one durable transaction if needed.
    private func withWindow<R>(_ direction: Direction, byteCount: Int,
                               _ serve: (inout ReservationWindow) -> R) throws -> R {
        try withWindow(direction, byteCountFor: { _ in byteCount }, { window, _ in serve(&window) })
    }

    /// The same, with the byte count decided under the lock from the window (``acceptInbound(through:)``).
    private func withWindow<R>(_ direction: Direction, byteCountFor: (ReservationWindow) throws -> Int,
                               _ serve: (inout ReservationWindow, Int) -> R) throws -> R {
        let chunkBytes = UInt64(configuration.chunkPads * MACSuite.padByteCount)
        let stream = role.stream(for: direction)
        return try state.withLock { state throws -> R in
            guard !state.closed else { throw QKDError(.storageFailure, "the key pool was closed") }
            var window = state.windows[direction]!
            let byteCount = try byteCountFor(window)
            switch window.plan(byteCount: UInt64(byteCount), chunkBytes: chunkBytes) {
            case .exhausted(let remaining):
                throw QKDError(.poolExhausted, "the \(direction) pad stream has \(remaining) bytes left, \(byteCount) requested; nothing was reserved. Run a QKD round (or import a PSK) to refill it")
            case .fromMemory:
                break
            case .extend(let newDurable):
                let oldDurable = window.durable
                let loaded = PadCache(start: oldDurable, count: Int(newDurable - oldDurable))
                do {
                    try db.write { db in
                        let row = try PoolSchema.streamRow(db, stream)
                        guard row.watermark == oldDurable, row.length == window.length else {
                            throw QKDError(.storageCorrupt, "stream \(stream) changed on disk under this process (watermark \(row.watermark), expected \(oldDurable)); is another process using the same state directory?")
                        }
                        try PoolSchema.readSegments(db, stream: stream, range: oldDurable..<newDurable, into: loaded.mutableBytes)
                        try db.execute(sql: "UPDATE stream SET watermark = ? WHERE name = ?", arguments: [Int64(newDurable), stream.rawValue])
                        try PoolSchema.ledger(db, .padReserved, stream: stream, bytes: Int(newDurable - oldDurable))
                        try PoolSchema.dropSegments(db, stream: stream, below: newDurable)
                    }
                } catch {
                    throw storageError(error, "reserving \(direction) pads")
                }
                // Committed: only now may pads below newDurable be served.
                window.install(newDurable: newDurable, loaded: loaded)
            }
            let result = serve(&window, byteCount)
            state.windows[direction] = window
            Self.noteLevel(&state, direction, lowWater: configuration.lowWaterBytes)
            return result
        }
    }

    private static func noteLevel(_ state: inout State, _ direction: Direction, lowWater: UInt64) {
        let remaining = state.windows[direction]!.remaining
        if remaining < lowWater {
            if !state.starving.contains(direction) {
                state.starving.insert(direction)
                state.events.append(.starving(direction: direction, remainingBytes: remaining))
            }
        } else {
            state.starving.remove(direction)
        }
    }

    /// The next event for the session (``PoolEvent/starving(direction:remainingBytes:)``), or nil.
    /// - Returns: the oldest queued event.
    public func nextEvent() -> PoolEvent? {
        state.withLock { $0.events.isEmpty ? nil : $0.events.removeFirst() }
    }

    // MARK: - Inbound verification

    /// The inbound pad at `offset`, to check a received tag, without consuming anything
    /// (Spec/keypool.md, "Checking inbound tags"). A forged or corrupted frame therefore never
    /// moves this node's inbound stream; only ``acceptInbound(through:)`` does, after the tag
    /// verified.
    /// - Parameter offset: the pad offset the frame names (a multiple of 16).
    /// - Returns: the pad, to borrow for verification.
    /// - Throws: ``QKDError/Code/watermarkBackward`` if the pad was already used (a replay or a
    ///   stale frame), ``QKDError/Code/poolExhausted`` if the stream does not reach it, or a
    ///   storage error.
    public func inboundPad(at offset: UInt64) throws -> OneTimePad {
        try withInboundPad(at: offset) { OneTimePad($0, offset: 0) }
    }

    /// The inbound pad at `offset` lent in place to `body`, without consuming anything: the raw-byte
    /// form of ``inboundPad(at:)`` (same checks, same errors). The scratch copy is wiped when
    /// `body` returns.
    /// - Parameters:
    ///   - offset: the pad offset the frame names (a multiple of 16).
    ///   - body: receives the 16 bytes; the pointer must not escape.
    /// - Returns: what `body` returns.
    /// - Throws: as ``inboundPad(at:)``, or what `body` throws.
    public func withInboundPad<R: ~Copyable>(at offset: UInt64, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let n = UInt64(MACSuite.padByteCount)
        let stream = role.stream(for: .inbound)
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: MACSuite.padByteCount, alignment: 8)
        defer { secureZero(scratch); scratch.deallocate() }
        try state.withLock { state throws in
            guard !state.closed else { throw QKDError(.storageFailure, "the key pool was closed") }
            let w = state.windows[.inbound]!
            guard offset % n == 0 else {
                throw QKDError(.watermarkBeyondStream, "inbound pad offset \(offset) is not a multiple of 16")
            }
            guard offset >= w.served else {
                throw QKDError(.watermarkBackward, "inbound pad \(offset) was already used (next unused: \(w.served)); the frame is a replay or stale")
            }
            guard offset + n <= w.length else {
                throw QKDError(.poolExhausted, "inbound pad \(offset) lies past the end of the stream (\(w.length) bytes); the peer holds material this node lacks")
            }
            if offset + n <= w.durable, let cache = w.cache {
                scratch.copyMemory(from: cache.bytes(at: offset, count: Int(n)))
                return
            }
            do {
                try db.read { db in try PoolSchema.readSegments(db, stream: stream, range: offset..<(offset + n), into: scratch) }
            } catch {
                throw storageError(error, "reading inbound pad \(offset)")
            }
        }
        return try body(UnsafeRawBufferPointer(scratch))
    }

    /// Marks every inbound pad below `offset` used, after a tag checked with
    /// ``inboundPad(at:)`` verified: `offset` is the verified pad's offset + 16. Pads skipped on
    /// the way (frames the peer tagged but this node never saw) count as reserved. Durable in
    /// chunks, like ``reservePad(direction:count:)``.
    /// - Parameter offset: the new inbound served offset (a multiple of 16, >= the current one).
    /// - Throws: ``QKDError/Code/watermarkBackward``, ``QKDError/Code/poolExhausted``, or a
    ///   storage error; nothing moves then.
    public func acceptInbound(through offset: UInt64) throws {
        try withWindow(.inbound, byteCountFor: { window in
            guard offset >= window.served, offset % UInt64(MACSuite.padByteCount) == 0 else {
                throw QKDError(.watermarkBackward, "cannot accept inbound pads through \(offset): the next unused pad is \(window.served)")
            }
            return Int(offset - window.served)
        }, { window, n in
            if n > 0 { window.serve(byteCount: n) { _, _ in () } }
        })
    }

    // MARK: - Resynchronisation

    /// The durable watermarks, to send to the peer on reconnect (Spec/keypool.md, "Watermark protocol").
    /// - Returns: outbound and inbound byte offsets.
    public func watermarks() -> Watermarks {
        state.withLock { s in Watermarks(outbound: s.windows[.outbound]!.durable, inbound: s.windows[.inbound]!.durable) }
    }

    /// The served offsets of this process: the next pad it would hand out in each direction
    /// (memory only, at or below the durable ``watermarks()``). The session checks inbound
    /// frames against these; after a restart they start at the durable watermarks.
    /// - Returns: outbound and inbound served byte offsets.
    public func servedWatermarks() -> Watermarks {
        state.withLock { s in Watermarks(outbound: s.windows[.outbound]!.served, inbound: s.windows[.inbound]!.served) }
    }

    /// The length of each stream (bytes ever appended), to tell whether the pool holds pads.
    /// - Returns: outbound and inbound stream lengths in bytes.
    public func streamLengths() -> Watermarks {
        state.withLock { s in Watermarks(outbound: s.windows[.outbound]!.length, inbound: s.windows[.inbound]!.length) }
    }

    /// Moves both watermarks forward to `target` (normally ``Watermarks/merged(withPeer:)``),
    /// durably, and records `target` as the agreed watermarks the split uses: exactly
    /// ``synchronise(to:)``, but refusing a target below what this process has served.
    /// - Parameter target: the new watermarks; each >= the current served offset, <= the stream
    ///   length, and a multiple of 16.
    /// - Throws: ``QKDError/Code/watermarkBackward`` or ``QKDError/Code/watermarkBeyondStream``
    ///   (nothing moves), or a storage error.
    public func advance(to target: Watermarks) throws {
        let served = servedWatermarks()
        for d in Direction.allCases where target[d] < served[d] {
            throw QKDError(.watermarkBackward, "refusing to move the \(d) watermark backward from \(served[d]) to \(target[d]): that would reuse pads. Nothing moved; the peer's state is stale or hostile")
        }
        try synchronise(to: target)
    }

    /// Records the watermarks both sides agreed on (`synced`, which the split of every later
    /// distilled key reads, Spec/keypool.md sections 4-5: both sides must record the same
    /// values) and moves this process's served offsets forward to them where they are behind.
    /// An agreed value may lie below the served offset: pads this process consumed after the
    /// agreement (the session's handshake consumes the peer's Finished before it records) stay
    /// consumed. A target inside this process's reserved chunk serves on from the chunk,
    /// wiping the pads it passes; one beyond the durable watermark moves it, durably, and the
    /// gap is ledgered as `pad-skipped`.
    /// An agreed value below the one recorded before leaves it as it is (agreed values only
    /// move forward).
    /// - Parameter agreed: per direction, <= the stream length and a multiple of 16.
    /// - Throws: ``QKDError/Code/watermarkBeyondStream`` (nothing moves), or a storage error.
    public func synchronise(to agreed: Watermarks) throws {
        try state.withLock { state throws in
            guard !state.closed else { throw QKDError(.storageFailure, "the key pool was closed") }
            for d in Direction.allCases {
                let w = state.windows[d]!
                guard agreed[d] <= w.length else {
                    throw QKDError(.watermarkBeyondStream, "the \(d) watermark \(agreed[d]) is past the end of the stream (\(w.length) bytes): the peer holds material this node lacks. Nothing moved; resynchronise the pools (absorb the same rounds on both sides)")
                }
                guard agreed[d] % UInt64(MACSuite.padByteCount) == 0 else {
                    throw QKDError(.watermarkBeyondStream, "the \(d) watermark \(agreed[d]) is not a multiple of 16. Nothing moved")
                }
            }
            do {
                try db.write { db in
                    for d in Direction.allCases {
                        let stream = role.stream(for: d)
                        let row = try PoolSchema.streamRow(db, stream)
                        // Agreed values only move forward. In the session's flow a new agreement
                        // is never below the last (it is the max of both sides' served offsets,
                        // each at or above its agreed value), so both sides record the same value.
                        let newSynced = max(row.synced, agreed[d])
                        let newWatermark = max(row.watermark, newSynced)
                        try db.execute(sql: "UPDATE stream SET watermark = ?, synced = ? WHERE name = ?",
                                       arguments: [Int64(newWatermark), Int64(newSynced), stream.rawValue])
                        try PoolSchema.ledger(db, .padSkipped, stream: stream, bytes: Int(newWatermark - row.watermark))
                        try PoolSchema.dropSegments(db, stream: stream, below: newWatermark)
                    }
                }
            } catch {
                throw storageError(error, "advancing the watermarks")
            }
            for d in Direction.allCases where agreed[d] > state.windows[d]!.served {
                state.windows[d]!.advance(to: agreed[d])
            }
            for d in Direction.allCases { Self.noteLevel(&state, d, lowWater: configuration.lowWaterBytes) }
        }
    }

    // MARK: - Refill

    /// Splits a distilled key the same way on both sides (Spec/keypool.md, "Split function")
    /// and stores the parts, in one durable transaction.
    /// - Parameters:
    ///   - roundID: the round's id, identical on both sides; each round is absorbed once.
    ///   - bytes: the distilled key.
    ///   - policy: the negotiated policy.
    ///   (At most ``maximumDistilledKeyBytes`` bytes.)
    /// - Returns: what went where.
    /// - Throws: ``QKDError/Code/roundAlreadyAbsorbed`` (nothing credited),
    ///   ``QKDError/Code/invalidPolicy``, or a storage error (nothing credited).
    @discardableResult
    public func absorbDistilledKey(roundID: UInt64, bytes: SecretBytes, policy: RefillPolicy) throws -> AbsorbSummary {
        try policy.validate()
        guard bytes.count <= Self.maximumDistilledKeyBytes else {
            throw QKDError(.invalidPolicy, "a distilled key of \(bytes.count) bytes exceeds the \(Self.maximumDistilledKeyBytes)-byte limit per round; split it into several rounds")
        }
        let suite = MACSuite(name: policy.suite)!
        return try state.withLock { state throws -> AbsorbSummary in
            guard !state.closed else { throw QKDError(.storageFailure, "the key pool was closed") }
            let summary: AbsorbSummary
            var newLengths: [LinkStream: UInt64] = [:]
            do {
                summary = try db.write { db -> AbsorbSummary in
                    if try Bool.fetchOne(db, sql: "SELECT 1 FROM round WHERE id = ?", arguments: [Int64(bitPattern: roundID)]) == true {
                        throw QKDError(.roundAlreadyAbsorbed, "round \(roundID) was absorbed before; nothing was credited twice. Round ids must be unique per link")
                    }
                    var rows: [LinkStream: PoolSchema.StreamRow] = [:]
                    var levels: [LinkStream: UInt64] = [:]
                    for s in LinkStream.allCases {
                        rows[s] = try PoolSchema.streamRow(db, s)
                        levels[s] = rows[s]!.length - rows[s]!.synced
                    }
                    let split = KeySplit(byteCount: bytes.count, policy: policy, agreedLevels: levels)
                    let ref = "round:\(roundID)"
                    try db.execute(sql: "INSERT INTO round (id, byte_count) VALUES (?, ?)", arguments: [Int64(bitPattern: roundID), bytes.count])
                    try Self.dropStagedRound(db, through: roundID)  // Atomic with the absorb (KeyPool+Staging).
                    try PoolSchema.ledger(db, .produced, bytes: bytes.count, ref: ref)
                    try bytes.withUnsafeBytes { key in
                        for s in LinkStream.allCases {
                            let range = split.topUp[s]!
                            try PoolSchema.appendSegments(db, stream: s, start: rows[s]!.length, bytes: UnsafeRawBufferPointer(rebasing: key[range]))
                            newLengths[s] = rows[s]!.length + UInt64(range.count)
                            try db.execute(sql: "UPDATE stream SET length = ? WHERE name = ?", arguments: [Int64(newLengths[s]!), s.rawValue])
                            try PoolSchema.ledger(db, .toPadStream, stream: s, bytes: range.count, ref: ref)
                        }
                    }
                    var epoch: Int? = nil
                    if let range = split.hashKeys {
                        epoch = try Self.insertHashKeys(db, suite: suite, key: bytes, range: range, source: ref)
                    }
                    var ids: [UUID] = []
                    ids.reserveCapacity(split.consumerKeys.count)
                    // One prepared statement for all keys of the round: compiling the SQL per key
                    // would dominate absorb time (thousands of 32-byte keys per MiB).
                    let insert = try db.cachedStatement(sql: "INSERT INTO consumer_key (round, idx, length, state, key) VALUES (?, ?, ?, 'available', ?)")
                    let tag = KeySplit.linkTag(linkID)
                    try bytes.withUnsafeBytes { key in
                        for (index, range) in split.consumerKeys.enumerated() {
                            let id = KeySplit.consumerKeyID(linkTag: tag, roundID: roundID, index: index)
                            try PoolSchema.withBlob(UnsafeRawBufferPointer(rebasing: key[range])) { data in
                                try insert.execute(arguments: [Int64(bitPattern: roundID), index, range.count, data])
                            }
                            ids.append(id)
                        }
                    }
                    try PoolSchema.ledger(db, .toConsumer, bytes: split.consumerKeys.count * policy.consumerKeyBytes, ref: ref)
                    try PoolSchema.ledger(db, .discardedAtSplit, bytes: split.discarded.count, ref: ref)
                    return AbsorbSummary(outboundTopUp: split.topUp[role.stream(for: .outbound)]!.count,
                                         inboundTopUp: split.topUp[role.stream(for: .inbound)]!.count,
                                         newEpoch: epoch, consumerKeyIDs: ids, discarded: split.discarded.count)
                }
            } catch {
                throw storageError(error, "absorbing round \(roundID)")
            }
            for d in Direction.allCases {
                state.windows[d]!.length = newLengths[role.stream(for: d)]!
                Self.noteLevel(&state, d, lowWater: configuration.lowWaterBytes)
            }
            if let cursor = state.deliveryCursor, Int64(bitPattern: roundID) < cursor.0 {
                state.deliveryCursor = nil  // A round older than the cursor: scan from the start again.
            }
            return summary
        }
    }

    /// Inserts one hash key per link stream as a new epoch; wipes keys older than the previous epoch.
    private static func insertHashKeys(_ db: Database, suite: MACSuite, key: SecretBytes, range: Range<Int>, source: String) throws -> Int {
        let epoch = (try Int.fetchOne(db, sql: "SELECT MAX(epoch) FROM hash_key") ?? 0) + 1
        try key.withUnsafeBytes { k in
            for (i, s) in LinkStream.allCases.enumerated() {
                let lo = range.lowerBound + i * MACSuite.hashKeyByteCount
                try PoolSchema.withBlob(UnsafeRawBufferPointer(rebasing: k[lo..<(lo + MACSuite.hashKeyByteCount)])) { data in
                    try db.execute(sql: "INSERT INTO hash_key (epoch, stream, suite, key, length, uses, source) VALUES (?, ?, ?, ?, ?, 0, ?)",
                                   arguments: [epoch, s.rawValue, suite.description, data, MACSuite.hashKeyByteCount, source])
                }
                try PoolSchema.ledger(db, .toHashKey, stream: s, bytes: MACSuite.hashKeyByteCount, ref: source)
            }
        }
        // Keep the previous epoch for tags in flight; older keys are wiped (secure_delete).
        try db.execute(sql: "UPDATE hash_key SET key = NULL WHERE epoch < ?", arguments: [epoch - 1])
        return epoch
    }

    // MARK: - PSK

    /// Imports a PSK: hash keys for both link streams and seed material for both pad streams,
    /// split by ``PSKSplit`` so both sides line up. The PSK's id and checksum are recorded; the
    /// same PSK is never imported twice.
    /// - Parameter psk: the parsed PSK file.
    /// - Returns: bytes added to the outbound and inbound streams.
    /// - Throws: ``QKDError/Code/pskAlreadyImported`` (nothing imported) or a storage error.
    @discardableResult
    public func importPSK(_ psk: PSKFile) throws -> (outbound: Int, inbound: Int) {
        let split = PSKSplit(byteCount: psk.key.count)
        return try state.withLock { state throws -> (outbound: Int, inbound: Int) in
            guard !state.closed else { throw QKDError(.storageFailure, "the key pool was closed") }
            var newLengths: [LinkStream: UInt64] = [:]
            do {
                try db.write { db in
                    let idText = psk.id.uuidString.lowercased()
                    if try Bool.fetchOne(db, sql: "SELECT 1 FROM psk WHERE id = ? OR checksum = ?", arguments: [idText, Data(psk.checksum)]) == true {
                        throw QKDError(.pskAlreadyImported, "PSK \(idText) was imported into this pool before; its material is consumed and is never imported twice. Generate a new PSK")
                    }
                    let ref = "psk:\(idText)"
                    try db.execute(sql: "INSERT INTO psk (id, checksum, byte_count) VALUES (?, ?, ?)", arguments: [idText, Data(psk.checksum), psk.key.count])
                    try PoolSchema.ledger(db, .produced, bytes: psk.key.count, ref: ref)
                    _ = try Self.insertHashKeys(db, suite: .poly1305OTP, key: psk.key, range: split.hashKeys, source: ref)
                    try psk.key.withUnsafeBytes { key in
                        for s in LinkStream.allCases {
                            let row = try PoolSchema.streamRow(db, s)
                            let range = split.streams[s]!
                            try PoolSchema.appendSegments(db, stream: s, start: row.length, bytes: UnsafeRawBufferPointer(rebasing: key[range]))
                            newLengths[s] = row.length + UInt64(range.count)
                            try db.execute(sql: "UPDATE stream SET length = ? WHERE name = ?", arguments: [Int64(newLengths[s]!), s.rawValue])
                            try PoolSchema.ledger(db, .toPadStream, stream: s, bytes: range.count, ref: ref)
                        }
                    }
                    try PoolSchema.ledger(db, .discardedAtSplit, bytes: split.discarded.count, ref: ref)
                }
            } catch {
                throw storageError(error, "importing PSK \(psk.id.uuidString.lowercased())")
            }
            for d in Direction.allCases {
                state.windows[d]!.length = newLengths[role.stream(for: d)]!
                Self.noteLevel(&state, d, lowWater: configuration.lowWaterBytes)
            }
            return (split.streams[role.stream(for: .outbound)]!.count, split.streams[role.stream(for: .inbound)]!.count)
        }
    }
}
