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
                throw QKDError(.ppRoundMismatch, "message for round \(id) given to Alice's round \(roundID)")
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
        let saved = state
        state = .done  // Keep payloads uniquely referenced while they change.
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
                throw QKDError(.ppUnexpectedMessage, "Alice received an abort after the round ended")
            default:
                outbox.append(.aborted(AbortReason(code: code, initiatedByPeer: true), summary))
                return .done
            }
        }
        switch (current, message) {
        case (.awaitingDetections(var input), .detections(let report)):
            defer { input.bits.wipe() }
            return try sift(input, report)
        case (.awaitingEstimation(var sifted), .estimation(let errors)):
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
                sifted.key.wipe()
                abort(.qberAboveThreshold)
                return .done
            }
            let schedule = configuration.reconciliation.schedule(qber: qber, keyBits: sifted.key.count)
            var engine = try CascadeEngine(role: .alice, key: sifted.key, schedule: schedule, seed: sifted.cascadeSeed)
            sifted.key.wipe()
            send(.cascadeParities(CascadeBits(step: 0, bits: engine.parities())))
            return .reconciling(Reconciling(engine: engine))
        case (.reconciling(var r), .cascadeReplies(let c)):
            guard c.step == UInt32(r.engine.steps) else {
                throw QKDError(.ppUnexpectedMessage, "Cascade reply for step \(c.step) while Alice is at step \(r.engine.steps)")
            }
            try r.engine.apply(c.bits)
            try checkStepLimit(r.engine.steps)
            if r.engine.pending != .done {
                send(.cascadeParities(CascadeBits(step: UInt32(r.engine.steps), bits: r.engine.parities())))
                return .reconciling(r)
            }
            return try startVerification(&r.engine)
        case (.awaitingVerificationResult(var v), .verificationResult(let matched)):
            defer { v.key.wipe() }
            guard matched else {
                state = .done
                outbox.append(.aborted(AbortReason(code: .verificationFailed, initiatedByPeer: true), summary))
                return .done
            }
            var final = MultiplyAddShiftHash.hash(v.key, multiplier: v.multiplier, addend: v.addend,
                                                  outputBits: v.finalLength, threads: configuration.amplificationThreads)
            defer { final.wipe() }
            counters.finalBits = v.finalLength
            outbox.append(.finished(RoundResult(key: finalKeyBytes(final), summary: summary)))
            return .done
        default:
            throw QKDError(.ppUnexpectedMessage, "Alice cannot take a message of type \(message.typeByte) in her current state (Spec/postprocessing.md section 3.1)")
        }
    }

    private mutating func sift(_ input: AwaitingDetections, _ report: DetectionReport) throws -> State {
        guard report.slotCount == UInt64(input.bits.count) else {
            throw QKDError(.ppInconsistent, "Bob reports \(report.slotCount) slots, Alice sent \(input.bits.count)")
        }
        let d = report.positions.count
        counters.detections = d
        counters.slots = report.slotCount
        // Gather, compare and pack a word of 64 detections at a time (Sifting/SiftKernels.swift).
        let (matches, key, tests) = try SiftKernels.alice(positions: report.positions, slotCount: input.bits.count,
                                                          aliceBases: input.bases, aliceBits: input.bits, bobBases: report.bases)
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
        var key = engine.key
        engine.wipe()
        let length = FiniteKey.secretLength(
            keyBits: key.count, testBits: counters.testBits, testErrors: counters.testErrors,
            leakedBits: counters.leakEC + counters.leakVerification, security: configuration.security) & ~7
        guard length > 0 else {
            key.wipe()
            abort(.noSecretKey)
            return .done
        }
        let hashKey = random.bytes(count: PostProcessingLimits.verificationKeyByteCount)
        let tag = try KeyVerification.tag(of: key, hashKey: hashKey, roundID: roundID)
        // Fresh true random seed bits for the universal hash (Spec/postprocessing.md section 7).
        let seed = MultiplyAddShiftHash.drawSeed(inputBits: key.count, outputBits: length, random: &random)
        send(.verification(VerificationRequest(hashKey: hashKey, tag: tag, finalLength: UInt64(length),
                                               multiplier: seed.multiplier, addend: seed.addend)))
        return .awaitingVerificationResult(Verifying(key: key, multiplier: seed.multiplier, addend: seed.addend, finalLength: length))
    }
}

/// The most Cascade steps a round may take before it is treated as a misbehaving peer
/// (Spec/postprocessing.md section 2.2): far above the 100-300 an honest round needs.
let maxCascadeSteps = 4_096

func checkStepLimit(_ steps: Int) throws {
    guard steps <= maxCascadeSteps else {
        throw QKDError(.ppInconsistent, "Cascade took more than \(maxCascadeSteps) steps; the peer is not following the protocol")
    }
}

