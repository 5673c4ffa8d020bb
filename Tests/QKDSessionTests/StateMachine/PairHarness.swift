import QKDCrypto
import QKDWire
@testable import QKDSession

/// What an adversary on the wire does with each frame a session transmits (one `transmit`
/// action is one frame).
protocol Adversary {
    /// Returns the chunks to put on the wire instead of `frame` (empty: dropped).
    mutating func intercept(_ frame: [UInt8], direction: Direction, index: Int) -> [[UInt8]]
}

/// Delivers everything unchanged.
struct HonestWire: Adversary {
    mutating func intercept(_ frame: [UInt8], direction: Direction, index: Int) -> [[UInt8]] { [frame] }
}

/// Flips one bit of the frame with global index `frameIndex`.
struct FlipOneBit: Adversary {
    var frameIndex: Int
    var bit: Int
    mutating func intercept(_ frame: [UInt8], direction: Direction, index: Int) -> [[UInt8]] {
        guard index == frameIndex else { return [frame] }
        var f = frame
        f[bit / 8] ^= UInt8(1) << (bit % 8)
        return [f]
    }
}

/// Rewrites one frame with a closure.
struct RewriteFrame: Adversary {
    var frameIndex: Int
    var rewrite: ([UInt8]) -> [[UInt8]]
    mutating func intercept(_ frame: [UInt8], direction: Direction, index: Int) -> [[UInt8]] {
        index == frameIndex ? rewrite(frame) : [frame]
    }
}

/// Random drop / duplicate / reorder / bit flip / truncate, driven by a seed; frames with a
/// global index below `sparing` pass unchanged (to attack only the established channel).
struct RandomAdversary: Adversary {
    var random: DeterministicRandomSource
    var rate: Double
    var sparing: Int
    private var held: [Direction: [UInt8]] = [:]

    init(seed: UInt64, rate: Double, sparing: Int = 0) {
        random = DeterministicRandomSource(seed: seed)
        self.rate = rate
        self.sparing = sparing
    }

    mutating func intercept(_ frame: [UInt8], direction: Direction, index: Int) -> [[UInt8]] {
        let previous = held.removeValue(forKey: direction)  // a reordered frame goes after this one
        var mine: [[UInt8]] = [frame]
        if index >= sparing, Double.random(in: 0..<1, using: &random) < rate {
            switch Int.random(in: 0..<5, using: &random) {
            case 0:  // drop
                mine = []
            case 1:  // duplicate
                mine = [frame, frame]
            case 2:  // reorder: hold until the next frame of this direction
                held[direction] = frame
                mine = []
            case 3:  // flip one bit
                var f = frame
                let bit = Int.random(in: 0..<(f.count * 8), using: &random)
                f[bit / 8] ^= UInt8(1) << (bit % 8)
                mine = [f]
            default:  // truncate
                mine = [Array(frame[0..<Int.random(in: 0..<frame.count, using: &random)])]
            }
        }
        return mine + (previous.map { [$0] } ?? [])
    }
}

/// Two sessions in memory with a wire between them, in the style of rustls `do_handshake` and
/// quinn's `Pair`: ``step()`` moves one chunk each way, ``drive()`` until quiet. The key stores
/// are any ``SessionKeyStore`` (in-memory, or two real ``PoolKeyStore``s); PKI validation
/// requests (``SessionAction/validatePeer(_:)``) are collected and answered by ``settle()``,
/// which awaits them as a real driver would.
struct Pair {
    var alice: Session
    var bob: Session
    let aliceKeys: any SessionKeyStore
    let bobKeys: any SessionKeyStore
    /// The in-memory stores (most tests inspect what they handed out).
    var aliceStore: InMemoryKeyStore { aliceKeys as! InMemoryKeyStore }
    var bobStore: InMemoryKeyStore { bobKeys as! InMemoryKeyStore }
    /// Validation requests not answered yet (Alice's, Bob's).
    var aliceValidations: [PeerValidationRequest] = []
    var bobValidations: [PeerValidationRequest] = []
    /// Answer validation requests only after this many further ``step()``s (0: as soon as
    /// ``settle()`` sees them), to let bytes pile up while a session is paused.
    var validationDelay = 0
    var adversary: any Adversary = HonestWire()
    /// Deliver one byte at a time.
    var drip = false
    var now: UInt64 = 0
    var toBob: [[UInt8]] = []
    var toAlice: [[UInt8]] = []
    var aliceEvents: [SessionAction] = []
    var bobEvents: [SessionAction] = []
    var aliceErrors: [QKDError] = []
    var bobErrors: [QKDError] = []
    /// Frames transmitted so far, both directions, in order.
    var frameCount = 0

