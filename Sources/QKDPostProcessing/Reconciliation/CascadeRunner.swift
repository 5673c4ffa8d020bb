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
    /// - Returns: the figures.
    /// - Throws: only if the engines disagree (a bug).
    public static func run(alice: BitVector, bob: BitVector, qber: Double, schedule: ReconciliationSchedule,
                           seed: [UInt8]) throws -> CascadeRunReport {
        precondition(alice.count == bob.count)
        let plan = schedule.schedule(qber: qber, keyBits: alice.count)
        var a = try CascadeEngine(role: .alice, key: alice, schedule: plan, seed: seed)
        var b = try CascadeEngine(role: .bob, key: bob, schedule: plan, seed: seed)
        var toBob = 0, toAlice = 0
        while a.pending != .done {
            let parities = a.parities()
            toBob += 18 + (parities.count + 7) / 8
            let replies = try b.replies(to: parities)
            try b.apply(replies)
            toAlice += 18 + (replies.count + 7) / 8
            try a.apply(replies)
            try checkStepLimit(a.steps)
        }
        var residual = 0
        let ka = a.key, kb = b.key
        for i in ka.words.indices { residual += (ka.words[i] ^ kb.words[i]).nonzeroBitCount }
        return CascadeRunReport(leakedBits: a.disclosedParities, steps: a.steps, corrected: b.corrections,
                                residualErrors: residual, bytesAliceToBob: toBob, bytesBobToAlice: toAlice)
    }
}
