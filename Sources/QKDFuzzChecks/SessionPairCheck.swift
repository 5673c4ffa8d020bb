import QKDCrypto
import QKDWire
import QKDSession

/// FuzzSessionPair: two honest sessions (``InMemoryKeyStore/pair(slotsPerDirection:reservationChunk:random:)``)
/// and an adversary between them whose every decision comes from the input, with the workload
/// (payloads, rounds, timeouts, crashes) interleaved by the same input. This reaches state
/// machine paths that byte fuzzing of one session cannot: rotation races, rounds cut by loss,
/// resume after a crash with watermarks out of step.
///
/// Input: 4 header bytes, then 2-byte operations `(op, arg)` and their operands.
/// - header: `h0 % 3` mode (pool, psk-kdf then `poolReady`, pki stand-in), `(h0 >> 2) & 3`
///   suites; `h1` rotate after `1 + h1 % 24` tags (0: the default 2^20); `h2` verification
///   failures tolerated `1 + h2 % 12`; `h3` pool size `24 + h3 % 200` slots, reservation chunk
///   `1 + h3 >> 5`.
/// - ops on direction `arg & 1` (0 Alice to Bob) and queued chunk `arg >> 1`: 0 deliver the head
///   chunk; 1 deliver `k` bytes of it (operand `k`); 2 drop; 3 duplicate; 4 swap with the next;
///   5 move to the back (delay); 6 flip bit (operands lo, hi); 7 truncate (operand); 8 inject
///   `n` input bytes; 9 inject a replay of a frame seen earlier on that direction; 10 send a
///   payload of `n` input bytes from side `arg & 1`; 11 begin or close that side's round;
///   12 advance the clock by `arg * 100 ms` and fire both timeouts; 13 crash that side
///   (``InMemoryKeyStore/simulateCrash()``) and reconnect both (resume); 14 `poolReady` (arg
///   bit 1 clear) or `close` that side; 15 deliver everything queued (honest wire until quiet).
/// At the end the wire is honest: everything queued is delivered; if both are established each
/// closes its open round and sends a probe payload, and everything is delivered again.
///
/// Invariants, checked action by action and at the end (the target traps on a violation):
/// - every error is a typed ``QKDError`` that closes and poisons its session;
/// - every per-frame payload delivered is the next one the peer sent in this connection:
///   byte-identical, in order, never twice; it may skip payloads the peer sent only if this
///   side reported a dropped frame, a failed round or an alert since its last delivery (an
///   injected frame can take a sequence number, so the peer's authentic frame is dropped as a
///   replay: a loss the receiver reports, never a silent one; FailCases/FuzzSessionPair/
///   delivered-payload-mismatch);
/// - a round reported authenticated on a side was closed by both sides and both directions'
///   provisional deliveries equal what was sent; never reported twice, never after it failed;
/// - no outbound slot handed out twice (``InMemoryKeyStore/reusedAnOutboundSlot``), across
///   crashes; inbound slots consumed in strictly increasing order and only slots the peer
///   really handed out; `padUsed` actions equal the stores' records;
/// - a frame stream the receiver's decoder cannot parse closes the receiver;
/// - the end: a side that did not get the peer's probe reported a failure (dropped frame, failed
///   round, alert, closed) or holds an unfinished frame (a stream cut mid-frame, which only the
///   node's idle timer can see); if both got the probes, they agree on session id, epochs and
///   security level. Never a silent divergence.
enum SessionPairCheck {
    static let maxOperations = 400
    static let maxQueuedChunks = 48
    static let maxHistory = 64

    /// One side's view of the current connection.
    struct SideRecord {
        var sent: [[UInt8]] = []
        var roundSent: [UInt64: [[UInt8]]] = [:]
        var roundClosed: Set<UInt64> = []
        var roundOpen = false
        var nextRound: UInt64 = 1
        /// Payloads received from the peer: per-frame count, and per round.
        var delivered = 0
        var roundDelivered: [UInt64: [[UInt8]]] = [:]
        var authenticated: Set<UInt64> = []
        var failedRounds: Set<UInt64> = []
        /// Dropped frame, failed round, alert or close seen by this side.
        var reportedFailure = false
        /// A drop, failed round or alert reported since the last per-frame delivery.
        var dropSinceDelivery = false
        var closedActions = 0
        /// A shadow of the receiver's frame decoder, fed the same bytes.
        var shadow = FrameDecoder()
    }

