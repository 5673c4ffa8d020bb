public import QKDCrypto
public import QKDWire

/// The sans-IO session state machine of Spec/session.md: a handshake (pool mode, psk-kdf or pki),
/// then an authenticated channel with per-frame and per-round tags, rotation, bounded
/// verification failures and typed alerts.
///
/// Feed it with ``start(now:)`` (Alice), ``receive(_:now:)``, ``peerValidated(_:now:)`` (PKI
/// mode, after ``SessionAction/validatePeer(_:)``), ``send(_:)``,
/// ``beginRound(_:)`` / ``closeRound()``, ``poolReady()``, ``close()`` and
/// ``handleTimeout(now:)``; then loop on ``nextAction()`` until nil. It never touches sockets,
/// clocks or global randomness: `now` is a monotonic time in nanoseconds from any origin, and
/// randomness comes from the injected ``RandomSource``.
///
/// A fatal error poisons the machine (rustls): it sends an alert where it can, emits
/// ``SessionAction/closed(_:)``, and every later call throws the same error.
public struct Session {
    // MARK: State

    private struct IdleState {}

    /// Alice sent her ClientHello.
    private struct AwaitingServerHelloState {
        var clientHello: ClientHello
        var clientHelloFrame: Frame
    }

    /// What the hellos agreed.
    private struct Negotiated {
        var mode: HandshakeMode
        var suite: MACSuite
        var granularities: Granularities
        var sessionID: SessionID
    }

    /// Where each direction's handshake keys come from, once the hellos are known.
    private enum HandshakeKeySource {
        /// Pool mode: the agreed start slot of each direction (key slot; Finished uses start + 1)
        /// and whether this node sends its Finished before the peer's verified (Spec/session.md
        /// section 4.1: only a node that needs no outbound skip goes first).
        case pool(outboundStart: UInt64, inboundStart: UInt64, sendsFirst: Bool)
        /// Computational: the bootstrap streams.
        case bootstrap(BootstrapStreams)
    }

    /// Both hellos are known; this node waits for the peer's Finished. If this node went first
    /// its own Finished is already sent (`outbound` set: Alice, or Bob in pool mode when only
    /// Alice's outbound needs a skip); otherwise it is sent after the peer's verifies.
    private struct AwaitingFinishedState {
        var negotiated: Negotiated
        var clientHelloFrame: Frame
        var serverHelloFrame: Frame
        var keys: HandshakeKeySource
        var outbound: DirectionKeys?
    }

    /// The authenticated channel.
    private struct EstablishedState {
        var negotiated: Negotiated
        var outbound: DirectionKeys
        var inbound: DirectionKeys
        var bootstrap: BootstrapStreams?
        /// Pool epochs may be used (pool mode, or after ``Session/poolReady()``).
        var poolEnabled: Bool
        var outboundRound: RoundTranscriptBox?
        var inboundRound: RoundTranscriptBox?
        var lastOutboundRound: UInt64?
        var lastInboundRound: UInt64?
        var rounds: [UInt64: RoundProgress] = [:]
        /// Rotate the outbound direction as soon as no round is open.
        var rotationPending = false
        /// Set after this node asked the peer to rotate: frames verified under the old epoch since.
        var framesSinceRotationRequest: Int?

        var securityLevel: SecurityLevel {
            outbound.source == .pool && inbound.source == .pool ? .informationTheoretic : .computational
        }
    }

    /// PKI mode: the peer's certificate chain is being validated outside the session
    /// (``SessionAction/validatePeer(_:)``); received bytes wait in the decoder until
    /// ``Session/peerValidated(_:now:)`` (Spec/handshake.md section 6).
    private struct AwaitingPeerValidationState {
        var certificateChain: [[UInt8]]
        var pending: PendingValidation
    }

    /// What to resume once the peer's chain is validated.
    private enum PendingValidation {
        /// Alice: Bob's ServerHello, checked up to its signature.
        case serverHello(AwaitingServerHelloState, ServerHello, Frame, Negotiated, PKIServerResponse)
        /// Bob: Alice's Finished, checked up to its signature and tag.
        case finished(AwaitingFinishedState, Frame, PKIIdentityProof)
    }

    private struct ClosedState {
        /// Nil after a graceful close.
        var error: QKDError?
    }

    private enum State {
        case idle(IdleState)
        case awaitingServerHello(AwaitingServerHelloState)
        case awaitingFinished(AwaitingFinishedState)
        case awaitingPeerValidation(AwaitingPeerValidationState)
        case established(EstablishedState)
        case closed(ClosedState)
    }

    private var state: State = .idle(IdleState())
    /// The configuration.
    public let configuration: SessionConfiguration
    private let keyStore: any SessionKeyStore
    private var random: any RandomSource
    private let pki: (any PKIAuthenticator)?
    private var decoder: FrameDecoder
    private let encoder: FrameEncoder
    private var actions: [SessionAction] = []
    private var actionIndex = 0
    private var outboundSequence: UInt64 = 0
    private var inboundSequence: UInt64 = 0
    private var handshakeDeadline: UInt64?
    /// Verification failures so far (bad tags, replays, gaps, bad epochs).
    public private(set) var authenticationFailures = 0

    /// Creates a session.
    /// - Parameters:
    ///   - configuration: role, modes, suites, limits.
    ///   - keyStore: the pool boundary (shared with the caller; the session only reserves,
    ///     reads and consumes through it).
    ///   - random: the injected randomness (nonces, session id material).
    ///   - pki: the certificate and key-agreement implementation for `pki` mode, or nil.
    public init(configuration: SessionConfiguration, keyStore: any SessionKeyStore, random: some RandomSource,
                pki: (any PKIAuthenticator)? = nil) {
        self.configuration = configuration
        self.keyStore = keyStore
        self.random = random
        self.pki = pki
        self.decoder = FrameDecoder(limits: configuration.frameLimits)
        self.encoder = FrameEncoder(limits: configuration.frameLimits)
    }

    // MARK: Observers

    /// The direction this node sends in.
    public var outboundDirection: Direction { configuration.role.outbound }

    /// The security level, once established; nil before and after a failed handshake.
    public var securityLevel: SecurityLevel? {
        if case .established(let s) = state { return s.securityLevel }
        return nil
    }

    /// Whether the handshake completed and the session is open.
    public var isEstablished: Bool {
        if case .established = state { return true }
        return false
    }

    /// Whether the session is closed (gracefully or by an error).
    public var isClosed: Bool {
        if case .closed = state { return true }
        return false
    }

    /// The error that closed the session, if any.
    public var error: QKDError? {
        if case .closed(let s) = state { return s.error }
        return nil
    }

    /// The agreed session id, once the hellos are exchanged.
    public var sessionID: SessionID? {
        switch state {
        case .awaitingFinished(let s): s.negotiated.sessionID
        case .awaitingPeerValidation(let s):
            switch s.pending {
            case .serverHello(_, _, _, let negotiated, _): negotiated.sessionID
            case .finished(let f, _, _): f.negotiated.sessionID
            }
        case .established(let s): s.negotiated.sessionID
        case .idle, .awaitingServerHello, .closed: nil
        }
    }

    /// The current outbound and inbound epochs (established sessions only).
    public var epochs: (outbound: UInt32, inbound: UInt32)? {
        if case .established(let s) = state { return (s.outbound.epoch, s.inbound.epoch) }
        return nil
    }

    /// When ``handleTimeout(now:)`` should next be called, if ever.
    public var nextDeadline: UInt64? {
        switch state {
        case .idle, .awaitingServerHello, .awaitingFinished, .awaitingPeerValidation: handshakeDeadline
        case .established, .closed: nil
        }
    }

    /// Whether the session waits for ``peerValidated(_:now:)`` (PKI mode, after it emitted
    /// ``SessionAction/validatePeer(_:)``). Bytes received meanwhile are buffered, not processed.
    public var isAwaitingPeerValidation: Bool {
        if case .awaitingPeerValidation = state { return true }
        return false
    }

    /// The next action, or nil when there is nothing to do.
    /// - Returns: the oldest pending action.
    public mutating func nextAction() -> SessionAction? {
        guard actionIndex < actions.count else {
            if !actions.isEmpty { actions.removeAll(keepingCapacity: true); actionIndex = 0 }
            return nil
        }
        defer { actionIndex += 1 }
        return actions[actionIndex]
    }

    // MARK: Entry points

    /// Alice: sends the ClientHello.
    /// - Parameter now: the current time (ns).
    /// - Throws: the poisoning error if closed; a fatal error (poisons).
    public mutating func start(now: UInt64) throws {
        try checkOpen()
        precondition(configuration.role == .alice, "only Alice starts a session")
        guard case .idle = state else { preconditionFailure("start(now:) called twice") }
        handshakeDeadline = now &+ configuration.handshakeTimeout
        do {
            try sendClientHello()
        } catch let error as QKDError {
            throw fatal(error)
        }
    }

