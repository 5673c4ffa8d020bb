import QKDCrypto
import QKDPostProcessing
import QKDSimulation

/// FuzzPostProcessingRound: a whole post-processing round between an honest ``AliceRound`` and
/// an honest ``BobRound`` (Spec/postprocessing.md section 3), with a misbehaving wire between
/// them whose every decision comes from the input. Unlike FuzzPostProcessingMessages, which
/// decodes single messages, this reaches the state machines and the Cascade engine
/// (`CascadeEngine.replies(to:)` / `apply(_:)` and the C step `cascade_step.c`) with messages
/// that pass the codec but carry changed bitmaps, steps and fields.
///
/// Input: 2 header bytes, then (partial-drain mode only) the drain budgets, then mutations of
/// 2 bytes plus operands.
/// - `h0`: QBER `[1, 2, 3, 5]%` (bits 0-1), link seed 1-4 (bits 2-3), the original 1993
///   schedule instead of the improved one (bit 4), partial-drain mode (bit 5; bits 6-7 unused).
///   The records come from ``BB84Link``
///   (6144 pulses, no loss, unbiased bases: about 1500 key and 1500 test bits; with the
///   configuration's ε_sec = 0.99 an honest round at 5% still keeps a final key).
/// - `h1`: Alice's `DeterministicRandomSource` seed 1-4 (bits 0-1): the Cascade seed, the
///   verification key and the amplification seed.
/// - each mutation: `target`, `op`. The target message is the `target`-th message handed to a
///   receiver counted over both directions (`op` bit 4 clear), or the `target`-th message that
///   side `op` bit 5 (0 Alice, 1 Bob) sent (bit 4 set). The operation is `op & 0x0f`:
///   0 flip bit `k` (2 operand bytes) of the encoded bytes; 1 overwrite byte `k % length`
///   (2 bytes) with a value (1 byte); 2 truncate to `k % length` bytes (2); 3 drop; 4 deliver
///   twice; 5 delay (delivered once the wire is otherwise quiet); 6 deliver first a replay of
///   the message `1 + j` (1 byte) before it from the same side; 7 decode, flip bit `k` (2) of
///   its bitmap (Cascade bits, sift matches or test bits by `k` bit 15, amplification seeds,
///   bases) and re-encode; 8 decode, replace that bitmap by input bytes, of the right length
///   (selector byte bit 7 clear) or of a length off by `(s & 0x3f) - 32` bits; 9 decode, XOR 64
///   input bits (8 bytes) into word `w` (1 byte) of the bitmap; 10 decode, add a signed delta
///   (1 byte) to the Cascade step; 11 decode, overwrite a field with input bytes (the
///   verification hash key or tag, by selector bit 0; the test error count; the Cascade
///   seed; the final length; the abort code); 12 XOR the round id with a byte; 13 inject `n`
///   (1 byte, at most 64) input bytes before it; 14 replace it with an abort (code byte);
///   15 re-encode the decoded message unchanged (the canonical codec must give the same bytes).
///   A decoding operation on a message that does not decode, or has no such field, leaves it.
///   At most 64 mutations are read.
/// - partial-drain mode (`h0` bit 5 set): one byte `n` (`n & 0x3f` counts, at most 63), then
///   `n` budget bytes holding four 2-bit budgets each, low bits first: budget `i` is
///   `(b[i / 4] >> (2 * (i % 4))) & 3`, and every budget past the last byte is "all". The
///   harness then does not take a side's actions right after each delivery: the `i`-th drain
///   opportunity takes at most budget `i` actions and leaves the rest queued in the machine. The
///   opportunities, counted together: every delivery to a side that has not thrown (the
///   receiver is drained), and, when the wire is otherwise quiet (before a delayed message
///   comes back), one drain of the first side (Alice first) whose last drain stopped at its
///   budget, taking at least one action (budget 0 with a delayed message waiting instead lets
///   that message come back first). A side that has thrown is always drained completely
///   (it must hand out nothing). So a side can receive a message, even a poisoning one, while
///   actions it queued before are still in its outbox (Spec/postprocessing.md section 3:
///   `nextAction()` is looped until nil by a driver, but nothing says when). Without the bit the
///   harness drains every side completely after each delivery, as it always did, and reads no
///   budget bytes. With the bit and no budget bytes the harness drains completely too, with
///   the ordering checks below on.
///
/// Invariants (each violation throws ``FuzzInvariantViolation``; memory errors, also in the C
/// step, are ASan's):
/// - every error a round throws is a typed ``QKDError`` whose code is peer misbehaviour
///   (`pp.malformed`, `pp.unknown-type`, `pp.unexpected-message`, `pp.round-mismatch`,
///   `pp.inconsistent`: Spec/postprocessing.md sections 2.1 and 3). Nothing else is allowed: a
///   round is driven only by the peer's bytes here, so any other code (`crypto.*`, say) would be
///   a peer-controlled input reaching a check meant for the embedding program;
/// - a thrown error poisons: the machine hands out no action after it, and its next
///   ``AliceRound/receive(bytes:)`` throws the same code;
/// - a side finishes or aborts at most once, and hands out nothing after that;
/// - a side finishes only after the peer's machine sent the message that finishes it (Alice:
///   Bob's `verificationResult(true)`; Bob: Alice's verification request), unless the wire
///   changed the content of a message it received (these machines authenticate nothing;
///   the session's round tag does, Spec/postprocessing.md section 3);
/// - when both finish and no content change touched a verification request (type 6, whose
///   amplification seed is not covered by the verification tag: section 3), their keys are equal;
/// - no Cascade message an honest machine sends has a step above
///   ``PostProcessingLimits/maxCascadeSteps`` (a peer cannot make the round run away), and the
///   whole exchange ends within a bounded number of deliveries;
/// - with no mutation at all, both sides finish with equal keys (the harness drives real
///   rounds: the seeds are such inputs, checked by the regression tests), also with any drain
///   budgets;
/// - in partial-drain mode, actions still queued when a message arrives change nothing of the
///   above: a side that throws hands out none of them (not even one queued before the error);
///   and each side's messages follow its state diagram (Spec/postprocessing.md sections 3.1 and
///   3.2), whatever it received: Alice sends 2, then 8 or Cascade parities 4 with steps
///   0, 1, 2, ... and then 6 or 8; Bob sends 1, then 3 or 8, then Cascade replies 5 with steps
///   0, 1, 2, ... and then 7 or 8; nothing after 6, 7 or 8 (so no message is duplicated or out of
///   order); Alice finishes only right after her 6 was handed out, Bob only right after his
///   7(1); and the quiet-wire drains end (each takes an action or finds the side empty; a
///   side handing out more than ``maxQuietDrains`` actions with no delivery is a runaway).
enum PostProcessingRoundCheck {
    static let roundID: UInt64 = 0x5150_726f_756e_6401
    static let pulses = 6144
    static let qbers = [0.01, 0.02, 0.03, 0.05]
    static let maxMutations = 64
    /// Deliveries after which the exchange counts as runaway: two messages per Cascade step at
    /// the step limit, plus sifting, estimation, verification and what the wire duplicates.
    static let maxDeliveries = 2 * PostProcessingLimits.maxCascadeSteps + 256
    /// Drains on a quiet wire after which the exchange counts as runaway (partial-drain mode):
    /// each one moves an action out, and a delivery queues at most three (a message, an end
    /// and the amplified key's end on the next call; Spec/postprocessing.md section 3).
    static let maxQuietDrains = 4 * maxDeliveries
    /// Partial-drain mode: `h0` bit 5.
    static let partialDrainBit: UInt8 = 0x20

