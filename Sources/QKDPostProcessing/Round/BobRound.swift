import QKDCrypto

/// Bob's side of one post-processing round (Spec/postprocessing.md section 3.2): a sans-IO
/// state machine. Bob opens the round: his first action is the detection report. Feed it
/// Alice's messages with ``receive(_:)`` and loop ``nextAction()`` until it returns nil.
///
/// A thrown error poisons the machine: every later ``receive(_:)`` throws the same error.
public struct BobRound {
    private enum State {
        case awaitingSiftResponse(Detections)
        case reconciling(Reconciling)
        case awaitingVerification(Reconciled)
        /// Verification passed and the result is queued; the amplification runs once the driver
        /// has taken that message (``nextAction()``), so Alice's identical hash can overlap it.
        case amplifying(Amplifying)
        case done
        case failed(QKDError)
    }

    private struct Detections {
        var bits: BitVector
        var bases: BitVector
    }

    private struct Reconciling {
        var engine: CascadeEngine
    }

    private struct Reconciled {
        var key: BitVector
    }

    private struct Amplifying {
        var key: BitVector
        var request: VerificationRequest
        var length: Int
    }

    private var state: State
    private var outbox: [PostProcessingAction] = []
    private var counters = RoundCounters()
    private var receivedMessages = 0
    /// The round id.
    public let roundID: UInt64
    /// The configuration.
    public let configuration: PostProcessingConfiguration

    /// Starts Bob's round and queues the detection report.
    /// - Parameters:
    ///   - roundID: the round id both sides agreed on.
    ///   - configuration: shared configuration.
    ///   - slotCount: slots in the round.
    ///   - positions: detected slots, strictly increasing, below `slotCount`.
    ///   - bases: Bob's basis per detection (1 = X).
    ///   - bits: Bob's bit per detection.
    public init(roundID: UInt64, configuration: PostProcessingConfiguration, slotCount: UInt64,
                positions: [UInt64], bases: BitVector, bits: BitVector) {
        precondition(positions.count == bases.count && bases.count == bits.count, "one basis and bit per detection")
        precondition(positions.count <= PostProcessingLimits.maxDetections && slotCount <= PostProcessingLimits.maxSlots,
                     "split larger batches into several rounds (Spec/postprocessing.md section 2.2)")
        self.roundID = roundID
        self.configuration = configuration
        state = .awaitingSiftResponse(Detections(bits: bits, bases: bases))
        counters.detections = positions.count
        counters.slots = slotCount
        let report = DetectionReport(slotCount: slotCount, positions: positions, bases: bases)
        send(.detections(report))
        counters.siftingBits = 8 * (counters.bytesSent - 10) + positions.count
    }

    /// The next thing to do, or nil when the machine waits for a message (or is done).
    ///
    /// Privacy amplification runs inside this call, after the verification result has been handed
    /// out: a driver that sends each message as it gets it lets Alice hash at the same time.
    /// - Returns: an action.
    public mutating func nextAction() -> PostProcessingAction? {
        if outbox.isEmpty { amplifyIfDue() }
        return outbox.isEmpty ? nil : outbox.removeFirst()
    }

    /// Runs the deferred privacy amplification, if any, and queues the finished round.
    private mutating func amplifyIfDue() {
        guard case .amplifying(var a) = state else { return }
        state = .done
        defer { a.key.wipe() }
        var final = MultiplyAddShiftHash.hash(a.key, multiplier: a.request.multiplier, addend: a.request.addend,
                                              outputBits: a.length, threads: configuration.amplificationThreads)
        defer { final.wipe() }
        outbox.append(.finished(RoundResult(key: finalKeyBytes(final), summary: summary)))
    }

    /// Decodes `bytes`, checks the round id, and processes the message.
    /// - Parameter bytes: one encoded message.
    /// - Throws: as ``receive(_:)``, and ``QKDError/Code/ppRoundMismatch``.
    public mutating func receive(bytes: [UInt8]) throws {
        try poisonCheck()
        amplifyIfDue()  // A message after the round's end finds it finished, as if drained.
        do {
            let (id, message) = try PostProcessingMessage.decode(bytes)
            guard id == roundID else {
                throw QKDError(.ppRoundMismatch, "message for round \(id) given to Bob's round \(roundID)")
            }
            try receive(message, encodedBytes: bytes.count)
        } catch let error as QKDError {
            poison(error)
            throw error
        }
    }

    /// Ends the round without a result and wipes the key material it holds. The node calls this
    /// when it drops a round that has not finished (link lost, round superseded or abandoned);
    /// later calls to ``receive(_:)`` throw ``QKDError/Code/ppUnexpectedMessage``.
    public mutating func discard() {
        wipeState()
        outbox.removeAll()
    }

