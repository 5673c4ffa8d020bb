import QKDCrypto
import QKDWire
import QKDSession

/// FuzzHandshakeResponder and FuzzHandshakeInitiator: one session fed an arbitrary byte stream
/// as everything its peer says (Spec/session.md sections 3 to 6).
///
/// - Responder: a fresh Bob (accepts pool, psk-kdf and pki with the stand-in PKI; pool
///   material and the PSK configured) fed the stream as Alice's first flight and everything after.
/// - Initiator: an Alice that has sent her ClientHello (mode from the variation byte) fed the
///   stream as Bob's reply and everything after.
///
/// Input: a variation byte (bits 0-1 Alice's mode: pool, psk-kdf, pki, pool; bits 2-3 suites;
/// bits 4-5 granularities; bit 6 `maxResyncSkip = 2`; bit 7 `maxAuthenticationFailures = 2`;
/// 0 is the configuration of the honest reference runs), a chunk seed (0 whole, 1 one byte at a
/// time, else pseudo-random chunks of 1 to 37 bytes), a clock byte (non-zero: afterwards
/// `handleTimeout(now: clock * 100 ms)`), then the stream. The seeds are the honest peer's real
/// frames (``SessionFixture/responderRuns``, ``SessionFixture/initiatorRuns``): the sessions are
/// deterministic, so the fuzzer starts from a full handshake, payloads and a round.
///
/// Invariants:
/// - every error is a typed ``QKDError`` that closes and poisons the session (the same code
///   afterwards); nothing happens after `closed`;
/// - the actions and transmitted bytes are the same whole or chunked;
/// - every delivered per-frame payload is the next one the honest peer sent (never a forged,
///   altered, replayed or reordered one); no round is reported authenticated (this session
///   never closes a round of its own), and a `roundVerified` it sends names round 1 and follows
///   exactly the honest round payloads;
/// - pool slots: none handed out twice; `padUsed` actions match the store's records; inbound
///   slots consumed in strictly increasing order and only slots the honest peer really used;
///   before the session is established it consumes no inbound slot at all, and the responder
///   hands out no outbound slot and leaves both watermarks as they were (a rejected ClientHello
///   costs no key); the initiator hands out at most its Finished's two slots and one alert's,
///   contiguous from its outbound watermark, and its watermarks moved by exactly those: no
///   skip on the word of an unauthenticated ServerHello (Spec/session.md section 4.1; the
///   fixture's stores start at 0, so the both-restarted exception cannot arise);
/// - the observers agree with the actions: established exactly once iff `isEstablished` (or
///   closed after it), a security level iff established, a timeout past the deadline closes
///   with `session.timeout` and never before.
enum HandshakeCheck {
    enum Role { case responder, initiator }

    struct Result: Equatable, Sendable {
        var events: [String] = []
        var transmitted: [[UInt8]] = []
        var error: QKDError.Code?
        /// Per-frame payloads delivered (each checked against the honest peer's).
        var delivered = 0
        /// Whether the session reported `established`.
        var established = false
    }

    static func run(_ bytes: [UInt8], role: Role) throws(FuzzInvariantViolation) -> FuzzCheck.Outcome {
        var input = FuzzInput(bytes)
        let variation = input.byte()
        let chunkSeed = input.byte()
        let clock = input.byte()
        let stream = input.rest()
        let (whole, outcome) = try feed(stream, role: role, variation: variation, chunkSeed: 0, clock: clock)
        if chunkSeed != 0 {
            let (chunked, _) = try feed(stream, role: role, variation: variation, chunkSeed: chunkSeed, clock: clock)
            guard whole == chunked else {
                throw FuzzInvariantViolation("chunking changed the session's behaviour: whole \(whole.events.count) actions / \(String(describing: whole.error)), chunked \(chunked.events.count) / \(String(describing: chunked.error))")
            }
        }
        return outcome
    }

    static func configuration(role: Role, variation: UInt8) -> SessionConfiguration {
        let modes: [HandshakeMode] = [.pool, .pskKDF, .pki, .pool]
        var config = SessionFixture.configuration(role == .responder ? .bob : .alice, mode: modes[Int(variation & 3)])
        switch (variation >> 2) & 3 {
        case 1: config.suites = [.poly1305OTP]
        case 2: config.suites = [.gf128OTP]
        case 3: config.suites = [.gf128OTP, .poly1305OTP]
        default: break
        }
        switch (variation >> 4) & 3 {
        case 1: config.granularities = .perFrame
        case 2: config.granularities = .perRound
        default: break
        }
        if variation & 0x40 != 0 { config.maxResyncSkip = 2 }
        if variation & 0x80 != 0 { config.maxAuthenticationFailures = 2 }
        return config
    }