    /// A loose configuration for small rounds: ε_sec close to 1 and a 20% QBER threshold, so
    /// that about 1500 key bits still leave a final key (the bound is irrelevant to a fuzzer).
    static let configuration = PostProcessingConfiguration(
        security: SecurityParameters(epsilonSecrecy: 0.99, epsilonCorrectness: 1e-15, qberThreshold: 0.2))
    static let originalConfiguration = PostProcessingConfiguration(
        security: configuration.security, reconciliation: .original)

    /// The records of one link setting (computed once per process: the simulation is the same
    /// for every input with that header). They come from ``PhotonByPhotonLink``, the simulation
    /// these inputs were pinned with: the word-at-a-time ``BB84Link`` draws the same physics from
    /// its streams in another order, which would move every pinned message to another step.
    struct Records: Sendable {
        let alice: AliceRecord
        let bob: BobRecord
    }

    static let records: [Records] = (0..<16).map { i in
        let parameters = LinkParameters(pulsesPerRound: pulses, probabilityZ: 0.5, detectorEfficiency: 1,
                                        misalignment: qbers[i & 3])
        var link = PhotonByPhotonLink(parameters: parameters, seed: UInt64(1 + i >> 2))
        let (a, b) = link.runRound()
        return Records(alice: a, bob: b)
    }

