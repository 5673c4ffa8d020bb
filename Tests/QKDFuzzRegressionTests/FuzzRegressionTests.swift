import Foundation
import Testing
@testable import QKDFuzzChecks
import QKDSession
import QKDCrypto
import QKDTestSupport

/// Replays every pinned fuzz input (`Fuzz/FailCases/<Target>/`) and every seed
/// (`Fuzz/Corpus/<Target>/`) through the same per-input logic the libFuzzer target runs, here
/// without sanitizers. Each must end as accepted or rejected with a typed error; an invariant
/// violation or a crash fails the test run (nio-ssh's FuzzResultTests: "must only not crash").
@Suite struct FuzzRegressionTests {
    struct Pinned: CustomTestStringConvertible, Sendable {
        let check: FuzzCheck
        let path: String
        var testDescription: String { "\(check.rawValue)/\(URL(fileURLWithPath: path).lastPathComponent)" }
    }

    static func inputs(in folder: String) -> [Pinned] {
        FuzzCheck.allCases.flatMap { check -> [Pinned] in
            let dir = PackagePaths.root.appendingPathComponent("Fuzz/\(folder)/\(check.rawValue)")
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            return names.filter { !$0.hasPrefix(".") && !$0.hasSuffix(".md") }.sorted()
                .map { Pinned(check: check, path: dir.appendingPathComponent($0).path) }
        }
    }

    static let failCases = inputs(in: "FailCases")
    static let corpus = inputs(in: "Corpus")

    @Test func everyTargetHasAFolder() {
        for check in FuzzCheck.allCases {
            let dir = PackagePaths.root.appendingPathComponent("Fuzz/Corpus/\(check.rawValue)")
            #expect(FileManager.default.fileExists(atPath: dir.path), "missing seed corpus for \(check.rawValue)")
        }
    }

    @Test(arguments: failCases)
    func pinnedCrashInputsNowPass(_ pinned: Pinned) async throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: pinned.path)))
        await #expect(throws: Never.self) { _ = try await offPool { try pinned.check.run(bytes) } }
    }

    @Test(arguments: corpus)
    func seedCorpusPasses(_ pinned: Pinned) async throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: pinned.path)))
        await #expect(throws: Never.self) { _ = try await offPool { try pinned.check.run(bytes) } }
    }

    /// Seeds made with the real encoders and writers (``FuzzCheck/generatedSeeds()``) must be
    /// accepted, not merely survive: a seed the check rejects would start the fuzzer off the
    /// accepting path. With `QKD_WRITE_FUZZ_SEEDS=1` the test (re)writes them into
    /// `Fuzz/Corpus/<Target>/seed-<name>`, which is how the committed seeds were made.
    @Test(arguments: FuzzCheck.allCases)
    func generatedSeedsAreAccepted(_ check: FuzzCheck) async throws {
        guard let seeds = try check.generatedSeeds() else { return }
        #expect(!seeds.isEmpty)
        let write = ProcessInfo.processInfo.environment["QKD_WRITE_FUZZ_SEEDS"] == "1"
        let dir = PackagePaths.root.appendingPathComponent("Fuzz/Corpus/\(check.rawValue)")
        for seed in seeds {
            let outcome = try await offPool { try check.run(seed.bytes) }
            #expect(outcome == .accepted, "seed \(seed.name) of \(check.rawValue) ended as \(outcome)")
            if write {
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                try Data(seed.bytes).write(to: dir.appendingPathComponent("seed-\(seed.name)"))
            }
        }
    }

    /// Each seed of the new targets, cut short by 30 bytes, ends as a typed rejection, not as
    /// acceptance (30 bytes breaks a PEM END line, which one byte would not): the checks can tell malformed input from valid input.
    @Test(arguments: [FuzzCheck.postProcessingMessages, .pskFile, .certificateChain])
    func corruptedSeedsAreRejected(_ check: FuzzCheck) async throws {
        let seeds = try #require(try check.generatedSeeds())
        for seed in seeds {
            let truncated = Array(seed.bytes.dropLast(30))
            guard case .rejected = try await offPool({ try check.run(truncated) }) else {
                Issue.record("truncated seed \(seed.name) of \(check.rawValue) was accepted")
                continue
            }
        }
    }

    /// The MAC crash the fuzzer found: an all-zero key made every message verify. It must now be
    /// refused with a typed error.
    @Test func zeroHashKeyIsRejectedWithATypedError() async throws {
        let path = PackagePaths.root.appendingPathComponent("Fuzz/FailCases/FuzzMAC/zero-hash-key").path
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let outcome = try await offPool { try FuzzCheck.mac.run(bytes) }
        guard case .rejected(let error) = outcome else {
            Issue.record("expected a typed rejection, got \(outcome)")
            return
        }
        #expect(error.code.identifier == "crypto.weak-hash-key")
    }
}