    /// Poisons the machine after `error` (Spec/postprocessing.md section 3): wipes the state's key
    /// material and drops every queued action, also those queued before the error (a message
    /// not yet handed out, or a finished round whose key the drop releases and so wipes), so
    /// that a poisoned machine hands out nothing.
    private mutating func poison(_ error: QKDError) {
        discard()
        state = .failed(error)
    }

    /// Wipes the key material the current state holds and leaves `.done`. Each payload is taken
    /// out of `state` before its wipe, so that the wipe reaches the only copy (``WipeAudit``).
    private mutating func wipeState() {
        if case .awaitingSiftResponse(var d) = state {
            state = .done
            d.bits.wipe()
        } else if case .reconciling(var r) = state {
            state = .done
            r.engine.wipe()
        } else if case .awaitingVerification(var v) = state {
            state = .done
            v.key.wipe()
        } else if case .amplifying(var a) = state {
            state = .done
            a.key.wipe()
        }
        if case .failed = state { return }
        state = .done
    }

    private func poisonCheck() throws {
        if case .failed(let e) = state { throw e }
    }

    private mutating func send(_ m: PostProcessingMessage) {
        counters.messagesSent += 1
        counters.bytesSent += m.encodedByteCount
        outbox.append(.send(m))
    }

    private mutating func abort(_ code: AbortCode) {
        send(.abort(code))
        outbox.append(.aborted(AbortReason(code: code, initiatedByPeer: false), summary))
    }

    private var summary: RoundSummary { counters.summary(roundTrips: receivedMessages) }

    /// Processes one message from Alice.
    /// - Parameter message: the message.
    /// - Throws: ``QKDError/Code/ppUnexpectedMessage`` for a message the state does not allow,
    ///   ``QKDError/Code/ppInconsistent`` for one that contradicts the shared state; after any
    ///   error the machine is poisoned.
    public mutating func receive(_ message: PostProcessingMessage) throws {
        try receive(message, encodedBytes: message.encodedByteCount)
    }

    /// ``receive(_:)`` with the encoded size already known (``receive(bytes:)``), which spares
    /// recounting a detection report's Rice code.
    private mutating func receive(_ message: PostProcessingMessage, encodedBytes: Int) throws {
        try poisonCheck()
        amplifyIfDue()
        counters.bytesReceived += encodedBytes
        receivedMessages += 1
        do {
            try transition(on: message)
        } catch let error as QKDError {
            poison(error)
            throw error
        }
    }

    /// Takes the current state's payload out of `state` (leaving `.done` until the transition
    /// stores the next state) so that the payload is the only reference to its buffers: the
    /// Cascade engine's arrays then change in place instead of being copied on every step, and a
    /// wipe reaches the only copy of the key rather than a copy made by the write.
    private mutating func transition(on message: PostProcessingMessage) throws {
        if case .abort(let code) = message {
            switch state {
            case .done, .failed, .amplifying:
                throw QKDError(.ppUnexpectedMessage, "Bob received an abort after the round ended")
            default:
                wipeState()
                outbox.append(.aborted(AbortReason(code: code, initiatedByPeer: true), summary))
                return
            }
        }
        // Dispatch on the message, then take the payload with `guard case` (a statement whose
        // temporary copy of `state` ends with it) and overwrite `state` at once: a `switch` on
        // `(state, message)` would keep its subject's copy alive through the case body.
        switch message {
        case .siftResponse(let response):
            guard case .awaitingSiftResponse(var d) = state else { throw unexpected(message) }
            state = .done
            defer { d.bits.wipe() }  // Bob's raw bits: the sifted key and test bits are copies.
            state = try sift(d, response)
        case .cascadeParities(let c):
            guard case .reconciling(var r) = state else { throw unexpected(message) }
            state = .done  // r now holds the engine's only reference: the step mutates in place.
            var kept = false
            defer { if !kept { r.engine.wipe() } }  // A failed step or the end: no copy outlives it.
            guard c.step == UInt32(r.engine.steps) else {
                throw QKDError(.ppUnexpectedMessage, "Cascade parities for step \(c.step) while Bob is at step \(r.engine.steps)")
            }
            let replies = try r.engine.replies(to: c.bits)
            try r.engine.apply(replies)
            try checkStepLimit(r.engine.steps)
            send(.cascadeReplies(CascadeBits(step: c.step, bits: replies)))
            if r.engine.pending != .done {
                state = .reconciling(r)
                kept = true
                return
            }
            counters.steps = r.engine.steps
            counters.corrected = r.engine.corrections
            counters.leakEC = r.engine.disclosedParities
            counters.leakVerification = KeyVerification.tagBits
            state = .awaitingVerification(Reconciled(key: r.engine.takeKey()))
        case .verification(let request):
            guard case .awaitingVerification(var v) = state else { throw unexpected(message) }
            state = .done
            var handedOn = false
            defer { if !handedOn { v.key.wipe() } }
            let length = FiniteKey.secretLength(
                keyBits: v.key.count, testBits: counters.testBits, testErrors: counters.testErrors,
                leakedBits: counters.leakEC + counters.leakVerification, security: configuration.security) & ~7
            guard request.finalLength == UInt64(length) else {
                throw QKDError(.ppInconsistent, "Alice's final length \(request.finalLength) differs from Bob's \(length); the sides disagree on the round's figures")
            }
            guard request.multiplier.count == MultiplyAddShiftHash.seedBits(inputBits: v.key.count, outputBits: length) else {
                throw QKDError(.ppInconsistent, "Alice's amplification seed has \(request.multiplier.count) bits; n + l - 1 = \(v.key.count + length - 1) (Spec/postprocessing.md section 2.7)")
            }
            // The hash key is Alice's: one that is zero after Poly1305 clamping is her
            // misbehaviour (pp.malformed), not a broken local key source, which is what the
            // crypto layer's crypto.weak-hash-key says (FailCases/FuzzPostProcessingRound/
            // zero-verification-key).
            let mine: [UInt8]
            do {
                mine = try KeyVerification.tag(of: v.key, hashKey: request.hashKey, roundID: roundID)
            } catch let error as QKDError where error.code == .weakHashKey {
                throw QKDError(.ppMalformed, "Alice's verification hash key is zero after Poly1305 clamping, so every key would match (Spec/postprocessing.md section 2.7); she must draw a fresh random key")
            }
            let equal = mine.withUnsafeBytes { a in request.tag.withUnsafeBytes { b in constantTimeEqual(a, b) } }
            guard equal else {
                abort(.verificationFailed)
                return
            }
            counters.finalBits = length
            send(.verificationResult(matched: true))
            state = .amplifying(Amplifying(key: v.key, request: request, length: length))
            handedOn = true
        default:
            throw unexpected(message)
        }
    }