    enum Operation: UInt8 {
        case flipBit = 0, overwriteByte, truncate, drop, duplicate, delay, replay, flipBitmapBit,
             replaceBitmap, xorBitmapWord, shiftStep, overwriteField, changeRoundID, inject, replaceWithAbort,
             reencode
    }

    struct Mutation {
        var target: Int
        var sideRelative: Bool
        var side: Int
        var operation: Operation
        var operands: [UInt8]
    }

    /// One message on the wire.
    struct Message {
        var from: Int  // 0 Alice, 1 Bob
        var bytes: [UInt8]
        /// Its index among the messages `from` sent.
        var sideIndex: Int
        var mutated = false
        /// The mutations for its place in the exchange were applied (a delayed message comes
        /// back once, unchanged).
        var visited = false
    }

    static func parse(_ input: inout FuzzInput) -> [Mutation] {
        var mutations: [Mutation] = []
        while input.position < input.bytes.count && mutations.count < maxMutations {
            let target = Int(input.byte())
            let op = input.byte()
            let operation = Operation(rawValue: op & 0x0f)!
            let operandCount: Int
            switch operation {
            case .flipBit, .truncate, .flipBitmapBit: operandCount = 2
            case .overwriteByte: operandCount = 3
            case .drop, .duplicate, .delay, .reencode: operandCount = 0
            case .replay, .shiftStep, .changeRoundID, .replaceWithAbort: operandCount = 1
            case .replaceBitmap:
                let selector = input.byte()
                mutations.append(Mutation(target: target, sideRelative: op & 0x10 != 0, side: Int(op >> 5) & 1,
                                          operation: operation, operands: [selector] + input.take(64)))
                continue
            case .xorBitmapWord: operandCount = 9
            case .overwriteField:
                let selector = input.byte()
                mutations.append(Mutation(target: target, sideRelative: op & 0x10 != 0, side: Int(op >> 5) & 1,
                                          operation: operation, operands: [selector] + input.take(32)))
                continue
            case .inject:
                let n = Int(input.byte() % 65)
                mutations.append(Mutation(target: target, sideRelative: op & 0x10 != 0, side: Int(op >> 5) & 1,
                                          operation: operation, operands: input.take(n)))
                continue
            }
            var operands: [UInt8] = []
            for _ in 0..<operandCount { operands.append(input.byte()) }
            mutations.append(Mutation(target: target, sideRelative: op & 0x10 != 0, side: Int(op >> 5) & 1,
                                      operation: operation, operands: operands))
        }
        return mutations
    }

    static func run(_ bytes: [UInt8]) throws(FuzzInvariantViolation) -> FuzzCheck.Outcome {
        try runPair(bytes).outcome
    }

    /// How a pair ended, for the tests.
    struct Ending: Sendable {
        /// Per side (0 Alice): the error it threw, whether it finished with a key, messages sent.
        var errors: [QKDError?]
        var finished: [Bool]
        var sent: [Int]
        /// Per side: deliveries that reached it while the harness had left it undrained (its last
        /// drain stopped at the budget, so actions may still have been queued), and the
        /// deliveries among them that made it throw. Always 0 without partial drain.
        var receivedUndrained: [Int]
        var poisonedUndrained: [Int]
        /// Per side: messages it handed out on a quiet wire, that is, queued at an earlier
        /// delivery and left there by the budget. Always 0 without partial drain.
        var heldOver: [Int]
    }

    /// ``run(_:)`` with the pair's end state, for the tests.
    static func runPair(_ bytes: [UInt8]) throws(FuzzInvariantViolation) -> (outcome: FuzzCheck.Outcome, pair: Ending) {
        var input = FuzzInput(bytes)
        let h0 = input.byte(), h1 = input.byte()
        var budgets: [UInt8]?
        if h0 & partialDrainBit != 0 { budgets = input.take(Int(input.byte() & 0x3f)) }
        let mutations = parse(&input)
        var pair = Pair(records: records[Int(h0 & 0x0f)], original: h0 & 0x10 != 0, aliceSeed: UInt64(1 + h1 & 3),
                        mutations: mutations, budgets: budgets)
        let outcome = try pair.run()
        return (outcome, Ending(errors: pair.errors, finished: pair.keys.map { $0 != nil }, sent: pair.sent,
                                receivedUndrained: pair.receivedUndrained, poisonedUndrained: pair.poisonedUndrained,
                                heldOver: pair.heldOver))
    }