    init(alice: SessionConfiguration, bob: SessionConfiguration, aliceStore: any SessionKeyStore, bobStore: any SessionKeyStore, seed: UInt64) {
        self.aliceKeys = aliceStore
        self.bobKeys = bobStore
        self.alice = Session(configuration: alice, keyStore: aliceStore, random: DeterministicRandomSource(seed: seed))
        self.bob = Session(configuration: bob, keyStore: bobStore, random: DeterministicRandomSource(seed: seed &+ 0x5eed))
    }

    /// Alice sends her ClientHello.
    mutating func start() {
        do { try alice.start(now: now) } catch let e as QKDError { aliceErrors.append(e) } catch {}
    }

    private static func drain(_ session: inout Session, _ events: inout [SessionAction], direction: Direction,
                              adversary: inout any Adversary, frameCount: inout Int, wire: inout [[UInt8]],
                              validations: inout [PeerValidationRequest]) -> Bool {
        var progress = false
        while let action = session.nextAction() {
            progress = true
            events.append(action)
            if case .transmit(let bytes) = action {
                wire.append(contentsOf: adversary.intercept(bytes, direction: direction, index: frameCount))
                frameCount += 1
            }
            if case .validatePeer(let request) = action { validations.append(request) }
        }
        return progress
    }

    private static func deliver(_ queue: inout [[UInt8]], to session: inout Session, errors: inout [QKDError], drip: Bool, now: UInt64) -> Bool {
        guard !queue.isEmpty else { return false }
        var chunk = queue.removeFirst()
        if drip && chunk.count > 1 {
            queue.insert(Array(chunk[1...]), at: 0)
            chunk = [chunk[0]]
        }
        guard !session.isClosed else { return true }  // bytes to a closed session are discarded
        do { try session.receive(chunk, now: now) } catch let e as QKDError { errors.append(e) } catch {}
        return true
    }

    /// Drains both sessions' actions onto the wire, then delivers one chunk each way.
    /// - Returns: whether anything happened.
    @discardableResult
    mutating func step() -> Bool {
        var progress = Pair.drain(&alice, &aliceEvents, direction: .aliceToBob, adversary: &adversary, frameCount: &frameCount, wire: &toBob,
                                  validations: &aliceValidations)
        progress = Pair.drain(&bob, &bobEvents, direction: .bobToAlice, adversary: &adversary, frameCount: &frameCount, wire: &toAlice,
                              validations: &bobValidations) || progress
        progress = Pair.deliver(&toBob, to: &bob, errors: &bobErrors, drip: drip, now: now) || progress
        progress = Pair.deliver(&toAlice, to: &alice, errors: &aliceErrors, drip: drip, now: now) || progress
        return progress
    }

    /// Steps until nothing moves.
    mutating func drive(maxSteps: Int = 100_000) {
        var steps = 0
        while step() {
            steps += 1
            precondition(steps < maxSteps, "the pair did not settle")
        }
    }

