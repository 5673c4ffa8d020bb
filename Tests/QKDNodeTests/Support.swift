import Foundation
import Logging
import Metrics
import QKDCrypto
import QKDKeyPool
import QKDNode
import QKDSession
import QKDSimulation
import QKDTransport
import Synchronization

// MARK: - In-memory links

/// An `InMemoryTransport` end that records every chunk it writes (for wire inspection).
final class RecordingTransport: ByteTransport {
    let inner: InMemoryTransport
    let onWrite: @Sendable ([UInt8]) -> Void
    var peerDescription: String { inner.peerDescription }

    init(_ inner: InMemoryTransport, onWrite: @escaping @Sendable ([UInt8]) -> Void) {
        self.inner = inner
        self.onWrite = onWrite
    }

    func write(_ bytes: [UInt8]) async throws {
        if !bytes.isEmpty { onWrite(bytes) }
        try await inner.write(bytes)
    }

    func read() async throws -> [UInt8]? { try await inner.read() }
    func close() async { await inner.close() }
}

/// Hands out connected pairs: Alice's connector makes one, Bob's acceptor takes the other end.
final class Switchboard: Sendable {
    private struct State {
        var waiting: [RecordingTransport] = []
        var acceptor: CheckedContinuation<RecordingTransport, any Error>?
        var connections: [InMemoryTransport] = []
    }
    private let state = Mutex(State())
    let name: String
    /// Every chunk Alice's end writes, per connection index.
    let aliceWrites = Mutex<[[[UInt8]]]>([])
    let bobWrites = Mutex<[[[UInt8]]]>([])
    /// Called after each recorded write, inside the writer's `write` and before the bytes go
    /// out: (Alice's end?, connection index, writes so far on that end). A test can break the
    /// link here at an exact point of the exchange, however the threads are scheduled.
    let onWrite = Mutex<(@Sendable (Bool, Int, Int) -> Void)?>(nil)

    init(_ name: String) { self.name = name }

    func connect() async throws -> any ByteTransport {
        let (a, b) = InMemoryTransport.pair(names: ("\(name) alice", "\(name) bob"))
        let index = aliceWrites.withLock { w in w.append([]); return w.count - 1 }
        bobWrites.withLock { $0.append([]) }
        let alice = RecordingTransport(a) { [self] bytes in
            let n = self.aliceWrites.withLock { $0[index].append(bytes); return $0[index].count }
            self.onWrite.withLock { $0 }?(true, index, n)
        }
        let bob = RecordingTransport(b) { [self] bytes in
            let n = self.bobWrites.withLock { $0[index].append(bytes); return $0[index].count }
            self.onWrite.withLock { $0 }?(false, index, n)
        }
        let acceptor = state.withLock { s -> CheckedContinuation<RecordingTransport, any Error>? in
            s.connections.append(a)
            if let a = s.acceptor { s.acceptor = nil; return a }
            s.waiting.append(bob)
            return nil
        }
        acceptor?.resume(returning: bob)
        return alice
    }

    func accept() async throws -> any ByteTransport {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<RecordingTransport, any Error>) in
            let ready = state.withLock { s -> RecordingTransport? in
                if !s.waiting.isEmpty { return s.waiting.removeFirst() }
                s.acceptor = c
                return nil
            }
            if let ready { c.resume(returning: ready) }
        }
    }

    /// Breaks the newest connection (both directions fail).
    func breakCurrent() {
        state.withLock { $0.connections.last }?.breakLink()
    }

    /// Every chunk one side wrote, per connection.
    func writes(alice: Bool) -> [[[UInt8]]] {
        alice ? aliceWrites.withLock { $0 } : bobWrites.withLock { $0 }
    }

    var connectionCount: Int { state.withLock { $0.connections.count } }
}

// MARK: - Pools