    /// Two rounds and the wire between them.
    struct Pair {
        var alice: AliceRound
        var bob: BobRound
        let mutations: [Mutation]
        var wire: [Message] = []
        var late: [Message] = []
        var history: [[Message]] = [[], []]
        var sent = [0, 0]
        var delivered = 0
        /// Per side: the error it threw, its result, whether it aborted.
        var errors: [QKDError?] = [nil, nil]
        var keys: [SecretBytes?] = [nil, nil]
        var ended = [false, false]
        /// Per side: the honest machine sent the message that lets the peer finish.
        var sentFinisher = [false, false]
        /// Per receiving side: some message it received had its content changed.
        var receivedForgery = [false, false]
        var verificationTouched = false
        /// Partial-drain mode: the budget bytes (nil: drain everything after each delivery).
        let budgets: [UInt8]?
        /// Drain opportunities so far (the index of the next budget).
        var opportunities = 0
        var quietDrains = 0
        /// Per side: its last drain stopped at the budget, not at nil.
        var undrained = [false, false]
        var receivedUndrained = [0, 0]
        var poisonedUndrained = [0, 0]
        /// Per side: messages it handed out on a quiet wire, queued at an earlier delivery.
        var heldOver = [0, 0]
        /// Per side (partial-drain mode): the last message it sent, as (type, Cascade step).
        var lastSent: [(type: UInt8, step: UInt32)?] = [nil, nil]

        init(records: Records, original: Bool, aliceSeed: UInt64, mutations: [Mutation], budgets: [UInt8]? = nil) {
            let config = original ? PostProcessingRoundCheck.originalConfiguration : PostProcessingRoundCheck.configuration
            let a = records.alice, b = records.bob
            bob = BobRound(roundID: PostProcessingRoundCheck.roundID, configuration: config, slotCount: UInt64(b.slotCount),
                           positions: b.slots, bases: BitVector(words: b.bases, count: b.detectionCount),
                           bits: BitVector(words: b.bits, count: b.detectionCount))
            alice = AliceRound(roundID: PostProcessingRoundCheck.roundID, configuration: config,
                               bits: BitVector(words: a.bits, count: a.slotCount),
                               bases: BitVector(words: a.bases, count: a.slotCount),
                               random: DeterministicRandomSource(seed: aliceSeed))
            self.mutations = mutations
            self.budgets = budgets
        }

        /// The next drain opportunity's budget: nil means everything (full-drain mode, or past
        /// the input's budgets).
        mutating func budget() -> Int? {
            guard let budgets else { return nil }
            let i = opportunities
            opportunities += 1
            guard i / 4 < budgets.count else { return nil }
            return Int(budgets[i / 4] >> UInt8(2 * (i % 4)) & 3)
        }

        mutating func run() throws(FuzzInvariantViolation) -> FuzzCheck.Outcome {
            try drain(1)
            try drain(0)
            while true {
                if wire.isEmpty, budgets != nil, let side = undrained.firstIndex(of: true) {
                    // The wire is quiet: actions left queued go out now, at least one; budget 0
                    // with a delayed message waiting lets that message come back first.
                    let limit = budget()
                    if limit == 0, !late.isEmpty {
                        wire.append(late.removeFirst())
                    } else {
                        quietDrains += 1
                        guard quietDrains <= PostProcessingRoundCheck.maxQuietDrains else {
                            throw FuzzInvariantViolation("the sides handed out more than \(PostProcessingRoundCheck.maxQuietDrains) actions on a quiet wire (\(delivered) deliveries)")
                        }
                        let before = sent[side]
                        try drain(side, limit: limit.map { max(1, $0) })
                        heldOver[side] += sent[side] - before
                        continue
                    }
                }
                if wire.isEmpty {
                    guard !late.isEmpty else { break }
                    wire.append(late.removeFirst())
                }
                var message = wire.removeFirst()
                let index = delivered
                delivered += 1
                guard delivered <= PostProcessingRoundCheck.maxDeliveries else {
                    throw FuzzInvariantViolation("the exchange did not end within \(PostProcessingRoundCheck.maxDeliveries) deliveries")
                }
                var copies = 1
                var before: [Message] = []
                for m in mutations where !message.visited
                    && (m.sideRelative ? (m.side == message.from && m.target == message.sideIndex) : m.target == index) {
                    switch apply(m, to: &message, before: &before) {
                    case .keep: break
                    case .drop: copies = 0
                    case .duplicate: copies += copies > 0 ? 1 : 0
                    case .delay:
                        var held = message
                        held.visited = true
                        late.append(held)
                        copies = 0
                    }
                }
                for extra in before { try deliver(extra) }
                for _ in 0..<copies { try deliver(message) }
            }
            return try finish()
        }

