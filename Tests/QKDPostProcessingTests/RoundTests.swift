import Testing
import QKDCrypto
@testable import QKDPostProcessing
import QKDSimulation

@Suite struct RoundTests {
    @Test(arguments: [0.005, 0.01, 0.02, 0.05, 0.08], [ReconciliationSchedule.improved, .leastLeakage, .original])
    func bothSidesAgreeOrAbortWithReason(qber: Double, schedule: ReconciliationSchedule) throws {
        for seed: UInt64 in 1...3 {
            let (a, b) = simulate(qber: qber, pulses: 120_000, seed: seed &* 31 &+ UInt64(qber * 1000), probabilityZ: 0.75)
            var pair = Pair(configuration: PostProcessingConfiguration(reconciliation: schedule), alice: a, bob: b, seed: seed)
            pair.run()
            switch (pair.aliceOutcome, pair.bobOutcome) {
            case (.key(let ka), .key(let kb)):
                #expect(ka.key == kb.key, "a wrong key must never be accepted")
                #expect(ka.key.count * 8 == ka.summary.finalBits)
                #expect(ka.summary.finalBits > 0)
                #expect(ka.summary.correctedErrors == kb.summary.correctedErrors)
            case (.aborted(let ra, _), .aborted(let rb, _)):
                #expect(ra.code == rb.code)
                #expect(ra.initiatedByPeer != rb.initiatedByPeer)
            default:
                Issue.record("inconsistent outcomes: \(String(describing: pair.aliceOutcome)) / \(String(describing: pair.bobOutcome))")
            }
        }
    }
}

@Suite struct AbortTests {
    @Test func interceptResendOnAllPulsesAborts() {
        for seed: UInt64 in 1...3 {
            let (a, b) = simulate(qber: 0.01, pulses: 60_000, seed: seed, probabilityZ: 0.75, intercept: 1.0, lossDB: 3)
            var pair = Pair(alice: a, bob: b, seed: seed)
            pair.run()
            guard case .aborted(let rb, let s) = pair.bobOutcome, case .aborted(let ra, _) = pair.aliceOutcome else {
                Issue.record("intercept-resend did not abort")
                continue
            }
            #expect(rb.code == .qberAboveThreshold && !rb.initiatedByPeer)
            #expect(ra.code == .qberAboveThreshold && ra.initiatedByPeer)
            #expect(s.qberEstimate > 0.2 && s.qberEstimate < 0.3, "intercept-resend gives about 25%")
        }
    }

    @Test func qberOverConfiguredThresholdAborts() {
        let config = PostProcessingConfiguration(security: SecurityParameters(qberThreshold: 0.04))
        let (a, b) = simulate(qber: 0.06, pulses: 40_000, seed: 9, probabilityZ: 0.5)
        var pair = Pair(configuration: config, alice: a, bob: b, seed: 9)
        pair.run()
        guard case .aborted(let r, _) = pair.aliceOutcome else { Issue.record("no abort"); return }
        #expect(r.code == .qberAboveThreshold)
    }

    @Test func tooSmallRoundHasNoSecretKey() {
        let (a, b) = simulate(qber: 0.03, pulses: 2_000, seed: 4, probabilityZ: 0.5)
        var pair = Pair(alice: a, bob: b, seed: 4)
        pair.run()
        guard case .aborted(let r, _) = pair.aliceOutcome, case .aborted(let rb, _) = pair.bobOutcome else {
            Issue.record("a 2000-pulse round cannot give a key at ε_sec = 1e-10"); return
        }
        #expect(r.code == .noSecretKey && rb.code == .noSecretKey)
    }

    @Test func corruptedParityIsCaughtByVerificationOrGivesEqualKeys() {
        // Flip one parity bit of an early Cascade message: Bob's correction goes wrong. Either a
        // later pass repairs it, the verification hash catches it, or the step limit stops the
        // round with a typed error; never two different keys.
        for target in [4, 5, 6, 8] {
            let (a, b) = simulate(qber: 0.03, pulses: 120_000, seed: 11, probabilityZ: 0.75)
            var pair = Pair(alice: a, bob: b, seed: 11)
            pair.run { fromAlice, index, bytes in
                guard fromAlice, index == target - 3, bytes.count > 18 else { return bytes }
                var m = bytes
                m[18] ^= 0x01
                return m
            }
            switch (pair.aliceOutcome, pair.bobOutcome) {
            case (.key(let x), .key(let y)): #expect(x.key == y.key)
            case (.aborted(let x, _), .aborted(let y, _)):
                #expect(x.code == .verificationFailed && y.code == .verificationFailed)
            case (_, .error(let e)):
                // A corrupted parity can make the mirrored bookkeeping loop; the step limit
                // turns that into a typed error (the authenticated channel makes it impossible).
                #expect(e == QKDError(.ppInconsistent))
            default: Issue.record("unexpected outcome for target \(target): \(String(describing: pair.aliceOutcome)) \(String(describing: pair.bobOutcome))")
            }
        }
    }
}

@Suite struct ProtocolErrorTests {
    func freshPair() -> Pair {
        let (a, b) = simulate(qber: 0.02, pulses: 20_000, seed: 3, probabilityZ: 0.75, lossDB: 3)
        return Pair(alice: a, bob: b, seed: 3)
    }

