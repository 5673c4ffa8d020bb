#if canImport(FoundationEssentials)
public import FoundationEssentials  // ContiguousBytes
#else
public import Foundation
#endif
import QKDCrypto

/// Why a round stopped without a key (Spec/postprocessing.md section 3.3). Sent on the wire in
/// an ``PostProcessingMessage/abort(_:)`` message as one byte.
public enum AbortCode: UInt8, Sendable, Hashable, CaseIterable {
    /// The estimated QBER (from the disclosed X-basis test bits) is above the configured threshold.
    case qberAboveThreshold = 1
    /// The finite-key bound leaves no secret bits (too few bits, too much leakage).
    case noSecretKey = 2
    /// The verification hash of the corrected key did not match: the key is discarded.
    case verificationFailed = 3
    /// Too few sifted bits to run the round (no key bits or no test bits).
    case tooFewBits = 4
}

/// A detection report from Bob: which slots clicked and in which basis (section 2.3).
public struct DetectionReport: Sendable, Equatable {
    /// Total slots (pulses) in the round; every position is below it.
    public var slotCount: UInt64 { didSet { rice = nil } }
    /// Detected slot indices, strictly increasing.
    public var positions: [UInt64] { didSet { rice = nil } }
    /// Bob's basis per detection: 1 = X, 0 = Z.
    public var bases: BitVector
    /// The Rice code of `positions` with the parameter of section 2.3, made once by the public
    /// initializer so that the message's size (``PostProcessingMessage/encodedByteCount``) and
    /// its encoding cost one pass over the positions, not two. Nil for a decoded report (Alice
    /// never re-encodes it) and after a change of the positions or slot count; the encoder then
    /// codes the positions afresh. Derived from the other fields, so not part of equality.
    var rice: RiceCode?

    /// A Rice-coded position stream.
    struct RiceCode: Sendable {
        var parameter: Int
        var words: [UInt64]
        var bits: Int
    }

    /// Creates a report.
    /// - Parameters:
    ///   - slotCount: total slots.
    ///   - positions: strictly increasing slots below `slotCount`.
    ///   - bases: one bit per position.
    public init(slotCount: UInt64, positions: [UInt64], bases: BitVector) {
        self.init(slotCount: slotCount, positions: positions, bases: bases, coded: true)
    }

    /// Creates a report, with or without coding the positions now (a decoder passes false).
    init(slotCount: UInt64, positions: [UInt64], bases: BitVector, coded: Bool) {
        precondition(positions.count == bases.count, "one basis bit per detection")
        self.slotCount = slotCount
        self.positions = positions
        self.bases = bases
        if coded { rice = Self.codeIfValid(positions: positions, slotCount: slotCount) }
    }

    /// The Rice code of `positions` with the parameter of section 2.3 (the encoder traps on
    /// positions that are not strictly increasing).
    static func code(positions: [UInt64], slotCount: UInt64) -> RiceCode {
        let r = GolombRice.parameter(count: positions.count, slots: slotCount)
        let (words, bits) = positions.withUnsafeBufferPointer { GolombRice.encodeWords($0, parameter: r) }
        return RiceCode(parameter: r, words: words, bits: bits)
    }

    /// ``code(positions:slotCount:)``, or nil for positions that cannot be coded (the report is
    /// still created; encoding it traps, as it always did).
    static func codeIfValid(positions: [UInt64], slotCount: UInt64) -> RiceCode? {
        let r = GolombRice.parameter(count: positions.count, slots: slotCount)
        guard let (words, bits) = positions.withUnsafeBufferPointer({ GolombRice.encodeWordsIfValid($0, parameter: r) }) else {
            return nil
        }
        return RiceCode(parameter: r, words: words, bits: bits)
    }

