import QKDCrypto
import QKDPostProcessing

/// FuzzPostProcessingMessages. Input: one selector byte, then the message.
/// - selector < 0x80: the message is `version 1 || type (selector & 0x0f) || rest`, so every
///   type decoder (1...8) and a few unknown types are reached from the first byte;
/// - selector >= 0x80: the rest is the whole message, version and type included.
///
/// Invariants (Spec/postprocessing.md section 2):
/// - decoding never crashes; every error is a typed peer-misbehaviour ``QKDError``;
/// - an accepted message re-encodes (same round id) to exactly the input bytes for every type
///   but the detection report: the codec is canonical (bitmaps with zero padding, no trailing
///   bytes, exact field sizes);
/// - a detection report carries a sender-chosen Rice parameter and stream length, so its
///   encoding is not unique: the re-encoding must decode to an equal message, and encoding is
///   idempotent (re-encoding that decodes to the same bytes again);
/// - ``PostProcessingMessage/encodedByteCount`` equals the re-encoding's length;
/// - Alice's round answers a type-1 message given as bytes (``AliceRound/receive(bytes:)``,
///   which decodes and sifts a detection report in one pass) exactly as it answers the decoded
///   message (``AliceRound/receive(_:)``): the same response bytes, or the same error.
enum PostProcessingMessagesCheck {
    static func run(_ bytes: [UInt8]) throws(FuzzInvariantViolation) -> FuzzCheck.Outcome {
        var input = FuzzInput(bytes)
        let selector = input.byte()
        let message: [UInt8]
        if selector < 0x80 {
            message = [PostProcessingLimits.version, selector & 0x0f] + input.rest()
        } else {
            message = input.rest()
        }
        if message.count > 1, message[1] == 1 { try aliceAnswersBytesAsMessage(message) }
        let decoded: (roundID: UInt64, message: PostProcessingMessage)
        do {
            decoded = try PostProcessingMessage.decode(message)
        } catch let error as QKDError {
            guard error.code.isPeerMisbehaviour else {
                throw FuzzInvariantViolation("decoding failed with a non-peer error \(error)")
            }
            return .rejected(error)
        } catch {
            throw FuzzInvariantViolation("decoding threw an untyped error \(error)")
        }
        let reencoded = decoded.message.encoded(roundID: decoded.roundID)
        guard decoded.message.encodedByteCount == reencoded.count else {
            throw FuzzInvariantViolation("encodedByteCount \(decoded.message.encodedByteCount) differs from the encoding's \(reencoded.count) bytes (type \(decoded.message.typeByte))")
        }
        if case .detections = decoded.message {
            let again: (roundID: UInt64, message: PostProcessingMessage)
            do {
                again = try PostProcessingMessage.decode(reencoded)
            } catch {
                throw FuzzInvariantViolation("the re-encoded detection report does not decode: \(error)")
            }
            guard again.roundID == decoded.roundID, again.message == decoded.message else {
                throw FuzzInvariantViolation("the re-encoded detection report decodes to a different message")
            }
            guard again.message.encoded(roundID: again.roundID) == reencoded else {
                throw FuzzInvariantViolation("re-encoding a detection report is not idempotent")
            }
        } else {
            guard reencoded == message else {
                throw FuzzInvariantViolation("type \(decoded.message.typeByte) re-encodes to different bytes (\(reencoded.count) vs \(message.count)): the codec is not canonical")
            }
        }
        return .accepted
    }

    /// Alice's round, for the round and slot count the message names (at most 2^16 slots;
    /// otherwise 64, which she refuses as inconsistent on both paths), given `message` as bytes
    /// and as a decoded message.
    static func aliceAnswersBytesAsMessage(_ message: [UInt8]) throws(FuzzInvariantViolation) {
        func field(_ at: Int) -> UInt64 {
            guard message.count >= at + 8 else { return 0 }
            return message[at..<at + 8].reduce(0) { $0 << 8 | UInt64($1) }
        }
        let roundID = field(2), named = field(10)
        let slots = named <= 1 << 16 ? Int(named) : 64
        func outcome(bytes: Bool) -> String {
            let bits = BitVector(words: (0..<((slots + 63) >> 6)).map { UInt64($0) &* 0x9e37_79b9_7f4a_7c15 }, count: slots)
            let bases = BitVector(words: (0..<((slots + 63) >> 6)).map { UInt64($0) &* 0xc2b2_ae3d_27d4_eb4f }, count: slots)
            var alice = AliceRound(roundID: roundID, configuration: .init(), bits: bits, bases: bases,
                                   random: DeterministicRandomSource(seed: 9))
            do {
                if bytes {
                    try alice.receive(bytes: message)
                } else {
                    try alice.receive(try PostProcessingMessage.decode(message).message)
                }
            } catch let error as QKDError {
                return "\(error.code)"
            } catch {
                return "untyped \(error)"
            }
            guard case .send(let m) = alice.nextAction() else { return "no response" }
            return "\(m.encoded(roundID: roundID))"
        }
        let fused = outcome(bytes: true), general = outcome(bytes: false)
        guard fused == general else {
            throw FuzzInvariantViolation("Alice answers the detection report's bytes with \(fused.prefix(80)) but the decoded message with \(general.prefix(80))")
        }
    }

    /// Valid messages of every type, encoded with the real encoder (selector 0x80: whole message).
    static func seeds() -> [(name: String, bytes: [UInt8])] {
        func bits(_ count: Int, _ pattern: UInt64) -> BitVector {
            BitVector(words: [UInt64](repeating: pattern, count: (count + 63) >> 6), count: count)
        }
        let positions: [UInt64] = [3, 17, 18, 40, 41, 99, 250, 251, 900, 1023]
        let messages: [(String, PostProcessingMessage)] = [
            ("detections", .detections(DetectionReport(slotCount: 1024, positions: positions, bases: bits(positions.count, 0x2b5)))),
            ("detections-empty", .detections(DetectionReport(slotCount: 0, positions: [], bases: BitVector(count: 0)))),
            ("detections-dense", .detections(DetectionReport(slotCount: 8, positions: Array(0..<8), bases: bits(8, 0x5a)))),
            ("sift-response", .siftResponse(SiftResponse(matches: bits(10, 0x3a7), testBits: bits(3, 0x5), cascadeSeed: Array(0..<32)))),
            ("estimation", .estimation(testErrors: 7)),
            ("cascade-parities", .cascadeParities(CascadeBits(step: 0, bits: bits(70, 0x0123_4567_89ab_cdef)))),
            ("cascade-replies", .cascadeReplies(CascadeBits(step: 3, bits: bits(5, 0x15)))),
            ("verification", .verification(VerificationRequest(hashKey: Array(repeating: 0x11, count: 16), tag: Array(repeating: 0x22, count: 16), finalLength: 4096, multiplier: bits(4999, 0x3333_3333_3333_3333), addend: bits(4999, 0x5555_5555_5555_5555)))),
            ("verification-result", .verificationResult(matched: true)),
            ("abort", .abort(.verificationFailed)),
        ]
        return messages.map { name, message in (name, [0x80] + message.encoded(roundID: 0x0102_0304_0506_0708)) }
    }
}
