import ArgumentParser
import Foundation
import QKDCrypto
import QKDKeyPool
import QKDSession
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `qkd-node demo`: two separate node processes (this binary's `run`) over loopback TCP, with
/// temporary state, one live line per round, and a comparison of the consumer keys by digest.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run Alice and Bob as two processes over loopback TCP and check they end with the same keys.",
        discussion: """
        Makes a private temporary state directory and a PSK (--mode psk) or a test CA with two node \
        certificates (--mode pki), starts 'qkd-node run --role bob' (listening on an ephemeral port) and \
        'qkd-node run --role alice', prints one line per round and a summary. Exits 0 only if both nodes \
        finished rounds and hold the same consumer keys (compared by BLAKE2b-256 digest; keys are never \
        printed). In PKI mode the first round runs on the computational certificate bootstrap: its key \
        fills the empty pad streams and its consumer keys are withheld; later rounds are \
        information-theoretic. On a terminal, a long round shows a progress line on stderr.
        """
    )

    @Option(name: .long, help: "Rounds to run.")
    var rounds: Int = 5

    @Option(name: .long, help: "psk (pool seeded from a pre-shared key) or pki (X.509 certificates from a throw-away CA; the pool starts empty).")
    var mode: String = "psk"

    @OptionGroup var simulation: SimulationOptions

    @Flag(name: .long, help: "Print one JSON object per line instead of text.")
    var json = false

    @Flag(name: .long, help: "Keep the temporary state directory and print its path.")
    var keep = false

    static let pskBytes = 16_384

    /// The live progress line (one demo per process; enabled in `runDemo` on a terminal only).
    private static let progressLine = ProgressLine()
    private var progress: ProgressLine { Self.progressLine }

    func validate() throws {
        guard (1...10_000).contains(rounds) else { throw ValidationError("--rounds must be in 1...10000, got \(rounds)") }
        guard mode == "psk" || mode == "pki" else { throw ValidationError("--mode must be 'psk' or 'pki', got '\(mode)'") }
    }

    func run() async throws {
        do {
            try await runDemo()
        } catch let error as ExitCode {
            throw error
        } catch {
            FileHandle.standardError.write(Data("qkd-node demo: error: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }

    private func runDemo() async throws {
        let binary = try Self.ownBinary()
        var template = Array((NSTemporaryDirectory() as NSString).appendingPathComponent("qkd-demo-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw CLIError("cannot create a temporary directory: \(String(cString: strerror(errno)))") }
        let dir = String(cString: made)
        chmod(dir, 0o700)
        defer { if !keep { try? FileManager.default.removeItem(atPath: dir) } }
        func path(_ name: String) -> String { (dir as NSString).appendingPathComponent(name) }

        var random = SystemRandomSource()
        let seed = simulation.seed ?? random.next() >> 1
        var sim = simulation
        sim.seed = seed
        say("QKDChannel demo: Alice and Bob as two processes over loopback TCP; \(rounds) rounds of \(simulation.pulses) pulses, misalignment \(simulation.qber), loss \(simulation.lossDB) dB, eavesdropper \(simulation.eve), seed \(seed)")
        var aliceArguments: [String], bobArguments: [String]
        if mode == "pki" {
            // A throw-away CA and two Ed25519 node certificates (swift-certificates), valid from an
            // hour ago for a day; keys written with mode 0600. The pools start empty: the PKI
            // bootstrap is computational until the first round's key is in both pad streams. A
            // 2 KiB pad target lets a round of 100 000 pulses put pads in both, so the next
            // round is information-theoretic and delivers keys.
            let pki = try TestPKI.make(nodeNames: ["alice.example", "bob.example"], notBefore: Date().addingTimeInterval(-3600),
                                       validity: 86_400, using: &random)
            let files = try PKIFiles.write(pki, to: dir)
            func arguments(_ name: String, peer: String) -> [String] {
                let node = files.nodes[name]!
                return ["--cert", node.certificate, "--key", node.privateKey, "--ca", files.caCertificate, "--peer-name", peer,
                        "--pad-target", "2048"]
            }
            aliceArguments = arguments("alice.example", peer: "bob.example")
            bobArguments = arguments("bob.example", peer: "alice.example")
            say("state in \(dir) (mode 0700); test CA and certificates for alice.example and bob.example (Ed25519, made with swift-certificates); empty pools")
        } else {
            // A 16 KiB PSK: the two pad streams start just under the refill policy's 8 KiB target
            // level, so every round first tops them up, then yields consumer keys.
            let psk = try PSKFile.generate(byteCount: Self.pskBytes, using: &random)
            var encoded: [UInt8] = []
            psk.encode(into: &encoded)
            try SecretFile.createExclusive(path("link.psk"), contents: encoded)
            secureZero(&encoded)
            aliceArguments = ["--psk", path("link.psk")]
            bobArguments = aliceArguments
            say("state in \(dir) (mode 0700), PSK \(psk.id.uuidString.lowercased()) (\(Self.pskBytes) bytes)")
        }
        let common = ["--json", "--digest"] + sim.arguments

        let bob = try Child(binary, ["run", "--role", "bob", "--listen", "127.0.0.1:0", "--state", path("bob")] + bobArguments + common)
        defer { bob.terminate() }
        guard let listening = await bob.nextJSON(), listening["event"] as? String == "listening", let port = listening["port"] as? Int else {
            let err = bob.waitAndStderr()
            throw CLIError("Bob did not start listening: \(err.isEmpty ? "no output" : err)")
        }
        say("bob: pid \(bob.pid), listening on 127.0.0.1:\(port)")
        let alice = try Child(binary, ["run", "--role", "alice", "--connect", "127.0.0.1:\(port)", "--state", path("alice"),
                                       "--rounds", "\(rounds)"] + aliceArguments + common)
        defer { alice.terminate() }
        say("alice: pid \(alice.pid), connecting")

        progress.start(enabled: !json && isatty(STDERR_FILENO) == 1)
        async let bobSummary = Self.collect(bob, echo: nil)
        let aliceSummary = await Self.collect(alice) { event in self.show(event) }
        progress.stop()
        let bobResult = await bobSummary
        let aliceStatus = alice.wait(), bobStatus = bob.wait()

        let finished = aliceSummary?["rounds_finished"] as? Int ?? 0
        let aborted = aliceSummary?["rounds_aborted"] as? Int ?? 0
        let digestA = aliceSummary?["keys_digest"] as? String, digestB = bobResult?["keys_digest"] as? String
        let keysA = aliceSummary?["consumer_keys"] as? Int ?? 0, keysB = bobResult?["consumer_keys"] as? Int ?? 0
        if json {
            let o: [String: Any] = ["event": "demo", "rounds_finished": finished, "rounds_aborted": aborted,
                                    "alice_keys": keysA, "bob_keys": keysB, "alice_digest": digestA ?? NSNull(), "bob_digest": digestB ?? NSNull(),
                                    "match": digestA != nil && digestA == digestB && keysA > 0]
            FileHandle.standardOutput.write(try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]) + Data("\n".utf8))
        }
        guard aliceStatus == 0, bobStatus == 0 else {
            let reason = [alice.stderrText, bob.stderrText].filter { !$0.isEmpty }.joined(separator: "; ")
            throw CLIError("a node failed (alice exit \(aliceStatus), bob exit \(bobStatus)): \(reason.isEmpty ? "no message" : reason)")
        }
        guard finished > 0 else {
            let reasons = Set(aliceSummary?["abort_reasons"] as? [String] ?? [])
            let why = reasons.contains { $0.contains("QBER") }
                ? "the QBER was above the threshold (an eavesdropper on the quantum channel?)"
                : reasons.sorted().first.map { Self.stripAborted($0) } ?? "no round produced a key"
            FileHandle.standardError.write(Data("qkd-node demo: error: all \(aborted) rounds aborted: \(why); no key was produced\n".utf8))
            throw ExitCode(1)
        }
        guard keysA > 0 || keysB > 0 else {
            let why = mode == "pki"
                ? "the rounds on the computational PKI bootstrap only fill the empty pad streams (their keys are withheld); run more rounds (at least 2 with 100000 pulses) or more --pulses"
                : "no consumer key was left after refilling the pad streams; run more rounds or more --pulses"
            FileHandle.standardError.write(Data("qkd-node demo: error: \(finished) rounds finished but \(why)\n".utf8))
            throw ExitCode(1)
        }
        guard let digestA, digestA == digestB, keysA == keysB else {
            FileHandle.standardError.write(Data("qkd-node demo: error: the two nodes hold different consumer keys (alice \(keysA) keys, digest \(digestA ?? "none"); bob \(keysB), \(digestB ?? "none"))\n".utf8))
            throw ExitCode(1)
        }
        say("summary: \(finished) rounds finished, \(aborted) aborted; both nodes hold the same \(keysA) consumer keys of 32 bytes")
        say("         BLAKE2b-256 of the keys: alice \(digestA.prefix(16))..., bob \(digestB!.prefix(16))... (match)")
        if keep { say("state kept in \(dir)") }
    }

    private func say(_ text: String) {
        if !json {
            progress.clear()
            FileHandle.standardOutput.write(Data("\(text)\n".utf8))
        }
    }

    /// One live line per round (from Alice, who drives them).
    private func show(_ event: [String: Any]) {
        if json {
            if let data = try? JSONSerialization.data(withJSONObject: event, options: [.sortedKeys]) {
                FileHandle.standardOutput.write(data + Data("\n".utf8))
            }
            return
        }
        switch event["event"] as? String {
        case "established":
            say("session established: \(event["security"] as? String ?? "?")")
            progress.roundBegins(1)
        case "round":
            let qber = (event["qber"] as? Double ?? 0) * 100
            let f = (event["f"] as? Double).map { String(format: "%.3f", $0) } ?? "  -  "
            let text = String(format: "round %3d  QBER %5.2f%%  f %@  final %6d bits  pads %4d bits  %@  pool out %6d B in %6d B",
                              event["round"] as? Int ?? 0, qber, f, event["final_bits"] as? Int ?? 0, event["pad_bits"] as? Int ?? 0,
                              (event["security"] as? String ?? "?") == "information-theoretic" ? "ITS" : "computational",
                              event["pool_out"] as? Int ?? 0, event["pool_in"] as? Int ?? 0)
            say(text)
            progress.roundBegins((event["round"] as? Int ?? 0) + 1)
        case "aborted":
            say("round \(event["round"] as? Int ?? 0)  aborted: \(Self.stripAborted(event["reason"] as? String ?? "?"))")
            progress.roundBegins((event["round"] as? Int ?? 0) + 1)
        case "disconnected":
            say("link lost: \(event["reason"] as? String ?? "?"); reconnecting")
        default:
            break
        }
    }

    /// Reads a child's JSON lines until it exits; returns its summary.
    private static func collect(_ child: Child, echo: (([String: Any]) -> Void)?) async -> [String: Any]? {
        var summary: [String: Any]?
        var reasons: [String] = []
        while let event = await child.nextJSON() {
            if event["event"] as? String == "summary" { summary = event }
            if event["event"] as? String == "aborted", let reason = event["reason"] as? String { reasons.append(reason) }
            echo?(event)
        }
        summary?["abort_reasons"] = reasons
        return summary
    }

    /// Post-processing reasons start with "aborted: " or "peer aborted: "; the line says it already.
    static func stripAborted(_ reason: String) -> String {
        reason.hasPrefix("aborted: ") ? String(reason.dropFirst("aborted: ".count)) : reason
    }

    static func ownBinary() throws -> String {
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return exe }
        if let url = Bundle.main.executableURL { return url.path }
        throw CLIError("cannot locate the qkd-node binary to start the two nodes")
    }
}

/// A child process whose stdout is read as JSON lines and whose stderr is kept.
final class Child: Sendable {
    private let process: Process
    private let lines: AsyncStream<String>
    private let stderrData = Mutex(Data())
    private let stderrDone = DispatchSemaphore(value: 0)

    var pid: Int32 { process.processIdentifier }

    init(_ binary: String, _ arguments: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        let (stream, sink) = AsyncStream<String>.makeStream()
        lines = stream
        process = p
        try p.run()
        let outHandle = out.fileHandleForReading, errHandle = err.fileHandleForReading
        Thread {
            var pending = Data()
            while true {
                let chunk = outHandle.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let nl = pending.firstIndex(of: 0x0A) {
                    sink.yield(String(decoding: pending[pending.startIndex..<nl], as: UTF8.self))
                    pending = Data(pending[(nl + 1)...])
                }
            }
            sink.finish()
        }.start()
        Thread { [self] in
            let data = errHandle.readDataToEndOfFile()
            self.stderrData.withLock { $0 = data }
            self.stderrDone.signal()
        }.start()
    }

    /// The next JSON object on stdout (non-JSON lines are skipped), or nil at its end.
    func nextJSON() async -> [String: Any]? {
        // One reader at a time; a fresh iterator continues the same stream.
        var it = lines.makeAsyncIterator()
        while let line = await it.next() {
            if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] { return object }
        }
        return nil
    }

    func wait() -> Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }

    var stderrText: String {
        stderrDone.wait()
        stderrDone.signal()
        return String(decoding: stderrData.withLock { $0 }, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func waitAndStderr() -> String {
        _ = wait()
        return stderrText
    }

    func terminate() {
        if process.isRunning { process.terminate() }
    }
}

/// A single carriage-return-updated line on stderr while a round runs longer than half a
/// second: the round number and its elapsed time (the demo sees only the events Alice prints,
/// so it does not claim to know the round's phase). Only on a terminal and without --json; it
/// is erased before every ordinary line, so stdout and redirected output never carry it.
final class ProgressLine: Sendable {
    private struct State {
        var round: Int?
        var started = ContinuousClock.now
        var drawn = false
        var ticker: Task<Void, Never>?
        var frame = 0
    }
    private let state = Mutex(State())
    private let on = Atomic<Bool>(false)
    private var enabled: Bool { on.load(ordering: .relaxed) }

    /// Starts redrawing (every 200 ms) if `enabled`.
    func start(enabled: Bool) {
        guard enabled else { return }
        on.store(true, ordering: .relaxed)
        let task = Task { [self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(200))
                redraw()
            }
        }
        state.withLock { $0.ticker = task }
    }

    /// Stops and erases the line.
    func stop() {
        guard enabled else { return }
        state.withLock { $0.ticker?.cancel(); $0.ticker = nil; $0.round = nil }
        clear()
    }

    /// Round `n` is now running (the previous one just ended).
    func roundBegins(_ n: Int) {
        guard enabled else { return }
        state.withLock { $0.round = n; $0.started = .now }
    }

    /// Erases the line if drawn (before an ordinary line is printed).
    func clear() {
        guard enabled else { return }
        state.withLock { s in
            if s.drawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)); s.drawn = false }
        }
    }

    private func redraw() {
        state.withLock { s in
            guard let round = s.round else { return }
            let elapsed = ContinuousClock.now - s.started
            guard elapsed > .milliseconds(500) else { return }
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let spinner = ["|", "/", "-", "\\"][s.frame % 4]
            s.frame += 1
            let text = String(format: "\r\u{1B}[Kround %3d  %@ running for %.1f s", round, spinner, seconds)
            FileHandle.standardError.write(Data(text.utf8))
            s.drawn = true
        }
    }
}
