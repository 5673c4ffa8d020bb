public import QKDCrypto

/// Alice's side of one post-processing round (Spec/postprocessing.md section 3.1): a sans-IO
/// state machine. Feed it Bob's messages with ``receive(_:)`` and loop ``nextAction()`` until it
/// returns nil. Alice answers; Bob opens the round with his detection report.
///
/// A thrown error poisons the machine: every later ``receive(_:)`` throws the same error.
public struct AliceRound {
    private enum State {
        case awaitingDetections(AwaitingDetections)
        case awaitingEstimation(Sifted)
        case reconciling(Reconciling)
        case awaitingVerificationResult(Verifying)
        case done
        case failed(QKDError)
    }

    private struct AwaitingDetections {
        var bits: BitVector
        var bases: BitVector
    }

    private struct Sifted {
        var key: BitVector
        var testCount: Int
        var cascadeSeed: [UInt8]
    }

    private struct Reconciling {
        var engine: CascadeEngine
    }

    private struct Verifying {
        var key: BitVector
        var multiplier: BitVector
        var addend: BitVector
        var finalLength: Int
        /// The amplified key, computed ahead while Bob verifies (``nextAction()``); released
        /// only if he reports a match, wiped otherwise.
        var final: BitVector?

        mutating func wipe() {
            key.wipe()
            final?.wipe()
        }
    }

    private var state: State
    private var outbox: [PostProcessingAction] = []
    private var random: any RandomSource
    private var counters = RoundCounters()
    /// The round id; messages of other rounds are refused.
    public let roundID: UInt64
    /// The configuration.
    public let configuration: PostProcessingConfiguration

    /// Starts Alice's round.
    /// - Parameters:
    ///   - roundID: the round id both sides agreed on.
    ///   - configuration: shared configuration.
    ///   - bits: Alice's bit per slot.
    ///   - bases: Alice's basis per slot (1 = X).
    ///   - random: the source of the Cascade, verification and amplification seeds.
    public init(roundID: UInt64, configuration: PostProcessingConfiguration, bits: BitVector, bases: BitVector,
                random: any RandomSource) {
        precondition(bits.count == bases.count, "one basis per slot")
        self.roundID = roundID
        self.configuration = configuration
        self.random = random
        state = .awaitingDetections(AwaitingDetections(bits: bits, bases: bases))
    }

    /// The next thing to do, or nil when the machine waits for a message (or is done).
    ///
    /// Once the verification request has been handed out, the next call runs privacy
    /// amplification ahead of Bob's answer, so that a driver that sends each message as it gets
    /// it lets both sides hash at the same time; the result is used only if Bob reports a match.
    /// - Returns: an action.
    public mutating func nextAction() -> PostProcessingAction? {
        if outbox.isEmpty { amplifyAhead() }
        return outbox.isEmpty ? nil : outbox.removeFirst()
    }

    /// Computes the amplified key while Alice waits for the verification result.
    private mutating func amplifyAhead() {
        guard case .awaitingVerificationResult(var v) = state, v.final == nil else { return }
        state = .done
        v.final = amplify(v)
        state = .awaitingVerificationResult(v)
    }

    private func amplify(_ v: Verifying) -> BitVector {
        MultiplyAddShiftHash.hash(v.key, multiplier: v.multiplier, addend: v.addend,
                                  outputBits: v.finalLength, threads: configuration.amplificationThreads)
    }

    /// Decodes `bytes`, checks the round id, and processes the message.
    /// - Parameter bytes: one encoded message.
    /// - Throws: as ``receive(_:)``, and ``QKDError/Code/ppRoundMismatch``.
    public mutating func receive(bytes: [UInt8]) throws {
        try poisonCheck()
        if siftFromBytes(bytes) { return }
        do {
            let (id, message) = try PostProcessingMessage.decode(bytes)
            guard id == roundID else {
                throw QKDError(.ppRoundMismatch, "message for round \(id) given to Alice's round \(roundID)")
            }
            try receive(message, encodedBytes: bytes.count)
        } catch let error as QKDError {
            poison(error)
            throw error
        }
    }