        enum Disposition { case keep, drop, duplicate, delay }

        /// Changes `message` as `m` says; messages to deliver before it go to `before`.
        mutating func apply(_ m: Mutation, to message: inout Message, before: inout [Message]) -> Disposition {
            func u16(_ i: Int) -> Int { i + 1 < m.operands.count ? Int(m.operands[i]) | Int(m.operands[i + 1]) << 8 : 0 }
            let original = message.bytes
            switch m.operation {
            case .flipBit:
                if !message.bytes.isEmpty {
                    let k = u16(0) % (8 * message.bytes.count)
                    message.bytes[k >> 3] ^= UInt8(1) << UInt8(k & 7)
                }
            case .overwriteByte:
                if !message.bytes.isEmpty { message.bytes[u16(0) % message.bytes.count] = m.operands[2] }
            case .truncate:
                message.bytes = Array(message.bytes.prefix(u16(0) % max(1, message.bytes.count)))
            case .drop: return .drop
            case .duplicate: return .duplicate
            case .delay: return .delay
            case .replay:
                let seen = history[message.from]
                let back = 1 + Int(m.operands[0])
                if message.sideIndex - back >= 0, message.sideIndex - back < seen.count {
                    before.append(seen[message.sideIndex - back])
                }
            case .flipBitmapBit, .replaceBitmap, .xorBitmapWord, .shiftStep, .overwriteField, .reencode:
                guard let (id, decoded) = try? PostProcessingMessage.decode(message.bytes) else { return .keep }
                var changed = decoded
                PostProcessingRoundCheck.edit(&changed, m)
                message.bytes = changed.encoded(roundID: id)
            case .changeRoundID:
                if message.bytes.count >= 10 { message.bytes[9] ^= m.operands[0] }
            case .inject:
                before.append(Message(from: message.from, bytes: m.operands, sideIndex: -1, mutated: true))
                noteForgery(m.operands, to: 1 - message.from)
            case .replaceWithAbort:
                message.bytes = PostProcessingMessage.abort(AbortCode(rawValue: 1 + m.operands[0] % 4)!).encoded(roundID: PostProcessingRoundCheck.roundID)
            }
            if message.bytes != original {
                message.mutated = true
                noteForgery(original, to: 1 - message.from)
                noteForgery(message.bytes, to: 1 - message.from)
            }
            return .keep
        }

        /// Records that `receiver` gets changed content; a type-6 message (before or after the
        /// change) voids the equal-keys check (its amplification seed is not tag-covered).
        mutating func noteForgery(_ bytes: [UInt8], to receiver: Int) {
            receivedForgery[receiver] = true
            if bytes.count >= 2 && bytes[1] == 6 { verificationTouched = true }
        }

        mutating func deliver(_ message: Message) throws(FuzzInvariantViolation) {
            let receiver = 1 - message.from
            if undrained[receiver] { receivedUndrained[receiver] += 1 }
            if let error = errors[receiver] {
                // Poisoned: the same error again, and nothing handed out.
                let again: QKDError?
                do {
                    if receiver == 0 { try alice.receive(bytes: message.bytes) } else { try bob.receive(bytes: message.bytes) }
                    again = nil
                } catch let e as QKDError {
                    again = e
                } catch {
                    throw FuzzInvariantViolation("side \(receiver) threw an untyped error \(error) after it was poisoned")
                }
                guard again == error else {
                    throw FuzzInvariantViolation("side \(receiver) was poisoned by \(error) but then \(again.map { "threw \($0)" } ?? "accepted a message")")
                }
                try drain(receiver)
                return
            }
            do {
                if receiver == 0 { try alice.receive(bytes: message.bytes) } else { try bob.receive(bytes: message.bytes) }
            } catch let error as QKDError {
                guard error.code.isPeerMisbehaviour else {
                    throw FuzzInvariantViolation("side \(receiver) threw \(error.code.identifier), which is not a peer-misbehaviour code: \(error)")
                }
                errors[receiver] = error
                if undrained[receiver] { poisonedUndrained[receiver] += 1 }
            } catch {
                throw FuzzInvariantViolation("side \(receiver) threw an untyped error \(error)")
            }
            // A side that threw is drained completely: it must hand out nothing.
            let limit = budget()
            try drain(receiver, limit: errors[receiver] == nil ? limit : nil)
        }