    /// The Rice parameter the encoder picks for `count` detections in `slotCount` slots
    /// (section 2.3).
    /// - Parameters:
    ///   - count: detections D.
    ///   - slotCount: slots N.
    /// - Returns: floor(log2(ln 2 N / D)), 0 below 1.
    public static func riceParameter(count: Int, slotCount: UInt64) -> Int {
        GolombRice.parameter(count: count, slots: slotCount)
    }

    /// Runs `body` with Rice parameter 0 (dense detections) coded a code at a time, as every
    /// other parameter is, instead of a word at a time: the same bytes and outcomes, the slower
    /// kernel. The same-run baseline of `qkd-node bench sift`; the switch is process-wide, so
    /// nothing else should code detection reports meanwhile.
    /// - Parameter body: the work to measure.
    /// - Returns: what `body` returns.
    /// - Throws: what `body` throws.
    public static func withCodeAtATimeRiceKernel<T>(_ body: () throws -> T) rethrows -> T {
        try GolombRice.withCodeAtATimeKernel(body)
    }

    /// Equal slot counts, positions and bases.
    public static func == (a: DetectionReport, b: DetectionReport) -> Bool {
        a.slotCount == b.slotCount && a.positions == b.positions && a.bases == b.bases
    }
}

/// A detection report as it arrives (section 2.3), its positions still Rice-coded: what Alice's
/// round sifts from in one pass (``PostProcessingMessage/codedDetections(_:)``).
struct CodedDetectionReport {
    /// The fields before Bob's bases.
    struct Head {
        var slotCount: UInt64
        var count: Int
        var parameter: Int
        var stream: BitVector
    }
    var head: Head
    /// Bob's basis per detection.
    var bases: BitVector
}

/// Alice's answer to the detection report (section 2.4).
public struct SiftResponse: Sendable, Equatable {
    /// One bit per detection: 1 if Alice's basis equals Bob's.
    public var matches: BitVector
    /// Alice's bits at the matched X-basis detections, in detection order: the test set.
    public var testBits: BitVector
    /// Seed from which both sides derive the Cascade permutations.
    public var cascadeSeed: [UInt8]

    /// Creates a response.
    /// - Parameters:
    ///   - matches: the match bitmap.
    ///   - testBits: Alice's disclosed test bits.
    ///   - cascadeSeed: 32 bytes.
    public init(matches: BitVector, testBits: BitVector, cascadeSeed: [UInt8]) {
        precondition(cascadeSeed.count == PostProcessingLimits.seedByteCount)
        self.matches = matches
        self.testBits = testBits
        self.cascadeSeed = cascadeSeed
    }
}

/// One Cascade message: a bitmap answering the previous step (section 2.5).
public struct CascadeBits: Sendable, Equatable {
    /// The step number, counted from 0 per direction; both sides know the expected value.
    public var step: UInt32
    /// Parities (Alice to Bob) or replies (Bob to Alice), one per query of this step.
    public var bits: BitVector

    /// Creates a message.
    /// - Parameters:
    ///   - step: the step.
    ///   - bits: the bitmap.
    public init(step: UInt32, bits: BitVector) {
        self.step = step
        self.bits = bits
    }
}

/// Alice's verification hash and privacy-amplification parameters (section 2.7).
public struct VerificationRequest: Sendable, Equatable {
    /// Fresh Poly1305 key `r` for the verification hash.
    public var hashKey: [UInt8]
    /// Poly1305 of Alice's corrected key under `hashKey` (no pad).
    public var tag: [UInt8]
    /// The final key length Alice computed; Bob must compute the same.
    public var finalLength: UInt64
    /// The multiply-add-shift multiplier a: W = n + ℓ - 1 true random bits (section 7).
    public var multiplier: BitVector
    /// The multiply-add-shift addend b: W true random bits (section 7).
    public var addend: BitVector