    private func unexpected(_ message: PostProcessingMessage) -> QKDError {
        QKDError(.ppUnexpectedMessage, "Bob cannot take a message of type \(message.typeByte) in his current state (Spec/postprocessing.md section 3.2)")
    }

    /// The address of the Cascade engine's key buffer while Bob reconciles, nil otherwise. Tests
    /// check that it stays put across steps: Bob flips key bits in place, so a moved buffer
    /// means the state machine copied the engine (copy on write) during a step.
    var reconcilingKeyAddress: UInt? {
        guard case .reconciling(let r) = state else { return nil }
        return r.engine.permuted[0].words.withUnsafeBufferPointer { $0.baseAddress.map { UInt(bitPattern: $0) } }
    }

    private mutating func sift(_ d: Detections, _ response: SiftResponse) throws -> State {
        let count = d.bits.count
        guard response.matches.count == count else {
            throw QKDError(.ppInconsistent, "Alice's match bitmap has \(response.matches.count) bits for \(count) detections")
        }
        var (key, tests) = Self.siftedBits(matches: response.matches, bases: d.bases, bits: d.bits)
        var handedOn = false
        defer { if !handedOn { key.wipe() } }  // An abort or a throw: the sifted key dies here.
        guard tests.count == response.testBits.count else {
            throw QKDError(.ppInconsistent, "Alice disclosed \(response.testBits.count) test bits, Bob has \(tests.count) matched X-basis detections")
        }
        var errors = 0
        for i in tests.words.indices { errors += (tests.words[i] ^ response.testBits.words[i]).nonzeroBitCount }
        counters.keyBits = key.count
        counters.testBits = tests.count
        counters.testErrors = errors
        if key.count == 0 || tests.count == 0 {
            abort(.tooFewBits)
            return .done
        }
        let qber = Double(errors) / Double(tests.count)
        counters.qberBound = FiniteKey.phaseErrorBound(keyBits: key.count, testBits: tests.count, testErrors: errors,
                                                       epsilonSecrecy: configuration.security.epsilonSecrecy)
        if qber > configuration.security.qberThreshold {
            abort(.qberAboveThreshold)
            return .done
        }
        send(.estimation(testErrors: UInt32(errors)))
        let schedule = configuration.reconciliation.schedule(qber: qber, keyBits: key.count)
        let engine = try CascadeEngine(role: .bob, key: key, schedule: schedule, seed: response.cascadeSeed)
        handedOn = true  // The engine's copy becomes the only one when `key` goes out of scope.
        return .reconciling(Reconciling(engine: engine))
    }

    /// Bob's key bits (matched Z-basis detections) and test bits (matched X-basis detections),
    /// in detection order (Spec/postprocessing.md section 3.2).
    /// - Parameters:
    ///   - matches: Alice's match bitmap, one bit per detection.
    ///   - bases: Bob's bases (1 = X), one per detection.
    ///   - bits: Bob's bits, one per detection.
    /// - Returns: the key and test bits.
    static func siftedBits(matches: BitVector, bases: BitVector, bits: BitVector) -> (key: BitVector, tests: BitVector) {
        SiftKernels.bob(matches: matches, bases: bases, bits: bits)
    }
}