    /// What one session did, checked action by action.
    struct Watch {
        let role: Role
        let outbound: Direction
        var result = Result()
        var delivered = 0
        var roundDelivered: [UInt64: [[UInt8]]] = [:]
        var outboundUsed: [UInt64] = []
        var inboundUsed: [UInt64] = []
        var established = 0
        var closed = 0
        /// The responder sent its ServerHello.
        var sentServerHello = false

        mutating func drain(_ session: inout Session) throws(FuzzInvariantViolation) {
            var validations: [PeerValidationRequest] = []
            while let action = session.nextAction() {
                guard closed == 0 else { throw FuzzInvariantViolation("action \(action) after the session closed") }
                switch action {
                case .transmit(let bytes):
                    result.transmitted.append(bytes)
                    result.events.append("transmit")
                    guard let frame = SessionProbe.frame(bytes) else {
                        throw FuzzInvariantViolation("the session transmitted bytes that are not one frame")
                    }
                    if frame.header.type == .handshake, frame.header.sequenceNumber == 0, role == .responder { sentServerHello = true }
                    if case .roundVerified(let round)? = SessionProbe.control(in: bytes) {
                        guard round == 1, roundDelivered[1] == SessionFixture.honestRoundPayloads else {
                            throw FuzzInvariantViolation("the session confirmed round \(round) but received \(roundDelivered[round]?.count ?? 0) payloads that are not the honest peer's")
                        }
                    }
                    continue
                case .deliver(let payload, let round):
                    if let round {
                        roundDelivered[round, default: []].append(payload)
                    } else {
                        guard delivered < SessionFixture.honestPayloads.count, SessionFixture.honestPayloads[delivered] == payload else {
                            throw FuzzInvariantViolation("payload #\(delivered) (\(payload.count) bytes) delivered, but it is not the honest peer's payload #\(delivered)")
                        }
                        delivered += 1
                    }
                case .established:
                    established += 1
                    guard established == 1 else { throw FuzzInvariantViolation("established reported twice") }
                case .roundAuthenticated(let round):
                    throw FuzzInvariantViolation("round \(round) reported authenticated, but this session never closed a round")
                case .padUsed(let direction, let slot):
                    if direction == outbound { outboundUsed.append(slot) } else { inboundUsed.append(slot) }
                case .closed:
                    closed += 1
                case .validatePeer(let request):
                    validations.append(request)
                    result.events.append("validatePeer(\(request.certificateChain))")
                    continue
                case .securityLevelChanged, .roundFailed, .alertSent, .alertReceived, .frameDropped:
                    break
                }
                result.events.append("\(action)")
            }
            // Answer each PKI validation pause at once, as a driver that awaits would.
            for request in validations where !session.isClosed {
                _ = try SessionProbe.call(&session, "peerValidated") { try $0.peerValidated(SessionProbe.validate(request), now: 0) }
                try drain(&session)
            }
        }
    }

