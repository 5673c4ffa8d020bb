import QKDCrypto
import QKDWire
import Testing
@testable import QKDSession

/// The property of issue 4: whatever the adversary does (random seeds driving drop,
/// duplicate, reorder, bit flip and truncate, on the handshake or only on the channel), a
/// payload is either delivered exactly as sent or not at all, a round is authenticated only if
/// both directions' frames arrived exactly as sent, and no pad slot is used twice.
@Suite struct AdversaryPropertyTests {
    struct Run {
        var pair: Pair
        var sent: [Direction: [[UInt8]]] = [.aliceToBob: [], .bobToAlice: []]
        var roundSent: [Direction: [UInt64: [[UInt8]]]] = [.aliceToBob: [:], .bobToAlice: [:]]
    }

    static func act(_ run: inout Run, _ direction: Direction, _ body: (inout Session) throws -> Void) {
        let open = direction == .aliceToBob ? run.pair.alice.isEstablished : run.pair.bob.isEstablished
        guard open else { return }
        if direction == .aliceToBob { run.pair.onAlice(body) } else { run.pair.onBob(body) }
    }

    static func workload(_ run: inout Run, seed: UInt64) {
        var random = DeterministicRandomSource(seed: seed &* 7919)
        for i in 0..<12 {
            for direction in Direction.allCases {
                if i % 4 == 3 {
                    let round = UInt64(i)
                    let payloads = (0..<2).map { _ in random.bytes(count: Int.random(in: 1...40, using: &random)) }
                    let open = direction == .aliceToBob ? run.pair.alice.isEstablished : run.pair.bob.isEstablished
                    guard open else { continue }
                    run.roundSent[direction]![round] = payloads
                    act(&run, direction) { try $0.beginRound(round) }
                    for p in payloads { act(&run, direction) { try $0.send(p) } }
                    act(&run, direction) { try $0.closeRound() }
                } else {
                    let payload = random.bytes(count: Int.random(in: 1...40, using: &random))
                    let open = direction == .aliceToBob ? run.pair.alice.isEstablished : run.pair.bob.isEstablished
                    guard open else { continue }
                    run.sent[direction]!.append(payload)
                    act(&run, direction) { try $0.send(payload) }
                }
            }
            for _ in 0..<Int.random(in: 0...6, using: &random) { run.pair.step() }
        }
        run.pair.drive()
    }

    static func roundDeliveries(_ events: [SessionAction], _ round: UInt64) -> [[UInt8]] {
        events.compactMap { if case .deliver(let p, round?) = $0 { return p } else { return nil } }
    }

    static func check(_ run: Run, seed: UInt64) {
        let pair = run.pair
        for (receiverEvents, direction) in [(pair.bobEvents, Direction.aliceToBob), (pair.aliceEvents, .bobToAlice)] {
            // Per-frame payloads: exactly a prefix of what was sent, in order.
            let delivered = Pair.delivered(receiverEvents)
            let sent = run.sent[direction]!
            #expect(delivered.count <= sent.count && Array(sent.prefix(delivered.count)) == delivered, "seed \(seed) \(direction)")
        }
        // A round authenticated on either side arrived exactly as sent in both directions.
        for events in [pair.aliceEvents, pair.bobEvents] {
            for case .roundAuthenticated(let round) in events {
                #expect(roundDeliveries(pair.bobEvents, round) == run.roundSent[.aliceToBob]![round], "seed \(seed) round \(round)")
                #expect(roundDeliveries(pair.aliceEvents, round) == run.roundSent[.bobToAlice]![round], "seed \(seed) round \(round)")
            }
        }
        let (a, b) = (pair.aliceStore, pair.bobStore)
        #expect(!a.reusedAnOutboundSlot && !b.reusedAnOutboundSlot, "seed \(seed)")
        #expect(zip(a.consumedInbound, a.consumedInbound.dropFirst()).allSatisfy { $0 < $1 }, "seed \(seed)")
        #expect(zip(b.consumedInbound, b.consumedInbound.dropFirst()).allSatisfy { $0 < $1 }, "seed \(seed)")
        #expect(Set(b.consumedInbound).isSubset(of: a.handedOut) && Set(a.consumedInbound).isSubset(of: b.handedOut), "seed \(seed)")
        // padUsed actions match the stores' records.
        let aliceUsedOut = pair.aliceEvents.compactMap { if case .padUsed(.aliceToBob, let s) = $0 { return s } else { return nil } }
        #expect(aliceUsedOut == a.handedOut, "seed \(seed)")
    }

    @Test(arguments: [false, true])
    func payloadsArriveExactlyOrNotAtAll(psk: Bool) {
        var established = 0
        var roundsAuthenticated = 0
        var anyDropOrError = 0
        for seed in UInt64(0)..<120 {
            var pair = psk ? Fixture.pskPair(seed: seed + 100) : Fixture.poolPair(seed: seed + 100)
            // Even seeds spare the four handshake frames; odd seeds attack the handshake too.
            pair.adversary = RandomAdversary(seed: seed, rate: seed % 3 == 0 ? 0.02 : 0.08, sparing: seed % 2 == 0 ? 4 : 0)
            pair.start()
            pair.drive()
            if pair.alice.isEstablished && pair.bob.isEstablished { established += 1 }
            var run = Run(pair: pair)
            Self.workload(&run, seed: seed)
            Self.check(run, seed: seed)
            roundsAuthenticated += run.pair.bobEvents.filter { if case .roundAuthenticated = $0 { true } else { false } }.count
            if !run.pair.aliceErrors.isEmpty || !run.pair.bobErrors.isEmpty
                || run.pair.bobEvents.contains(where: { if case .frameDropped = $0 { true } else { false } }) { anyDropOrError += 1 }
        }
        // The runs exercise both outcomes: some sessions and rounds survive, many are attacked.
        #expect(established > 20 && roundsAuthenticated > 0 && anyDropOrError > 20, "\(established) \(roundsAuthenticated) \(anyDropOrError)")
    }
}

/// A session fed arbitrary bytes (the fuzz target "a session fed arbitrary bytes", as a test):
/// in every state it either goes on or closes with a typed error, and stays poisoned.
@Suite struct ArbitraryInputTests {
    @Test func sessionsSurviveArbitraryBytes() throws {
        var random = DeterministicRandomSource(seed: 77)
        var honest = Fixture.poolPair(seed: 5, stores: Fixture.stores(seed: 5, slots: 64))
        honest.adversary = RecordingWire()
        honest.start()
        honest.drive()
        let frames = (honest.adversary as! RecordingWire).frames
        for i in 0..<2000 {
            // Bob fresh (idle) or established; input pure noise or a mutated genuine frame.
            var pair = Fixture.poolPair(seed: 5, stores: Fixture.stores(seed: 5, slots: 64))
            if i % 2 == 1 {
                pair.start()
                pair.drive()
            }
            var input: [UInt8]
            if i % 3 == 0 {
                input = random.bytes(count: Int.random(in: 0...120, using: &random))
            } else {
                input = frames[Int.random(in: 0..<frames.count, using: &random)]
                for _ in 0..<Int.random(in: 1...3, using: &random) {
                    input[Int.random(in: 0..<input.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                }
            }
            var thrown: QKDError?
            do { try pair.bob.receive(input, now: 0) } catch let e as QKDError { thrown = e }
            while pair.bob.nextAction() != nil {}
            if let thrown {
                let isClosed = pair.bob.isClosed
                #expect(isClosed)
                #expect(throws: thrown) { try pair.bob.receive([0], now: 0) }
            }
        }
    }
}