/// The session targets check something: honest seeds reach the established channel and deliver
/// the honest payloads, and tampering ends as a typed rejection with no key consumed (the
/// checks inside ``FuzzCheck/run(_:)`` assert the slot accounting on every input).
@Suite struct SessionFuzzTargetTests {
    static let modes: [HandshakeMode] = [.pool, .pskKDF]

    @Test(arguments: modes)
    func honestResponderSeedEstablishesAndDelivers(_ mode: HandshakeMode) async throws {
        let stream = try #require(SessionFixture.responderRuns[mode]).aliceFrames.joined()
        let (result, outcome) = try await offPool { try HandshakeCheck.feed(Array(stream), role: .responder, variation: 0, chunkSeed: 1, clock: 0) }
        #expect(outcome == .accepted)
        #expect(result.established && result.delivered == SessionFixture.honestPayloads.count)
    }

    @Test(arguments: modes)
    func honestInitiatorSeedEstablishesAndDelivers(_ mode: HandshakeMode) async throws {
        let variation: UInt8 = mode == .pool ? 0 : 1
        let stream = try #require(SessionFixture.initiatorRuns[mode]).bobFrames.joined()
        let (result, outcome) = try await offPool { try HandshakeCheck.feed(Array(stream), role: .initiator, variation: variation, chunkSeed: 7, clock: 0) }
        #expect(outcome == .accepted)
        #expect(result.established && result.delivered == SessionFixture.honestPayloads.count)
    }

    /// One flipped bit in Alice's Finished tag: Bob refuses with a typed error, delivers
    /// nothing, and (checked inside) consumes no inbound slot and hands out none.
    @Test(arguments: modes)
    func tamperedFinishedIsRejectedWithoutKeyCost(_ mode: HandshakeMode) async throws {
        let frames = try #require(SessionFixture.responderRuns[mode]).aliceFrames
        var finished = frames[1]
        finished[finished.count - 1] ^= 0x01
        let stream = frames[0] + finished + frames[2...].joined()
        let (result, outcome) = try await offPool { try HandshakeCheck.feed(stream, role: .responder, variation: 0, chunkSeed: 0, clock: 0) }
        #expect(outcome == .rejected(QKDError(.sessionAuthenticationFailed)))
        #expect(!result.established && result.delivered == 0)
    }

    /// A ClientHello naming another link is refused before any key is touched; a hello that
    /// never finishes times out past the 10 s deadline and not before.
    @Test func rejectedHelloAndTimeout() async throws {
        var hello = try #require(SessionFixture.responderRuns[.pool]).aliceFrames[0]
        let linkOffset = try #require(hello.firstRange(of: SessionFixture.linkID)).lowerBound
        hello[linkOffset] ^= 0xff
        let otherLink = hello
        let (_, refused) = try await offPool { try HandshakeCheck.feed(otherLink, role: .responder, variation: 0, chunkSeed: 0, clock: 0) }
        #expect(refused == .rejected(QKDError(.sessionUnknownLink)))
        let genuine = try #require(SessionFixture.responderRuns[.pool]).aliceFrames[0]
        let (_, waiting) = try await offPool { try HandshakeCheck.feed(genuine, role: .responder, variation: 0, chunkSeed: 0, clock: 99) }
        #expect(waiting == .accepted)
        let (_, late) = try await offPool { try HandshakeCheck.feed(genuine, role: .responder, variation: 0, chunkSeed: 0, clock: 100) }
        #expect(late == .rejected(QKDError(.sessionTimeout)))
    }

    /// The pair: a dropped frame in the established channel is reported (the probe after it
    /// is dropped as a gap), so the run ends rejected, not silently "fine".
    @Test func droppedFrameIsReportedNotSilent() async throws {
        let settle: [UInt8] = [15, 0]
        let program: [UInt8] = [0, 0, 7, 40] + settle + [10, 0, 3, 1, 2, 3, 2, 0] + settle
        let outcome = try await offPool { try FuzzCheck.sessionPair.run(program) }
        guard case .rejected = outcome else {
            Issue.record("a dropped frame went unnoticed: \(outcome)")
            return
        }
    }
}

/// Runs a check on a thread of its own and awaits it. PKI-mode sessions pause for certificate
/// validation (`SessionAction.validatePeer`), which the synchronous checks answer by blocking
/// on a `Task` (`SessionProbe.validate`, as the libFuzzer callback on the main thread may);
/// blocking one of Swift Testing's cooperative threads instead could starve the pool.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
        }
        thread.stackSize = 16 << 20
        thread.start()
    }
}

