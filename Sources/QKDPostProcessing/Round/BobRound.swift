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
    /// - Returns: an action.
    public mutating func nextAction() -> PostProcessingAction? {
        outbox.isEmpty ? nil : outbox.removeFirst()
    }

    /// Decodes `bytes`, checks the round id, and processes the message.
    /// - Parameter bytes: one encoded message.
    /// - Throws: as ``receive(_:)``, and ``QKDError/Code/ppRoundMismatch``.
    public mutating func receive(bytes: [UInt8]) throws {
        try poisonCheck()
        do {
            let (id, message) = try PostProcessingMessage.decode(bytes)
            guard id == roundID else {
                throw QKDError(.ppRoundMismatch, "message for round \(id) given to Bob's round \(roundID)")
            }
            try receive(message, encodedBytes: bytes.count)
        } catch let error as QKDError {
            state = .failed(error)
            throw error
        }
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
        counters.bytesReceived += encodedBytes
        receivedMessages += 1
        let saved = state
        state = .done
        do {
            state = try transition(from: saved, on: message)
        } catch let error as QKDError {
            state = .failed(error)
            throw error
        }
    }

    private mutating func transition(from current: State, on message: PostProcessingMessage) throws -> State {
        if case .abort(let code) = message {
            switch current {
            case .done, .failed:
                throw QKDError(.ppUnexpectedMessage, "Bob received an abort after the round ended")
            default:
                outbox.append(.aborted(AbortReason(code: code, initiatedByPeer: true), summary))
                return .done
            }
        }
        switch (current, message) {
        case (.awaitingSiftResponse(let d), .siftResponse(let response)):
            return try sift(d, response)
        case (.reconciling(var r), .cascadeParities(let c)):
            guard c.step == UInt32(r.engine.steps) else {
                throw QKDError(.ppUnexpectedMessage, "Cascade parities for step \(c.step) while Bob is at step \(r.engine.steps)")
            }
            let replies = try r.engine.replies(to: c.bits)
            try r.engine.apply(replies)
            try checkStepLimit(r.engine.steps)
            send(.cascadeReplies(CascadeBits(step: c.step, bits: replies)))
            if r.engine.pending != .done { return .reconciling(r) }
            counters.steps = r.engine.steps
            counters.corrected = r.engine.corrections
            counters.leakEC = r.engine.disclosedParities
            counters.leakVerification = KeyVerification.tagBits
            return .awaitingVerification(Reconciled(key: r.engine.key))
        case (.awaitingVerification(var v), .verification(let request)):
            defer { v.key.wipe() }
            let length = FiniteKey.secretLength(
                keyBits: v.key.count, testBits: counters.testBits, testErrors: counters.testErrors,
                leakedBits: counters.leakEC + counters.leakVerification, security: configuration.security) & ~7
            guard request.finalLength == UInt64(length) else {
                throw QKDError(.ppInconsistent, "Alice's final length \(request.finalLength) differs from Bob's \(length); the sides disagree on the round's figures")
            }
            guard request.multiplier.count == MultiplyAddShiftHash.seedBits(inputBits: v.key.count, outputBits: length) else {
                throw QKDError(.ppInconsistent, "Alice's amplification seed has \(request.multiplier.count) bits; n + l - 1 = \(v.key.count + length - 1) (Spec/postprocessing.md section 2.7)")
            }
            let mine = try KeyVerification.tag(of: v.key, hashKey: request.hashKey, roundID: roundID)
            let equal = mine.withUnsafeBytes { a in request.tag.withUnsafeBytes { b in constantTimeEqual(a, b) } }
            guard equal else {
                abort(.verificationFailed)
                return .done
            }
            var final = MultiplyAddShiftHash.hash(v.key, multiplier: request.multiplier, addend: request.addend,
                                                  outputBits: length, threads: configuration.amplificationThreads)
            defer { final.wipe() }
            counters.finalBits = length
            send(.verificationResult(matched: true))
            outbox.append(.finished(RoundResult(key: finalKeyBytes(final), summary: summary)))
            return .done
        default:
            throw QKDError(.ppUnexpectedMessage, "Bob cannot take a message of type \(message.typeByte) in his current state (Spec/postprocessing.md section 3.2)")
        }
    }

    private mutating func sift(_ d: Detections, _ response: SiftResponse) throws -> State {
        let count = d.bits.count
        guard response.matches.count == count else {
            throw QKDError(.ppInconsistent, "Alice's match bitmap has \(response.matches.count) bits for \(count) detections")
        }
        let (key, tests) = Self.siftedBits(matches: response.matches, bases: d.bases, bits: d.bits)
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