    /// Feeds bytes received from the peer, in order, in chunks of any size. While the session
    /// waits for ``peerValidated(_:now:)`` the bytes are buffered and processed afterwards.
    /// - Parameters:
    ///   - bytes: the next bytes of the stream.
    ///   - now: the current time (ns).
    /// - Throws: the error that closes the session (it is then poisoned); dropped frames do not
    ///   throw (they are counted and reported as ``SessionAction/frameDropped(_:)``).
    public mutating func receive(_ bytes: [UInt8], now: UInt64) throws {
        try checkOpen()
        if handshakeDeadline == nil, case .idle = state {
            handshakeDeadline = now &+ configuration.handshakeTimeout
        }
        decoder.append(bytes)
        try processBuffered()
    }

    /// Processes the frames waiting in the decoder until it needs more bytes, the session
    /// closes, or it pauses for a peer validation.
    private mutating func processBuffered() throws {
        while !isClosed && !isAwaitingPeerValidation {
            let frame: Frame?
            do {
                frame = try decoder.nextFrame()
            } catch let error as QKDError {
                throw fatal(error)
            }
            guard let frame else { return }
            do {
                try process(frame)
            } catch let failure as PeerClosed {
                let error = close(with: failure.error)
                if failure.error != nil { throw error }
                return
            } catch let error as QKDError {
                throw fatal(error, alert: handshakeFailureAlert(for: error))
            }
        }
        if case .closed(let s) = state, let error = s.error { throw error }
    }

    /// Resumes a PKI handshake paused at ``SessionAction/validatePeer(_:)`` with the outcome of
    /// ``PeerValidationRequest/run()`` (Spec/handshake.md section 6): on success the session
    /// checks the peer's transcript signatures (synchronously) and goes on (Alice sends her
    /// Finished; Bob checks Alice's Finished tag, sends his and is established); on failure it
    /// closes with `session.bad-certificate` and alert `bad-certificate`. Then it processes any
    /// bytes that arrived meanwhile.
    /// - Parameters:
    ///   - result: the validation result for the request the session emitted.
    ///   - now: the current time (ns).
    /// - Throws: ``QKDError/Code/sessionBadCertificate`` and every handshake error (fatal:
    ///   the session is poisoned); the poisoning error if already closed.
    public mutating func peerValidated(_ result: PeerValidationResult, now: UInt64) throws {
        try checkOpen()
        guard case .awaitingPeerValidation(let paused) = state else {
            preconditionFailure("peerValidated(_:now:) without a pending validatePeer request")
        }
        precondition(result.certificateChain == paused.certificateChain, "peerValidated(_:now:) got the result of another request")
        do {
            switch paused.pending {
            case .serverHello(let s, let hello, let frame, let negotiated, let response):
                state = .awaitingServerHello(s)
                let peer = try validatedPeer(result)
                try completeServerHello(hello, frame: frame, s, negotiated: negotiated, response: response, peer: peer)
            case .finished(let s, let frame, let proof):
                state = .awaitingFinished(s)
                let peer = try validatedPeer(result)
                try verifyPeerSignature(proof, transcriptHash: Session.hellosHash(s), peer: peer)
                try completeFinished(frame, s)
            }
        } catch let failure as PeerClosed {
            let error = close(with: failure.error)
            if failure.error != nil { throw error }
            return
        } catch let error as QKDError {
            throw fatal(error, alert: handshakeFailureAlert(for: error))
        }
        try processBuffered()
    }

    /// The validated peer, or the validation failure as `session.bad-certificate`.
    private func validatedPeer(_ result: PeerValidationResult) throws -> any Sendable {
        switch result.outcome {
        case .success(let peer): return peer
        case .failure(let error): throw Session.badCertificate(error)
        }
    }

    /// Any PKI refusal is `session.bad-certificate` (alert `bad-certificate`); the detail keeps
    /// the precise code (`pki.expired`, `pki.bad-transcript-signature`, ...).
    private static func badCertificate(_ error: QKDError) -> QKDError {
        error.code == .sessionBadCertificate || error.code == .sessionInternalError
            ? error : QKDError(.sessionBadCertificate, "\(error.code): \(error.detail)")
    }

    /// Checks the peer's transcript signatures through the hook.
    private func verifyPeerSignature(_ proof: PKIIdentityProof, transcriptHash: [UInt8], peer: any Sendable) throws {
        guard let pki else { throw QKDError(.sessionInternalError, "pki mode without a PKIAuthenticator") }
        do {
            try pki.verify(proof, transcriptHash: transcriptHash, peerRole: outboundDirection.reversed, peer: peer)
        } catch let error as QKDError {
            throw Session.badCertificate(error)
        }
    }

    /// Sends a payload: a per-frame tagged data frame, or, inside a round, a frame of the
    /// round's transcript.
    /// - Parameter payload: the bytes; at most the frame limit minus header and tag.
    /// - Throws: ``QKDError/Code/framePayloadTooLarge`` (the session stays open); the poisoning
    ///   error if closed; ``QKDError/Code/sessionPoolExhausted`` (fatal).
    public mutating func send(_ payload: [UInt8]) throws {
        try checkOpen()
        guard case .established(var s) = state else { preconditionFailure("send(_:) before the session is established") }
        let limit = configuration.frameLimits.maxPayloadByteCount(tagged: true)
        guard payload.count <= limit else {
            throw QKDError(.framePayloadTooLarge, "a \(payload.count)-byte payload does not fit in one frame (at most \(limit) bytes); split it")
        }
        do {
            if let round = s.outboundRound {
                let frame = Frame(type: .data, sequenceNumber: outboundSequence, keyReference: .roundTranscript(epoch: round.epoch), payload: payload)
                round.transcript!.absorb(frame)
                try transmit(frame)
            } else {
                precondition(s.negotiated.granularities.contains(.perFrame), "per-frame tags were not negotiated: send inside a round")
                try rotateIfDue(&s)
                try sendTagged(type: .data, payload: payload, &s)
            }
            state = .established(s)
        } catch let error as QKDError {
            state = .established(s)
            throw fatal(error)
        }
    }

    /// Opens a round (Spec/session.md section 6): from now on ``send(_:)`` feeds this
    /// direction's round transcript, until ``closeRound()``.
    /// - Parameter id: the round id: at least 1 (round 0 is the handshake), larger than every
    ///   earlier one of this direction, and the same id the peer's payload layer uses.
    /// - Throws: the poisoning error if closed.
    public mutating func beginRound(_ id: UInt64) throws {
        try checkOpen()
        guard case .established(var s) = state else { preconditionFailure("beginRound(_:) before the session is established") }
        precondition(s.negotiated.granularities.contains(.perRound), "per-round tags were not negotiated")
        precondition(s.outboundRound == nil, "a round is already open")
        precondition(id >= 1, "round 0 is the handshake's transcript (Spec/session.md section 3): payload rounds start at 1")
        precondition(s.lastOutboundRound.map { id > $0 } ?? true, "round ids must increase")
        do {
            try rotateIfDue(&s)
            let transcript = RoundTranscript(hashKey: s.outbound.hashKey, direction: outboundDirection,
                                             sessionID: s.negotiated.sessionID, round: id)
            let box = RoundTranscriptBox(transcript, epoch: s.outbound.epoch)
            let frame = Frame(type: .control, sequenceNumber: outboundSequence, keyReference: .roundTranscript(epoch: box.epoch),
                              payload: ControlMessage.beginRound(id).encoded)
            box.transcript!.absorb(frame)
            try transmit(frame)
            s.outboundRound = box
            s.lastOutboundRound = id
            s.rounds[id, default: RoundProgress()].ownClosed = false
            state = .established(s)
        } catch let error as QKDError {
            state = .established(s)
            throw fatal(error)
        }
    }

    /// Closes this direction of the open round with one pad-encrypted tag over its transcript.
    /// ``SessionAction/roundAuthenticated(_:)`` follows once the peer's closing tag verified
    /// here and the peer confirmed ours.
    /// - Throws: the poisoning error if closed; ``QKDError/Code/sessionPoolExhausted`` (fatal).
    public mutating func closeRound() throws {
        try checkOpen()
        guard case .established(var s) = state, let box = s.outboundRound else { preconditionFailure("closeRound() without an open round") }
        do {
            let (slot, pad) = try takeOutboundPad(source: s.outbound.source, &s)
            var frame = Frame(type: .control, sequenceNumber: outboundSequence, keyReference: .roundClose(epoch: box.epoch, slot: slot),
                              payload: ControlMessage.endRound(box.round).encoded)
            let transcript = box.transcript.take()!
            transcript.sealClosingFrame(&frame, pad: makePad(pad))
            try transmit(frame)
            s.outbound.tags += 1
            s.outboundRound = nil
            s.rounds[box.round, default: RoundProgress()].ownClosed = true
            if s.rotationPending { try rotateOutbound(&s) }
            state = .established(s)
        } catch let error as QKDError {
            state = .established(s)
            throw fatal(error)
        }
    }