    struct Run {
        let mode: HandshakeMode
        let configurations: [SessionConfiguration]  // [alice, bob]
        let stores: [InMemoryKeyStore]
        var sessions: [Session]
        var records = [SideRecord(), SideRecord()]
        var queues: [[[UInt8]]] = [[], []]      // by sending direction
        var history: [[[UInt8]]] = [[], []]
        var outboundUsed: [[UInt64]] = [[], []]  // all connections
        var inboundUsed: [[UInt64]] = [[], []]
        var connection: UInt64 = 0
        var now: UInt64 = 0
        var firstError: QKDError?

        init(mode: HandshakeMode, configurations: [SessionConfiguration], stores: [InMemoryKeyStore]) {
            self.mode = mode
            self.configurations = configurations
            self.stores = stores
            sessions = [SessionFixture.session(configurations[0], store: stores[0], seed: SessionFixture.aliceSeed),
                        SessionFixture.session(configurations[1], store: stores[1], seed: SessionFixture.bobSeed)]
        }

        // MARK: Session calls

        mutating func call(_ side: Int, _ what: String, nonFatal: Set<QKDError.Code> = [], _ body: (inout Session) throws -> Void) throws(FuzzInvariantViolation) -> Bool {
            let error = try SessionProbe.call(&sessions[side], "\(side == 0 ? "Alice" : "Bob") \(what)", nonFatal: nonFatal, body)
            if let error, firstError == nil { firstError = error }
            try drain(side)
            return error == nil
        }

        mutating func start() throws(FuzzInvariantViolation) {
            let now = self.now
            // A failure here (a pool too small for the resume, say) is typed and closes Alice.
            _ = try call(0, "start") { try $0.start(now: now) }
        }

        /// Moves a session's actions out: transmits onto the wire, the rest checked.
        mutating func drain(_ side: Int) throws(FuzzInvariantViolation) {
            let peer = 1 - side
            var validations: [PeerValidationRequest] = []
            while let action = sessions[side].nextAction() {
                guard records[side].closedActions == 0 else {
                    throw FuzzInvariantViolation("side \(side): action \(action) after closed")
                }
                switch action {
                case .transmit(let bytes):
                    if queues[side].count < SessionPairCheck.maxQueuedChunks { queues[side].append(bytes) }
                    // Kept across reconnections: replaying an old connection's frames is an attack too.
                    if history[side].count >= SessionPairCheck.maxHistory { history[side].removeFirst() }
                    history[side].append(bytes)
                case .deliver(let payload, let round):
                    if let round {
                        records[side].roundDelivered[round, default: []].append(payload)
                    } else {
                        let index = records[side].delivered
                        let sent = records[peer].sent
                        if index < sent.count, sent[index] == payload {
                            records[side].delivered += 1
                            // Identical payloads make the match ambiguous: it may have been a
                            // later copy (the expected one lost), so a reported drop still
                            // covers the next delivery (FailCases/FuzzSessionPair/
                            // identical-payload-after-drop).
                            if !sent[(index + 1)...].contains(payload) { records[side].dropSinceDelivery = false }
                        } else if records[side].dropSinceDelivery, let skipped = sent.indices.first(where: { $0 > index && sent[$0] == payload }) {
                            // Frames the peer sent were lost, and this side said so (a dropped
                            // frame or a failed round) before delivering a later payload.
                            records[side].delivered = skipped + 1
                            records[side].dropSinceDelivery = false
                        } else {
                            throw FuzzInvariantViolation("side \(side) delivered payload #\(index) (\(payload.count) bytes), which the peer did not send as its payload #\(index) (it sent \(sent.count)), and no drop was reported before it, in connection \(connection)")
                        }
                    }
                case .roundAuthenticated(let round):
                    try checkAuthenticated(round, side: side)
                case .roundFailed(let round, _):
                    guard !records[side].authenticated.contains(round) else {
                        throw FuzzInvariantViolation("side \(side): round \(round) failed after it was authenticated")
                    }
                    records[side].failedRounds.insert(round)
                    records[side].reportedFailure = true
                    records[side].dropSinceDelivery = true
                case .padUsed(let direction, let slot):
                    if direction.rawValue == UInt8(side) { outboundUsed[side].append(slot) } else { inboundUsed[side].append(slot) }
                case .frameDropped, .alertReceived:
                    records[side].reportedFailure = true
                    records[side].dropSinceDelivery = true
                case .closed:
                    records[side].closedActions += 1
                    records[side].reportedFailure = true
                case .validatePeer(let request):
                    validations.append(request)
                case .established, .securityLevelChanged, .alertSent:
                    break
                }
            }
            // Answer each PKI validation pause at once, as a driver that awaits would.
            for request in validations where !sessions[side].isClosed {
                let now = self.now
                _ = try call(side, "peerValidated") { try $0.peerValidated(SessionProbe.validate(request), now: now) }
            }
        }