        /// Moves a side's actions out: messages onto the wire, results checked. At most `limit`
        /// actions (nil: until the side has none); the side stays undrained if the limit stopped it.
        mutating func drain(_ side: Int, limit: Int? = nil) throws(FuzzInvariantViolation) {
            var taken = 0
            undrained[side] = false
            while limit.map({ taken < $0 }) ?? true, let action = side == 0 ? alice.nextAction() : bob.nextAction() {
                taken += 1
                guard errors[side] == nil else {
                    let queued = poisonedUndrained[side] > 0 ? " (it was left undrained when the message that made it throw arrived: an action queued before the error is still handed out)" : ""
                    throw FuzzInvariantViolation("side \(side) handed out \(Self.describe(action)) after it threw \(errors[side]!)\(queued)")
                }
                guard !ended[side] else {
                    throw FuzzInvariantViolation("side \(side) handed out \(Self.describe(action)) after it finished or aborted")
                }
                if budgets != nil { try checkOrder(side, action) }
                switch action {
                case .send(let message):
                    switch message {
                    case .cascadeParities(let c), .cascadeReplies(let c):
                        guard c.step <= UInt32(PostProcessingLimits.maxCascadeSteps) else {
                            throw FuzzInvariantViolation("side \(side) sent Cascade step \(c.step), above the limit \(PostProcessingLimits.maxCascadeSteps)")
                        }
                    case .verification: if side == 0 { sentFinisher[0] = true }
                    case .verificationResult(let matched): if side == 1 && matched { sentFinisher[1] = true }
                    default: break
                    }
                    let bytes = message.encoded(roundID: PostProcessingRoundCheck.roundID)
                    let m = Message(from: side, bytes: bytes, sideIndex: sent[side])
                    sent[side] += 1
                    history[side].append(m)
                    wire.append(m)
                case .finished(let result):
                    guard sentFinisher[1 - side] || receivedForgery[side] else {
                        throw FuzzInvariantViolation("side \(side) finished although the peer never sent the message that finishes it and the wire forged nothing")
                    }
                    guard result.summary.cascadeSteps <= PostProcessingLimits.maxCascadeSteps else {
                        throw FuzzInvariantViolation("side \(side) finished after \(result.summary.cascadeSteps) Cascade steps")
                    }
                    ended[side] = true
                    keys[side] = result.key
                case .aborted:
                    ended[side] = true
                }
            }
            if let limit, taken == limit { undrained[side] = true }
        }

        /// An action in a few words (a message's bitmaps would fill a screen).
        static func describe(_ action: PostProcessingAction) -> String {
            switch action {
            case .send(let message):
                switch message {
                case .cascadeParities(let c), .cascadeReplies(let c): "a message of type \(message.typeByte) (step \(c.step))"
                default: "a message of type \(message.typeByte)"
                }
            case .finished: "its finished round"
            case .aborted(let reason, _): "its abort (\(reason))"
            }
        }

        /// Partial-drain mode: the action fits the side's state diagram after what it sent so
        /// far (Spec/postprocessing.md sections 3.1 and 3.2), whatever the wire delivered.
        mutating func checkOrder(_ side: Int, _ action: PostProcessingAction) throws(FuzzInvariantViolation) {
            let name = side == 0 ? "Alice" : "Bob"
            let last = lastSent[side]
            let sequence = last.map { "after sending \($0.type)" + ($0.type == 4 || $0.type == 5 ? "(step \($0.step))" : "") } ?? "before sending anything"
            switch action {
            case .send(let message):
                let type = message.typeByte
                var step: UInt32 = 0
                if case .cascadeParities(let c) = message { step = c.step }
                if case .cascadeReplies(let c) = message { step = c.step }
                let cascade: UInt8 = side == 0 ? 4 : 5
                let allowed: Bool
                switch (side, last?.type) {
                case (0, nil): allowed = type == 2
                case (0, 2?): allowed = (type == 4 && step == 0) || type == 8
                case (0, 4?): allowed = (type == 4 && step == last!.step &+ 1) || type == 6 || type == 8
                case (1, nil): allowed = type == 1
                case (1, 1?): allowed = type == 3 || type == 8
                case (1, 3?): allowed = type == 5 && step == 0
                case (1, 5?): allowed = (type == 5 && step == last!.step &+ 1) || type == 7 || type == 8
                default: allowed = false  // Nothing after 6, 7 or 8, nor any other message.
                }
                guard allowed else {
                    let what = type == cascade ? "\(type)(step \(step))" : "\(type)"
                    throw FuzzInvariantViolation("\(name) handed out message \(what) \(sequence): out of order or duplicated (Spec/postprocessing.md section 3.\(side + 1))")
                }
                lastSent[side] = (type, step)
            case .finished:
                let finisher: UInt8 = side == 0 ? 6 : 7
                guard last?.type == finisher && sentFinisher[side] else {
                    throw FuzzInvariantViolation("\(name) finished \(sequence), not right after sending \(side == 0 ? "6" : "7(1)") (Spec/postprocessing.md section 3.\(side + 1))")
                }
            case .aborted:
                break
            }
        }

