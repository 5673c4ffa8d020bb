import QKDCrypto

/// The figures of one Cascade run (both sides in one process).
public struct CascadeRunReport: Sendable {
    /// Parity bits Alice disclosed (leak_EC).
    public var leakedBits: Int
    /// Steps (round trips).
    public var steps: Int
    /// Bits Bob flipped.
    public var corrected: Int
    /// Bits that still differ after Cascade (0 unless Cascade failed).
    public var residualErrors: Int
    /// Encoded bytes of the Cascade messages, Alice to Bob and Bob to Alice.
    public var bytesAliceToBob: Int
    /// Encoded bytes of the Cascade messages, Bob to Alice.
    public var bytesBobToAlice: Int
    /// Seconds spent in Alice's engine (setup, parities, applying replies), by the clock given
    /// to ``CascadeRunner/run(alice:bob:qber:schedule:seed:clock:)``; 0 without one.
    public var aliceSeconds: Double = 0
    /// Seconds spent in Bob's engine (setup, replies, applying them); 0 without a clock.
    public var bobSeconds: Double = 0
}

/// Runs both sides of Cascade in one process, exchanging the same bitmaps as the round
/// messages (for benchmarks and tests; a round uses ``AliceRound`` and ``BobRound``).
public enum CascadeRunner {
    /// Reconciles `bob` towards `alice`.
    /// - Parameters:
    ///   - alice: Alice's key.
    ///   - bob: Bob's key, same length.
    ///   - qber: the QBER estimate both sides use to choose block sizes.
    ///   - schedule: improved or original.
    ///   - seed: 32-byte shared permutation seed.
    ///   - clock: optional seconds source (the caller's CPU clock): with it, the report splits
    ///     the time between the two roles, which is what one node of a real link spends. The
    ///     core reads no clock itself (DESIGN.md, sans-IO).
    /// - Returns: the figures.
    /// - Throws: only if the engines disagree (a bug).
    public static func run(alice: BitVector, bob: BitVector, qber: Double, schedule: ReconciliationSchedule,
                           seed: [UInt8], clock: (() -> Double)? = nil) throws -> CascadeRunReport {
        try run(alice: alice, bob: bob, plan: schedule.schedule(qber: qber, keyBits: alice.count), seed: seed, clock: clock)
    }

    /// Reconciles `bob` towards `alice` with explicit block sizes (for schedule tuning:
    /// `qkd-node bench cascade-scan`, Spec/postprocessing.md section 5.1).
    /// - Parameters:
    ///   - alice: Alice's key.
    ///   - bob: Bob's key, same length.
    ///   - plan: the block size of every pass.
    ///   - seed: 32-byte shared permutation seed.
    ///   - clock: optional seconds source, as in ``run(alice:bob:qber:schedule:seed:clock:)``.
    /// - Returns: the figures.
    /// - Throws: only if the engines disagree (a bug).
    public static func run(alice: BitVector, bob: BitVector, plan: CascadeSchedule,
                           seed: [UInt8], clock: (() -> Double)? = nil) throws -> CascadeRunReport {
        precondition(alice.count == bob.count)
        var aliceTime = 0.0, bobTime = 0.0
        var mark = clock?() ?? 0
        /// Charges the time since the last mark to one role.
        func charge(_ total: inout Double) {
            guard let clock else { return }
            let now = clock()
            total += now - mark
            mark = now
        }
        var a = try CascadeEngine(role: .alice, key: alice, schedule: plan, seed: seed)
        charge(&aliceTime)
        var b = try CascadeEngine(role: .bob, key: bob, schedule: plan, seed: seed)
        charge(&bobTime)
        var toBob = 0, toAlice = 0
        while a.pending != .done {
            let parities = a.parities()
            charge(&aliceTime)
            toBob += 18 + (parities.count + 7) / 8
            let replies = try b.replies(to: parities)
            try b.apply(replies)
            charge(&bobTime)
            toAlice += 18 + (replies.count + 7) / 8
            try a.apply(replies)
            try checkStepLimit(a.steps)
            charge(&aliceTime)
        }
        var residual = 0
        let ka = a.key, kb = b.key
        for i in ka.words.indices { residual += (ka.words[i] ^ kb.words[i]).nonzeroBitCount }
        return CascadeRunReport(leakedBits: a.disclosedParities, steps: a.steps, corrected: b.corrections,
                                residualErrors: residual, bytesAliceToBob: toBob, bytesBobToAlice: toAlice,
                                aliceSeconds: aliceTime, bobSeconds: bobTime)
    }
}