final class TempDir: @unchecked Sendable {
    let path: String
    init() {
        path = (NSTemporaryDirectory() as NSString).appendingPathComponent("qkd-node-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }
    func sub(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Two pools seeded from one PSK (pool mode: information-theoretic from the first frame).
func makePools(_ dir: TempDir, pskBytes: Int = 16_384, seed: UInt64 = 7, chunkPads: Int = 64) throws -> (KeyPool, KeyPool, PSKFile) {
    var random = DeterministicRandomSource(seed: seed)
    let psk = try PSKFile.generate(byteCount: pskBytes, using: &random)
    let config = KeyPool.Configuration(chunkPads: chunkPads, lowWaterBytes: 256)
    let alice = try KeyPool.create(directory: dir.sub("alice"), role: .alice, linkID: psk.id, configuration: config)
    let bob = try KeyPool.create(directory: dir.sub("bob"), role: .bob, linkID: psk.id, configuration: config)
    try alice.importPSK(psk)
    try bob.importPSK(psk)
    return (alice, bob, psk)
}

/// The simulated link of the tests: small rounds that still give a key.
func testSimulation(eve: Double = 0) -> LinkParameters {
    LinkParameters(pulsesPerRound: 40_000, probabilityZ: 0.75, misalignment: 0.02, interceptFraction: eve)
}

func nodeConfiguration(_ role: SessionRole, rounds: Int, eve: Double = 0, logger: Logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
                       metrics: (any MetricsFactory)? = nil) -> NodeConfiguration {
    var logger = logger
    if ProcessInfo.processInfo.environment["QKD_TEST_LOG"] != nil {
        logger = Logger(label: "test") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .info
    }
    var c = NodeConfiguration(role: role, simulation: testSimulation(eve: eve), logger: logger)
    c.seed = 99
    c.rounds = role == .alice ? rounds : nil
    c.maxReconnectAttempts = 5
    c.reconnectDelay = .milliseconds(20)
    c.stallTimeout = .seconds(20)
    // The hybrid PKI handshake (ML-KEM-768, ML-DSA-65) of a debug build took over the default
    // 10 s when the full suite ran beside a release build (NodePKITests, session 6 and 7).
    c.handshakeTimeout = .seconds(60)
    c.metricsFactory = metrics
    return c
}

/// Runs both nodes to completion; returns every event of each.
func runPair(alice: QKDLinkNode, bob: QKDLinkNode, onAliceEvent: @escaping @Sendable (NodeEvent) -> Void = { _ in }) async throws
    -> (alice: [NodeEvent], bob: [NodeEvent]) {
    async let aliceEvents: [NodeEvent] = {
        var out: [NodeEvent] = []
        for await e in alice.events { onAliceEvent(e); out.append(e) }
        return out
    }()
    async let bobEvents: [NodeEvent] = {
        var out: [NodeEvent] = []
        for await e in bob.events { out.append(e) }
        return out
    }()
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await alice.run() }
        group.addTask { try await bob.run() }
        try await group.waitForAll()
    }
    return (await aliceEvents, await bobEvents)
}

func links(_ role: SessionRole, _ classical: Switchboard, _ quantum: Switchboard) -> NodeLinks {
    role == .alice
        ? NodeLinks(classical: { try await classical.connect() }, quantum: { try await quantum.connect() })
        : NodeLinks(classical: { try await classical.accept() }, quantum: { try await quantum.accept() })
}

// MARK: - Log capture

final class LogCapture: Sendable {
    let lines = Mutex<[String]>([])
    var text: String { lines.withLock { $0.joined(separator: "\n") } }

    func handler(label: String) -> any LogHandler { Handler(label: label, capture: self) }

    struct Handler: LogHandler {
        let label: String
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var metadataProvider: Logger.MetadataProvider?
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            capture.lines.withLock { $0.append("\(event.level) \(event.message) \(all)") }
        }
    }
}

// MARK: - Metrics capture

final class TestMetrics: MetricsFactory, Sendable {
    final class Value: CounterHandler, RecorderHandler, MeterHandler, TimerHandler, Sendable {
        let label: String
        let dimensions: [String]
        let total = Mutex<Double>(0)
        let last = Mutex<Double>(0)
        init(label: String, dimensions: [(String, String)]) {
            self.label = label
            self.dimensions = dimensions.map { "\($0.0)=\($0.1)" }
        }
        func increment(by amount: Int64) { total.withLock { $0 += Double(amount) } }
        func reset() { total.withLock { $0 = 0 } }
        func record(_ value: Int64) { last.withLock { $0 = Double(value) } }
        func record(_ value: Double) { last.withLock { $0 = value } }
        func set(_ value: Int64) { last.withLock { $0 = Double(value) } }
        func set(_ value: Double) { last.withLock { $0 = value } }
        func increment(by amount: Double) { last.withLock { $0 += amount } }
        func decrement(by amount: Double) { last.withLock { $0 -= amount } }
        func recordNanoseconds(_ duration: Int64) { last.withLock { $0 = Double(duration) } }
    }

    let values = Mutex<[Value]>([])

    private func make(_ label: String, _ dimensions: [(String, String)]) -> Value {
        let v = Value(label: label, dimensions: dimensions)
        values.withLock { $0.append(v) }
        return v
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler { make(label, dimensions) }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler { make(label, dimensions) }
    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler { make(label, dimensions) }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler { make(label, dimensions) }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyMeter(_ handler: any MeterHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}

    func counter(_ label: String, role: String) -> Double {
        values.withLock { $0.filter { $0.label == label && $0.dimensions.contains("role=\(role)") }.reduce(0) { $0 + $1.total.withLock { $0 } } }
    }

    func gauge(_ label: String, role: String) -> Double? {
        values.withLock { $0.last { $0.label == label && $0.dimensions.contains("role=\(role)") } }?.last.withLock { $0 }
    }
}

extension NodeEvent {
    var finishedReport: RoundReport? {
        if case .roundFinished(let r) = self { return r }
        return nil
    }
    var abortReason: String? {
        if case .roundAborted(_, let reason) = self { return reason }
        return nil
    }
}

/// Hex of a key's bytes (tests only: the tests compare keys; the product never prints them).
func hex(_ key: ConsumerKey) -> String { key.bytes.withUnsafeBytes { Hex.encode($0) } }