/// The round target checks something: honest rounds finish on both sides with equal keys, and
/// the pinned adversaries (`Fuzz/Corpus/FuzzPostProcessingRound/pinned-*`) reach the Cascade
/// engine with messages that pass the codec, and end without a key.
@Suite struct PostProcessingRoundFuzzTargetTests {
    static func pinned(_ name: String) throws -> [UInt8] {
        let path = PackagePaths.root.appendingPathComponent("Fuzz/Corpus/FuzzPostProcessingRound/\(name)").path
        return try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Every link setting and schedule, no mutation: both finish, equal keys, and Cascade ran
    /// (the check itself throws if an honest round does not finish with equal keys).
    @Test(arguments: (0..<32).map { UInt8($0) })
    func honestRoundsFinishWithEqualKeys(_ h0: UInt8) async throws {
        let (outcome, pair) = try await offPool { try PostProcessingRoundCheck.runPair([h0, h0 >> 2]) }
        #expect(outcome == .accepted)
        #expect(pair.finished == [true, true] && pair.errors == [nil, nil])
        #expect(pair.sent[0] > 10, "Alice sent \(pair.sent[0]) messages: Cascade took a few steps at least")
    }

    /// One flipped bit in the bitmap of Alice's Cascade parities of step 3, re-encoded: it
    /// passes the codec, Bob's engine answers it (he sends more replies after it), and the round
    /// ends without a key on both sides.
    @Test func flippedParityReachesTheEngine() async throws {
        let bytes = try Self.pinned("pinned-alice-parity-bit-flipped")
        let (outcome, pair) = try await offPool { try PostProcessingRoundCheck.runPair(bytes) }
        guard case .rejected = outcome else { Issue.record("a changed parity bitmap ended as \(outcome)"); return }
        #expect(pair.sent[1] > 2 + 4, "Bob answered the changed parities (he sent \(pair.sent[1]) messages)")
        #expect(pair.finished != [true, true])
    }

    /// The round target's first find: Alice's verification request with a zero hash key made
    /// Bob throw `crypto.weak-hash-key` (not peer misbehaviour); now `pp.malformed`. The input
    /// overwrites the hash key of Alice's message 56 (her verification request; 61 before the
    /// session-7 permutation changed the number of Cascade steps).
    @Test func zeroVerificationKeyIsMalformed() async throws {
        let path = PackagePaths.root.appendingPathComponent("Fuzz/FailCases/FuzzPostProcessingRound/zero-verification-key").path
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let (outcome, pair) = try await offPool { try PostProcessingRoundCheck.runPair(bytes) }
        guard case .rejected(let error) = outcome else { Issue.record("the zero key ended as \(outcome)"); return }
        #expect(error.code.identifier == "pp.malformed")
        #expect(pair.errors[1]?.code.identifier == "pp.malformed" && pair.finished == [false, false])
    }

    /// Bob's replies of step 3 one bit longer: Alice's engine refuses the count (pp.inconsistent).
    @Test func wrongLengthRepliesAreInconsistent() async throws {
        let bytes = try Self.pinned("pinned-bob-replies-wrong-length")
        let (outcome, pair) = try await offPool { try PostProcessingRoundCheck.runPair(bytes) }
        guard case .rejected(let error) = outcome else { Issue.record("wrong-length replies ended as \(outcome)"); return }
        #expect(error.code.identifier == "pp.inconsistent")
        #expect(pair.errors[0]?.code.identifier == "pp.inconsistent" && pair.finished == [false, false])
    }
}

/// Partial-drain mode (`h0` bit 5, ``PostProcessingRoundCheck``): the harness leaves actions
/// queued in a side after a delivery, as the drain budgets of the input say.
extension PostProcessingRoundFuzzTargetTests {
    static let failCase = PackagePaths.root.appendingPathComponent("Fuzz/FailCases/FuzzPostProcessingRound")

    /// No mutation, drain budgets from the input: both sides still finish with equal keys (the
    /// check throws otherwise), and each side handed out messages on a quiet wire that it had
    /// queued at an earlier delivery. The last expectation fails if the harness drains
    /// everything after each delivery.
    @Test(arguments: ["seed-partial-drain-mixed", "seed-partial-drain-zero"])
    func partialDrainHonestRoundsFinishWithEqualKeys(_ name: String) async throws {
        let bytes = try Self.pinned(name)
        let (outcome, pair) = try await offPool { try PostProcessingRoundCheck.runPair(bytes) }
        #expect(outcome == .accepted)
        #expect(pair.finished == [true, true] && pair.errors == [nil, nil])
        #expect(pair.sent[0] > 10)
        #expect(pair.heldOver[0] > 0 && pair.heldOver[1] > 0, "no message was left queued past its delivery: \(pair.heldOver)")
    }

