public import QKDCrypto

/// How the round reconciles (Spec/postprocessing.md section 5.1).
public enum ReconciliationSchedule: Sendable, Equatable {
    /// ``CascadeSchedule/improved(qber:keyBits:)``: the default.
    case improved
    /// ``CascadeSchedule/original(qber:keyBits:)``: the 1993 protocol, the benchmark baseline.
    case original
    /// ``CascadeSchedule/leastLeakage(qber:keyBits:)``: about 0.01 less f below QBER 1/16 for
    /// about twice the round trips.
    case leastLeakage

    func schedule(qber: Double, keyBits: Int) -> CascadeSchedule {
        switch self {
        case .improved: CascadeSchedule.improved(qber: qber, keyBits: keyBits)
        case .original: CascadeSchedule.original(qber: qber, keyBits: keyBits)
        case .leastLeakage: CascadeSchedule.leastLeakage(qber: qber, keyBits: keyBits)
        }
    }
}

/// Configuration shared by both roles; both sides must use the same values.
public struct PostProcessingConfiguration: Sendable, Equatable {
    /// ε parameters and the QBER threshold.
    public var security: SecurityParameters
    /// The Cascade schedule.
    public var reconciliation: ReconciliationSchedule
    /// Threads for the privacy-amplification product (1 or 2); a local choice that does not
    /// change the result, so the two sides need not agree on it.
    public var amplificationThreads: Int

    /// Creates a configuration.
    /// - Parameters:
    ///   - security: ε parameters and threshold.
    ///   - reconciliation: the schedule.
    ///   - amplificationThreads: 1 or 2 threads for privacy amplification (Spec/postprocessing.md section 7).
    public init(security: SecurityParameters = SecurityParameters(), reconciliation: ReconciliationSchedule = .improved,
                amplificationThreads: Int = 1) {
        precondition(amplificationThreads >= 1)
        self.security = security
        self.reconciliation = reconciliation
        self.amplificationThreads = amplificationThreads
    }
}

/// Why a round ended without a key.
public struct AbortReason: Sendable, Hashable, CustomStringConvertible {
    /// What happened.
    public var code: AbortCode
    /// True if the peer sent the abort; false if this side decided it.
    public var initiatedByPeer: Bool

    /// Creates a reason.
    /// - Parameters:
    ///   - code: what happened.
    ///   - initiatedByPeer: who decided.
    public init(code: AbortCode, initiatedByPeer: Bool) {
        self.code = code
        self.initiatedByPeer = initiatedByPeer
    }

    /// A sentence for logs.
    public var description: String {
        let what: String
        switch code {
        case .qberAboveThreshold: what = "the estimated QBER is above the threshold (possible eavesdropper or a misaligned link)"
        case .noSecretKey: what = "the finite-key bound leaves no secret bits; use larger rounds or a cleaner link"
        case .verificationFailed: what = "the verification hash of the corrected keys differs; the block is discarded"
        case .tooFewBits: what = "too few sifted bits to estimate and reconcile; use larger rounds"
        }
        return (initiatedByPeer ? "peer aborted: " : "aborted: ") + what
    }
}

/// The figures of one round (Spec/postprocessing.md section 8).
public struct RoundSummary: Sendable, Equatable {
    /// Detections Bob reported.
    public var detections: Int
    /// Slots in the round.
    public var slots: UInt64
    /// Sifted Z-basis key bits n that entered reconciliation.
    public var siftedKeyBits: Int
    /// Disclosed X-basis test bits k.
    public var testBits: Int
    /// Errors among the test bits.
    public var testErrors: Int
    /// e / k.
    public var qberEstimate: Double
    /// The phase-error bound e/k + μ used for the key length.
    public var qberBound: Double
    /// Bits Cascade corrected (the exact Z-basis error count once verification passes).
    public var correctedErrors: Int
    /// Parity bits Alice disclosed during Cascade (leak_EC).
    public var reconciliationLeakage: Int
    /// Verification tag bits disclosed.
    public var verificationLeakage: Int
    /// f = leak_EC / (n h(corrected / n)); nil when no error was corrected.
    public var efficiency: Double?
    /// Cascade steps (each one round trip).
    public var cascadeSteps: Int
    /// Round trips of the whole round (request and answer pairs).
    public var roundTrips: Int
    /// Messages and bytes this side sent and received.
    public var messagesSent: Int
    /// Bytes this side sent (encoded messages).
    public var bytesSent: Int
    /// Bytes this side received.
    public var bytesReceived: Int
    /// Classical bits of the sifting exchange (detection report and sift response).
    public var siftingBits: Int
    /// The entropy bound h(p)/p + 1 bits per detection, p = detections / slots.
    public var siftingBoundPerDetection: Double
    /// Final key bits.
    public var finalBits: Int

