import ArgumentParser
import Foundation
import Logging
import QKDCrypto
import QKDKeyPool
import QKDNode
import QKDPostProcessing
import QKDSession
import QKDSimulation
import QKDTransport
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Options of the simulated quantum link, shared by `run` and `demo`.
struct SimulationOptions: ParsableArguments {
    @Option(name: .long, help: "Optical misalignment: the QBER of the simulated detections (0...0.5).")
    var qber: Double = 0.02

    @Option(name: .customLong("loss-db"), help: "Channel loss in dB (0.2 dB per km of fibre).")
    var lossDB: Double = 0

    @Option(name: .long, help: "Fraction of pulses an intercept-resend eavesdropper measures (0...1; 1 gives a QBER near 25%).")
    var eve: Double = 0

    @Option(name: .long, help: "Pulses (slots) per round.")
    var pulses: Int = 100_000

    @Option(name: .long, help: "Seed of the simulated devices (default: random).")
    var seed: UInt64?

    func validate() throws {
        guard (0...0.5).contains(qber) else { throw ValidationError("--qber must be in 0...0.5, got \(qber)") }
        guard lossDB >= 0, lossDB <= 60 else { throw ValidationError("--loss-db must be in 0...60, got \(lossDB)") }
        guard (0...1).contains(eve) else { throw ValidationError("--eve must be in 0...1, got \(eve)") }
        guard (1_000...4_000_000).contains(pulses) else { throw ValidationError("--pulses must be in 1000...4000000, got \(pulses)") }
    }

    var parameters: LinkParameters {
        LinkParameters(pulsesPerRound: pulses, probabilityZ: 0.75, channelLossDB: lossDB, misalignment: qber, interceptFraction: eve)
    }

    /// The same options as arguments, for a child process.
    var arguments: [String] {
        var out = ["--qber", "\(qber)", "--loss-db", "\(lossDB)", "--eve", "\(eve)", "--pulses", "\(pulses)"]
        if let seed { out += ["--seed", "\(seed)"] }
        return out
    }
}