        func finish() throws(FuzzInvariantViolation) -> FuzzCheck.Outcome {
            if let a = keys[0], let b = keys[1], !verificationTouched {
                let equal = a.withUnsafeBytes { x in b.withUnsafeBytes { y in x.count == y.count && constantTimeEqual(x, y) } }
                guard equal else {
                    throw FuzzInvariantViolation("both sides finished with different keys (\(a.count) and \(b.count) bytes) and no verification request was changed")
                }
            }
            if mutations.isEmpty {
                guard keys[0] != nil, keys[1] != nil else {
                    throw FuzzInvariantViolation("an honest round did not finish on both sides (errors \(String(describing: errors)), ended \(ended))")
                }
            }
            if let error = errors[0] ?? errors[1] { return .rejected(error) }
            return keys[0] != nil && keys[1] != nil ? .accepted : .rejected(QKDError(.ppUnexpectedMessage, "the round ended without a key on both sides"))
        }
    }

    /// Applies a decoding operation to a decoded message.
    static func edit(_ message: inout PostProcessingMessage, _ m: Mutation) {
        func u16(_ i: Int) -> Int { i + 1 < m.operands.count ? Int(m.operands[i]) | Int(m.operands[i + 1]) << 8 : 0 }
        func operand(_ i: Int) -> UInt8 { i < m.operands.count ? m.operands[i] : 0 }
        /// The bitmap the operation works on, and a way to put a changed one back.
        func withBitmap(_ selector: Int, _ body: (inout BitVector) -> Void) {
            switch message {
            case .cascadeParities(var c):
                body(&c.bits); message = .cascadeParities(c)
            case .cascadeReplies(var c):
                body(&c.bits); message = .cascadeReplies(c)
            case .siftResponse(let s):
                var matches = s.matches, tests = s.testBits
                if selector & 1 == 0 { body(&matches) } else { body(&tests) }
                message = .siftResponse(SiftResponse(matches: matches, testBits: tests, cascadeSeed: s.cascadeSeed))
            case .detections(let d):
                var bases = d.bases
                body(&bases)
                guard bases.count == d.positions.count else { return }  // A report pairs them.
                message = .detections(DetectionReport(slotCount: d.slotCount, positions: d.positions, bases: bases))
            case .verification(let v):
                var a = v.multiplier, b = v.addend
                if selector & 1 == 0 { body(&a) } else { body(&b) }
                if a.count != b.count { if selector & 1 == 0 { b = resized(b, a.count) } else { a = resized(a, b.count) } }
                guard a.count <= PostProcessingLimits.maxAmplificationSeedBits else { return }
                message = .verification(VerificationRequest(hashKey: v.hashKey, tag: v.tag, finalLength: v.finalLength, multiplier: a, addend: b))
            case .estimation, .verificationResult, .abort:
                break
            }
        }
        switch m.operation {
        case .flipBitmapBit:
            let k = u16(0)
            withBitmap(k >> 15) { bits in
                guard bits.count > 0 else { return }
                let i = (k & 0x7fff) % bits.count
                var words = bits.words
                words[i >> 6] ^= UInt64(1) << UInt64(i & 63)
                bits = BitVector(words: words, count: bits.count)
            }
        case .replaceBitmap:
            let selector = operand(0)
            let payload = Array(m.operands.dropFirst())
            withBitmap(Int(selector >> 6)) { bits in
                let count = selector & 0x80 == 0 ? bits.count : max(0, bits.count + Int(selector & 0x3f) - 32)
                var words = [UInt64](repeating: 0, count: (count + 63) >> 6)
                if !payload.isEmpty {
                    for i in 0..<(words.count * 8) {
                        words[i >> 3] |= UInt64(payload[i % payload.count]) << UInt64(8 * (i & 7))
                    }
                }
                bits = BitVector(words: words, count: count)
            }
        case .xorBitmapWord:
            let w = Int(operand(0))
            var x: UInt64 = 0
            for i in 0..<8 { x |= UInt64(operand(1 + i)) << UInt64(8 * i) }
            withBitmap(w >> 7) { bits in
                guard !bits.words.isEmpty else { return }
                var words = bits.words
                words[(w & 0x7f) % words.count] ^= x
                bits = BitVector(words: words, count: bits.count)
            }
        case .shiftStep:
            let delta = Int32(Int8(bitPattern: operand(0)))
            switch message {
            case .cascadeParities(var c):
                c.step = UInt32(bitPattern: Int32(bitPattern: c.step) &+ delta); message = .cascadeParities(c)
            case .cascadeReplies(var c):
                c.step = UInt32(bitPattern: Int32(bitPattern: c.step) &+ delta); message = .cascadeReplies(c)
            default: break
            }
        case .overwriteField:
            let selector = operand(0)
            var field = Array(m.operands.dropFirst())
            while field.count < 32 { field.append(0) }
            switch message {
            case .verification(var v):
                if selector & 2 != 0 {
                    v.finalLength = field.prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
                } else if selector & 1 == 0 {
                    v.hashKey = Array(field.prefix(16))
                } else {
                    v.tag = Array(field.prefix(16))
                }
                message = .verification(v)
            case .estimation:
                message = .estimation(testErrors: field.prefix(4).reduce(0) { $0 << 8 | UInt32($1) })
            case .siftResponse(var s):
                s.cascadeSeed = Array(field.prefix(32))
                message = .siftResponse(s)
            case .detections(var d):
                // Another slot count: the positions must stay below it and the code valid.
                let slots = field.prefix(8).reduce(0) { $0 << 8 | UInt64($1) } & (PostProcessingLimits.maxSlots - 1)
                if let last = d.positions.last, slots <= last { break }
                d.slotCount = slots
                message = .detections(d)
            case .abort:
                message = .abort(AbortCode(rawValue: 1 + field[0] % 4)!)
            case .verificationResult:
                message = .verificationResult(matched: field[0] & 1 == 1)
            case .cascadeParities(var c):
                c.step = field.prefix(4).reduce(0) { $0 << 8 | UInt32($1) }
                message = .cascadeParities(c)
            case .cascadeReplies(var c):
                c.step = field.prefix(4).reduce(0) { $0 << 8 | UInt32($1) }
                message = .cascadeReplies(c)
            }
        case .flipBit, .overwriteByte, .truncate, .drop, .duplicate, .delay, .replay, .changeRoundID, .inject,
             .replaceWithAbort, .reencode:
            break
        }
    }