    @Test func outOfOrderMessageIsTypedAndPoisons() throws {
        var pair = freshPair()
        #expect(throws: QKDError(.ppUnexpectedMessage)) {
            try pair.bob.receive(.cascadeParities(CascadeBits(step: 0, bits: BitVector(count: 3))))
        }
        // Poisoned: the same error again, even for a message that would have been fine.
        #expect(throws: QKDError(.ppUnexpectedMessage)) {
            try pair.bob.receive(.verificationResult(matched: true))
        }
        #expect(throws: QKDError(.ppUnexpectedMessage)) {
            try pair.alice.receive(.estimation(testErrors: 0))
        }
    }

    /// A poisoned machine hands out nothing, also actions it queued before the error
    /// (Spec/postprocessing.md section 3): Alice accepts Bob's detection report (queueing her
    /// sift response), the same report again poisons her, and the queued response must not
    /// come out. Before session 6 it did (FuzzPostProcessingRound's partial-drain finding).
    @Test func poisonedMachineHandsOutNothingQueuedBefore() throws {
        var pair = freshPair()
        guard case .send(let detections)? = pair.bob.nextAction() else {
            Issue.record("Bob's first action is his detection report")
            return
        }
        let bytes = detections.encoded(roundID: 7)
        try pair.alice.receive(bytes: bytes)  // queues her sift response; not taken yet
        #expect(throws: QKDError(.ppUnexpectedMessage)) { try pair.alice.receive(bytes: bytes) }
        #expect(pair.alice.nextAction() == nil, "a poisoned Alice handed out an action queued before her error")
        #expect(throws: QKDError(.ppUnexpectedMessage)) { try pair.alice.receive(bytes: bytes) }
    }

    @Test func malformedMessagesAreTyped() throws {
        var pair = freshPair()
        guard case .send(let first) = pair.bob.nextAction() else { Issue.record("no first message"); return }
        let bytes = first.encoded(roundID: 7)
        var alice = pair.alice
        #expect(throws: QKDError(.ppMalformed)) { try alice.receive(bytes: Array(bytes.dropLast())) }
        alice = pair.alice
        var wrongType = bytes
        wrongType[1] = 99
        #expect(throws: QKDError(.ppUnknownType)) { try alice.receive(bytes: wrongType) }
        alice = pair.alice
        #expect(throws: QKDError(.ppRoundMismatch)) { try alice.receive(bytes: first.encoded(roundID: 8)) }
        alice = pair.alice
        #expect(throws: QKDError(.ppMalformed)) { try alice.receive(bytes: bytes + [0]) }
    }

    @Test func wrongStepIsRefused() {
        var pair = freshPair()
        pair.run { fromAlice, index, bytes in
            // Bob's second Cascade reply claims step 5.
            guard !fromAlice, index == 3 else { return bytes }
            var m = bytes
            m[13] = 5
            return m
        }
        guard case .error(let e) = pair.aliceOutcome else { Issue.record("no error"); return }
        #expect(e == QKDError(.ppUnexpectedMessage))
    }

    /// A verification request whose hash key is zero after Poly1305 clamping comes from the
    /// peer: Bob refuses it as malformed (peer misbehaviour), not with the crypto layer's
    /// `crypto.weak-hash-key`, which says the local key source is broken
    /// (FuzzPostProcessingRound; FailCases/FuzzPostProcessingRound/zero-verification-key).
    @Test(arguments: [[UInt8](repeating: 0, count: 16), [0, 0, 0, 0xf0, 3, 0, 0, 0xf0, 3, 0, 0, 0xf0, 3, 0, 0, 0xf0]])
    func zeroVerificationKeyIsPeerMisbehaviour(_ key: [UInt8]) throws {
        var pair = freshPair()
        var tampered = false
        pair.run { fromAlice, _, bytes in
            guard fromAlice, let (id, message) = try? PostProcessingMessage.decode(bytes), case .verification(var v) = message else { return bytes }
            v.hashKey = key
            tampered = true
            return PostProcessingMessage.verification(v).encoded(roundID: id)
        }
        #expect(tampered, "the round reached verification")
        guard case .error(let e) = pair.bobOutcome else { Issue.record("Bob did not refuse the zero key: \(String(describing: pair.bobOutcome))"); return }
        #expect(e == QKDError(.ppMalformed))
        #expect(e.code.isPeerMisbehaviour)
    }
}

@Suite struct AccountingTests {
    @Test func leakageEqualsParityAndHashBitsAliceSent() throws {
        for (i, q) in [0.01, 0.04].enumerated() {
            let (a, b) = simulate(qber: q, pulses: 100_000, seed: UInt64(20 + i), probabilityZ: 0.75, lossDB: 2)
            var pair = Pair(alice: a, bob: b, seed: UInt64(i))
            pair.run()
            guard case .key(let r) = pair.aliceOutcome else { Issue.record("no key"); continue }
            var parityBits = 0, hashBits = 0
            for bytes in pair.aliceSent {
                switch try PostProcessingMessage.decode(bytes).message {
                case .cascadeParities(let c): parityBits += c.bits.count
                case .verification(let v): hashBits += 8 * v.tag.count
                default: break
                }
            }
            #expect(r.summary.reconciliationLeakage == parityBits)
            #expect(r.summary.verificationLeakage == hashBits)
            #expect(r.summary.bytesSent == pair.aliceSent.reduce(0) { $0 + $1.count })
            #expect(r.summary.bytesReceived == pair.bobSent.reduce(0) { $0 + $1.count })
        }
    }
}