    /// The same honest round with and without the bit and with every budget "all": the same
    /// messages, and nothing held over without the bit (full drain unchanged).
    @Test func partialDrainWithoutBudgetsIsAFullDrain() async throws {
        let (full, fullPair) = try await offPool { try PostProcessingRoundCheck.runPair([0x05, 1]) }
        let (partial, partialPair) = try await offPool { try PostProcessingRoundCheck.runPair([0x25, 1, 0]) }
        #expect(full == .accepted && partial == .accepted)
        #expect(fullPair.sent == partialPair.sent)
        #expect(fullPair.heldOver == [0, 0] && partialPair.heldOver == [0, 0])
    }

    /// `pinned-alice-parity-bit-flipped` in partial-drain mode (budgets 0 and 1 for the first 16
    /// opportunities): the changed parities still reach Bob's engine, the round ends without a
    /// key, and no side hands out anything out of order.
    @Test func partialDrainFlippedParityEndsWithoutAKey() async throws {
        let bytes = try Self.pinned("pinned-partial-drain-parity-bit-flipped")
        let (outcome, pair) = try await offPool { try PostProcessingRoundCheck.runPair(bytes) }
        guard case .rejected = outcome else { Issue.record("a changed parity bitmap ended as \(outcome)"); return }
        #expect(pair.sent[1] > 2 + 4)
        #expect(pair.finished != [true, true])
        #expect(pair.heldOver[0] + pair.heldOver[1] > 0)
    }

    /// Bob's detections delivered twice, drain budget 0: Alice queues her sift response at the
    /// first copy (an accepted detection report always queues one), the harness leaves it
    /// there, and the second copy makes her throw `pp.unexpected-message`. She must then hand
    /// out nothing (Spec/postprocessing.md section 3). Until session 6 `AliceRound` still
    /// handed out the queued response (its outbox survived the error): the fuzzer's first
    /// partial-drain finding (`Fuzz/FailCases/FuzzPostProcessingRound/queued-action-after-poison.md`).
    @Test func poisonedSideHandsOutNothingQueuedBefore() async throws {
        let url = Self.failCase.appendingPathComponent("queued-action-after-poison")
        let bytes = try [UInt8](Data(contentsOf: url))
        #expect(bytes == [0x20, 0x00, 0x01, 0x00, 0x00, 0x04])
        // Draining everything, as the harness did before partial drain, does not reach it.
        let (fullOutcome, fullPair) = try await offPool { try PostProcessingRoundCheck.runPair([0x00, 0x00, 0x00, 0x04]) }
        #expect(fullOutcome == .rejected(QKDError(.ppUnexpectedMessage)))
        #expect(fullPair.poisonedUndrained == [0, 0] && fullPair.sent[0] == 1)
        // Partial drain leaves the response queued when the second copy poisons Alice; it never
        // goes out.
        let (outcome, pair) = try await offPool { try PostProcessingRoundCheck.runPair(bytes) }
        #expect(outcome == .rejected(QKDError(.ppUnexpectedMessage)))
        #expect(pair.errors[0] == QKDError(.ppUnexpectedMessage) && pair.poisonedUndrained == [1, 0])
        #expect(pair.sent == [0, 1], "Alice's queued sift response must not go out after her error")
    }

    /// Bob's worse case of the same finding: budget 3 everywhere (each delivery drained) except
    /// 1 at Alice's verification request (her message 56, after the Cascade steps; 61 before the
    /// session-7 permutation changed the step count), which is
    /// delivered twice. Bob queues `7(1)`, the harness takes only it, and the second copy makes
    /// `receive(bytes:)` run the deferred amplification (queueing the finished round with its
    /// key) and then throw `pp.unexpected-message`. Until session 6 `BobRound` then still handed
    /// out the finished round with its key; now the error drops it (and its key is wiped).
    @Test func poisonedBobHandsOutNoFinishedRound() async throws {
        let url = Self.failCase.appendingPathComponent("bob-finished-after-poison")
        let bytes = try [UInt8](Data(contentsOf: url))
        #expect(bytes.count == 34 && bytes[0] == 0x20 && bytes.suffix(2) == [56, 0x14])
        let (outcome, pair) = try await offPool { try PostProcessingRoundCheck.runPair(bytes) }
        #expect(outcome == .rejected(QKDError(.ppUnexpectedMessage)))
        #expect(pair.errors[1] == QKDError(.ppUnexpectedMessage) && pair.poisonedUndrained == [0, 1])
        #expect(pair.finished[1] == false, "Bob's key must not go out after his error")
    }
}
