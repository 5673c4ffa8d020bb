import Logging
import QKDCrypto
public import QKDKeyPool
import QKDPostProcessing
import QKDSession
import QKDSimulation
import QKDTransport
import QKDWire

/// One end of a QKD link, running continuously: it composes a transport (classical and
/// simulated quantum links), a ``QKDSession/Session`` over the link's durable
/// ``QKDKeyPool/KeyPool`` (through ``QKDSession/PoolKeyStore``), BB84 post-processing rounds and
/// the pool's refill (Spec/quantum-link.md section 5).
///
/// Alice drives: after the handshake and the `hello` exchange she starts a round (pulses on the
/// quantum link, `beginRound`, `roundStart`), both sides run their post-processing machine over
/// round frames, each closes its direction of the round when its machine is done, and the key
/// is absorbed into the pool only after the session's `roundAuthenticated` (Spec/session.md
/// section 6). A computational session (psk-kdf, or pki with ``NodeConfiguration/pki``) switches
/// to pool epochs (`poolReady`) once both sides have absorbed a round. In PKI mode the session
/// pauses for the peer's chain validation; the node runs it in its own task and feeds the
/// result back in input order (Spec/quantum-link.md section 6).
///
/// On a link failure the node reconnects through ``NodeLinks`` and resumes from the pool: the
/// new session's handshake starts above every pad either side used (Spec/session.md section 4),
/// and a round cut off mid-way is discarded on both sides. A round cut off *between* the two
/// sides' authentications (one side authenticated and absorbed it) is settled by the `hello`
/// exchange: the other side absorbs the key it still holds in memory.
///
/// Cancel the task running ``run()`` to stop: the node closes the session gracefully and closes
/// its links. Logs (swift-log) and metrics (swift-metrics) never carry key or pad bytes.
public actor QKDLinkNode {
    /// What the node reports while it runs. Single consumer.
    public nonisolated let events: AsyncStream<NodeEvent>
    /// The link's pool (shared: the node absorbs into it, ``fetchKeys(count:)`` delivers from it).
    public nonisolated let pool: KeyPool

    private let eventSink: AsyncStream<NodeEvent>.Continuation
    private let configuration: NodeConfiguration
    private let links: NodeLinks
    private let logger: Logger
    private let metrics: NodeMetrics
    private let keyStore: PoolKeyStore
    private let clockOrigin = ContinuousClock.now
    private var random = SystemRandomSource()

    // Simulated devices (state survives reconnects, so a seeded run is reproducible).
    private var aliceDevice: AliceDevice
    private var channel: QuantumChannel
    private var bobDevice: BobDevice

    // Across connections.
    private var lastStartedRound: UInt64 = 0
    private var lastAbsorbed: UInt64 = 0
    private var peerLastAbsorbed: UInt64 = 0
    private var settledRounds = 0
    private var pending: PendingRound?
    private var padSlotsUsed = 0
    private var splits: [UInt64: (a2b: UInt32, b2a: UInt32, keys: UInt32)] = [:]
    private var peerSplits: [UInt64: (a2b: UInt32, b2a: UInt32, keys: UInt32)] = [:]
    private var running = false

    // Per connection.
    private var session: Session?
    private var outgoing: [UInt8] = []
    private var quantumOutgoing: [UInt8] = []
    private var pulseParser = PulseFrameParser()
    private var pulses: [UInt64: PulseFrame] = [:]
    private var active: ActiveRound?
    private var helloReceived = false
    private var awaitingPeerAbsorb: UInt64?
    private var poolReadySent = false
    private var closing = false
    private var sessionEnded: SessionEnd?
    private var lastProgress = ContinuousClock.now
    private var writeFailure: String?
    /// A PKI chain validation the session asked for and the connection loop has not started
    /// yet (Spec/handshake.md section 6.2).
    private var pendingValidation: PeerValidationRequest?

    private enum SessionEnd {
        case graceful
        case failed(QKDError)
    }

    private enum Outcome: Sendable {
        case finished
        case cancelled
        case linkFailed(String)
        case fatal(QKDError)
    }

    private enum Input: Sendable {
        case classical([UInt8]?)
        case quantum([UInt8]?)
        case failed(String)
        case tick
        /// The outcome of a PKI peer validation the session asked for.
        case validated(PeerValidationResult)
    }

    private enum RoundOutcome {
        case key(RoundResult)
        case aborted(String, RoundSummary?)
    }

    private enum Verdict {
        case authenticated
        case failed(String)
    }

    private struct ActiveRound {
        let id: UInt64
        var slotCount: UInt32
        var deliverable: Bool
        /// The Cascade schedule: Alice's configured one, which her `roundStart` names and Bob's
        /// round then uses.
        let schedule: ReconciliationSchedule
        var alice: AliceRound?
        var bob: BobRound?
        var begun = false
        var ownClosed = false
        var outcome: RoundOutcome?
        var verdict: Verdict?
        let padSlotsAtStart: Int
        /// Per-frame granularity: the peer's `roundClosed` arrived.
        var peerClosed = false
    }

    /// A round whose key both machines produced but whose authentication had not finished on
    /// this side when the link failed: kept in memory until the next `hello` says whether the
    /// peer accepted it.
    private struct PendingRound {
        let id: UInt64
        let key: SecretBytes
        /// Nil for a round reloaded from the pool's staging after a restart.
        let summary: RoundSummary?
        let deliverable: Bool
        let padSlotsAtStart: Int
    }

    /// Creates a node.
    /// - Parameters:
    ///   - configuration: role, policy, simulation, logging and metrics.
    ///   - pool: the link's open pool (the caller closes it after ``run()`` returns).
    ///   - links: how to open the classical and quantum links (again after a failure).
    /// - Throws: ``QKDError/Code/nodeConfiguration`` if the refill policy is invalid; a storage
    ///   error reading the pool.
    public init(configuration: NodeConfiguration, pool: KeyPool, links: NodeLinks) throws {
        try configuration.refillPolicy.validate()
        let (stream, sink) = AsyncStream<NodeEvent>.makeStream(bufferingPolicy: .bufferingNewest(4096))
        events = stream
        eventSink = sink
        self.configuration = configuration
        self.pool = pool
        self.links = links
        var logger = configuration.logger
        logger[metadataKey: "role"] = "\(configuration.role == .alice ? "alice" : "bob")"
        self.logger = logger
        metrics = NodeMetrics(role: configuration.role == .alice ? "alice" : "bob", factory: configuration.metricsFactory)
        keyStore = PoolKeyStore(pool: pool)
        var seeds = SystemRandomSource()
        let seed = configuration.seed ?? seeds.next()
        let sim = configuration.simulation
        aliceDevice = AliceDevice(probabilityZ: sim.probabilityZ, seed: seed)
        channel = QuantumChannel(transmittance: sim.channelTransmittance, interceptFraction: sim.interceptFraction, seed: seed)
        bobDevice = BobDevice(probabilityZ: sim.probabilityZ, efficiency: sim.detectorEfficiency,
                              darkCountProbability: sim.darkCountProbability, misalignment: sim.misalignment, seed: seed)
        lastAbsorbed = try pool.lastAbsorbedRoundID() ?? 0
        lastStartedRound = lastAbsorbed
        // A round staged before a crash, between the two sides' authentications: the next
        // `hello` says whether the peer absorbed it (Spec/quantum-link.md section 5.3).
        if let staged = try pool.stagedRound() {
            if staged.roundID > lastAbsorbed {
                pending = PendingRound(id: staged.roundID, key: staged.key, summary: nil, deliverable: staged.deliverable, padSlotsAtStart: 0)
                lastStartedRound = staged.roundID
            } else {
                try pool.clearStagedRound()
            }
        }
    }

    // MARK: - Public API

    /// Delivers consumer keys from the pool, oldest first, and marks them delivered (they are
    /// never handed out again). Only keys the delivery policy let through are in the pool.
    /// - Parameter count: the number of keys wanted.
    /// - Returns: up to `count` keys (fewer if fewer are available).
    /// - Throws: a pool storage error.
    public func fetchKeys(count: Int) throws -> [ConsumerKey] {
        let keys = try pool.deliverConsumerKeys(count: count)
        metrics.keyBitsDelivered.increment(by: keys.reduce(0) { $0 + 8 * $1.bytes.count })
        logger.info("delivered consumer keys", metadata: ["count": "\(keys.count)"])
        return keys
    }

    /// Runs the link until Alice's configured rounds are done (and Bob sees her close), the
    /// task is cancelled, or a fatal error. Call once.
    /// - Throws: ``QKDError/Code/nodeLinkLost`` after too many failed connection attempts;
    ///   ``QKDError/Code/nodePoolDiverged``, ``QKDError/Code/sessionPoolExhausted``,
    ///   ``QKDError/Code/sessionBadCertificate`` (a PKI chain or signature refused by either side)
    ///   or a storage error (fatal: reconnecting would not help). Cancellation is a clean stop, not an error.
    public func run() async throws {
        precondition(!running, "QKDLinkNode.run() called twice")
        running = true
        defer { eventSink.finish() }
        var failures = 0
        while !Task.isCancelled {
            let classical: any ByteTransport
            let quantum: any ByteTransport
            do {
                classical = try await links.classical()
                do {
                    quantum = try await links.quantum()
                } catch {
                    await classical.close()
                    throw error
                }
            } catch {
                if Task.isCancelled || error is CancellationError { break }
                failures += 1
                logger.warning("connection attempt failed", metadata: ["attempt": "\(failures)", "error": "\(error)"])
                if failures >= configuration.maxReconnectAttempts {
                    let lost = QKDError(.nodeLinkLost, "could not reach the peer after \(failures) attempts: \(error)")
                    emit(.closed(lost.description))
                    throw lost
                }
                try? await Task.sleep(for: configuration.reconnectDelay)
                continue
            }
            logger.info("connected", metadata: ["peer": "\(classical.peerDescription)"])
            emit(.connected(peer: classical.peerDescription))
            // On the classical link's thread (its event loop, for a socket): each message is
            // read, handled and answered there, with no hop between threads per message.
            let outcome = await withTaskExecutorPreference(classical.preferredTaskExecutor) {
                await runConnection(classical, quantum)
            }
            endConnection(outcome)
            await classical.close()
            await quantum.close()
            switch outcome {
            case .finished:
                logger.info("link closed gracefully", metadata: ["rounds": "\(settledRounds)"])
                emit(.closed(nil))
                return
            case .cancelled:
                logger.info("stopped on cancellation")
                emit(.closed(nil))
                return
            case .linkFailed(let reason):
                failures = sessionWasEstablished ? 1 : failures + 1
                metrics.reconnects.increment()
                logger.warning("link failed; reconnecting", metadata: ["reason": "\(reason)", "attempt": "\(failures)"])
                emit(.disconnected(reason: reason))
                if failures >= configuration.maxReconnectAttempts {
                    let lost = QKDError(.nodeLinkLost, "the link failed \(failures) times in a row; last: \(reason)")
                    emit(.closed(lost.description))
                    throw lost
                }
                try? await Task.sleep(for: configuration.reconnectDelay)
            case .fatal(let error):
                logger.error("stopped on a fatal error", metadata: ["error": "\(error)"])
                emit(.closed(error.description))
                throw error
            }
        }
        emit(.closed(nil))
    }

    private var sessionWasEstablished = false
    /// Per-frame granularity: a round to settle once the queued session actions are processed.
    private var deferredVerdict: UInt64?

    // MARK: - One connection

    private func runConnection(_ classical: any ByteTransport, _ quantum: any ByteTransport) async -> Outcome {
        let (stream, sink) = AsyncStream<Input>.makeStream()
        var validations: [Task<Void, Never>] = []
        let executor = classical.preferredTaskExecutor
        let readers = [
            Task(executorPreference: executor) { await Self.pump(classical, sink) { .classical($0) } },
            Task(executorPreference: quantum.preferredTaskExecutor) { await Self.pump(quantum, sink) { .quantum($0) } },
            Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(200))
                    sink.yield(.tick)
                }
            },
        ]
        defer {
            for r in readers { r.cancel() }
            for v in validations { v.cancel() }
            sink.finish()
        }
        // PKI mode: the session paused for a chain validation (`validatePeer`). It runs in its
        // own task, off the actor; its result comes back through the input stream as one more
        // input, so the session sees it in order: classical bytes received meanwhile wait in
        // the session's decoder until `peerValidated` (Spec/handshake.md section 6.2).
        func startPendingValidation() {
            guard let request = pendingValidation else { return }
            pendingValidation = nil
            validations.append(Task { sink.yield(.validated(await request.run())) })
        }
        startConnection()
        do {
            if configuration.role == .alice { try session!.start(now: now) }
            try processSessionActions()
            startPendingValidation()
            if let outcome = try await flush(classical, quantum) { return outcome }
            for await input in stream {
                switch input {
                case .classical(let bytes?):
                    lastProgress = .now
                    metrics.bytesReceived.increment(by: bytes.count)
                    do {
                        try session!.receive(bytes, now: now)
                    } catch let error as QKDError {
                        sessionEnded = .failed(error)
                    }
                    try processSessionActions()
                case .classical(nil):
                    if case .graceful? = sessionEnded { return .finished }
                    return .linkFailed(writeFailure ?? "the peer closed the classical link")
                case .quantum(let bytes?):
                    lastProgress = .now
                    pulseParser.append(bytes)
                    while let frame = try pulseParser.nextFrame() {
                        guard configuration.role == .bob else {
                            throw QKDError(.nodeProtocolViolation, "Alice received pulse data on the quantum link")
                        }
                        pulses = pulses.filter { $0.key >= frame.roundID }
                        pulses[frame.roundID] = frame
                    }
                    try startBobRoundIfReady()
                    try processSessionActions()  // Bob's first round frames go out now, not at the next tick.
                case .quantum(nil):
                    if case .graceful? = sessionEnded { return .finished }
                    // The classical link may still carry the peer's graceful close: read on
                    // for a moment (the tick ends the connection after 2 s).
                    if writeFailure == nil { writeFailure = "the peer closed the quantum link"; lastProgress = .now }
                case .failed(let reason):
                    if case .graceful? = sessionEnded { return .finished }
                    return .linkFailed(reason)
                case .validated(let result):
                    // Nil or closed (e.g. the handshake timed out meanwhile): nothing waits for it.
                    guard let s = session, s.isAwaitingPeerValidation else { break }
                    do {
                        try session!.peerValidated(result, now: now)
                    } catch let error as QKDError {
                        sessionEnded = .failed(error)
                    }
                    try processSessionActions()
                case .tick:
                    if let s = session, !s.isClosed {
                        do { try session!.handleTimeout(now: now) } catch let error as QKDError { sessionEnded = .failed(error) }
                        try processSessionActions()
                    }
                    if let writeFailure, ContinuousClock.now - lastProgress > .seconds(2) {
                        return .linkFailed(writeFailure)
                    }
                    // A session that failed in this tick (its handshake deadline) is reported by
                    // the flush below with its own reason, which says more than the stall's.
                    if sessionEnded == nil, ContinuousClock.now - lastProgress > configuration.stallTimeout {
                        return .linkFailed("nothing received for \(configuration.stallTimeout); the link is considered broken")
                    }
                }
                try maybeStartRound()
                startPendingValidation()
                if let outcome = try await flush(classical, quantum) { return outcome }
            }
            // The stream ends only when this task is cancelled.
            await closeOnCancellation(classical)
            return .cancelled
        } catch let error as QKDError {
            _ = try? await flush(classical, quantum)
            // The peer closed the session gracefully (e.g. stopped by SIGINT) in the same read
            // as round frames this node then answered: the answer met the closed session. That
            // is the peer's clean stop, not a broken link to reconnect (Spec/session.md 6.1).
            if error.code == .sessionClosed, let s = session, s.isClosed, s.error == nil { return .finished }
            if Self.isFatal(error) { return .fatal(error) }
            return .linkFailed(error.description)
        } catch is CancellationError {
            await closeOnCancellation(classical)
            return .cancelled
        } catch {
            return .linkFailed("\(error)")
        }
    }

    private static func pump(_ transport: any ByteTransport, _ sink: AsyncStream<Input>.Continuation,
                             _ wrap: @Sendable ([UInt8]?) -> Input) async {
        do {
            while !Task.isCancelled {
                let chunk = try await transport.read()
                sink.yield(wrap(chunk))
                if chunk == nil { return }
            }
        } catch is CancellationError {
            return
        } catch {
            sink.yield(.failed("\(transport.peerDescription): \(error)"))
        }
    }

    /// Errors after which reconnecting cannot help.
    private static func isFatal(_ error: QKDError) -> Bool {
        // A refused certificate (ours or the peer's, `session.bad-certificate` either way) stays
        // refused on the next attempt: stop with the reason instead of retrying.
        [.nodePoolDiverged, .sessionPoolExhausted, .storageFailure, .storageCorrupt, .nodeConfiguration, .nodePolicyRefused,
         .sessionBadCertificate].contains(error.code)
    }

    private var now: UInt64 { Self.nanoseconds(ContinuousClock.now - clockOrigin) }

    /// A non-negative duration in the session's unit, nanoseconds (negative parts count as 0).
    private static func nanoseconds(_ d: Duration) -> UInt64 {
        UInt64(max(0, d.components.seconds)) &* 1_000_000_000 &+ UInt64(max(0, d.components.attoseconds) / 1_000_000_000)
    }

    private func startConnection() {
        var sessionConfiguration = SessionConfiguration(role: configuration.role, linkID: withUnsafeBytes(of: pool.linkID.uuid) { Array($0) },
                                                        splitPolicy: Self.encode(configuration.refillPolicy, granularity: configuration.granularity),
                                                        preSharedKeys: configuration.preSharedKeys)
        // Per-round needs per-frame too (hello, absorbed, sync, confirmations); per-frame offers
        // only per-frame, so a session can never open a round the peer cannot verify.
        sessionConfiguration.granularities = perFrameRounds ? [.perFrame] : .all
        sessionConfiguration.handshakeTimeout = Self.nanoseconds(configuration.handshakeTimeout)
        // Spec/session.md 4.1: after both nodes restarted, Alice's unauthenticated skip is at most
        // one reservation chunk (the most a durable inbound watermark runs ahead), so a forged
        // hello can burn no more than that. Both nodes of a link use the same chunk size.
        sessionConfiguration.maxPreAuthSkip = UInt64(pool.configuration.chunkPads)
        // First contact (no pads in the pool yet): PKI if configured, else a psk-kdf PSK. Once the
        // pool holds QKD key every connection resumes in pool mode (DESIGN.md, "Resume").
        if configuration.role == .alice {
            sessionConfiguration.mode = keyStore.holdsPoolMaterial ? .pool
                : configuration.pki != nil ? .pki : configuration.preSharedKeys.isEmpty ? .pool : .pskKDF
        } else if configuration.pki != nil {
            sessionConfiguration.acceptedModes.insert(.pki)
        }
        session = Session(configuration: sessionConfiguration, keyStore: keyStore, random: SystemRandomSource(),
                          pki: configuration.pki?.authenticator())
        pendingValidation = nil
        outgoing = []
        quantumOutgoing = []
        pulseParser = PulseFrameParser()
        pulses = [:]
        dropActiveRound()
        deferredVerdict = nil
        helloReceived = false
        awaitingPeerAbsorb = nil
        poolReadySent = false
        closing = false
        sessionEnded = nil
        writeFailure = nil
        sessionWasEstablished = false
        lastProgress = .now
    }

    /// Writes what the session and the quantum source produced; decides whether the
    /// connection is over.
    ///
    /// A failed write does not end the connection at once: the peer may have closed the link
    /// after a graceful `close` this node has not read yet (Spec/session.md section 6.1), so the
    /// node keeps reading until the link's end and only then calls it a failure.
    private func flush(_ classical: any ByteTransport, _ quantum: any ByteTransport) async throws -> Outcome? {
        if writeFailure == nil {
            do {
                if !quantumOutgoing.isEmpty {
                    let bytes = quantumOutgoing
                    quantumOutgoing = []
                    try await quantum.write(bytes)
                }
                if !outgoing.isEmpty {
                    let bytes = outgoing
                    outgoing = []
                    metrics.bytesSent.increment(by: bytes.count)
                    try await classical.write(bytes)
                }
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                writeFailure = "\(error)"
                lastProgress = .now
            }
        }
        outgoing = []
        quantumOutgoing = []
        switch sessionEnded {
        case nil: return nil
        case .graceful?: return .finished
        case .failed(let error)?:
            logger.warning("session closed", metadata: ["error": "\(error)"])
            if Self.isFatal(error) { return .fatal(error) }
            return .linkFailed("session closed: \(error)")
        }
    }

    private func closeOnCancellation(_ classical: any ByteTransport) async {
        guard var s = session, s.isEstablished else { return }
        try? s.close()
        session = s
        try? processSessionActions()
        let bytes = outgoing
        outgoing = []
        // A fresh task: the cancelled one may not write any more.
        await Task { try? await classical.write(bytes) }.value
    }

    /// Forgets the active round, wiping the key material its post-processing machine holds.
    private func dropActiveRound() {
        guard var a = active else { return }
        active = nil  // `a` now holds the machine's only reference, so the wipes reach it.
        a.alice?.discard()
        a.bob?.discard()
    }

    /// Settles the round state when a connection ends (Spec/quantum-link.md section 5.3).
    private func endConnection(_ outcome: Outcome) {
        defer { session = nil; pulses = [:] }
        guard var round = active else { return }
        active = nil  // `round` holds the machines' only reference, so their wipes reach it.
        defer { round.alice?.discard(); round.bob?.discard() }
        if case .key(let result)? = round.outcome, round.ownClosed, round.verdict == nil {
            pending = PendingRound(id: round.id, key: result.key, summary: result.summary, deliverable: round.deliverable, padSlotsAtStart: round.padSlotsAtStart)
            logger.info("round interrupted between the two authentications; held until the peer says whether it accepted it",
                        metadata: ["round": "\(round.id)"])
            return
        }
        // A storage error here resurfaces at the next pool access; the staged key is harmless
        // meanwhile (the next hello discards it).
        try? pool.clearStagedRound()
        abortedEvent(round.id, "the link failed during the round; it is discarded on both sides")
    }

    // MARK: - Session actions

    private func processSessionActions() throws {
        while true {
            try processQueuedSessionActions()
            // Per-frame granularity: a round this node's own roundClosed completed settles only
            // now, after that frame's padUsed (Spec/quantum-link.md section 5.5).
            guard let id = deferredVerdict else { return }
            deferredVerdict = nil
            try verdict(id, .authenticated)
        }
    }

    private func processQueuedSessionActions() throws {
        while let action = session?.nextAction() {
            switch action {
            case .transmit(let bytes):
                outgoing.append(contentsOf: bytes)
                metrics.framesSent.increment()
            case .deliver(let payload, let round):
                try handle(payload: payload, round: round)
            case .established(let level):
                sessionWasEstablished = true
                logger.info("session established", metadata: ["security": "\(level)"])
                emit(.established(level))
                try send(.hello(lastAbsorbed: lastAbsorbed))
            case .securityLevelChanged(let level):
                logger.info("security level changed", metadata: ["security": "\(level)"])
                emit(.securityLevelChanged(level))
            case .roundAuthenticated(let id):
                try verdict(id, .authenticated)
            case .roundFailed(let id, let error):
                metrics.authenticationFailures.increment()
                logger.warning("round failed authentication", metadata: ["round": "\(id)", "error": "\(error)"])
                if session?.isClosed == false { try send(.roundRejected(id: id)) }
                try verdict(id, .failed("the round's closing tag did not verify: \(error)"))
            case .padUsed:
                padSlotsUsed += 1
                metrics.padBitsUsed.increment(by: 8 * MACSuite.padByteCount)
            case .alertSent(let code):
                logger.warning("alert sent", metadata: ["alert": "\(code)"])
            case .alertReceived(let code, let authenticated):
                logger.warning("alert received", metadata: ["alert": "\(code)", "authenticated": "\(authenticated)"])
            case .frameDropped(let error):
                metrics.authenticationFailures.increment()
                logger.warning("frame dropped", metadata: ["error": "\(error)"])
            case .validatePeer(let request):
                // Started by the connection loop (asynchronous); the session buffers input until
                // `peerValidated`.
                logger.debug("validating the peer's certificate chain", metadata: ["certificates": "\(request.certificateChain.count)"])
                pendingValidation = request
            case .closed(let error):
                if let error {
                    if case .failed? = sessionEnded {} else { sessionEnded = .failed(error) }
                } else {
                    sessionEnded = .graceful
                }
            }
        }
    }

    private func send(_ message: NodeMessage) throws {
        guard var s = session, s.isEstablished else { return }
        defer { session = s }
        try s.send(message.encoded)
    }

    private func handle(payload: [UInt8], round sessionRound: UInt64?) throws {
        var round = sessionRound
        let message: NodeMessage
        do {
            message = try NodeMessage(decoding: payload)
        } catch let error as QKDError {
            guard let round, active?.id == round else { throw error }  // Per-frame payloads are authenticated.
            try abandon("a round frame did not decode: \(error)")
            return
        }
        if perFrameRounds, round == nil {
            // Per-frame granularity: round messages arrive as per-frame payloads; they belong to
            // the round they name (or, for post-processing messages, the active one).
            switch message {
            case .roundStart(let id, _, _, _), .abandon(let id): round = id
            case .postProcessing: round = active?.id
            case .roundClosed, .hello, .roundRejected, .sync, .absorbed: break
            }
        }
        switch message {
        case .roundStart(let id, let slotCount, let deliverable, let schedule):
            guard configuration.role == .bob, round == id, id > lastAbsorbed else {
                throw QKDError(.nodeProtocolViolation, "an unexpected roundStart for round \(id)")
            }
            if let old = active?.id {
                abortedEvent(old, "superseded by round \(id) before it settled")
                dropActiveRound()
            }
            lastStartedRound = max(lastStartedRound, id)
            var ok = true
            if deliverable, configuration.deliveryPolicy == .informationTheoreticOnly, session?.securityLevel != .informationTheoretic {
                ok = false
            }
            active = ActiveRound(id: id, slotCount: slotCount, deliverable: deliverable, schedule: schedule, padSlotsAtStart: padSlotsUsed)
            if !ok {
                try abandon("Alice marked round \(id) deliverable but this node's session is not information-theoretic yet")
                return
            }
            try startBobRoundIfReady()
        case .postProcessing(let bytes):
            guard let id = round, var a = active, a.id == id, a.outcome == nil else { return }
            // `a` must hold the round's only reference while the machine changes: otherwise every
            // Cascade step copies the engine's arrays (copy on write) and wipes reach a copy.
            active = nil
            do {
                if configuration.role == .alice { try a.alice?.receive(bytes: bytes) } else { try a.bob?.receive(bytes: bytes) }
                active = a
            } catch {
                active = a
                try abandon("post-processing failed: \(error)")
                return
            }
            try drainPostProcessing()
        case .abandon(let id):
            guard round == id, var a = active, a.id == id, a.outcome == nil else { return }
            a.outcome = .aborted("the peer abandoned the round", nil)
            active = a
            try closeOwnRound()
        case .roundClosed(let id):
            guard perFrameRounds, round == nil else {
                throw QKDError(.nodeProtocolViolation, "roundClosed is a per-frame message of per-frame granularity")
            }
            guard var a = active, a.id == id else { return }
            a.peerClosed = true
            active = a
            if a.ownClosed { deferredVerdict = id }  // After the queued padUsed of our own roundClosed.
        case .hello(let peerLast):
            guard round == nil else { throw QKDError(.nodeProtocolViolation, "hello inside a round") }
            try handleHello(peerLast)
        case .roundRejected(let id):
            guard round == nil else { throw QKDError(.nodeProtocolViolation, "roundRejected inside a round") }
            try verdict(id, .failed("the peer's session rejected the round"))
        case .sync(let a2b, let b2a):
            guard round == nil, configuration.role == .bob, active == nil else {
                throw QKDError(.nodeProtocolViolation, "a sync message outside Alice's quiet time between rounds")
            }
            try applySync(a2b: a2b, b2a: b2a)
        case .absorbed(let id, let a2b, let b2a, let keys):
            guard round == nil else { throw QKDError(.nodeProtocolViolation, "absorbed inside a round") }
            peerSplits[id] = (a2b, b2a, keys)
            peerLastAbsorbed = max(peerLastAbsorbed, id)
            try checkSplit(id)
            if awaitingPeerAbsorb == id { awaitingPeerAbsorb = nil }
            try maybePoolReady(id)
        }
    }

    // MARK: - Rounds

    /// Alice: starts the next round when the previous one settled on both sides.
    private func maybeStartRound() throws {
        guard configuration.role == .alice, let s = session, s.isEstablished, !s.isClosed, helloReceived, !closing,
              active == nil, awaitingPeerAbsorb == nil else { return }
        if let limit = configuration.rounds, settledRounds >= limit {
            closing = true
            logger.info("configured rounds done; closing the session", metadata: ["rounds": "\(settledRounds)"])
            var s = session!
            try s.close()
            session = s
            try processSessionActions()
            return
        }
        // A computational bootstrap that already asked for pool epochs: wait for the peer's switch
        // too, so the next round is information-theoretic and its keys are not withheld.
        if configuration.deliveryPolicy == .informationTheoreticOnly, poolReadySent, s.securityLevel == .computational { return }
        try maybeSync()
        let id = max(lastStartedRound, lastAbsorbed, peerLastAbsorbed) + 1
        lastStartedRound = id
        let deliverable = configuration.deliveryPolicy == .any || s.securityLevel == .informationTheoretic
        let pulses = configuration.simulation.pulsesPerRound
        let (record, photons) = aliceDevice.emit(pulses: pulses)
        let arrivals = channel.transmit(photons)
        let frame = PulseFrame(roundID: id, arrivals: arrivals)
        frame.encode(into: &quantumOutgoing)
        var round = ActiveRound(id: id, slotCount: UInt32(pulses), deliverable: deliverable,
                                schedule: configuration.postProcessing.reconciliation, padSlotsAtStart: padSlotsUsed)
        round.alice = AliceRound(roundID: id, configuration: configuration.postProcessing,
                                 bits: BitVector(words: record.bits, count: record.slotCount),
                                 bases: BitVector(words: record.bases, count: record.slotCount), random: SystemRandomSource())
        round.begun = true
        active = round
        logger.debug("round started", metadata: ["round": "\(id)", "pulses": "\(pulses)", "photons": "\(arrivals.photonCount)"])
        var session = self.session!
        do {
            if !perFrameRounds { try session.beginRound(id) }
            try session.send(NodeMessage.roundStart(id: id, slotCount: UInt32(pulses), deliverable: deliverable,
                                                    schedule: configuration.postProcessing.reconciliation).encoded)
        } catch {
            self.session = session
            throw error
        }
        self.session = session
        try processSessionActions()  // The round's first frames go out with the pulses, not at the next tick.
    }

    /// Bob: runs the detector on the round's pulses and opens his side of the round.
    private func startBobRoundIfReady() throws {
        guard configuration.role == .bob, var a = active, !a.begun, a.outcome == nil, let frame = pulses[a.id] else { return }
        guard frame.slotCount == a.slotCount else {
            throw QKDError(.nodeProtocolViolation, "round \(a.id): the quantum link carried \(frame.slotCount) slots, roundStart says \(a.slotCount)")
        }
        pulses[a.id] = nil
        let record = bobDevice.detect(frame.arrivals)
        a.begun = true
        if !perFrameRounds { try session!.beginRound(a.id) }
        guard record.slots.count <= PostProcessingLimits.maxDetections else {
            active = a
            try abandon("round \(a.id) has \(record.slots.count) detections, more than one round takes")
            return
        }
        // Alice chooses the schedule (her roundStart names it): the two sides cannot disagree.
        var postProcessing = configuration.postProcessing
        postProcessing.reconciliation = a.schedule
        a.bob = BobRound(roundID: a.id, configuration: postProcessing, slotCount: UInt64(record.slotCount),
                         positions: record.slots, bases: BitVector(words: record.bases, count: record.detectionCount),
                         bits: BitVector(words: record.bits, count: record.detectionCount))
        active = a
        try drainPostProcessing()
    }

    private func drainPostProcessing() throws {
        while var a = active, a.outcome == nil {
            active = nil  // The only reference while the machine changes (see the receive path).
            let action = configuration.role == .alice ? a.alice?.nextAction() : a.bob?.nextAction()
            active = a
            guard let action else { return }
            switch action {
            case .send(let message):
                let payload = NodeMessage.postProcessing(message.encoded(roundID: a.id)).encoded
                let limit = session!.configuration.frameLimits.maxPayloadByteCount(tagged: true)
                guard payload.count <= limit else {
                    try abandon("a post-processing message of \(payload.count) bytes exceeds the \(limit)-byte frame payload; use fewer pulses per round")
                    return
                }
                try session!.send(payload)
            case .finished(let result):
                a.outcome = .key(result)
                active = a
                // Durably before this side's closing tag leaves: once the peer verifies that
                // tag it absorbs the round, so a crash from here on must not lose the key.
                try pool.stageRound(roundID: a.id, key: result.key, deliverable: a.deliverable)
                try closeOwnRound()
            case .aborted(let reason, let summary):
                a.outcome = .aborted(reason.description, summary)
                active = a
                try closeOwnRound()
            }
        }
    }

    /// Ends this side's post-processing without a key, tells the peer, closes the round.
    private func abandon(_ reason: String) throws {
        guard var a = active else { return }
        logger.warning("round abandoned", metadata: ["round": "\(a.id)", "reason": "\(reason)"])
        if a.outcome == nil { a.outcome = .aborted(reason, nil) }
        if !a.begun, session?.isEstablished == true, session?.isClosed == false {
            // Bob refusing a round before his machine started: he still opens and closes his
            // side, so the abandon reaches Alice authenticated and both sides settle the round.
            if !perFrameRounds { try session!.beginRound(a.id) }
            a.begun = true
        }
        active = a
        if a.begun && !a.ownClosed {
            try session!.send(NodeMessage.abandon(id: a.id).encoded)
        }
        try closeOwnRound()
    }

    private func closeOwnRound() throws {
        guard var a = active else { return }
        if !a.begun {
            // Bob never opened his side: there is nothing to authenticate; the round is over.
            a.verdict = a.verdict ?? .failed("not started")
            active = a
            try settle()
            return
        }
        if !a.ownClosed {
            a.ownClosed = true
            active = a
            if perFrameRounds {
                // Spec/quantum-link.md section 5.5: every round frame was verified on arrival;
                // the round is authenticated once both sides said they are done.
                try send(.roundClosed(id: a.id))
                if a.peerClosed {
                    // Settled once the session's actions so far (this frame's padUsed among
                    // them) are processed, so the round's report counts every pad it used.
                    deferredVerdict = a.id
                    return
                }
            } else {
                try session!.closeRound()
            }
        }
        try settle()
    }

    private func verdict(_ id: UInt64, _ verdict: Verdict) throws {
        guard var a = active, a.id == id else { return }
        if a.verdict == nil { a.verdict = verdict }
        active = a
        if case .failed = verdict, a.outcome == nil {
            try abandon("the round failed authentication")
            return
        }
        try settle()
    }

    /// Releases a round once both machines are done, this side's round is closed, and the
    /// session gave its verdict (Spec/session.md section 6: nothing before `roundAuthenticated`).
    private func settle() throws {
        guard let a = active, let outcome = a.outcome, let verdict = a.verdict, a.ownClosed || !a.begun else { return }
        active = nil
        settledRounds += 1
        switch (outcome, verdict) {
        case (.key(let result), .authenticated):
            try absorb(id: a.id, key: result.key, summary: result.summary, deliverable: a.deliverable, padSlotsAtStart: a.padSlotsAtStart)
        case (.key(let result), .failed(let reason)):
            metrics.qber.record(result.summary.qberEstimate)
            try pool.clearStagedRound()
            abortedEvent(a.id, reason)
        case (.aborted(let reason, let summary), _):
            if let summary { metrics.qber.record(summary.qberEstimate) }
            abortedEvent(a.id, reason)
        }
    }

    private func absorb(id: UInt64, key: SecretBytes, summary roundSummary: RoundSummary?, deliverable: Bool, padSlotsAtStart: Int) throws {
        let summary = try pool.absorbDistilledKey(roundID: id, bytes: key, policy: configuration.refillPolicy)
        try pool.clearStagedRound()
        var keys = summary.consumerKeyIDs.count
        if !deliverable, keys > 0 {
            try pool.discardConsumerKeys(ids: summary.consumerKeyIDs)
            keys = 0
        }
        lastAbsorbed = max(lastAbsorbed, id)
        let isAlice = configuration.role == .alice
        let a2b = UInt32(isAlice ? summary.outboundTopUp : summary.inboundTopUp)
        let b2a = UInt32(isAlice ? summary.inboundTopUp : summary.outboundTopUp)
        splits[id] = (a2b, b2a, UInt32(summary.consumerKeyIDs.count))
        if splits.count > 64 { splits.removeValue(forKey: splits.keys.min()!) }
        try send(.absorbed(id: id, a2bTopUp: a2b, b2aTopUp: b2a, consumerKeys: UInt32(summary.consumerKeyIDs.count)))
        if isAlice, peerLastAbsorbed < id { awaitingPeerAbsorb = id }
        try checkSplit(id)
        let lengths = pool.streamLengths(), served = pool.servedWatermarks()
        let levels = (outbound: lengths.outbound - min(served.outbound, lengths.outbound), inbound: lengths.inbound - min(served.inbound, lengths.inbound))
        metrics.keyBitsProduced.increment(by: 8 * key.count)
        metrics.roundsFinished.increment()
        metrics.poolOutboundBytes.record(Int(levels.outbound))
        metrics.poolInboundBytes.record(Int(levels.inbound))
        if let roundSummary {
            metrics.qber.record(roundSummary.qberEstimate)
            let report = RoundReport(roundID: id, summary: roundSummary, padBitsUsed: (padSlotsUsed - padSlotsAtStart) * 8 * MACSuite.padByteCount,
                                     securityLevel: session?.securityLevel ?? .computational, poolLevels: levels,
                                     consumerKeys: keys, deliverable: deliverable)
            logger.info("round finished", metadata: [
                "round": "\(id)", "qber": "\(roundSummary.qberEstimate)", "final_bits": "\(roundSummary.finalBits)",
                "pad_bits": "\(report.padBitsUsed)", "consumer_keys": "\(keys)",
            ])
            emit(.roundFinished(report))
        } else {
            // Reloaded from the pool's staging after a restart: the round's figures died with
            // the process that distilled it; the key itself is what both pools must hold.
            logger.info("round recovered from staging after a restart", metadata: ["round": "\(id)", "consumer_keys": "\(keys)"])
        }
        if keys > 0 { emit(.keyAvailable(count: keys)) }
        while let event = pool.nextEvent() {
            switch event {
            case .starving(let direction, let remaining):
                logger.warning("pad stream starving", metadata: ["direction": "\(direction)", "remaining": "\(remaining)"])
                emit(.poolStarving(direction: direction, remainingBytes: remaining))
            }
        }
        try maybePoolReady(id)
    }

    /// Both sides must have split the round identically (DESIGN.md invariant 2); a difference
    /// means the pools diverged, and going on would desynchronise every later pad.
    private func checkSplit(_ id: UInt64) throws {
        guard let mine = splits[id], let theirs = peerSplits[id] else { return }
        peerSplits[id] = nil
        guard mine == theirs else {
            throw QKDError(.nodePoolDiverged, "round \(id) was split differently on the two sides (a2b +\(mine.a2b)/+\(theirs.a2b), b2a +\(mine.b2a)/+\(theirs.b2a), keys \(mine.keys)/\(theirs.keys)); the pools diverged: stop and re-initialise the link from a new PSK")
        }
    }

    /// A computational session switches to pool epochs once both sides absorbed a round
    /// (Spec/session.md section 2): only then does the peer hold the pads of the new epoch.
    private func maybePoolReady(_ id: UInt64) throws {
        guard !poolReadySent, lastAbsorbed >= id, peerLastAbsorbed >= id, var s = session, s.isEstablished,
              s.securityLevel == .computational, keyStore.holdsPoolMaterial else { return }
        poolReadySent = true
        defer { session = s }
        try s.poolReady()
        logger.info("pool ready: switching to pool epochs")
    }

    /// Alice, between rounds (both sides idle, every frame Bob sent consumed): when the pads used
    /// since the last agreement exceed a quarter of the policy's target level, moves both
    /// sides' pool watermarks to the same offsets (Spec/quantum-link.md section 5.4). The split
    /// of later rounds then sees the real levels and tops the streams up (Spec/keypool.md
    /// section 4, "Keeping the agreed level current"). The margin covers chunks reserved ahead
    /// on either side, so `advance(to:)` never has to move a watermark backward; the pads in
    /// the margin are burned, never reused.
    private func maybeSync() throws {
        guard session?.securityLevel == .informationTheoretic else { return }
        let status = try pool.status()
        guard let out = status.streams.first(where: { $0.direction == .outbound }),
              let inn = status.streams.first(where: { $0.direction == .inbound }) else { return }
        let threshold = UInt64(max(configuration.refillPolicy.targetLevel / 4, 64))
        guard out.servedOffset - out.syncedWatermark >= threshold || inn.servedOffset - inn.syncedWatermark >= threshold else { return }
        let margin = UInt64(3 * pool.configuration.chunkPads * MACSuite.padByteCount + 4 * MACSuite.padByteCount)
        func up16(_ v: UInt64) -> UInt64 { (v + 15) / 16 * 16 }
        let targetOut = up16(out.durableWatermark) + margin, targetIn = up16(inn.durableWatermark) + margin
        // Leave at least one round's pads above the new watermarks: the round's absorb is what
        // tops the streams up again.
        let reserve = UInt64(configuration.refillPolicy.padBytesPerRound)
        guard targetOut + reserve <= out.length, targetIn + reserve <= inn.length else {
            logger.warning("pad streams too low to resynchronise the agreed levels", metadata: ["outbound": "\(out.length - out.servedOffset)", "inbound": "\(inn.length - inn.servedOffset)"])
            return
        }
        try send(.sync(a2b: targetOut, b2a: targetIn))
        try pool.advance(to: Watermarks(outbound: targetOut, inbound: targetIn))
        logger.info("pool watermarks synchronised", metadata: ["a2b": "\(targetOut)", "b2a": "\(targetIn)"])
    }

    /// Bob: applies Alice's sync.
    private func applySync(a2b: UInt64, b2a: UInt64) throws {
        do {
            if perFrameRounds {
                // Spec/quantum-link.md section 5.5: Alice's next round frames carry per-frame tags
                // at or above her new a2b watermark, and this node's session may have verified
                // them (consuming those pads) before the node handles the sync, so the inbound
                // offset may already be above the target. Agreeing on it never reuses a pad
                // (`synchronise` never moves a served offset back); only the outbound offset,
                // which no frame of Alice's can move, must not be above hers.
                guard b2a >= pool.servedWatermarks().outbound else {
                    throw QKDError(.nodePoolDiverged, "Alice's b2a watermark \(b2a) is below the pads this node already used (\(pool.servedWatermarks().outbound))")
                }
                try pool.synchronise(to: Watermarks(outbound: b2a, inbound: a2b))
            } else {
                try pool.advance(to: Watermarks(outbound: b2a, inbound: a2b))
            }
        } catch let error as QKDError {
            throw QKDError(.nodePoolDiverged, "cannot move the pool watermarks to Alice's a2b \(a2b), b2a \(b2a): \(error.detail)")
        }
        logger.info("pool watermarks synchronised", metadata: ["a2b": "\(a2b)", "b2a": "\(b2a)"])
    }

    /// Settles a round interrupted between the two authentications, and checks the pools
    /// agree on the rounds absorbed (Spec/quantum-link.md section 5.3).
    private func handleHello(_ peerLast: UInt64) throws {
        peerLastAbsorbed = max(peerLastAbsorbed, peerLast)
        if let p = pending {
            pending = nil
            if peerLast >= p.id, p.id > lastAbsorbed {
                logger.info("the peer accepted the interrupted round; absorbing it", metadata: ["round": "\(p.id)"])
                settledRounds += 1
                try absorb(id: p.id, key: p.key, summary: p.summary, deliverable: p.deliverable, padSlotsAtStart: p.padSlotsAtStart)
            } else {
                try pool.clearStagedRound()
                abortedEvent(p.id, "the link failed before the peer authenticated the round; it is discarded on both sides")
            }
        }
        if peerLast > lastAbsorbed {
            throw QKDError(.nodePoolDiverged, "the peer absorbed round \(peerLast) but this node's last is \(lastAbsorbed) (it lost a round between the two authentications, e.g. in a crash); the pools differ: re-initialise the link from a new PSK")
        }
        if configuration.role == .alice, lastAbsorbed > peerLast { awaitingPeerAbsorb = lastAbsorbed }
        helloReceived = true
    }

    private func abortedEvent(_ id: UInt64, _ reason: String) {
        metrics.roundsAborted.increment()
        logger.info("round aborted", metadata: ["round": "\(id)", "reason": "\(reason)"])
        emit(.roundAborted(roundID: id, reason: reason))
    }

    private nonisolated func emit(_ event: NodeEvent) {
        eventSink.yield(event)
    }

    /// Whether round frames carry per-frame tags (Spec/quantum-link.md section 5.5).
    private var perFrameRounds: Bool { configuration.granularity == .perFrame }

    /// The split policy's canonical bytes, compared by the handshake (both sides must agree).
    /// Per-frame granularity appends a marker: the session's offer only says which granularities
    /// a node supports, and a node that drives rounds per round must not meet one that cannot
    /// verify them; with the marker in the (authenticated) comparison, the mismatch is a
    /// `session.policy-mismatch` at the handshake. Per-round bytes are unchanged.
    static func encode(_ policy: RefillPolicy, granularity: AuthenticationGranularity) -> [UInt8] {
        var out = encode(policy)
        if granularity == .perFrame { out.append(contentsOf: Array(" rounds per-frame".utf8)) }
        return out
    }

    /// The split policy's canonical bytes.
    static func encode(_ policy: RefillPolicy) -> [UInt8] {
        var out = Array("QKDChannel split policy v1".utf8)
        appendBE(UInt32(policy.padBytesPerRound), &out)
        appendBE(UInt32(policy.roundsAhead), &out)
        appendBE(UInt32(policy.reserveBytes), &out)
        out.append(policy.newHashKeys ? 1 : 0)
        appendBE(UInt32(policy.consumerKeyBytes), &out)
        out.append(contentsOf: Array(policy.suite.utf8))
        return out
    }
}