/// `qkd-node run`: one node of a link, until its rounds are done (Alice) or Alice closes (Bob).
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one node of a QKD link (classical channel over TCP, simulated quantum channel).",
        discussion: """
        Bob usually listens and Alice connects. Without --quantum, the simulated quantum link shares \
        the classical address (each connection names its link first). With --json, every event is one \
        JSON object per line on stdout; a listening node first prints {"event":"listening","port":N}. \
        SIGINT or SIGTERM stops the node cleanly (session closed, pool closed, exit status 0); a second \
        signal exits at once with 128 + its number.
        """
    )

    @Option(name: .long, help: "alice (drives the rounds) or bob.")
    var role: String

    @Option(name: .long, help: "Listen on HOST:PORT (port 0: an ephemeral port, printed on stdout).")
    var listen: String?

    @Option(name: .long, help: "Connect to HOST:PORT (retried with backoff for up to --connect-timeout).")
    var connect: String?

    // Issue 6: a refused peer ends `run` with one line after a bounded wait.
    @Option(name: .customLong("connect-timeout"), parsing: .unconditional,
            help: "Seconds spent trying to reach the peer (each time the link must be set up) before giving up (default 30).")
    var connectTimeout: Double?

    @Option(name: .customLong("stall-timeout"), parsing: .unconditional,
            help: "Seconds without a byte from the peer while a reply is due before the link counts as broken and is reconnected (default 30).")
    var stallTimeout: Double?

    @Option(name: .customLong("handshake-timeout"), parsing: .unconditional,
            help: "Seconds a connection's handshake may take before it is dropped and the link is set up again (default 10).")
    var handshakeTimeout: Double?

    @Option(name: .long, help: "The node's state directory (created from --psk if it holds no pool yet).")
    var state: String

    @Option(name: .long, help: "The PSK file shared with the peer (from 'qkd-node psk generate').")
    var psk: String?

    @Option(name: .long, help: "PKI mode: this node's certificate chain (PEM).")
    var cert: String?

    @Option(name: .long, help: "PKI mode: this node's private key (PEM).")
    var key: String?

    @Option(name: .long, help: "PKI mode: the trust anchors (PEM).")
    var ca: String?

    @Option(name: .customLong("peer-name"), help: "PKI mode: the name the peer's certificate must carry (default: the peer's role in this node's certificate domain, e.g. bob.example for alice.example).")
    var peerName: String?

    @Option(name: .long, help: "PKI mode: the key agreement, x25519 or hybrid (X25519 + ML-KEM-768; default). Both nodes must choose the same.")
    var kex: String?

    @Option(name: .customLong("mldsa-key"), help: "PKI mode: this node's ML-DSA-65 key (PEM), bound in its certificate: adds a post-quantum transcript signature.")
    var mlDSAKey: String?

    @Option(name: .customLong("pad-target"), help: "Bytes each pad stream is topped up to before a round yields consumer keys (multiple of 16, 2048...16777216; default 8192). Both nodes must use the same.")
    var padTarget: Int?

    @Option(name: .long, help: "Alice: rounds to run before closing the link (default: until interrupted).")
    var rounds: Int?

    @Option(name: .long, help: "A separate HOST:PORT for the simulated quantum link (listen or connect, like the classical one).")
    var quantum: String?

    @OptionGroup var simulation: SimulationOptions

    // Authentication granularity (issue 6).
    @Option(name: .long, help: "How round frames are authenticated: 'round' (one tag per direction per round) or 'frame' (a tag on every frame). Both nodes must use the same.")
    var granularity: AuthenticationGranularity = .perRound

    @Option(name: .long, help: "Alice: the Cascade schedule, 'improved' (default: about half the round trips) or 'least-leakage' (about 0.01 less f below QBER 6.25% for twice the round trips). Her roundStart names it and Bob follows; ignored on Bob.")
    var cascade: CascadeChoice = .improved

    @Flag(name: .long, help: "Print one JSON object per event on stdout.")
    var json = false

    @Flag(name: .long, help: "At the end, deliver every available consumer key and print their count and BLAKE2b-256 digest (never the keys).")
    var digest = false

    @Flag(name: .long, help: "Log the node's progress on stderr.")
    var verbose = false

    func validate() throws {
        guard role == "alice" || role == "bob" else { throw ValidationError("--role must be 'alice' or 'bob', got '\(role)'") }
        guard (listen == nil) != (connect == nil) else { throw ValidationError("give exactly one of --listen HOST:PORT or --connect HOST:PORT") }
        if let rounds { guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1, got \(rounds)") } }
    }

    func run() async throws {
        do {
            try await runNode()
        } catch let error as ExitCode {
            throw error
        } catch {
            FileHandle.standardError.write(Data("qkd-node: error: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }

    private func runNode() async throws {
        let sessionRole: SessionRole = role == "alice" ? .alice : .bob
        let refillPolicy = try Self.refillPolicy(padTarget: padTarget)
        // Checked here rather than in `validate()`, so the message is one line on stderr.
        let connectBudget = try Self.seconds(connectTimeout, option: "--connect-timeout") ?? .seconds(30)
        let stall = try Self.seconds(stallTimeout, option: "--stall-timeout")
        let handshake = try Self.seconds(handshakeTimeout, option: "--handshake-timeout")
        let pki = try loadPKI(role: sessionRole)
        let output = EventPrinter(json: json, role: role)

        // Links: a listener routes each accepted connection by its link tag; a connector tags its
        // two. A listener binds before the pool is opened: a port in use then fails the start
        // without creating or touching the pool in --state.
        let links: NodeLinks
        var listeners: [TransportListener] = []
        defer { Task { [listeners] in for l in listeners { await l.close() } } }
        var budget: ConnectBudget?
        let router = LinkRouter()
        if let listen {
            listeners.append(try await Self.endpoint(listen, option: "--listen").listen())
            if let quantum { listeners.append(try await Self.endpoint(quantum, option: "--quantum").listen()) }
            links = NodeLinks(classical: { try await router.next(.classical) }, quantum: { try await router.next(.quantum) })
        } else {
            let classical = try Self.endpoint(connect!, option: "--connect")
            let quantumAddress = try quantum.map { try Self.endpoint($0, option: "--quantum") } ?? classical
            let connectBudget = ConnectBudget(timeout: connectBudget)
            budget = connectBudget
            let (classicalText, quantumText) = (connect!, quantum ?? connect!)
            links = NodeLinks(classical: { try await connectBudget.connect(classical, .classical, address: classicalText) },
                              quantum: { try await connectBudget.connect(quantumAddress, .quantum, address: quantumText) })
        }

        let pool = try pki.map { try Self.openPool(state: state, role: sessionRole == .alice ? .alice : .bob, pki: $0) }
            ?? Self.openPool(state: state, role: sessionRole == .alice ? .alice : .bob, psk: psk)
        defer { pool.close() }
        if !listeners.isEmpty {
            // Served only now that the pool is open: "listening" means ready.
            for l in listeners { router.serve(l) }
            output.listening(endpoint: listeners[0].endpoint, quantum: listeners.count > 1 ? listeners[1].endpoint : nil)
        }

        var logger = Logger(label: "qkd.node")
        logger.logLevel = verbose ? .info : .error
        var configuration = NodeConfiguration(role: sessionRole, simulation: simulation.parameters, logger: logger)
        configuration.seed = simulation.seed.map { $0 &+ (sessionRole == .alice ? 0 : 1) }
        configuration.rounds = rounds
        configuration.pki = pki
        configuration.refillPolicy = refillPolicy
        configuration.maxReconnectAttempts = 3
        configuration.granularity = granularity
        configuration.postProcessing.reconciliation = cascade.schedule
        if let stall { configuration.stallTimeout = stall }
        if let handshake { configuration.handshakeTimeout = handshake }
        let node = try QKDLinkNode(configuration: configuration, pool: pool, links: links)

        let task = Task { try await node.run() }
        let signals = SignalCancellation(task: task)
        defer { signals.stop() }
        var finished = 0, aborted = 0
        for await event in node.events {
            switch event {
            case .roundFinished: finished += 1
            case .roundAborted: aborted += 1
            default: break
            }
            output.print(event)
        }
        do {
            try await task.value
        } catch {
            // A peer never reached: the budget's own line ("cannot reach the peer at ..."), not
            // the node's "could not reach the peer after 3 attempts: cannot reach ...".
            let message = (error as? QKDError)?.code == .nodeLinkLost ? budget?.failure ?? "\(error)" : "\(error)"
            output.summary(finished: finished, aborted: aborted, digest: nil, error: message)
            FileHandle.standardError.write(Data("qkd-node: error: \(message)\n".utf8))
            throw ExitCode(1)
        }
        var keysDigest: (count: Int, hex: String)?
        if digest {
            let keys = try await node.fetchKeys(count: Int.max / 2)
            var parts: [[UInt8]] = []
            for k in keys {
                parts.append(withUnsafeBytes(of: k.id.uuid) { Array($0) })
                var bytes = k.bytes.withUnsafeBytes { Array($0) }
                parts.append(bytes)
                secureZero(&bytes)
            }
            keysDigest = (keys.count, Hex.encode(GenericHash.hash(parts)))
            for i in parts.indices { secureZero(&parts[i]) }
        }
        output.summary(finished: finished, aborted: aborted, digest: keysDigest, error: nil)
    }

    /// The PKI configuration from --cert/--key/--ca (nil in PSK mode). Bad combinations are
    /// refused here rather than in `validate()`, so the message is one line on stderr.
    /// - Throws: ``CLIError`` for a bad combination; a `pki.*` error for an unreadable file, bad
    ///   PEM, a key that does not match the certificate or is readable by others.
    private func loadPKI(role: SessionRole) throws -> NodePKI? {
        let given = [("--cert", cert), ("--key", key), ("--ca", ca)]
        let missing = given.filter { $0.1 == nil }.map(\.0)
        if missing.count == given.count {
            guard psk != nil else { throw CLIError("give --psk FILE, or --cert FILE --key FILE --ca FILE for PKI mode") }
            let stray = [("--peer-name", peerName), ("--kex", kex), ("--mldsa-key", mlDSAKey)].filter { $0.1 != nil }.map(\.0)
            guard stray.isEmpty else { throw CLIError("\(stray.joined(separator: ", ")) \(stray.count == 1 ? "is" : "are") for PKI mode only (--cert, --key, --ca)") }
            return nil
        }
        guard psk == nil else { throw CLIError("give either --psk FILE or --cert/--key/--ca, not both") }
        guard missing.isEmpty else { throw CLIError("PKI mode needs --cert, --key and --ca together; missing \(missing.joined(separator: ", "))") }
        let keyAgreement: NodeKeyAgreement
        switch kex ?? "hybrid" {
        case "x25519": keyAgreement = .x25519
        case "hybrid": keyAgreement = .hybrid
        case let other: throw CLIError("--kex must be 'x25519' or 'hybrid', got '\(other)'")
        }
        let identity = try PKIFiles.loadIdentity(certificateChainPath: cert!, privateKeyPath: key!, mlDSAKeyPath: mlDSAKey)
        let anchors = try PKIFiles.loadTrustAnchors(ca!)
        var pki = NodePKI(identity: identity, anchors: anchors, peerName: "", keyAgreement: keyAgreement)
        guard let own = pki.localName else { throw CLIError("\(cert!): the certificate carries no DNS name or common name; a node certificate must name its node") }
        if let peerName {
            pki.peerName = peerName
        } else {
            // alice.example <-> bob.example; a bare name maps to the bare role name.
            let domain = own.firstIndex(of: ".").map { String(own[$0...]) } ?? ""
            pki.peerName = (role == .alice ? "bob" : "alice") + domain
        }
        return pki
    }

    /// A duration option in seconds (--connect-timeout, --stall-timeout, --handshake-timeout): nil
    /// if not given.
    /// - Throws: ``CLIError`` unless 0 < seconds <= 86400 (a day: longer is a typo, and
    ///   `Duration.seconds` must not overflow).
    static func seconds(_ value: Double?, option: String) throws -> Duration? {
        guard let value else { return nil }
        guard value > 0, value <= 86_400 else { throw CLIError("\(option) must be a number of seconds in (0, 86400], got \(value)") }
        return .seconds(value)
    }

    /// The split policy: the default, or one whose target level is `padTarget` bytes per stream
    /// (4 rounds of 256 pad bytes plus the rest as reserve; Spec/keypool.md section 4).
    ///
    /// The floor of 2048: the node's between-round sync moves the agreed watermarks only when
    /// the streams hold its margin (three chunks of ``poolConfiguration`` plus a round's pads)
    /// above the pads used since the last sync (a quarter of the target); below that the sync
    /// never runs, the split stops topping the streams up, and they drain within a few dozen
    /// rounds (Spec/quantum-link.md section 5.4).
    static func refillPolicy(padTarget: Int?) throws -> RefillPolicy {
        guard let padTarget else { return RefillPolicy() }
        guard (2048...(1 << 24)).contains(padTarget), padTarget % 16 == 0 else {
            throw CLIError("--pad-target must be a multiple of 16 in 2048...16777216, got \(padTarget)")
        }
        return RefillPolicy(padBytesPerRound: 256, roundsAhead: 4, reserveBytes: padTarget - 1024)
    }

    /// Opens the pool in `state` for a PKI link, creating an empty one (no pads: the PKI
    /// bootstrap fills it) with the link id both nodes derive from their names.
    static func openPool(state: String, role: Role, pki: NodePKI) throws -> KeyPool {
        guard let linkID = pki.linkID(role: role == .alice ? .alice : .bob) else {
            throw CLIError("this node's certificate carries no name to derive the link id from")
        }
        if FileManager.default.fileExists(atPath: (state as NSString).appendingPathComponent("pool.sqlite")) {
            let pool = try KeyPool.open(directory: state, configuration: poolConfiguration)
            guard pool.linkID == linkID else {
                pool.close()
                throw CLIError("the pool in \(state) belongs to link \(pool.linkID.uuidString.lowercased()), not to the PKI link between these certificates (\(linkID.uuidString.lowercased())); use another --state directory")
            }
            return pool
        }
        return try KeyPool.create(directory: state, role: role, linkID: linkID, configuration: poolConfiguration)
    }

    /// `HOST:PORT` means TCP; any other transport is written as an endpoint (`unix:/path`, ...,
    /// Spec/transport.md section 2).
    static func endpoint(_ text: String, option: String) throws -> TransportEndpoint {
        let known = ["tcp:", "unix:", "serial:", "exec:", "plugin:"]
        do {
            return try TransportEndpoint(parsing: known.contains { text.hasPrefix($0) } ? text : "tcp:" + text)
        } catch let error as QKDError {
            throw CLIError("\(option): \(error.detail)")
        }
    }

    /// Pads per durable reservation for a running node: small, because the between-round
    /// watermark sync burns a margin of three chunks (Spec/quantum-link.md section 5.4), and
    /// that margin decides the smallest pad target the sync can keep topped up (--pad-target).
    /// A round spends a few pads per direction, so 16 costs about one fsync every few rounds.
    static let poolConfiguration = KeyPool.Configuration(chunkPads: 16, lowWaterBytes: 1024)

    /// Opens the pool in `state`, creating it from the PSK first if the directory holds none.
    static func openPool(state: String, role: Role, psk: String?) throws -> KeyPool {
        if FileManager.default.fileExists(atPath: (state as NSString).appendingPathComponent("pool.sqlite")) || psk == nil {
            return try KeyPool.open(directory: state, configuration: poolConfiguration)
        }
        var bytes = try SecretFile.readPrivate(psk!)
        defer { secureZero(&bytes) }
        let file = try PSKFile(decoding: bytes)
        let pool = try KeyPool.create(directory: state, role: role, linkID: file.id, configuration: poolConfiguration)
        do {
            try pool.importPSK(file)
        } catch {
            pool.close()
            throw error
        }
        return pool
    }
}

/// Which link a TCP connection carries: the connector's first four bytes say.
enum LinkKind: String, Sendable {
    case classical = "QKDC"
    case quantum = "QKDQ"
}

/// Routes accepted connections to the classical or the quantum link by their 4-byte tag.
final class LinkRouter: Sendable {
    private let classical = AsyncStream<any ByteTransport>.makeStream()
    private let quantum = AsyncStream<any ByteTransport>.makeStream()

    func serve(_ listener: TransportListener) {
        let sinks = (classical.continuation, quantum.continuation)
        Task.detached {
            while true {
                guard let connection = try? await listener.accept() else { return }
                Task.detached {
                    var head: [UInt8] = []
                    while head.count < 4 {
                        guard let chunk = try? await connection.read() else { await connection.close(); return }
                        head += chunk
                    }
                    let tag = String(decoding: head[0..<4], as: UTF8.self)
                    let wrapped = PrefixedTransport(connection, leftover: Array(head[4...]))
                    switch LinkKind(rawValue: tag) {
                    case .classical?: sinks.0.yield(wrapped)
                    case .quantum?: sinks.1.yield(wrapped)
                    case nil: await connection.close()
                    }
                }
            }
        }
    }

    func next(_ kind: LinkKind) async throws -> any ByteTransport {
        // One caller per kind at a time (the node asks once per connection attempt).
        var iterator = (kind == .classical ? classical.stream : quantum.stream).makeAsyncIterator()
        guard let connection = await iterator.next() else { throw CancellationError() }
        return connection
    }

    /// Connects with about 10 s of attempts (`bench pipeline --tcp`; `run` uses ``ConnectBudget``).
    static func connect(_ endpoint: TransportEndpoint, _ kind: LinkKind) async throws -> any ByteTransport {
        let options = TransportOptions(retry: RetryPolicy(maxAttempts: 12, initialDelay: .milliseconds(100), maxDelay: .seconds(1)),
                                       connectTimeout: .seconds(5))
        let connection = try await endpoint.connect(options: options)
        try await connection.write(Array(kind.rawValue.utf8))
        return connection
    }
}

/// Bounds the time a connecting `run` spends reaching its peer (--connect-timeout, issue 6).
///
/// The budget starts at the first attempt after the link was last up (or at start) and is shared
/// by every attempt until one succeeds: the node's own retries of a failed attempt
/// (`maxReconnectAttempts`) then fail at once, so a refused peer ends `run` after about the
/// budget, with ``failure`` as its one line on stderr. Within the budget, attempts are retried
/// with backoff (100 ms doubling to 1 s), each limited to 5 s and to what is left.
final class ConnectBudget: Sendable {
    let timeout: Duration
    private let state = Mutex<(deadline: ContinuousClock.Instant?, failure: String?)>((nil, nil))

    init(timeout: Duration) { self.timeout = timeout }

    /// The message of an exhausted budget ("cannot reach the peer at HOST:PORT: cause; ..."),
    /// nil while the peer was reached since.
    var failure: String? { state.withLock { $0.failure } }

    /// Connects to `endpoint` and sends the link tag `kind`.
    /// - Parameters:
    ///   - endpoint: the peer.
    ///   - kind: which link this connection carries.
    ///   - address: the address as the user wrote it, for the message.
    /// - Returns: the connection.
    /// - Throws: ``CLIError`` once the budget is spent; `CancellationError` when cancelled.
    func connect(_ endpoint: TransportEndpoint, _ kind: LinkKind, address: String) async throws -> any ByteTransport {
        let deadline = state.withLock { s -> ContinuousClock.Instant in
            if s.deadline == nil { s.deadline = .now + timeout }
            return s.deadline!
        }
        var delay = Duration.milliseconds(100)
        var cause: String?
        while case let left = deadline - .now, left > .zero {
            do {
                let connection = try await endpoint.connect(options: TransportOptions(retry: .none, connectTimeout: min(.seconds(5), left)))
                try await connection.write(Array(kind.rawValue.utf8))
                state.withLock { $0 = (nil, nil) }
                return connection
            } catch let error as QKDError {
                cause = error.code == .connectionRefused ? "connection refused" : error.detail
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                cause = "\(error)"
            }
            let wait = min(delay, deadline - .now)
            if wait > .zero { try await Task.sleep(for: wait) }
            delay = min(delay * 2, .seconds(1))
        }
        let message = state.withLock { s -> String in
            if s.failure == nil || cause != nil {
                s.failure = "cannot reach the peer at \(address): \(cause ?? "no answer") (tried for \(String(format: "%g", Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18)) s); is the peer running?"
            }
            return s.failure!
        }
        throw CLIError(message)
    }
}

/// A transport whose first read returns bytes already taken from it.
final class PrefixedTransport: ByteTransport {
    private let inner: any ByteTransport
    private let leftover: Mutex<[UInt8]?>
    var peerDescription: String { inner.peerDescription }

    init(_ inner: any ByteTransport, leftover: [UInt8]) {
        self.inner = inner
        self.leftover = Mutex(leftover.isEmpty ? nil : leftover)
    }

    func write(_ bytes: [UInt8]) async throws { try await inner.write(bytes) }

    func read() async throws -> [UInt8]? {
        if let first = leftover.withLock({ l -> [UInt8]? in defer { l = nil }; return l }) { return first }
        return try await inner.read()
    }

    func close() async { await inner.close() }
}

/// SIGINT and SIGTERM stop `run` cleanly: the first one cancels the node's task; the node
/// closes the session gracefully (the peer reads a `close`, not a broken link, and ends too),
/// settles or stages its round (Spec/quantum-link.md section 5.3), and `run` prints its summary,
/// closes the pool and exits with status 0. A second signal during that shutdown exits at once
/// with status 128 + the signal number (130 for SIGINT, 143 for SIGTERM), as a crash would; the
/// pool is crash-safe (DESIGN.md invariant 1). Tested by ReliabilityTests
/// (`sigtermAndSigintStopANodeCleanlyMidRounds`).
final class SignalCancellation {
    private let sources: [any DispatchSourceSignal]
    private let received = Received()

    private final class Received: Sendable {
        let count = Mutex(0)
    }

    init(task: Task<Void, any Error>) {
        var sources: [any DispatchSourceSignal] = []
        let received = self.received
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                if received.count.withLock({ n in n += 1; return n }) > 1 { _exit(128 + sig) }
                task.cancel()
            }
            source.resume()
            sources.append(source)
        }
        self.sources = sources
    }

    func stop() { for s in sources { s.cancel() } }
}

/// Prints node events as text lines or JSON lines (never key bytes).
struct EventPrinter {
    let json: Bool
    let role: String

    private func emit(_ object: [String: Any]) {
        var o = object
        o["role"] = role
        let data = try! JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }

    private func line(_ text: String) {
        FileHandle.standardOutput.write(Data("\(role): \(text)\n".utf8))
    }

    func listening(endpoint: TransportEndpoint, quantum: TransportEndpoint?) {
        if json {
            var o: [String: Any] = ["event": "listening", "endpoint": endpoint.description]
            if case .tcp(_, let port) = endpoint.kind { o["port"] = port }
            if let quantum { o["quantum_endpoint"] = quantum.description }
            emit(o)
        } else {
            line("listening on \(endpoint)" + (quantum.map { ", quantum link on \($0)" } ?? ""))
        }
    }

    func print(_ event: NodeEvent) {
        switch event {
        case .connected(let peer):
            json ? emit(["event": "connected", "peer": peer]) : line("connected to \(peer)")
        case .established(let level):
            json ? emit(["event": "established", "security": "\(level)"]) : line("session established (\(level))")
        case .securityLevelChanged(let level):
            json ? emit(["event": "security", "security": "\(level)"]) : line("security level now \(level)")
        case .roundFinished(let r):
            let s = r.summary
            if json {
                emit(["event": "round", "round": r.roundID, "qber": s.qberEstimate, "f": s.efficiency ?? NSNull(),
                      "final_bits": s.finalBits, "pad_bits": r.padBitsUsed, "security": "\(r.securityLevel)",
                      "pool_out": r.poolLevels.outbound, "pool_in": r.poolLevels.inbound, "consumer_keys": r.consumerKeys,
                      "detections": s.detections, "sifted_bits": s.siftedKeyBits])
            } else {
                line("round \(r.roundID): QBER \(String(format: "%.2f%%", 100 * s.qberEstimate)), f \(s.efficiency.map { String(format: "%.3f", $0) } ?? "-"), final \(s.finalBits) bits, pads \(r.padBitsUsed) bits, \(r.securityLevel), pool out \(r.poolLevels.outbound) B / in \(r.poolLevels.inbound) B")
            }
        case .roundAborted(let id, let reason):
            json ? emit(["event": "aborted", "round": id, "reason": reason]) : line("round \(id) aborted: \(reason)")
        case .poolStarving(let direction, let remaining):
            json ? emit(["event": "starving", "direction": "\(direction)", "remaining": remaining]) : line("\(direction) pad stream low: \(remaining) bytes left")
        case .keyAvailable(let count):
            if json { emit(["event": "keys", "count": count]) }
        case .disconnected(let reason):
            json ? emit(["event": "disconnected", "reason": reason]) : line("link lost (\(reason)); reconnecting")
        case .closed(let reason):
            json ? emit(["event": "closed", "reason": reason ?? NSNull()]) : line(reason.map { "stopped: \($0)" } ?? "link closed")
        }
    }

    func summary(finished: Int, aborted: Int, digest: (count: Int, hex: String)?, error: String?) {
        if json {
            var o: [String: Any] = ["event": "summary", "rounds_finished": finished, "rounds_aborted": aborted]
            if let digest { o["consumer_keys"] = digest.count; o["keys_digest"] = digest.hex }
            if let error { o["error"] = error }
            emit(o)
        } else {
            line("\(finished) rounds finished, \(aborted) aborted" + (digest.map { "; \($0.count) consumer keys, BLAKE2b-256 \($0.hex)" } ?? ""))
        }
    }
}

/// `qkd-node run --cascade`: the node-level names of the Cascade schedules a node may run
/// (the 1993 `original` schedule is a benchmark baseline, not offered here).
enum CascadeChoice: String, ExpressibleByArgument, CaseIterable {
    case improved
    case leastLeakage = "least-leakage"

    var schedule: ReconciliationSchedule {
        switch self {
        case .improved: .improved
        case .leastLeakage: .leastLeakage
        }
    }
}