        func checkAuthenticated(_ round: UInt64, side: Int) throws(FuzzInvariantViolation) {
            let me = records[side]
            let peer = records[1 - side]
            guard !me.authenticated.contains(round), !me.failedRounds.contains(round) else {
                throw FuzzInvariantViolation("side \(side): round \(round) authenticated twice or after it failed")
            }
            guard me.roundClosed.contains(round), peer.roundClosed.contains(round) else {
                throw FuzzInvariantViolation("side \(side): round \(round) authenticated but not closed by both sides")
            }
            guard (me.roundDelivered[round] ?? []) == (peer.roundSent[round] ?? []) else {
                throw FuzzInvariantViolation("side \(side): round \(round) authenticated, but its provisional payloads differ from what the peer sent")
            }
            guard (peer.roundDelivered[round] ?? []) == (me.roundSent[round] ?? []) else {
                throw FuzzInvariantViolation("side \(side): round \(round) authenticated, but the peer received other payloads than this side sent")
            }
        }

        // MARK: The wire

        /// Delivers `count` bytes (nil: all) of chunk 0 of `direction` to the receiver.
        mutating func deliver(_ direction: Int, count: Int? = nil) throws(FuzzInvariantViolation) {
            guard !queues[direction].isEmpty else { return }
            var chunk = queues[direction].removeFirst()
            if let count, count < chunk.count {
                queues[direction].insert(Array(chunk[count...]), at: 0)
                chunk = Array(chunk[..<count])
            }
            let receiver = 1 - direction
            guard !sessions[receiver].isClosed else { return }  // bytes to a closed session are discarded
            var shadowFailed = false
            if records[receiver].shadow.error == nil {
                records[receiver].shadow.append(chunk)
                do { while try records[receiver].shadow.nextFrame() != nil {} } catch { shadowFailed = true }
            }
            let now = self.now
            let accepted = try call(receiver, "receive") { try $0.receive(chunk, now: now) }
            if shadowFailed && accepted && !sessions[receiver].isClosed {
                throw FuzzInvariantViolation("side \(receiver) got a stream its frame decoder cannot parse but stayed open")
            }
        }

        mutating func settle() throws(FuzzInvariantViolation) {
            var steps = 0
            while !queues[0].isEmpty || !queues[1].isEmpty {
                try deliver(0)
                try deliver(1)
                steps += 1
                guard steps < 10_000 else { throw FuzzInvariantViolation("the pair did not settle") }
            }
        }

        /// A crash of `side`, then a new connection: both sessions are new, the wire is empty.
        mutating func reconnect(crashing side: Int?) throws(FuzzInvariantViolation) {
            if let side { stores[side].simulateCrash() }
            connection += 1
            records = [SideRecord(), SideRecord()]
            queues = [[], []]
            sessions = [SessionFixture.session(configurations[0], store: stores[0], seed: SessionFixture.aliceSeed &+ connection),
                        SessionFixture.session(configurations[1], store: stores[1], seed: SessionFixture.bobSeed &+ connection)]
            try start()
        }

        // MARK: The workload

        mutating func send(_ side: Int, _ payload: [UInt8]) throws(FuzzInvariantViolation) {
            guard sessions[side].isEstablished else { return }
            let round = records[side].roundOpen ? records[side].nextRound - 1 : nil
            if try call(side, "send", { try $0.send(payload) }) {
                if let round { records[side].roundSent[round, default: []].append(payload) } else { records[side].sent.append(payload) }
            }
        }

        mutating func toggleRound(_ side: Int) throws(FuzzInvariantViolation) {
            guard sessions[side].isEstablished else { return }
            if records[side].roundOpen {
                let round = records[side].nextRound - 1
                if try call(side, "closeRound", { try $0.closeRound() }) {
                    records[side].roundOpen = false
                    records[side].roundClosed.insert(round)
                }
            } else {
                let round = records[side].nextRound
                records[side].nextRound += 1
                if try call(side, "beginRound", { try $0.beginRound(round) }) {
                    records[side].roundOpen = true
                    records[side].roundSent[round] = []
                }
            }
        }