    /// Drives until quiet, answering every peer validation request (running it as the real
    /// driver does: `await request.run()`, then `peerValidated`), until nothing moves.
    mutating func settle(maxRounds: Int = 1000) async {
        var rounds = 0
        while true {
            if validationDelay > 0 {
                for _ in 0..<validationDelay { step() }
            }
            drive()
            guard !aliceValidations.isEmpty || !bobValidations.isEmpty else { return }
            let t = now
            for request in aliceValidations {
                let result = await request.run()
                onAlice { try $0.peerValidated(result, now: t) }
            }
            aliceValidations.removeAll()
            for request in bobValidations {
                let result = await request.run()
                onBob { try $0.peerValidated(result, now: t) }
            }
            bobValidations.removeAll()
            rounds += 1
            precondition(rounds < maxRounds, "the pair did not settle")
        }
    }

    /// Runs a session call and records a thrown error for that side.
    mutating func onAlice(_ body: (inout Session) throws -> Void) {
        do { try body(&alice) } catch let e as QKDError { aliceErrors.append(e) } catch {}
    }

    /// Runs a session call and records a thrown error for that side.
    mutating func onBob(_ body: (inout Session) throws -> Void) {
        do { try body(&bob) } catch let e as QKDError { bobErrors.append(e) } catch {}
    }

    /// Payloads delivered to one side (round nil) in order.
    static func delivered(_ events: [SessionAction]) -> [[UInt8]] {
        events.compactMap { if case .deliver(let p, nil) = $0 { return p } else { return nil } }
    }
}

/// Configurations and stores for the tests.
enum Fixture {
    static let linkID = [UInt8](repeating: 0x42, count: 16)
    static let policy: [UInt8] = [1, 0, 32]

    static func psk(_ byte: UInt8, id: UInt8 = 7) -> PreSharedKey {
        PreSharedKey(id: [UInt8](repeating: id, count: 16), secret: SecretBytes(copying: [UInt8](repeating: byte, count: 32)))
    }

    static func stores(seed: UInt64, slots: Int = 256, chunk: UInt64 = 16) -> (InMemoryKeyStore, InMemoryKeyStore) {
        var random = DeterministicRandomSource(seed: seed ^ 0xabcdef)
        let (a, b) = InMemoryKeyStore.pair(slotsPerDirection: slots, reservationChunk: chunk, random: &random)
        return (a, b)
    }

    /// A pool-mode pair over fresh stores.
    static func poolPair(seed: UInt64 = 1, suites: [MACSuite] = [.poly1305OTP, .gf128OTP],
                         stores: (InMemoryKeyStore, InMemoryKeyStore)? = nil, tweak: (inout SessionConfiguration) -> Void = { _ in }) -> Pair {
        let (a, b) = stores ?? Fixture.stores(seed: seed)
        var alice = SessionConfiguration(role: .alice, mode: .pool, suites: suites, linkID: linkID, splitPolicy: policy)
        var bob = SessionConfiguration(role: .bob, suites: suites, linkID: linkID, splitPolicy: policy)
        tweak(&alice)
        tweak(&bob)
        return Pair(alice: alice, bob: bob, aliceStore: a, bobStore: b, seed: seed)
    }

    /// A psk-kdf pair; `withPool` gives both sides pool material for the later switch.
    static func pskPair(seed: UInt64 = 1, alicePSK: PreSharedKey = psk(9), bobPSK: PreSharedKey = psk(9), withPool: Bool = false,
                        suites: [MACSuite] = [.poly1305OTP, .gf128OTP], tweak: (inout SessionConfiguration) -> Void = { _ in }) -> Pair {
        let (a, b) = withPool ? stores(seed: seed) : (InMemoryKeyStore.empty(), InMemoryKeyStore.empty())
        var alice = SessionConfiguration(role: .alice, mode: .pskKDF, suites: suites, linkID: linkID, splitPolicy: policy, preSharedKeys: [alicePSK])
        var bob = SessionConfiguration(role: .bob, suites: suites, linkID: linkID, splitPolicy: policy, preSharedKeys: [bobPSK])
        tweak(&alice)
        tweak(&bob)
        return Pair(alice: alice, bob: bob, aliceStore: a, bobStore: b, seed: seed)
    }
}