    /// Creates a request.
    /// - Parameters:
    ///   - hashKey: 16 bytes.
    ///   - tag: 16 bytes.
    ///   - finalLength: bits.
    ///   - multiplier: a, at most ``PostProcessingLimits/maxAmplificationSeedBits`` bits.
    ///   - addend: b, as many bits as `multiplier`.
    public init(hashKey: [UInt8], tag: [UInt8], finalLength: UInt64, multiplier: BitVector, addend: BitVector) {
        precondition(hashKey.count == 16 && tag.count == 16)
        precondition(multiplier.count == addend.count && multiplier.count <= PostProcessingLimits.maxAmplificationSeedBits)
        self.hashKey = hashKey
        self.tag = tag
        self.finalLength = finalLength
        self.multiplier = multiplier
        self.addend = addend
    }
}

/// A post-processing message (Spec/postprocessing.md section 2). Every message starts with
/// `version (u8) || type (u8) || round id (u64)`; integers are big-endian.
public enum PostProcessingMessage: Sendable, Equatable {
    /// Bob to Alice, type 1.
    case detections(DetectionReport)
    /// Alice to Bob, type 2.
    case siftResponse(SiftResponse)
    /// Bob to Alice, type 3: errors Bob counted on the test set.
    case estimation(testErrors: UInt32)
    /// Alice to Bob, type 4: parities for the current Cascade step.
    case cascadeParities(CascadeBits)
    /// Bob to Alice, type 5: replies for the current Cascade step.
    case cascadeReplies(CascadeBits)
    /// Alice to Bob, type 6.
    case verification(VerificationRequest)
    /// Bob to Alice, type 7: whether the verification hash matched.
    case verificationResult(matched: Bool)
    /// Either direction, type 8: the sender stops the round.
    case abort(AbortCode)

    /// The type byte (section 2.1).
    public var typeByte: UInt8 {
        switch self {
        case .detections: 1
        case .siftResponse: 2
        case .estimation: 3
        case .cascadeParities: 4
        case .cascadeReplies: 5
        case .verification: 6
        case .verificationResult: 7
        case .abort: 8
        }
    }

    /// Appends the encoding of the message for round `roundID` to `out`.
    /// - Parameters:
    ///   - out: the buffer to append to.
    ///   - roundID: the round.
    public func encode(into out: inout [UInt8], roundID: UInt64) {
        out.append(PostProcessingLimits.version)
        out.append(typeByte)
        out.appendBE(roundID)
        switch self {
        case .detections(let d):
            out.appendBE(d.slotCount)
            out.appendBE(UInt32(d.positions.count))
            let rice = d.rice ?? DetectionReport.code(positions: d.positions, slotCount: d.slotCount)
            out.reserveCapacity(out.count + 21 + (rice.bits + 7) / 8 + (d.bases.count + 7) / 8)
            out.append(UInt8(rice.parameter))
            out.appendBE(UInt64(rice.bits))
            appendBitmap(words: rice.words, count: rice.bits, to: &out)
            d.bases.appendBitmap(to: &out)
        case .siftResponse(let s):
            out.appendBE(UInt32(s.matches.count))
            s.matches.appendBitmap(to: &out)
            out.appendBE(UInt32(s.testBits.count))
            s.testBits.appendBitmap(to: &out)
            out.append(contentsOf: s.cascadeSeed)
        case .estimation(let e):
            out.appendBE(e)
        case .cascadeParities(let c), .cascadeReplies(let c):
            out.appendBE(c.step)
            out.appendBE(UInt32(c.bits.count))
            c.bits.appendBitmap(to: &out)
        case .verification(let v):
            out.append(contentsOf: v.hashKey)
            out.append(contentsOf: v.tag)
            out.appendBE(v.finalLength)
            out.appendBE(UInt32(v.multiplier.count))
            v.multiplier.appendBitmap(to: &out)
            v.addend.appendBitmap(to: &out)
        case .verificationResult(let m):
            out.append(m ? 1 : 0)
        case .abort(let code):
            out.append(code.rawValue)
        }
    }