    /// Tells the session that the pool now holds QKD key on both sides (the payload layer
    /// absorbed the first distilled key): a computational session rotates its outbound
    /// direction to a pool epoch (Spec/session.md section 2, "Switch to information-theoretic").
    /// - Throws: ``QKDError/Code/sessionPoolExhausted`` if the key store holds no pool material
    ///   (the session stays open); the poisoning error if closed.
    public mutating func poolReady() throws {
        try checkOpen()
        guard case .established(var s) = state else { preconditionFailure("poolReady() before the session is established") }
        guard keyStore.holdsPoolMaterial else {
            throw QKDError(.sessionPoolExhausted, "poolReady() was called but the key store holds no pool material yet")
        }
        s.poolEnabled = true
        do {
            if s.outbound.source == .bootstrap {
                if s.outboundRound == nil { try rotateOutbound(&s) } else { s.rotationPending = true }
            }
            state = .established(s)
        } catch let error as QKDError {
            state = .established(s)
            throw fatal(error)
        }
    }

    /// Closes the session gracefully: an authenticated `close` control frame when established,
    /// a `close-notify` alert during the handshake.
    /// - Throws: the poisoning error if already closed by an error.
    public mutating func close() throws {
        switch state {
        case .closed(let s):
            if let error = s.error { throw error }
            return
        case .established(var s):
            do {
                try sendTagged(type: .control, payload: ControlMessage.close.encoded, &s)
            } catch let error as QKDError {
                throw fatal(error)
            }
        case .idle, .awaitingServerHello, .awaitingFinished, .awaitingPeerValidation:
            sendUnauthenticatedAlert(.closeNotify, "the node closed the session during the handshake")
        }
        state = .closed(ClosedState(error: nil))
        actions.append(.closed(nil))
    }

    /// Checks the handshake deadline.
    /// - Parameter now: the current time (ns).
    /// - Throws: ``QKDError/Code/sessionTimeout`` (fatal) if the handshake is past its deadline;
    ///   the poisoning error if closed.
    public mutating func handleTimeout(now: UInt64) throws {
        try checkOpen()
        guard let deadline = nextDeadline, now >= deadline else { return }
        throw fatal(QKDError(.sessionTimeout, "the handshake did not finish within \(configuration.handshakeTimeout / 1_000_000) ms; check that the peer is reachable and runs QKDChannel/1"))
    }

    // MARK: Failure

    /// Thrown inside processing when the peer closed the session (an alert): no alert back.
    private struct PeerClosed: Error { var error: QKDError? }

    private func checkOpen() throws {
        if case .closed(let s) = state {
            throw s.error ?? QKDError(.sessionClosed, "the session is closed; open a new one")
        }
    }

    /// The alert a failed handshake sends: a Finished that does not verify means the
    /// transcript was changed in flight.
    private func handshakeFailureAlert(for error: QKDError) -> AlertCode? {
        if case .awaitingFinished = state, error.code == .sessionAuthenticationFailed { return .downgradeOrTamper }
        return nil
    }

    /// Closes with `error`, sending an alert (authenticated where the channel still allows it).
    /// - Returns: the error, to throw.
    private mutating func fatal(_ error: QKDError, alert: AlertCode? = nil) -> QKDError {
        if case .closed(let s) = state { return s.error ?? error }
        let code = alert ?? AlertCode.forError(error.code)
        let text = "\(code): \(error.detail)"
        var sentAuthenticated = false
        let payload = Alert(code: code, message: text).encoded
        switch state {
        case .established(var s):
            sentAuthenticated = (try? sendTagged(type: .alert, payload: payload, &s)) != nil
        case .awaitingFinished(let s):
            // This node sent the first Finished (Alice, or Bob going first in pool mode): the
            // peer may already be established, and only an
            // authenticated alert closes an established session (Spec/session.md section 6).
            if var keys = s.outbound {
                var streams: BootstrapStreams?
                if case .bootstrap(let b) = s.keys { streams = b }
                sentAuthenticated = (try? sendTagged(type: .alert, payload: payload, keys: &keys, bootstrap: &streams)) != nil
            }
        case .idle, .awaitingServerHello, .awaitingPeerValidation, .closed:
            break
        }
        if sentAuthenticated { actions.append(.alertSent(code)) }
        if !sentAuthenticated { sendUnauthenticatedAlert(code, text) }
        state = .closed(ClosedState(error: error))
        actions.append(.closed(error))
        return error
    }

    /// Closes because the peer said so. Returns the error to throw (or a closed error for a
    /// graceful close).
    private mutating func close(with error: QKDError?) -> QKDError {
        state = .closed(ClosedState(error: error))
        actions.append(.closed(error))
        return error ?? QKDError(.sessionClosed, "the peer closed the session")
    }

    private mutating func sendUnauthenticatedAlert(_ code: AlertCode, _ text: String) {
        let frame = Frame(type: .alert, sequenceNumber: outboundSequence, keyReference: .none, payload: Alert(code: code, message: text).encoded)
        if (try? transmit(frame)) != nil { actions.append(.alertSent(code)) }
    }

    // MARK: Output helpers

    private mutating func transmit(_ frame: Frame) throws {
        actions.append(.transmit(try encoder.encode(frame)))
        outboundSequence += 1
    }

    /// Takes the next outbound pad of `source` (pool: durably reserved by the store first).
    private mutating func takeOutboundPad(source: KeySource, _ s: inout EstablishedState) throws -> (UInt64, PadBytes) {
        try takeOutboundSlot(source: source, bootstrap: &s.bootstrap)
    }

    private mutating func takeOutboundSlot(source: KeySource, bootstrap: inout BootstrapStreams?) throws -> (UInt64, PadBytes) {
        switch source {
        case .pool:
            let (slot, bytes) = try keyStore.takeOutbound { ($0, PadBytes($1)) }
            actions.append(.padUsed(direction: outboundDirection, slot: slot))
            return (slot, bytes)
        case .bootstrap:
            guard var streams = bootstrap else { throw QKDError(.sessionInternalError, "no bootstrap stream in this session") }
            let slot = streams.outboundNext
            let material = try BootstrapStreams.slot(slot, of: streams.outbound)
            streams.outboundNext += 1
            bootstrap = streams
            return (slot, material)
        }
    }

    /// Reads the peer's inbound slot without consuming it, checking the acceptance window
    /// (at or above the watermark, at most `maxResyncSkip` beyond it).
    private func inboundSlot(_ slot: UInt64, source: KeySource, bootstrap: BootstrapStreams?) throws -> PadBytes {
        switch source {
        case .pool:
            let next = keyStore.watermarks.inboundNext
            guard slot >= next else {
                throw QKDError(.sessionReplay, "the peer's pool slot \(slot) is below the inbound watermark \(next): a replay")
            }
            guard slot - next <= configuration.maxResyncSkip else {
                throw QKDError(.sessionPoolDesync, "the peer's pool slot \(slot) is more than \(configuration.maxResyncSkip) slots beyond the inbound watermark \(next)")
            }
            return try keyStore.inboundPad(at: slot) { PadBytes($0) }
        case .bootstrap:
            guard let streams = bootstrap else { throw QKDError(.sessionInternalError, "no bootstrap stream in this session") }
            guard slot >= streams.inboundNext else {
                throw QKDError(.sessionReplay, "bootstrap slot \(slot) was already used (next acceptable \(streams.inboundNext))")
            }
            guard slot - streams.inboundNext <= configuration.maxResyncSkip else {
                throw QKDError(.sessionPoolDesync, "bootstrap slot \(slot) is too far ahead of \(streams.inboundNext)")
            }
            return try BootstrapStreams.slot(slot, of: streams.inbound)
        }
    }

    /// Consumes the peer's slots through `slot` (after a successful verification only).
    private mutating func consumeInbound(_ slot: UInt64, source: KeySource, bootstrap: inout BootstrapStreams?) throws {
        switch source {
        case .pool:
            try keyStore.consumeInbound(through: slot)
            actions.append(.padUsed(direction: outboundDirection.reversed, slot: slot))
        case .bootstrap:
            if var streams = bootstrap {
                streams.inboundNext = max(streams.inboundNext, slot + 1)
                bootstrap = streams
            }
        }
    }

    /// Sends a per-frame tagged frame under the current outbound epoch.
    private mutating func sendTagged(type: FrameType, payload: [UInt8], _ s: inout EstablishedState) throws {
        try sendTagged(type: type, payload: payload, keys: &s.outbound, bootstrap: &s.bootstrap)
    }