    /// Classical sifting bits per sifted (key and test) bit.
    public var siftingBitsPerSiftedBit: Double {
        let sifted = siftedKeyBits + testBits
        return sifted == 0 ? 0 : Double(siftingBits) / Double(sifted)
    }

    /// Classical sifting bits per detection.
    public var siftingBitsPerDetection: Double {
        detections == 0 ? 0 : Double(siftingBits) / Double(detections)
    }
}

/// A finished round: the key and its figures.
public struct RoundResult: Sendable {
    /// The final key, `summary.finalBits / 8` bytes. Hand it to the key pool
    /// (`absorbDistilledKey`) with the round id.
    public var key: SecretBytes
    /// The figures.
    public var summary: RoundSummary
}

/// What the driver must do next (STYLE.md: outputs are action enums).
public enum PostProcessingAction: Sendable {
    /// Send this message to the peer.
    case send(PostProcessingMessage)
    /// The round produced a key.
    case finished(RoundResult)
    /// The round stopped without a key.
    case aborted(AbortReason, RoundSummary)
}

/// Shared bookkeeping of both roles.
struct RoundCounters {
    var messagesSent = 0
    var bytesSent = 0
    var bytesReceived = 0
    var siftingBits = 0
    var detections = 0
    var slots: UInt64 = 0
    var keyBits = 0
    var testBits = 0
    var testErrors = 0
    var qberBound = 0.0
    var corrected = 0
    var leakEC = 0
    var leakVerification = 0
    var steps = 0
    var finalBits = 0

    func summary(roundTrips: Int) -> RoundSummary {
        let p = slots == 0 ? 0 : Double(detections) / Double(slots)
        let bound = p <= 0 ? 0 : FiniteKey.binaryEntropy(p) / p + 1
        var f: Double? = nil
        if corrected > 0, keyBits > 0 {
            let h = FiniteKey.binaryEntropy(Double(corrected) / Double(keyBits))
            f = Double(leakEC) / (Double(keyBits) * h)
        }
        return RoundSummary(
            detections: detections, slots: slots, siftedKeyBits: keyBits, testBits: testBits,
            testErrors: testErrors, qberEstimate: testBits == 0 ? 0 : Double(testErrors) / Double(testBits),
            qberBound: qberBound, correctedErrors: corrected, reconciliationLeakage: leakEC,
            verificationLeakage: leakVerification, efficiency: f, cascadeSteps: steps, roundTrips: roundTrips,
            messagesSent: messagesSent, bytesSent: bytesSent, bytesReceived: bytesReceived,
            siftingBits: siftingBits, siftingBoundPerDetection: bound, finalBits: finalBits)
    }
}

/// Verification hash (Spec/postprocessing.md section 6): Poly1305 (libsodium, through
/// QKDCrypto's Wegman-Carter API with a zero pad) of the packed key under a fresh 16-byte key
/// `r`, with domain `"QKDChannel pp verify v1" || be64(round id)`. For keys that differ it
/// collides with probability at most 8 ceil(L/16) / 2^106 for L key bytes (Bernstein 2005).
enum KeyVerification {
    static let tagBits = 128

    static func tag(of key: BitVector, hashKey: [UInt8], roundID: UInt64) throws -> [UInt8] {
        let hk = try HashKey(suite: .poly1305OTP, rawRepresentation: hashKey)
        var domain = Array("QKDChannel pp verify v1".utf8)
        domain.appendBE(roundID)
        var bytes = key.packedBytes()
        defer { secureZero(&bytes) }
        let pad = try OneTimePad(rawRepresentation: [UInt8](repeating: 0, count: 16))
        let tag = WegmanCarter.authenticationTag(for: bytes, domain: domain, hashKey: hk, pad: pad)
        return tag.rawRepresentation
    }

    /// The collision probability bound for a key of `bits` bits.
    static func collisionBound(bits: Int) -> Double {
        let bytes = (bits + 7) / 8
        return 8 * Double((bytes + 15) / 16) / 0x1p106
    }
}

/// Final key bytes from the amplified bits (the length is a multiple of 8).
func finalKeyBytes(_ bits: BitVector) -> SecretBytes {
    var bytes = bits.packedBytes()
    defer { secureZero(&bytes) }
    return SecretBytes(copying: bytes)
}