    /// The encoding as a new array.
    /// - Parameter roundID: the round.
    /// - Returns: the bytes.
    public func encoded(roundID: UInt64) -> [UInt8] {
        var out = [UInt8]()
        encode(into: &out, roundID: roundID)
        return out
    }

    /// Decodes one whole message.
    /// - Parameter bytes: exactly one message.
    /// - Throws: ``QKDError/Code/ppUnknownType`` for an unknown version or type,
    ///   ``QKDError/Code/ppMalformed`` for anything else wrong.
    public init(decoding bytes: some ContiguousBytes) throws {
        self = try Self.decode(bytes).message
    }

    /// Decodes one whole message and returns it with its round id.
    /// - Parameter bytes: exactly one message.
    /// - Returns: the round id and the message.
    /// - Throws: as ``init(decoding:)``.
    public static func decode(_ bytes: some ContiguousBytes) throws -> (roundID: UInt64, message: PostProcessingMessage) {
        try bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw, context: "post-processing message")
            let version = try r.u8("version")
            guard version == PostProcessingLimits.version else {
                throw QKDError(.ppUnknownType, "post-processing message version \(version) is not supported (this node speaks version \(PostProcessingLimits.version)); upgrade the older node")
            }
            let type = try r.u8("type")
            let roundID = try r.u64("round id")
            let message: PostProcessingMessage
            switch type {
            case 1:
                let head = try readDetectionHead(&r)
                let positions = try GolombRice.decode(head.stream, count: head.count, parameter: head.parameter, slotCount: head.slotCount)
                let bases = try r.bitmap(count: head.count, "bases")
                message = .detections(DetectionReport(slotCount: head.slotCount, positions: positions, bases: bases, coded: false))
            case 2:
                let m = try r.count("match count", limit: PostProcessingLimits.maxDetections)
                let matches = try r.bitmap(count: m, "match bitmap")
                let t = try r.count("test bit count", limit: PostProcessingLimits.maxDetections)
                let tests = try r.bitmap(count: t, "test bits")
                let seed = try r.bytes(PostProcessingLimits.seedByteCount, "Cascade seed")
                message = .siftResponse(SiftResponse(matches: matches, testBits: tests, cascadeSeed: seed))
            case 3:
                message = .estimation(testErrors: try r.u32("test errors"))
            case 4, 5:
                let step = try r.u32("step")
                let n = try r.count("bit count", limit: PostProcessingLimits.maxCascadeBits)
                let bits = try r.bitmap(count: n, "Cascade bits")
                let c = CascadeBits(step: step, bits: bits)
                message = type == 4 ? .cascadeParities(c) : .cascadeReplies(c)
            case 6:
                let key = try r.bytes(16, "hash key")
                let tag = try r.bytes(16, "hash tag")
                let length = try r.u64("final length")
                let w = try r.count("amplification seed bit count", limit: PostProcessingLimits.maxAmplificationSeedBits)
                guard 2 * ((w + 7) >> 3) <= r.remaining else {
                    throw QKDError(.ppMalformed, "verification: two \(w)-bit amplification seeds do not fit in the \(r.remaining) bytes left")
                }
                let a = try r.bitmap(count: w, "amplification multiplier")
                let b = try r.bitmap(count: w, "amplification addend")
                message = .verification(VerificationRequest(hashKey: key, tag: tag, finalLength: length, multiplier: a, addend: b))
            case 7:
                let v = try r.u8("result")
                guard v <= 1 else { throw QKDError(.ppMalformed, "verification result byte \(v) is neither 0 nor 1") }
                message = .verificationResult(matched: v == 1)
            case 8:
                let v = try r.u8("abort code")
                guard let code = AbortCode(rawValue: v) else {
                    throw QKDError(.ppMalformed, "abort code \(v) is unknown (Spec/postprocessing.md section 3.3)")
                }
                message = .abort(code)
            default:
                throw QKDError(.ppUnknownType, "post-processing message type \(type) is unknown (Spec/postprocessing.md section 2.1)")
            }
            try r.finish()
            return (roundID, message)
        }
    }

    /// A detection report's fields up to and including its Rice stream (section 2.3).
    private static func readDetectionHead(_ r: inout ByteReader) throws -> CodedDetectionReport.Head {
        let slotCount = try r.u64("slot count")
        guard slotCount <= PostProcessingLimits.maxSlots else {
            throw QKDError(.ppMalformed, "detection report: slot count \(slotCount) is over the limit \(PostProcessingLimits.maxSlots) (Spec/postprocessing.md section 2.2)")
        }
        let n = try r.count("detection count", limit: PostProcessingLimits.maxDetections)
        guard UInt64(n) <= slotCount else {
            throw QKDError(.ppMalformed, "detection report: \(n) detections in \(slotCount) slots")
        }
        let rice = Int(try r.u8("Rice parameter"))
        guard rice <= 62 else { throw QKDError(.ppMalformed, "detection report: Rice parameter \(rice) is over 62") }
        let streamBits = try r.u64("Rice stream length")
        guard streamBits <= UInt64(r.remaining) * 8 else {
            throw QKDError(.ppMalformed, "detection report: Rice stream of \(streamBits) bits is longer than the message")
        }
        let stream = try r.bitmap(count: Int(streamBits), "Rice stream")
        return .init(slotCount: slotCount, count: n, parameter: rice, stream: stream)
    }

    /// A detection report with its positions still coded, or nil unless `bytes` is one whole
    /// detection report whose every field outside the stream is well formed and whose stream
    /// passes the checks made before decoding (``GolombRice/checkArguments(streamBits:count:parameter:slotCount:)``).
    /// Whether the stream decodes is left to the caller: Alice's round sifts from it directly,
    /// and on any failure decodes `bytes` with ``decode(_:)``, which reports what is wrong.
    /// - Parameter bytes: one encoded message.
    /// - Returns: the round id and the report.
    static func codedDetections(_ bytes: [UInt8]) -> (roundID: UInt64, report: CodedDetectionReport)? {
        try? bytes.withUnsafeBytes { raw -> (roundID: UInt64, report: CodedDetectionReport)? in
            var r = ByteReader(raw, context: "post-processing message")
            guard try r.u8("version") == PostProcessingLimits.version, try r.u8("type") == 1 else { return nil }
            let roundID = try r.u64("round id")
            let head = try readDetectionHead(&r)
            try GolombRice.checkArguments(streamBits: head.stream.count, count: head.count, parameter: head.parameter,
                                          slotCount: head.slotCount)
            let bases = try r.bitmap(count: head.count, "bases")
            try r.finish()
            return (roundID, CodedDetectionReport(head: head, bases: bases))
        }
    }

    /// The encoded size in bytes, computed without encoding (used for the byte counts of the
    /// round summary).
    public var encodedByteCount: Int {
        let header = 10
        switch self {
        case .detections(let d):
            let bits = d.rice?.bits ?? d.positions.withUnsafeBufferPointer {
                GolombRice.streamBits($0, parameter: GolombRice.parameter(count: d.positions.count, slots: d.slotCount))
            }
            return header + 8 + 4 + 1 + 8 + (bits + 7) / 8 + (d.bases.count + 7) / 8
        case .siftResponse(let s):
            return header + 4 + (s.matches.count + 7) / 8 + 4 + (s.testBits.count + 7) / 8 + 32
        case .estimation: return header + 4
        case .cascadeParities(let c), .cascadeReplies(let c): return header + 8 + (c.bits.count + 7) / 8
        case .verification(let v): return header + 16 + 16 + 8 + 4 + 2 * ((v.multiplier.count + 7) / 8)
        case .verificationResult, .abort: return header + 1
        }
    }
}