    private mutating func sendTagged(type: FrameType, payload: [UInt8], keys: inout DirectionKeys, bootstrap: inout BootstrapStreams?) throws {
        let limit = configuration.frameLimits.maxPayloadByteCount(tagged: true)
        guard payload.count <= limit else {
            throw QKDError(.framePayloadTooLarge, "a \(payload.count)-byte payload does not fit in one frame")
        }
        let (slot, pad) = try takeOutboundSlot(source: keys.source, bootstrap: &bootstrap)
        var frame = Frame(type: type, sequenceNumber: outboundSequence, keyReference: .padSlot(epoch: keys.epoch, slot: slot), payload: payload)
        keys.authenticator.seal(&frame, pad: makePad(pad))
        try transmit(frame)
        keys.tags += 1
    }

    // MARK: Rotation (Spec/session.md section 2)

    private mutating func rotateIfDue(_ s: inout EstablishedState) throws {
        if s.outboundRound == nil && (s.rotationPending || s.outbound.tags >= configuration.rotateAfterTags) {
            try rotateOutbound(&s)
        }
    }

    /// Starts the next outbound epoch: `Rotate{epoch + 1, source, keySlot}` under the old epoch.
    private mutating func rotateOutbound(_ s: inout EstablishedState) throws {
        precondition(s.outboundRound == nil, "no rotation inside an open round")
        let before = s.securityLevel
        let newSource: KeySource = s.poolEnabled ? .pool : .bootstrap
        let (padSlot, pad) = try takeOutboundPad(source: s.outbound.source, &s)
        var keySlot: UInt64 = 0
        var hashKey: HashKey?
        while hashKey == nil {
            // A zero hash key (probability 2^-106 per slot) is skipped; the Rotate names the slot used.
            let (slot, material) = try takeOutboundSlot(source: newSource, bootstrap: &s.bootstrap)
            keySlot = slot
            hashKey = try? material.hashKey(suite: s.negotiated.suite)
        }
        let epoch = s.outbound.epoch + 1
        var frame = Frame(type: .control, sequenceNumber: outboundSequence, keyReference: .padSlot(epoch: s.outbound.epoch, slot: padSlot),
                          payload: ControlMessage.rotate(epoch: epoch, source: newSource, keySlot: keySlot).encoded)
        s.outbound.authenticator.seal(&frame, pad: makePad(pad))
        try transmit(frame)
        s.outbound = DirectionKeys(epoch: epoch, source: newSource, hashKey: hashKey!, direction: outboundDirection, sessionID: s.negotiated.sessionID)
        s.rotationPending = false
        if s.securityLevel != before { actions.append(.securityLevelChanged(s.securityLevel)) }
    }

    /// Applies the peer's authenticated `Rotate`.
    private mutating func applyRotate(epoch: UInt32, source: KeySource, keySlot: UInt64, _ s: inout EstablishedState) throws {
        guard epoch == s.inbound.epoch &+ 1 else {
            throw QKDError(.sessionUnexpectedMessage, "the peer rotated from epoch \(s.inbound.epoch) to \(epoch); epochs advance by one")
        }
        guard source == .bootstrap || keyStore.holdsPoolMaterial else {
            throw QKDError(.sessionPoolExhausted, "the peer rotated to a pool epoch but this node's pool is empty")
        }
        let before = s.securityLevel
        let material = try inboundSlot(keySlot, source: source, bootstrap: s.bootstrap)
        let hashKey: HashKey
        do {
            hashKey = try material.hashKey(suite: s.negotiated.suite)
        } catch {
            throw QKDError(.sessionPoolDesync, "the hash key at the peer's key slot \(keySlot) is zero; the pools disagree")
        }
        try consumeInbound(keySlot, source: source, bootstrap: &s.bootstrap)
        s.inbound = DirectionKeys(epoch: epoch, source: source, hashKey: hashKey, direction: outboundDirection.reversed, sessionID: s.negotiated.sessionID)
        s.framesSinceRotationRequest = nil
        if s.securityLevel != before { actions.append(.securityLevelChanged(s.securityLevel)) }
    }

    // MARK: Handshake (Spec/session.md sections 3 to 5)

    private mutating func sendClientHello() throws {
        let body: ClientHello.Body
        switch configuration.mode {
        case .pool:
            guard keyStore.holdsPoolMaterial else {
                throw QKDError(.sessionPoolExhausted, "pool mode needs a seeded pool; initialise it from a PSK file or use psk-kdf")
            }
            body = .pool(keyStore.watermarks)
        case .pskKDF:
            guard let psk = configuration.preSharedKeys.first else {
                preconditionFailure("psk-kdf mode needs a PSK in the configuration")
            }
            body = .pskKDF(pskID: psk.id)
        case .pki:
            guard let pki else { preconditionFailure("pki mode needs a PKIAuthenticator") }
            body = .pki(try pki.makeClientOffer(random: &random))
        }
        let hello = ClientHello(versions: [FrameHeader.version], suites: configuration.suites.map(\.rawValue),
                                granularities: configuration.granularities, linkID: configuration.linkID,
                                nonce: random.bytes(count: HandshakeLimits.nonceByteCount), policy: configuration.splitPolicy, body: body)
        var payload: [UInt8] = []
        hello.encode(into: &payload)
        let frame = Frame(type: .handshake, sequenceNumber: 0, keyReference: .roundTranscript(epoch: hello.mode.handshakeEpoch), payload: payload)
        try transmit(frame)
        state = .awaitingServerHello(AwaitingServerHelloState(clientHello: hello, clientHelloFrame: frame))
    }

    private mutating func process(_ frame: Frame) throws {
        switch state {
        case .idle:
            try checkHandshakeAlert(frame)
            guard configuration.role == .bob else {
                throw QKDError(.sessionUnexpectedMessage, "a \(frame.header.type) frame arrived before start(now:)")
            }
            let (hello, epoch) = try expectHello(frame)
            guard case .clientHello(let clientHello) = hello else {
                throw QKDError(.sessionUnexpectedMessage, "Bob expects a ClientHello first")
            }
            guard epoch == clientHello.mode.handshakeEpoch else {
                throw QKDError(.sessionMalformedHandshake, "a \(clientHello.mode) ClientHello must name epoch \(clientHello.mode.handshakeEpoch), not \(epoch)")
            }
            try respond(to: clientHello, frame: frame)
        case .awaitingServerHello(let s):
            try checkHandshakeAlert(frame)
            let (hello, epoch) = try expectHello(frame)
            guard case .serverHello(let serverHello) = hello else {
                throw QKDError(.sessionUnexpectedMessage, "Alice expects a ServerHello")
            }
            guard epoch == s.clientHello.mode.handshakeEpoch else {
                throw QKDError(.sessionMalformedHandshake, "the ServerHello names epoch \(epoch), the \(s.clientHello.mode) handshake runs under \(s.clientHello.mode.handshakeEpoch)")
            }
            try acceptServerHello(serverHello, frame: frame, s)
        case .awaitingFinished(let s):
            try checkHandshakeAlert(frame)
            try acceptFinished(frame, s)
        case .awaitingPeerValidation:
            throw QKDError(.sessionInternalError, "a frame was processed while the peer validation is pending")
        case .established(var s):
            defer { if case .established = state { state = .established(s) } }
            try processChannel(frame, &s)
        case .closed:
            return
        }
    }

    /// During the handshake an alert (authenticated or not) closes: there is nothing to protect
    /// yet, and an attacker who can inject one could as well drop every frame.
    private mutating func checkHandshakeAlert(_ frame: Frame) throws {
        guard frame.header.type == .alert else { return }
        let alert = try Alert(decoding: frame.payload)
        actions.append(.alertReceived(alert.code, authenticated: frame.header.keyReference != .none))
        throw PeerClosed(error: alert.code == .closeNotify ? nil : QKDError(alert.code.error, "the peer sent alert \(alert.code): \(alert.message)"))
    }

    /// A hello frame: type handshake, sequence 0, key kind 2 without ROUND_CLOSE.
    private func expectHello(_ frame: Frame) throws -> (HandshakeMessage, UInt32) {
        guard frame.header.type == .handshake else {
            throw QKDError(.sessionUnexpectedMessage, "a \(frame.header.type) frame arrived during the handshake")
        }
        guard frame.header.sequenceNumber == 0 else {
            throw QKDError(.sessionUnexpectedMessage, "a hello must have sequence number 0, got \(frame.header.sequenceNumber)")
        }
        guard case .roundTranscript(let epoch) = frame.header.keyReference else {
            throw QKDError(.sessionUnexpectedMessage, "a hello is part of the handshake transcript (key kind 2, round 0), got \(frame.header.keyReference)")
        }
        return (try HandshakeMessage(decoding: frame.payload), epoch)
    }