        // MARK: The end

        mutating func finish() throws(FuzzInvariantViolation) -> FuzzCheck.Outcome {
            try settle()
            var probes = [false, false]
            if sessions[0].isEstablished && sessions[1].isEstablished {
                for side in 0..<2 where records[side].roundOpen { try toggleRound(side) }
                try settle()
                for side in 0..<2 where sessions[side].isEstablished {
                    let before = records[side].sent.count
                    try send(side, [0x9b, UInt8(side), UInt8(truncatingIfNeeded: connection)])
                    probes[side] = records[side].sent.count > before
                }
                try settle()
            }
            for direction in 0..<2 where probes[direction] {
                let receiver = 1 - direction
                let got = records[receiver].delivered == records[direction].sent.count
                let midFrame = records[receiver].shadow.bufferedByteCount > 0
                guard got || records[receiver].reportedFailure || midFrame || sessions[receiver].isClosed else {
                    throw FuzzInvariantViolation("side \(receiver) silently missed the peer's probe: it reports no failure and holds no partial frame")
                }
            }
            if probes[0] && probes[1] && records[0].delivered == records[1].sent.count && records[1].delivered == records[0].sent.count
                && sessions[0].isEstablished && sessions[1].isEstablished {
                let (a, b) = (sessions[0], sessions[1])
                guard a.sessionID == b.sessionID, let ea = a.epochs, let eb = b.epochs, ea.outbound == eb.inbound, ea.inbound == eb.outbound,
                      a.securityLevel == b.securityLevel else {
                    throw FuzzInvariantViolation("both sides exchanged probes but disagree: session ids, epochs \(String(describing: a.epochs))/\(String(describing: b.epochs)) or security levels")
                }
            }
            // The pool, across every connection.
            for side in 0..<2 {
                let store = stores[side]
                let peerStore = stores[1 - side]
                guard !store.reusedAnOutboundSlot else { throw FuzzInvariantViolation("side \(side) handed out an outbound slot twice") }
                guard outboundUsed[side] == store.handedOut, inboundUsed[side] == store.consumedInbound else {
                    throw FuzzInvariantViolation("side \(side): padUsed actions differ from the store's records")
                }
                guard SessionProbe.strictlyIncreasing(store.consumedInbound) else {
                    throw FuzzInvariantViolation("side \(side) consumed an inbound slot twice or out of order: \(store.consumedInbound)")
                }
                guard Set(store.consumedInbound).isSubset(of: Set(peerStore.handedOut)) else {
                    throw FuzzInvariantViolation("side \(side) consumed inbound slots the peer never handed out: a forged tag verified")
                }
            }
            for side in 0..<2 {
                guard sessions[side].isClosed == (records[side].closedActions == 1) else {
                    throw FuzzInvariantViolation("side \(side): isClosed disagrees with the closed actions")
                }
                try SessionProbe.checkPoisoned(&sessions[side], "side \(side) at the end")
            }
            if probes[0] && probes[1] && records[0].delivered == records[1].sent.count && records[1].delivered == records[0].sent.count {
                return .accepted
            }
            return .rejected(firstError ?? QKDError(.sessionClosed, "the adversary stopped the pair"))
        }
    }