    /// `bits` cut or zero-extended to `count` bits.
    static func resized(_ bits: BitVector, _ count: Int) -> BitVector {
        var words = bits.words
        while words.count < (count + 63) >> 6 { words.append(0) }
        return BitVector(words: words, count: count)
    }

    /// Honest inputs for the seed corpus: every QBER with no mutation, the original schedule,
    /// and two partial-drain inputs (`h0` bit 5) with no mutation.
    static func seeds() -> [(name: String, bytes: [UInt8])] {
        var seeds: [(name: String, bytes: [UInt8])] = []
        for q in 0..<4 {
            seeds.append(("honest-qber\(q)", [UInt8(q | (q & 1) << 2), UInt8(q)]))
        }
        seeds.append(("honest-original", [0x11, 1]))
        // Partial drain, no mutation: budgets 0, 1, 2, 3 mixed (then "all"), and 0 for the
        // first 252 drain opportunities (every queued action waits for a quiet wire).
        seeds.append(("partial-drain-mixed", [0x20 | 0x05, 1, 8, 0x00, 0xe4, 0x1b, 0x55, 0x00, 0xaa, 0x39, 0x00]))
        seeds.append(("partial-drain-zero", [0x20 | 0x02, 2, 63] + [UInt8](repeating: 0, count: 63)))
        return seeds
    }
}