    /// Bob: checks the offer, chooses, sends the ServerHello.
    private mutating func respond(to hello: ClientHello, frame: Frame) throws {
        guard hello.versions.contains(FrameHeader.version) else {
            throw QKDError(.sessionVersionMismatch, "the peer offers protocol versions \(hello.versions); this node speaks version \(FrameHeader.version)")
        }
        guard let suite = hello.suites.lazy.compactMap({ MACSuite(rawValue: $0) }).first(where: { configuration.suites.contains($0) }) else {
            throw QKDError(.sessionNoCommonSuite, "no MAC suite in common: the peer offers \(hello.suites), this node allows \(configuration.suites)")
        }
        let granularities = hello.granularities.intersection(configuration.granularities)
        guard !granularities.isEmpty else {
            throw QKDError(.sessionNoCommonSuite, "no authentication granularity in common")
        }
        guard configuration.acceptedModes.contains(hello.mode), hello.mode != .pki || pki != nil else {
            throw QKDError(.sessionUnsupportedMode, "the peer asks for \(hello.mode) mode, which this node does not accept")
        }
        guard hello.linkID == configuration.linkID else {
            throw QKDError(.sessionUnknownLink, "the peer names link \(Hex.encode(hello.linkID)), this node serves \(Hex.encode(configuration.linkID))")
        }
        guard hello.policy == configuration.splitPolicy else {
            throw QKDError(.sessionPolicyMismatch, "the peer's key split policy differs from this node's; configure both nodes alike")
        }
        var body: ServerHello.Body
        var psk: PreSharedKey?
        var pkiSecret: SecretBytes?
        var starts: PoolPlan?
        switch hello.body {
        case .pool(let peer):
            guard keyStore.holdsPoolMaterial else {
                throw QKDError(.sessionPoolExhausted, "the peer asks for pool mode but this node's pool is empty")
            }
            let local = keyStore.watermarks
            starts = try planPool(local: local, peer: peer)
            body = .pool(local)
        case .pskKDF(let id):
            guard let key = configuration.preSharedKeys.first(where: { $0.id == id }) else {
                throw QKDError(.sessionUnknownPSK, "the peer asks for PSK \(Hex.encode(id)), which is not configured here")
            }
            psk = key
            body = .pskKDF
        case .pki(let offer):
            guard let pki else { throw QKDError(.sessionUnsupportedMode, "PKI mode is not configured on this node") }
            let answer = try pki.respond(to: offer, clientHelloHash: KeyDerivation.blake2b256(authenticatedBytes(of: frame)), random: &random)
            pkiSecret = answer.secret
            // The proof is filled in below, once the bytes it signs are known.
            body = .pki(PKIServerResponse(kexGroup: answer.kexGroup, x25519Share: answer.x25519Share,
                                          mlkem768Ciphertext: answer.mlkem768Ciphertext,
                                          proof: PKIIdentityProof(certificateChain: [], ed25519Signature: [], mldsa65Signature: [])))
        }
        var serverHello = ServerHello(version: FrameHeader.version, suite: suite, granularities: granularities,
                                      nonce: random.bytes(count: HandshakeLimits.nonceByteCount),
                                      sessionIDMaterial: random.bytes(count: HandshakeLimits.nonceByteCount), body: body)
        if let pki, case .pki(var response) = body {
            let hash = KeyDerivation.blake2b256(authenticatedBytes(of: frame) + serverHello.signedPrefix)
            response.proof = try pki.prove(transcriptHash: hash, role: outboundDirection)
            body = .pki(response)
            serverHello.body = body
        }
        var payload: [UInt8] = []
        serverHello.encode(into: &payload)
        let serverFrame = Frame(type: .handshake, sequenceNumber: 0, keyReference: .roundTranscript(epoch: hello.mode.handshakeEpoch), payload: payload)
        let negotiated = Negotiated(mode: hello.mode, suite: suite, granularities: granularities,
                                    sessionID: Session.sessionID(hello.nonce, serverHello))
        let keys: HandshakeKeySource
        if let starts {
            keys = .pool(outboundStart: starts.outbound, inboundStart: starts.inbound, sendsFirst: starts.sendsFirst)
        } else if let psk {
            keys = .bootstrap(try Session.bootstrapStreams(ikm: psk.secret, label: KeyScheduleLabel.pskKDF, clientHelloFrame: frame,
                                                           serverHelloFrame: serverFrame, nonceA: hello.nonce, nonceB: serverHello.nonce,
                                                           outbound: outboundDirection))
        } else {
            keys = .bootstrap(try Session.bootstrapStreams(ikm: pkiSecret!, label: KeyScheduleLabel.pki, clientHelloFrame: frame,
                                                           serverHelloFrame: serverFrame, nonceA: hello.nonce, nonceB: serverHello.nonce,
                                                           outbound: outboundDirection))
        }
        try transmit(serverFrame)
        var next = AwaitingFinishedState(negotiated: negotiated, clientHelloFrame: frame, serverHelloFrame: serverFrame,
                                         keys: keys, outbound: nil)
        if case .pool(_, _, true) = keys {
            // Only Alice's outbound needs a skip (Bob's inbound watermark is ahead of it, after a
            // restart of Bob): Bob's Finished, from his own watermark, authenticates both hellos
            // first (Spec/session.md section 4.1).
            next.outbound = try sendFinished(&next)
        }
        state = .awaitingFinished(next)
    }

    /// The pool-mode plan of Spec/session.md section 4.1, computed alike by both nodes from the
    /// two hellos.
    private struct PoolPlan {
        /// `start_out = max(local.outbound, peer.inbound)`: this node's Finished key slot.
        var outbound: UInt64
        /// `start_in = max(peer.outbound, local.inbound)`: the peer's Finished key slot.
        var inbound: UInt64
        /// Whether this node sends its Finished before the peer's verified.
        var sendsFirst: Bool
    }

    /// Spec/session.md section 4.1: the starts `start_out = max(local.outbound, peer.inbound)`
    /// and `start_in = max(peer.outbound, local.inbound)` (each claim at most `maxResyncSkip`
    /// beyond the local value it overrides), and the order of the Finished messages. A hello is
    /// unauthenticated until the peer's Finished verifies, so no watermark may move on its word
    /// before then: the node that goes first is one whose Finished needs no outbound skip
    /// (`start_out == local.outbound`). Alice goes first if she can, else Bob if he can; if
    /// neither can (both restarted, each one's durable inbound watermark ahead of the other's
    /// outbound one), Alice goes first with a skip of at most `maxPreAuthSkip` slots.
    private func planPool(local: PoolWatermarks, peer: PoolWatermarks) throws -> PoolPlan {
        let skip = configuration.maxResyncSkip
        guard peer.inboundNext <= local.outboundNext || peer.inboundNext - local.outboundNext <= skip else {
            throw QKDError(.sessionPoolDesync, "the peer's inbound watermark \(peer.inboundNext) is more than \(skip) slots beyond this node's outbound watermark \(local.outboundNext); the pools are out of step")
        }
        guard peer.outboundNext <= local.inboundNext || peer.outboundNext - local.inboundNext <= skip else {
            throw QKDError(.sessionPoolDesync, "the peer's outbound watermark \(peer.outboundNext) is more than \(skip) slots beyond this node's inbound watermark \(local.inboundNext); the pools are out of step")
        }
        let outbound = max(local.outboundNext, peer.inboundNext)
        let inbound = max(peer.outboundNext, local.inboundNext)
        let localNeedsSkip = outbound > local.outboundNext
        let peerNeedsSkip = inbound > peer.outboundNext
        let aliceNeedsSkip = configuration.role == .alice ? localNeedsSkip : peerNeedsSkip
        let bobNeedsSkip = configuration.role == .alice ? peerNeedsSkip : localNeedsSkip
        let aliceFirst = !aliceNeedsSkip || bobNeedsSkip
        if aliceNeedsSkip && bobNeedsSkip {
            let preAuth = configuration.maxPreAuthSkip
            let gap = configuration.role == .alice ? outbound - local.outboundNext : inbound - peer.outboundNext
            guard gap <= preAuth else {
                throw QKDError(.sessionPoolDesync, "both nodes' inbound watermarks are ahead of the peer's outbound ones (out \(local.outboundNext) vs peer in \(peer.inboundNext), in \(local.inboundNext) vs peer out \(peer.outboundNext)) and Alice's gap of \(gap) slots exceeds maxPreAuthSkip (\(preAuth)); raise maxPreAuthSkip to the pools' reservation chunk")
            }
        }
        return PoolPlan(outbound: outbound, inbound: inbound, sendsFirst: aliceFirst == (configuration.role == .alice))
    }

    /// session id = first 16 bytes of BLAKE2b-256(nonce_a || nonce_b || session_id_material).
    private static func sessionID(_ nonceA: [UInt8], _ serverHello: ServerHello) -> SessionID {
        let digest = KeyDerivation.blake2b256(nonceA + serverHello.nonce + serverHello.sessionIDMaterial)
        return try! SessionID(rawRepresentation: digest[0..<SessionID.byteCount])
    }