    /// A detection report for this round while Alice waits for one: decoded and sifted in one
    /// pass over its Rice stream (``SiftKernels/alice(stream:count:parameter:slotCount:aliceBases:aliceBits:bobBases:)``),
    /// without the array of positions (8 bytes per detection, written and reread: 5-8% of
    /// decoding and sifting at p = 0.08, 15-25% at p = 0.4). Returns false, having changed
    /// nothing, for anything else (another message or state, a malformed report, another round
    /// or slot count): ``receive(bytes:)`` then takes the general path, which throws what it
    /// always threw.
    private mutating func siftFromBytes(_ bytes: [UInt8]) -> Bool {
        guard bytes.count > 1, bytes[1] == 1, case .awaitingDetections = state,
              let (id, coded) = PostProcessingMessage.codedDetections(bytes), id == roundID else { return false }
        guard case .awaitingDetections(var input) = state else { return false }
        state = .done  // input is now the only reference to Alice's bits: the wipe below reaches them.
        let head = coded.head
        guard head.slotCount == UInt64(input.bits.count),
              let (matches, key, tests) = SiftKernels.alice(stream: head.stream, count: head.count, parameter: head.parameter,
                                                            slotCount: input.bits.count, aliceBases: input.bases,
                                                            aliceBits: input.bits, bobBases: coded.bases) else {
            state = .awaitingDetections(input)
            return false
        }
        defer { input.bits.wipe() }
        counters.bytesReceived += bytes.count
        state = sifted(slotCount: head.slotCount, detections: head.count, matches: matches, key: key, tests: tests)
        return true
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
        if case .awaitingDetections(var input) = state {
            state = .done
            input.bits.wipe()
        } else if case .awaitingEstimation(var sifted) = state {
            state = .done
            sifted.key.wipe()
        } else if case .reconciling(var r) = state {
            state = .done
            r.engine.wipe()
        } else if case .awaitingVerificationResult(var v) = state {
            state = .done
            v.wipe()
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
        state = .done
        outbox.append(.aborted(AbortReason(code: code, initiatedByPeer: false), summary))
    }

    private var summary: RoundSummary { counters.summary(roundTrips: counters.messagesSent) }

    /// Processes one message from Bob.
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
            case .done, .failed:
                throw QKDError(.ppUnexpectedMessage, "Alice received an abort after the round ended")
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
        case .detections(let report):
            guard case .awaitingDetections(var input) = state else { throw unexpected(message) }
            state = .done
            defer { input.bits.wipe() }
            state = try sift(input, report)
        case .estimation(let errors):
            guard case .awaitingEstimation(var sifted) = state else { throw unexpected(message) }
            state = .done
            defer { sifted.key.wipe() }  // Empty once the engine holds the key.
            guard sifted.testCount > 0, sifted.key.count > 0 else {
                throw QKDError(.ppInconsistent, "Bob sent an estimate although the round has \(sifted.testCount) test bits and \(sifted.key.count) key bits; he should have aborted")
            }
            guard Int(errors) <= sifted.testCount else {
                throw QKDError(.ppInconsistent, "Bob reports \(errors) test errors among \(sifted.testCount) test bits")
            }
            counters.testErrors = Int(errors)
            let qber = Double(errors) / Double(sifted.testCount)
            counters.qberBound = FiniteKey.phaseErrorBound(keyBits: sifted.key.count, testBits: sifted.testCount,
                                                           testErrors: Int(errors), epsilonSecrecy: configuration.security.epsilonSecrecy)
            if qber > configuration.security.qberThreshold {
                abort(.qberAboveThreshold)
                return
            }
            let schedule = configuration.reconciliation.schedule(qber: qber, keyBits: sifted.key.count)
            var engine = try CascadeEngine(role: .alice, key: sifted.key, schedule: schedule, seed: sifted.cascadeSeed)
            sifted.key = BitVector(count: 0)  // The engine's copy is now the only one (it wipes it).
            send(.cascadeParities(CascadeBits(step: 0, bits: engine.parities())))
            state = .reconciling(Reconciling(engine: engine))
        case .cascadeReplies(let c):
            guard case .reconciling(var r) = state else { throw unexpected(message) }
            state = .done  // r now holds the engine's only reference: the step mutates in place.
            var kept = false
            defer { if !kept { r.engine.wipe() } }  // A failed step or the end: no copy outlives it.
            guard c.step == UInt32(r.engine.steps) else {
                throw QKDError(.ppUnexpectedMessage, "Cascade reply for step \(c.step) while Alice is at step \(r.engine.steps)")
            }
            try r.engine.apply(c.bits)
            try checkStepLimit(r.engine.steps)
            if r.engine.pending != .done {
                send(.cascadeParities(CascadeBits(step: UInt32(r.engine.steps), bits: r.engine.parities())))
                state = .reconciling(r)
                kept = true
                return
            }
            state = try startVerification(&r.engine)
        case .verificationResult(let matched):
            guard case .awaitingVerificationResult(var v) = state else { throw unexpected(message) }
            state = .done
            defer { v.wipe() }
            guard matched else {
                outbox.append(.aborted(AbortReason(code: .verificationFailed, initiatedByPeer: true), summary))
                return
            }
            var final = v.final.take() ?? amplify(v)  // Taken out, so the wipe below reaches its only copy.
            defer { final.wipe() }
            counters.finalBits = v.finalLength
            outbox.append(.finished(RoundResult(key: finalKeyBytes(final), summary: summary)))
        default:
            throw unexpected(message)
        }
    }

    private func unexpected(_ message: PostProcessingMessage) -> QKDError {
        QKDError(.ppUnexpectedMessage, "Alice cannot take a message of type \(message.typeByte) in her current state (Spec/postprocessing.md section 3.1)")
    }

    private mutating func sift(_ input: AwaitingDetections, _ report: DetectionReport) throws -> State {
        guard report.slotCount == UInt64(input.bits.count) else {
            throw QKDError(.ppInconsistent, "Bob reports \(report.slotCount) slots, Alice sent \(input.bits.count)")
        }
        // Gather, compare and pack a word of 64 detections at a time (Sifting/SiftKernels.swift).
        let (matches, key, tests) = try SiftKernels.alice(positions: report.positions, slotCount: input.bits.count,
                                                          aliceBases: input.bases, aliceBits: input.bits, bobBases: report.bases)
        return sifted(slotCount: report.slotCount, detections: report.positions.count, matches: matches, key: key, tests: tests)
    }

    /// Sifting's outcome, however the report was read: the counts, the Cascade seed and the
    /// response to Bob.
    private mutating func sifted(slotCount: UInt64, detections d: Int, matches: [UInt64], key: BitVector,
                                 tests: BitVector) -> State {
        counters.detections = d
        counters.slots = slotCount
        counters.keyBits = key.count
        counters.testBits = tests.count
        let seed = random.bytes(count: PostProcessingLimits.seedByteCount)
        let response = SiftResponse(matches: BitVector(words: matches, count: d), testBits: tests, cascadeSeed: seed)
        counters.siftingBits = 8 * (counters.bytesReceived - 10) + d  // report payload + match bitmap
        send(.siftResponse(response))
        return .awaitingEstimation(Sifted(key: key, testCount: tests.count, cascadeSeed: seed))
    }

    private mutating func startVerification(_ engine: inout CascadeEngine) throws -> State {
        counters.steps = engine.steps
        counters.corrected = engine.corrections
        counters.leakEC = engine.disclosedParities
        counters.leakVerification = KeyVerification.tagBits
        var key = engine.takeKey()
        var handedOn = false
        defer { if !handedOn { key.wipe() } }
        let length = FiniteKey.secretLength(
            keyBits: key.count, testBits: counters.testBits, testErrors: counters.testErrors,
            leakedBits: counters.leakEC + counters.leakVerification, security: configuration.security) & ~7
        guard length > 0 else {
            abort(.noSecretKey)
            return .done
        }
        let hashKey = random.bytes(count: PostProcessingLimits.verificationKeyByteCount)
        let tag = try KeyVerification.tag(of: key, hashKey: hashKey, roundID: roundID)
        // Fresh true random seed bits for the universal hash (Spec/postprocessing.md section 7).
        let seed = MultiplyAddShiftHash.drawSeed(inputBits: key.count, outputBits: length, random: &random)
        send(.verification(VerificationRequest(hashKey: hashKey, tag: tag, finalLength: UInt64(length),
                                               multiplier: seed.multiplier, addend: seed.addend)))
        handedOn = true
        return .awaitingVerificationResult(Verifying(key: key, multiplier: seed.multiplier, addend: seed.addend, finalLength: length))
    }
}

/// Throws once a round has taken more Cascade steps than ``PostProcessingLimits/maxCascadeSteps``
/// (Spec/postprocessing.md section 2.2).
func checkStepLimit(_ steps: Int) throws {
    guard steps <= PostProcessingLimits.maxCascadeSteps else {
        throw QKDError(.ppInconsistent, "Cascade took more than \(PostProcessingLimits.maxCascadeSteps) steps; the peer is not following the protocol")
    }
}