    static func run(_ bytes: [UInt8]) throws(FuzzInvariantViolation) -> FuzzCheck.Outcome {
        var input = FuzzInput(bytes)
        let h0 = input.byte(), h1 = input.byte(), h2 = input.byte(), h3 = input.byte()
        let mode: HandshakeMode = [.pool, .pskKDF, .pki][Int(h0 % 3)]
        var configurations = [SessionFixture.configuration(.alice, mode: mode), SessionFixture.configuration(.bob, mode: mode)]
        for i in 0..<2 {
            switch (h0 >> 2) & 3 {
            case 1: configurations[i].suites = [.poly1305OTP]
            case 2: configurations[i].suites = [.gf128OTP]
            default: break
            }
            if h1 != 0 { configurations[i].rotateAfterTags = 1 + UInt64(h1 % 24) }
            configurations[i].maxAuthenticationFailures = 1 + Int(h2 % 12)
        }
        let stores = SessionFixture.stores(slots: 24 + Int(h3 % 200), chunk: 1 + UInt64(h3 >> 5))
        var run = Run(mode: mode, configurations: configurations, stores: [stores.alice, stores.bob])
        try run.start()
        try run.drain(1)

        var operations = 0
        while input.position < input.bytes.count && operations < maxOperations {
            operations += 1
            let op = input.byte() % 16
            let arg = input.byte()
            let direction = Int(arg & 1)
            let count = run.queues[direction].count
            let index = count == 0 ? 0 : Int(arg >> 1) % count
            switch op {
            case 0:
                try run.deliver(direction)
            case 1:
                try run.deliver(direction, count: 1 + Int(input.byte()))
            case 2:
                if count > 0 { run.queues[direction].remove(at: index) }
            case 3:
                if count > 0 && count < maxQueuedChunks { run.queues[direction].insert(run.queues[direction][index], at: index) }
            case 4:
                if index + 1 < count { run.queues[direction].swapAt(index, index + 1) }
            case 5:
                if count > 0 { run.queues[direction].append(run.queues[direction].remove(at: index)) }
            case 6:
                let bit = Int(input.byte()) | Int(input.byte()) << 8
                if count > 0, !run.queues[direction][index].isEmpty {
                    let length = run.queues[direction][index].count
                    run.queues[direction][index][(bit / 8) % length] ^= UInt8(1) << (bit % 8)
                }
            case 7:
                let keep = Int(input.byte())
                if count > 0 { run.queues[direction][index] = Array(run.queues[direction][index].prefix(keep % max(1, run.queues[direction][index].count))) }
            case 8:
                let injected = input.take(Int(input.byte() % 80))
                if count < maxQueuedChunks { run.queues[direction].insert(injected, at: index) }
            case 9:
                let seen = run.history[direction]
                if !seen.isEmpty && count < maxQueuedChunks { run.queues[direction].insert(seen[Int(arg >> 1) % seen.count], at: index) }
            case 10:
                try run.send(direction, input.take(Int(input.byte() % 64)))
            case 11:
                try run.toggleRound(direction)
            case 12:
                run.now &+= UInt64(arg) * 100_000_000
                let now = run.now
                for side in 0..<2 where !run.sessions[side].isClosed {
                    _ = try run.call(side, "handleTimeout") { try $0.handleTimeout(now: now) }
                }
            case 13:
                try run.reconnect(crashing: direction)
            case 14:
                if arg & 2 == 0 {
                    if run.sessions[direction].isEstablished {
                        _ = try run.call(direction, "poolReady", nonFatal: [.sessionPoolExhausted]) { try $0.poolReady() }
                    }
                } else {
                    _ = try run.call(direction, "close") { try $0.close() }
                }
            default:
                try run.settle()
            }
        }
        return try run.finish()
    }

    /// Honest programs for the seed corpus: handshake, payloads both ways, rounds, a rotation,
    /// the switch to pool epochs, a crash and resume.
    static func seeds() -> [(name: String, bytes: [UInt8])] {
        let settle: [UInt8] = [15, 0]
        func send(_ side: UInt8, _ payload: [UInt8]) -> [UInt8] { [10, side, UInt8(payload.count)] + payload }
        let traffic: [UInt8] = settle + send(0, Array("hello bob".utf8)) + send(1, Array("hello alice".utf8)) + settle
        let rounds: [UInt8] = [11, 0, 11, 1] + send(0, [1, 2, 3]) + send(1, [4, 5]) + [11, 0, 11, 1] + settle
        var seeds: [(name: String, bytes: [UInt8])] = []
        for (mode, name) in [(UInt8(0), "pool"), (1, "psk-kdf")] {
            seeds.append(("\(name)-traffic", [mode, 0, 7, 40] + traffic + rounds))
        }
        seeds.append(("pool-rotation", [0, 3, 7, 100] + traffic + traffic + rounds + traffic))
        seeds.append(("psk-kdf-pool-ready", [1, 0, 7, 100] + traffic + [14, 0, 14, 1] + settle + traffic + rounds))
        seeds.append(("pool-crash-resume", [0, 0, 7, 0x40] + traffic + [13, 0] + traffic + rounds + [13, 1] + traffic))
        seeds.append(("pool-drip", [4, 0, 7, 60, 15, 0] + send(0, [9, 9, 9]) + [1, 0, 3, 1, 0, 5, 0, 0] + traffic))
        return seeds
    }
}