    /// Spec/session.md sections 5.1 and 5.2: `secret = HKDF-SHA256(salt = nonce_a || nonce_b,
    /// ikm = psk or the key-agreement secret, info = label || BLAKE2b-256(ClientHello frame ||
    /// ServerHello frame))`.
    private static func bootstrapStreams(ikm: SecretBytes, label: [UInt8], clientHelloFrame: Frame, serverHelloFrame: Frame,
                                         nonceA: [UInt8], nonceB: [UInt8], outbound: Direction) throws -> BootstrapStreams {
        let transcriptHash = KeyDerivation.blake2b256(authenticatedBytes(of: clientHelloFrame) + authenticatedBytes(of: serverHelloFrame))
        let secret = try bootstrapSecret(ikm: ikm, label: label, nonceA: nonceA, nonceB: nonceB, transcriptHash: transcriptHash)
        return try BootstrapStreams(secret: secret, outbound: outbound)
    }

    /// Alice: checks Bob's choices against her offer, derives the keys, sends her Finished.
    private mutating func acceptServerHello(_ hello: ServerHello, frame: Frame, _ s: AwaitingServerHelloState) throws {
        let offer = s.clientHello
        guard hello.version == FrameHeader.version, offer.versions.contains(hello.version) else {
            throw QKDError(.sessionVersionMismatch, "the peer chose protocol version \(hello.version), which was not offered")
        }
        guard offer.suites.contains(hello.suite.rawValue) else {
            throw QKDError(.sessionNoCommonSuite, "the peer chose suite \(hello.suite), which was not offered")
        }
        guard hello.granularities.isSubset(of: offer.granularities) else {
            throw QKDError(.sessionNoCommonSuite, "the peer chose granularities that were not offered")
        }
        guard hello.mode == offer.mode else {
            throw QKDError(.sessionUnexpectedMessage, "the peer answered a \(offer.mode) hello in \(hello.mode) mode")
        }
        let negotiated = Negotiated(mode: offer.mode, suite: hello.suite, granularities: hello.granularities,
                                    sessionID: Session.sessionID(offer.nonce, hello))
        let keys: HandshakeKeySource
        switch (offer.body, hello.body) {
        case (.pool(let local), .pool(let peer)):
            let plan = try planPool(local: local, peer: peer)
            keys = .pool(outboundStart: plan.outbound, inboundStart: plan.inbound, sendsFirst: plan.sendsFirst)
            if !plan.sendsFirst {
                // Bob goes first (section 4.1): Alice sends her Finished once his verified.
                state = .awaitingFinished(AwaitingFinishedState(negotiated: negotiated, clientHelloFrame: s.clientHelloFrame,
                                                                serverHelloFrame: frame, keys: keys, outbound: nil))
                return
            }
        case (.pskKDF, .pskKDF):
            keys = .bootstrap(try Session.bootstrapStreams(ikm: configuration.preSharedKeys[0].secret, label: KeyScheduleLabel.pskKDF,
                                                           clientHelloFrame: s.clientHelloFrame, serverHelloFrame: frame,
                                                           nonceA: offer.nonce, nonceB: hello.nonce, outbound: outboundDirection))
        case (.pki, .pki(let response)):
            // Pause: the chain is validated outside (asynchronously); peerValidated resumes in
            // completeServerHello (Spec/handshake.md section 6).
            guard let pki else { throw QKDError(.sessionInternalError, "pki mode without a PKIAuthenticator") }
            let request = pki.validationRequest(for: response.proof, peerRole: outboundDirection.reversed)
            state = .awaitingPeerValidation(AwaitingPeerValidationState(
                certificateChain: request.certificateChain, pending: .serverHello(s, hello, frame, negotiated, response)))
            actions.append(.validatePeer(request))
            return
        default:
            throw QKDError(.sessionUnexpectedMessage, "the ServerHello's body does not match the mode")
        }
        try sendFinishedAfterServerHello(frame: frame, s, negotiated: negotiated, keys: keys)
    }

    /// Alice, PKI mode, once Bob's chain is validated: his signature over `BLAKE2b-256(ClientHello
    /// frame || ServerHello up to its chain)`, then the key agreement, then her Finished.
    private mutating func completeServerHello(_ hello: ServerHello, frame: Frame, _ s: AwaitingServerHelloState, negotiated: Negotiated,
                                              response: PKIServerResponse, peer: any Sendable) throws {
        guard let pki else { throw QKDError(.sessionInternalError, "pki mode without a PKIAuthenticator") }
        let clientHelloBytes = authenticatedBytes(of: s.clientHelloFrame)
        try verifyPeerSignature(response.proof, transcriptHash: KeyDerivation.blake2b256(clientHelloBytes + hello.signedPrefix), peer: peer)
        let secret = try pki.finishKeyAgreement(with: response, clientHelloHash: KeyDerivation.blake2b256(clientHelloBytes))
        let keys = HandshakeKeySource.bootstrap(try Session.bootstrapStreams(
            ikm: secret, label: KeyScheduleLabel.pki, clientHelloFrame: s.clientHelloFrame, serverHelloFrame: frame,
            nonceA: s.clientHello.nonce, nonceB: hello.nonce, outbound: outboundDirection))
        try sendFinishedAfterServerHello(frame: frame, s, negotiated: negotiated, keys: keys)
    }

    private mutating func sendFinishedAfterServerHello(frame: Frame, _ s: AwaitingServerHelloState, negotiated: Negotiated,
                                                       keys: HandshakeKeySource) throws {
        var next = AwaitingFinishedState(negotiated: negotiated, clientHelloFrame: s.clientHelloFrame, serverHelloFrame: frame, keys: keys, outbound: nil)
        next.outbound = try sendFinished(&next)
        state = .awaitingFinished(next)
    }

    /// Sends this node's Finished: the closing frame of its direction's handshake transcript
    /// (ClientHello || ServerHello || Finished, round 0), after reserving its key slot and pad.
    private mutating func sendFinished(_ s: inout AwaitingFinishedState) throws -> DirectionKeys {
        let epoch = s.negotiated.mode.handshakeEpoch
        let hashKey: HashKey
        let padSlot: UInt64
        let padMaterial: PadBytes
        switch s.keys {
        case .pool(let outboundStart, let inboundStart, let sendsFirst):
            // Spec/session.md section 4.1. The second sender comes here after the peer's
            // Finished verified (the hellos are authentic): it skips its outbound stream to the
            // agreed start and records the agreed starts, which the pool's split reads
            // (Spec/keypool.md sections 4-5; both sides record the same values). The first
            // sender moves nothing: its Finished uses its own next outbound slots, and it records
            // the starts once the peer's Finished verified (completeFinished). Only in the
            // both-restarted case does Alice skip first, bounded by maxPreAuthSkip (planPool).
            if !sendsFirst {
                try keyStore.advance(to: PoolWatermarks(outboundNext: outboundStart, inboundNext: inboundStart))
            } else if outboundStart > keyStore.watermarks.outboundNext {
                try keyStore.advance(to: PoolWatermarks(outboundNext: outboundStart, inboundNext: keyStore.watermarks.inboundNext))
            }
            let (keySlot, keyBytes) = try keyStore.takeOutbound { ($0, PadBytes($1)) }
            actions.append(.padUsed(direction: outboundDirection, slot: keySlot))
            let (pad, padBytes) = try keyStore.takeOutbound { ($0, PadBytes($1)) }
            actions.append(.padUsed(direction: outboundDirection, slot: pad))
            guard keySlot == outboundStart, pad == outboundStart + 1 else {
                throw QKDError(.sessionInternalError, "the key store handed out slots \(keySlot), \(pad) instead of \(outboundStart), \(outboundStart + 1)")
            }
            hashKey = try keyBytes.hashKey(suite: s.negotiated.suite)
            padSlot = pad
            padMaterial = padBytes
        case .bootstrap(var streams):
            hashKey = try BootstrapStreams.slot(0, of: streams.outbound).hashKey(suite: s.negotiated.suite)
            padSlot = streams.outboundNext
            padMaterial = try BootstrapStreams.slot(padSlot, of: streams.outbound)
            streams.outboundNext += 1
            s.keys = .bootstrap(streams)
        }
        var finished = Finished()
        if s.negotiated.mode == .pki && configuration.role == .alice, let pki {
            finished.clientProof = try pki.prove(transcriptHash: Session.hellosHash(s), role: outboundDirection)
        }
        var frame = Frame(type: .handshake, sequenceNumber: 1, keyReference: .roundClose(epoch: epoch, slot: padSlot), payload: finished.encodedPayload)
        var transcript = RoundTranscript(hashKey: hashKey, direction: outboundDirection, sessionID: s.negotiated.sessionID, round: 0)
        transcript.absorb(s.clientHelloFrame)
        transcript.absorb(s.serverHelloFrame)
        transcript.sealClosingFrame(&frame, pad: makePad(padMaterial))
        try transmit(frame)
        return DirectionKeys(epoch: epoch, source: s.negotiated.mode == .pool ? .pool : .bootstrap, hashKey: hashKey,
                             direction: outboundDirection, sessionID: s.negotiated.sessionID)
    }