    static func feed(_ stream: [UInt8], role: Role, variation: UInt8, chunkSeed: UInt8, clock: UInt8)
        throws(FuzzInvariantViolation) -> (Result, FuzzCheck.Outcome) {
        let stores = SessionFixture.stores()
        let store = role == .responder ? stores.bob : stores.alice
        let initialWatermarks = store.watermarks
        let config = configuration(role: role, variation: variation)
        var session = SessionFixture.session(config, store: store, seed: role == .responder ? SessionFixture.bobSeed : SessionFixture.aliceSeed)
        var watch = Watch(role: role, outbound: config.role.outbound)
        var thrown: QKDError?
        if role == .initiator {
            thrown = try SessionProbe.call(&session, "start") { try $0.start(now: 0) }
            try watch.drain(&session)
            guard thrown == nil else { throw FuzzInvariantViolation("Alice could not start: \(thrown!)") }
        }
        var offset = 0
        var chunks = FuzzChunks(seed: chunkSeed)
        while offset < stream.count && !session.isClosed {
            let n = chunks.next(remaining: stream.count - offset)
            let chunk = Array(stream[offset..<offset + n])
            offset += n
            if let error = try SessionProbe.call(&session, "receive", { try $0.receive(chunk, now: 0) }) { thrown = thrown ?? error }
            try watch.drain(&session)
        }
        if clock != 0 && !session.isClosed {
            let now = UInt64(clock) * 100_000_000
            let deadline = session.nextDeadline
            let error = try SessionProbe.call(&session, "handleTimeout") { try $0.handleTimeout(now: now) }
            try watch.drain(&session)
            if let deadline, now >= deadline {
                guard error?.code == .sessionTimeout else { throw FuzzInvariantViolation("the handshake deadline passed but handleTimeout did not close with session.timeout") }
            } else if let error {
                throw FuzzInvariantViolation("handleTimeout threw \(error) before any deadline")
            }
            thrown = thrown ?? error
        }
        watch.result.error = thrown?.code
        watch.result.delivered = watch.delivered
        watch.result.established = watch.established == 1

        // Observers against actions.
        if session.isClosed {
            guard watch.closed == 1 else { throw FuzzInvariantViolation("closed without one closed action") }
            guard thrown != nil || session.error == nil else { throw FuzzInvariantViolation("closed with \(session.error!) but no call threw") }
        } else {
            guard watch.closed == 0, thrown == nil else { throw FuzzInvariantViolation("open after a closed action or a thrown error") }
        }
        if session.isEstablished {
            guard watch.established == 1, session.securityLevel != nil, session.epochs != nil, session.sessionID != nil else {
                throw FuzzInvariantViolation("established, but the observers or actions disagree")
            }
        } else {
            guard session.securityLevel == nil, session.epochs == nil else { throw FuzzInvariantViolation("a security level before establishment") }
            if !session.isClosed {
                guard watch.established == 0 else { throw FuzzInvariantViolation("established was reported but the session is not") }
                if role == .responder, (session.sessionID != nil) != watch.sentServerHello {
                    throw FuzzInvariantViolation("Bob's session id and his ServerHello disagree")
                }
            }
        }

        // The pool.
        let reference = role == .responder ? SessionFixture.responderRuns.values.map(\.aliceHandedOut) : SessionFixture.initiatorRuns.values.map(\.bobHandedOut)
        let peerUsed = Set(reference.joined())
        guard !store.reusedAnOutboundSlot else { throw FuzzInvariantViolation("an outbound slot was handed out twice") }
        guard watch.outboundUsed == store.handedOut, watch.inboundUsed == store.consumedInbound else {
            throw FuzzInvariantViolation("padUsed actions \(watch.outboundUsed)/\(watch.inboundUsed) differ from the store's records \(store.handedOut)/\(store.consumedInbound)")
        }
        guard SessionProbe.strictlyIncreasing(store.consumedInbound) else { throw FuzzInvariantViolation("inbound slots consumed out of order or twice: \(store.consumedInbound)") }
        guard Set(store.consumedInbound).isSubset(of: peerUsed) else {
            throw FuzzInvariantViolation("inbound slots \(store.consumedInbound) consumed, but the honest peer only used \(peerUsed.sorted()): a forged tag verified")
        }
        if watch.established == 0 {
            guard store.consumedInbound.isEmpty else { throw FuzzInvariantViolation("inbound slots consumed before the handshake finished") }
            switch role {
            case .responder:
                guard store.handedOut.isEmpty, store.watermarks == initialWatermarks else {
                    throw FuzzInvariantViolation("a handshake that did not finish cost Bob pool key: handed out \(store.handedOut), watermarks \(store.watermarks)")
                }
            case .initiator:
                guard store.handedOut.count <= 3 else { throw FuzzInvariantViolation("Alice handed out \(store.handedOut.count) slots before establishment") }
                let own = UInt64(store.handedOut.count)
                guard store.handedOut == Array(initialWatermarks.outboundNext..<initialWatermarks.outboundNext + own),
                      store.watermarks == PoolWatermarks(outboundNext: initialWatermarks.outboundNext + own, inboundNext: initialWatermarks.inboundNext) else {
                    throw FuzzInvariantViolation("a handshake that did not finish moved Alice's watermarks beyond her own slots: \(initialWatermarks) -> \(store.watermarks), handed out \(store.handedOut)")
                }
            }
        }
        try SessionProbe.checkPoisoned(&session, "after the stream")
        if let thrown { return (watch.result, .rejected(thrown)) }
        if session.isClosed { return (watch.result, .rejected(QKDError(.sessionClosed, "the peer closed the session"))) }
        return (watch.result, .accepted)
    }

    /// The honest peer's frames of each mode, as seeds.
    static func seeds(role: Role) -> [(name: String, bytes: [UInt8])] {
        var seeds: [(name: String, bytes: [UInt8])] = []
        let modes: [(HandshakeMode, UInt8, String)] = [(.pool, 0, "pool"), (.pskKDF, 1, "psk-kdf")]
        for (mode, variation, name) in modes {
            let run = role == .responder ? SessionFixture.responderRuns[mode]! : SessionFixture.initiatorRuns[mode]!
            let frames = role == .responder ? run.aliceFrames : run.bobFrames
            // The responder's variation ignores the mode bits (Bob accepts every mode): keep 0.
            let v: UInt8 = role == .responder ? 0 : variation
            seeds.append(("\(name)-full", [v, 5, 0] + frames.joined()))
            seeds.append(("\(name)-hello", [v, 0, 0] + frames[0]))
        }
        return seeds
    }
}