    /// BLAKE2b-256(ClientHello frame || ServerHello frame): what Alice's PKI Finished signs.
    private static func hellosHash(_ s: AwaitingFinishedState) -> [UInt8] {
        KeyDerivation.blake2b256(authenticatedBytes(of: s.clientHelloFrame) + authenticatedBytes(of: s.serverHelloFrame))
    }

    /// Verifies the peer's Finished against the transcript as this node saw it; only then
    /// consumes the peer's slots. Bob then sends his Finished; both become established.
    private mutating func acceptFinished(_ frame: Frame, _ s: AwaitingFinishedState) throws {
        guard frame.header.type == .handshake else {
            throw QKDError(.sessionUnexpectedMessage, "a \(frame.header.type) frame arrived instead of Finished")
        }
        guard frame.header.sequenceNumber == 1 else {
            throw QKDError(.sessionUnexpectedMessage, "Finished must have sequence number 1, got \(frame.header.sequenceNumber)")
        }
        let (epoch, _, expectedSlot) = Session.finishedSlots(s)
        guard case .roundClose(epoch, expectedSlot) = frame.header.keyReference else {
            throw QKDError(.sessionAuthenticationFailed, "the peer's Finished names \(frame.header.keyReference), expected round-close(epoch \(epoch), slot \(expectedSlot)): the hellos were changed in flight or the pools disagree")
        }
        let finished = try Finished(decoding: frame.payload)
        if s.negotiated.mode == .pki && configuration.role == .bob {
            guard let proof = finished.clientProof, let pki else {
                throw QKDError(.sessionBadCertificate, "Alice's PKI Finished carries no certificate chain")
            }
            // Pause for the chain validation; peerValidated checks the signature and resumes
            // in completeFinished (Spec/handshake.md section 6). Nothing is consumed yet.
            let request = pki.validationRequest(for: proof, peerRole: outboundDirection.reversed)
            state = .awaitingPeerValidation(AwaitingPeerValidationState(certificateChain: request.certificateChain,
                                                                        pending: .finished(s, frame, proof)))
            actions.append(.validatePeer(request))
            return
        } else if finished.clientProof != nil {
            throw QKDError(.sessionMalformedHandshake, "only Alice's Finished in pki mode carries a certificate chain")
        }
        try completeFinished(frame, s)
    }

    /// The handshake epoch, the peer's key slot and the peer's Finished pad slot.
    private static func finishedSlots(_ s: AwaitingFinishedState) -> (epoch: UInt32, keySlot: UInt64, padSlot: UInt64) {
        switch s.keys {
        case .pool(_, let inboundStart, _):
            (s.negotiated.mode.handshakeEpoch, inboundStart, inboundStart + 1)
        case .bootstrap(let streams):
            (s.negotiated.mode.handshakeEpoch, 0, streams.inboundNext)
        }
    }

    /// Verifies the peer's Finished tag (its header already checked); only then consumes the
    /// peer's slots. Bob then sends his Finished; both become established.
    private mutating func completeFinished(_ frame: Frame, _ current: AwaitingFinishedState) throws {
        var s = current
        let (epoch, keySlot, expectedSlot) = Session.finishedSlots(s)
        let source: KeySource = s.negotiated.mode == .pool ? .pool : .bootstrap
        var streams: BootstrapStreams?
        if case .bootstrap(let b) = s.keys { streams = b }
        let keyMaterial: PadBytes
        let padMaterial: PadBytes
        switch s.keys {
        case .pool:
            keyMaterial = try inboundSlot(keySlot, source: .pool, bootstrap: nil)
            padMaterial = try inboundSlot(expectedSlot, source: .pool, bootstrap: nil)
        case .bootstrap(let b):
            keyMaterial = try BootstrapStreams.slot(0, of: b.inbound)
            padMaterial = try BootstrapStreams.slot(expectedSlot, of: b.inbound)
        }
        let peerDirection = outboundDirection.reversed
        guard let hashKey = try? keyMaterial.hashKey(suite: s.negotiated.suite) else {
            throw QKDError(.sessionAuthenticationFailed, "the peer's handshake hash key is zero; the pools disagree")
        }
        var transcript = RoundTranscript(hashKey: hashKey, direction: peerDirection, sessionID: s.negotiated.sessionID, round: 0)
        transcript.absorb(s.clientHelloFrame)
        transcript.absorb(s.serverHelloFrame)
        let valid = transcript.isValidClosingFrame(frame, pad: makePad(padMaterial))
        guard valid else {
            throw QKDError(.sessionAuthenticationFailed, "the peer's Finished tag does not verify: the handshake transcript differs between the two nodes (a downgrade or tampering in flight), or the keys differ (wrong PSK, pools out of step)")
        }
        // Verified: only now consume the peer's slots.
        if source == .pool {
            try keyStore.consumeInbound(through: keySlot)
            actions.append(.padUsed(direction: peerDirection, slot: keySlot))
        }
        try consumeInbound(expectedSlot, source: source, bootstrap: &streams)
        if let streams { s.keys = .bootstrap(streams) }
        inboundSequence = 2
        let outbound: DirectionKeys
        if let sent = s.outbound {
            outbound = sent
            if case .pool(let outboundStart, let inboundStart, _) = s.keys {
                // The first sender records the agreed starts now that the hellos are
                // authentic; its watermarks are already past them, so nothing moves
                // (Spec/session.md section 4.1).
                try keyStore.advance(to: PoolWatermarks(outboundNext: outboundStart, inboundNext: inboundStart))
            }
        } else {
            outbound = try sendFinished(&s)
        }
        if case .bootstrap(let b) = s.keys { streams = b }
        let established = EstablishedState(
            negotiated: s.negotiated, outbound: outbound,
            inbound: DirectionKeys(epoch: epoch, source: source, hashKey: hashKey, direction: peerDirection, sessionID: s.negotiated.sessionID),
            bootstrap: streams, poolEnabled: source == .pool)
        state = .established(established)
        handshakeDeadline = nil
        actions.append(.established(established.securityLevel))
    }

    // MARK: Channel (Spec/session.md section 6)

    /// Drops a frame and counts it; past the bound, closes.
    private mutating func drop(_ error: QKDError, requestRotation: Bool = false, _ s: inout EstablishedState) throws {
        authenticationFailures += 1
        actions.append(.frameDropped(error))
        if authenticationFailures >= configuration.maxAuthenticationFailures {
            throw QKDError(.sessionAuthenticationFailed, "\(authenticationFailures) frames failed verification (the bound is \(configuration.maxAuthenticationFailures)); the last: \(error.description)")
        }
        if requestRotation && s.framesSinceRotationRequest == nil {
            // One request per inbound epoch, so a flood of forgeries cannot burn pads.
            try sendTagged(type: .control, payload: ControlMessage.rotateRequest(epoch: s.inbound.epoch).encoded, &s)
            s.framesSinceRotationRequest = 0
        }
    }

    private mutating func processChannel(_ frame: Frame, _ s: inout EstablishedState) throws {
        let header = frame.header
        // Unauthenticated alerts after the handshake are hints only (Spec/session.md section 6).
        if header.type == .alert, header.keyReference == .none {
            if let alert = try? Alert(decoding: frame.payload) {
                actions.append(.alertReceived(alert.code, authenticated: false))
            } else {
                try drop(QKDError(.sessionMalformedControl, "an unauthenticated alert does not decode"), &s)
            }
            return
        }
        guard header.sequenceNumber == inboundSequence else {
            let error = header.sequenceNumber < inboundSequence
                ? QKDError(.sessionReplay, "frame #\(header.sequenceNumber) arrived when #\(inboundSequence) was expected: a replay or reordering")
                : QKDError(.sessionGap, "frame #\(header.sequenceNumber) arrived when #\(inboundSequence) was expected: frames were lost or withheld")
            try drop(error, &s)
            return
        }
        switch header.keyReference {
        case .none:
            try drop(QKDError(.sessionUnexpectedMessage, "an unauthenticated \(header.type) frame after the handshake"), &s)
        case .padSlot(let epoch, let slot):
            try processTagged(frame, epoch: epoch, slot: slot, &s)
        case .roundTranscript(let epoch):
            try processRoundFrame(frame, epoch: epoch, &s)
        case .roundClose(let epoch, let slot):
            try processRoundClose(frame, epoch: epoch, slot: slot, &s)
        }
    }

    /// Verifies a per-frame tag against the inbound epoch; returns false if dropped.
    private mutating func verifyTagged(_ frame: Frame, epoch: UInt32, slot: UInt64, _ s: inout EstablishedState) throws -> Bool {
        guard epoch == s.inbound.epoch else {
            try drop(QKDError(.sessionBadEpoch, "frame #\(frame.header.sequenceNumber) names epoch \(epoch); the current inbound epoch is \(s.inbound.epoch)"), &s)
            return false
        }
        // Control frames stay acceptable: the Rotate that answers the request is one.
        if let count = s.framesSinceRotationRequest, count >= configuration.rotateGrace, frame.header.type != .control {
            try drop(QKDError(.sessionRotationOverdue, "the peer sent \(count) frames under epoch \(epoch) after this node asked it to rotate"), &s)
            return false
        }
        let material: PadBytes
        do {
            material = try inboundSlot(slot, source: s.inbound.source, bootstrap: s.bootstrap)
        } catch let error as QKDError {
            try drop(error, &s)
            return false
        }
        let valid = s.inbound.authenticator.isValidAuthenticationTag(of: frame, pad: makePad(material))
        guard valid else {
            try drop(QKDError(.frameAuthenticationFailed, "the tag of frame #\(frame.header.sequenceNumber) (\(frame.header.keyReference)) does not verify"),
                     requestRotation: true, &s)
            return false
        }
        try consumeInbound(slot, source: s.inbound.source, bootstrap: &s.bootstrap)
        inboundSequence += 1
        s.inbound.tags += 1
        if let count = s.framesSinceRotationRequest { s.framesSinceRotationRequest = count + 1 }
        return true
    }

    private mutating func processTagged(_ frame: Frame, epoch: UInt32, slot: UInt64, _ s: inout EstablishedState) throws {
        guard try verifyTagged(frame, epoch: epoch, slot: slot, &s) else { return }
        // Authentic from here on: anything wrong is the peer's protocol error, and fatal.
        switch frame.header.type {
        case .data:
            guard s.negotiated.granularities.contains(.perFrame) else {
                throw QKDError(.sessionUnexpectedMessage, "a per-frame data frame, but only per-round tags were negotiated")
            }
            if let box = s.inboundRound {
                // An honest peer sends no per-frame data while its round is open (its payloads
                // go into the round), so the open round is forged, or its closing frame was
                // lost: it fails, reported before this delivery, and a forged round id does not
                // stay in the way (Spec/session.md section 6). Without this, an injected
                // round-opening frame could take the sequence number of a dropped authentic
                // frame and hide the gap.
                s.inboundRound = nil
                s.lastInboundRound = box.previousRound
                s.rounds[box.round, default: RoundProgress()].failed = true
                actions.append(.roundFailed(box.round, QKDError(.sessionAuthenticationFailed, "round \(box.round) was still open when the peer sent an authenticated per-frame payload: its opening frame was forged or its closing frame was lost")))
            }
            actions.append(.deliver(payload: Array(frame.payload), round: nil))
        case .alert:
            let alert = try Alert(decoding: frame.payload)
            actions.append(.alertReceived(alert.code, authenticated: true))
            throw PeerClosed(error: alert.code == .closeNotify ? nil : QKDError(alert.code.error, "the peer sent alert \(alert.code): \(alert.message)"))
        case .control:
            switch try ControlMessage(decoding: frame.payload) {
            case .rotate(let epoch, let source, let keySlot):
                try applyRotate(epoch: epoch, source: source, keySlot: keySlot, &s)
            case .rotateRequest(let epoch):
                if epoch == s.outbound.epoch {
                    if s.outboundRound == nil { try rotateOutbound(&s) } else { s.rotationPending = true }
                }
            case .close:
                throw PeerClosed(error: nil)
            case .roundVerified(let round):
                guard var progress = s.rounds[round], progress.ownClosed, !progress.ownConfirmed else {
                    throw QKDError(.sessionUnexpectedMessage, "the peer confirmed round \(round), which this node has not closed")
                }
                // A round whose peer direction failed here stays failed whatever the peer confirms.
                progress.ownConfirmed = true
                s.rounds[round] = progress
                completeRound(round, &s)
            case .beginRound, .endRound:
                throw QKDError(.sessionUnexpectedMessage, "round control messages travel in round frames (key kind 2)")
            }
        case .handshake:
            throw QKDError(.sessionUnexpectedMessage, "a handshake message after the handshake")
        }
    }

    private mutating func completeRound(_ round: UInt64, _ s: inout EstablishedState) {
        guard let progress = s.rounds[round], progress.peerVerified, progress.ownConfirmed, !progress.failed else { return }
        s.rounds[round] = nil
        actions.append(.roundAuthenticated(round))
    }

    /// An open round frame: not authenticated on its own; absorbed into the peer's transcript
    /// and delivered provisionally.
    private mutating func processRoundFrame(_ frame: Frame, epoch: UInt32, _ s: inout EstablishedState) throws {
        guard s.negotiated.granularities.contains(.perRound) else {
            try drop(QKDError(.sessionUnexpectedMessage, "a round frame, but per-round tags were not negotiated"), &s)
            return
        }
        if let box = s.inboundRound {
            guard epoch == box.epoch, frame.header.type == .data else {
                try drop(QKDError(.sessionUnexpectedMessage, "round \(box.round) accepts data frames under epoch \(box.epoch) only"), &s)
                return
            }
            box.transcript!.absorb(frame)
            inboundSequence += 1
            actions.append(.deliver(payload: Array(frame.payload), round: box.round))
            return
        }
        guard epoch == s.inbound.epoch, frame.header.type == .control,
              case .beginRound(let round)? = try? ControlMessage(decoding: frame.payload),
              round >= 1, s.lastInboundRound.map({ round > $0 }) ?? true else {
            try drop(QKDError(.sessionUnexpectedMessage, "a round frame that does not open a new round under the current epoch"), &s)
            return
        }
        let box = RoundTranscriptBox(RoundTranscript(hashKey: s.inbound.hashKey, direction: outboundDirection.reversed,
                                                     sessionID: s.negotiated.sessionID, round: round), epoch: epoch,
                                     previousRound: s.lastInboundRound)
        box.transcript!.absorb(frame)
        s.inboundRound = box
        s.lastInboundRound = round
        inboundSequence += 1
    }

    /// The peer's closing frame: verify the round's tag; the round fails if it does not verify.
    private mutating func processRoundClose(_ frame: Frame, epoch: UInt32, slot: UInt64, _ s: inout EstablishedState) throws {
        guard let box = s.inboundRound else {
            try drop(QKDError(.sessionUnexpectedMessage, "a round-closing frame with no round open"), &s)
            return
        }
        guard epoch == box.epoch, epoch == s.inbound.epoch, frame.header.type == .control,
              case .endRound(box.round)? = try? ControlMessage(decoding: frame.payload) else {
            failInboundRound(box, QKDError(.sessionAuthenticationFailed, "the closing frame of round \(box.round) is malformed"), &s)
            try drop(QKDError(.sessionAuthenticationFailed, "bad closing frame for round \(box.round)"), requestRotation: true, &s)
            return
        }
        let material: PadBytes
        do {
            material = try inboundSlot(slot, source: s.inbound.source, bootstrap: s.bootstrap)
        } catch let error as QKDError {
            failInboundRound(box, error, &s)
            try drop(error, &s)
            return
        }
        let transcript = box.transcript.take()!
        let valid = transcript.isValidClosingFrame(frame, pad: makePad(material))
        guard valid else {
            let error = QKDError(.sessionAuthenticationFailed, "the closing tag of round \(box.round) does not verify: a frame of the round was altered, dropped, reordered or injected")
            failInboundRound(box, error, &s)
            try drop(error, requestRotation: true, &s)
            return
        }
        try consumeInbound(slot, source: s.inbound.source, bootstrap: &s.bootstrap)
        inboundSequence += 1
        s.inbound.tags += 1
        s.inboundRound = nil
        s.rounds[box.round, default: RoundProgress()].peerVerified = true
        try rotateIfDue(&s)
        try sendTagged(type: .control, payload: ControlMessage.roundVerified(box.round).encoded, &s)
        completeRound(box.round, &s)
    }

    /// Abandons the peer's open round: its frames were delivered provisionally and must be
    /// discarded. The closing frame's sequence number is taken (the round is over either way),
    /// its pad is not consumed.
    private mutating func failInboundRound(_ box: RoundTranscriptBox, _ error: QKDError, _ s: inout EstablishedState) {
        s.inboundRound = nil
        s.rounds[box.round, default: RoundProgress()].failed = true
        inboundSequence += 1
        actions.append(.roundFailed(box.round, error))
    }
}

extension Finished {
    /// The encoded payload.
    var encodedPayload: [UInt8] {
        var out: [UInt8] = []
        encode(into: &out)
        return out
    }
}
