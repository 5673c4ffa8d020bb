public import ArgumentParser
import Foundation
import Logging
import Metrics
import QKDCrypto
import QKDKeyPool
import QKDNode
import QKDPostProcessing
import QKDSession
import QKDSimulation
import QKDTransport
import Synchronization

// `qkd-node bench pipeline --tcp` (issue 6): the post-processing pipeline between two processes
// of this binary, Alice and Bob, over loopback TCP (classical link) with the simulated quantum
// link on its own connection, once with per-round and once with per-frame authentication.
// Baseline in the same run: the in-process pipeline (`runPipeline`, the `bench pipeline` code
// path) on the same link parameters, block size and number of rounds.

extension AuthenticationGranularity: ExpressibleByArgument {}

/// The `--tcp` options of `qkd-node bench pipeline`.
struct PipelineTCPOptions: ParsableArguments {
    @Flag(name: .long, help: "Run Alice and Bob as two processes over loopback TCP (per-round and per-frame authentication); --bits is the sifted block size (default 2^20).")
    var tcp = false

    @Option(name: .long, help: "With --tcp: rounds per granularity (default 4).")
    var rounds: Int?
}

/// The TCP pipeline benchmark, run by `bench pipeline --tcp`.
struct BenchPipelineTCP {
    let options: PostProcessingBenchOptions
    let tcp: PipelineTCPOptions

    /// The run's simulated link: the `run` command's defaults (efficient BB84 with p_Z = 0.75,
    /// no loss, perfect detectors), so that every detection is in one slot of the round.
    static func parameters(pulses: Int, qber: Double) -> LinkParameters {
        LinkParameters(pulsesPerRound: pulses, probabilityZ: 0.75, misalignment: qber)
    }

    /// What one peer process reports at its end (JSON line `{"event":"summary",...}`).
    struct PeerSummary {
        var roundsFinished: Int
        var roundsAborted: Int
        var siftedBits: Int
        var finalBits: Int
        var padBitsRounds: Int
        var padBitsTotal: Int
        var seconds: Double
        var poolPadBytes: Int

        init(_ o: [String: Any]) throws {
            func int(_ k: String) throws -> Int {
                guard let v = o[k] as? NSNumber else { throw CLIError("the bench peer's summary lacks '\(k)'") }
                return v.intValue
            }
            roundsFinished = try int("rounds_finished")
            roundsAborted = try int("rounds_aborted")
            siftedBits = try int("sifted_bits")
            finalBits = try int("final_bits")
            padBitsRounds = try int("pad_bits_rounds")
            padBitsTotal = try int("pad_bits_total")
            poolPadBytes = try int("pool_pad_bytes")
            guard let s = o["seconds"] as? NSNumber else { throw CLIError("the bench peer's summary lacks 'seconds'") }
            seconds = s.doubleValue
        }
    }

    func run() throws {
        let q = options.qber ?? 0.02
        let targetBits = options.bits ?? (1 << 20)
        let rounds = max(1, tcp.rounds ?? 4)
        guard targetBits >= 512 else { throw CLIError("--bits must be at least 512 with --tcp") }

        // Pulses for a block of `targetBits` sifted key bits: a first guess from the basis
        // match rate p_Z^2, corrected by one in-process round.
        var pulses = Self.clampPulses(Int(Double(targetBits) / (0.75 * 0.75) * 1.05))
        var calibration = BB84Link(parameters: Self.parameters(pulses: pulses, qber: q), seed: 1)
        let (ca, cb) = calibration.runRound()
        if let s = try runPipeline(ca, cb, config: PostProcessingConfiguration(), seed: 1), s.siftedKeyBits > 0 {
            pulses = Self.clampPulses(Int((Double(pulses) * Double(targetBits) / Double(s.siftedKeyBits)).rounded()))
        }
        let parameters = Self.parameters(pulses: pulses, qber: q)

        // Baseline: the same rounds in process (simulation + both post-processing roles, one
        // thread), wall time like the two-process run.
        var link = BB84Link(parameters: parameters, seed: 2026)
        var baseSifted = 0, baseFinal = 0
        var baseSeconds = 0.0
        for r in 0..<rounds {
            let start = ContinuousClock.now
            let (a, b) = link.runRound()
            let summary = try runPipeline(a, b, config: PostProcessingConfiguration(), seed: UInt64(r + 1))
            baseSeconds += Self.seconds(ContinuousClock.now - start)
            if let summary {
                baseSifted += summary.siftedKeyBits
                baseFinal += summary.finalBits
            }
        }

        let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("qkd-bench-tcp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let pskPath = (dir as NSString).appendingPathComponent("link.psk")
        var random = SystemRandomSource()
        let psk = try PSKFile.generate(byteCount: 1 << 16, using: &random)
        var encoded: [UInt8] = []
        psk.encode(into: &encoded)
        defer { secureZero(&encoded) }
        try SecretFile.createExclusive(pskPath, contents: encoded)

        var results: [AuthenticationGranularity: PeerSummary] = [:]
        for g in [AuthenticationGranularity.perRound, .perFrame] {
            results[g] = try Self.runPair(dir: dir, psk: pskPath, granularity: g, rounds: rounds, pulses: pulses, qber: q)
        }
        let round = results[.perRound]!, frame = results[.perFrame]!
        let blockBits = round.roundsFinished > 0 ? round.siftedBits / round.roundsFinished : 0
        let baseSiftedRate = Double(baseSifted) / baseSeconds / 1e6
        let baseFinalRate = Double(baseFinal) / baseSeconds / 1e6
        func rate(_ bits: Int, _ s: PeerSummary) -> Double { s.seconds > 0 ? Double(bits) / s.seconds / 1e6 : 0 }
        func fraction(_ pads: Int, _ s: PeerSummary) -> Double { s.finalBits > 0 ? 100 * Double(pads) / Double(s.finalBits) : .infinity }
        let shape = "\(rounds) rounds of \(pulses) pulses (p_Z 0.75, QBER \(q), no loss): \(blockBits) sifted bits per block (target \(targetBits))"
        let perRoundFraction = fraction(round.padBitsRounds, round)
        let target = perRoundFraction <= 0.1 ? "met" : "not met"
        var rows: [PostProcessingBenchRow] = []
        for (name, s) in [("per-round", round), ("per-frame", frame)] {
            rows.append(.init(metric: "sifted key, TCP, \(name) auth", value: rate(s.siftedBits, s), unit: "Mbit/s sifted key",
                              baseline: baseSiftedRate,
                              note: "two processes over loopback TCP, Alice's wall time from the handshake to the last round; \(s.roundsFinished) rounds finished, \(s.roundsAborted) aborted; \(shape); baseline: in-process pipeline (simulation + both roles, one thread, wall time) on the same rounds"))
            rows.append(.init(metric: "final key, TCP, \(name) auth", value: rate(s.finalBits, s), unit: "Mbit/s final key",
                              baseline: baseFinalRate, note: "\(s.finalBits) final bits; baseline \(baseFinal) final bits in process"))
        }
        rows.append(.init(metric: "auth pad bits / distilled key, round frames", value: perRoundFraction, unit: "% (per-round auth)",
                          baseline: fraction(frame.padBitsRounds, frame),
                          note: "pads the session used from each round's start to its absorb (its padUsed actions, both directions), over final key bits; baseline: per-frame auth; target <= 0.1% per round at 2^20-bit blocks: \(target); Kiktenko et al. 2020 report under 1%"))
        let allFrames = fraction(round.padBitsTotal, round)
        rows.append(.init(metric: "auth pad bits / distilled key, all frames", value: allFrames, unit: "% (per-round auth)",
                          baseline: fraction(frame.padBitsTotal, frame),
                          note: "every pad of the connection (handshake, hello, absorbed, watermark sync and round frames; the qkd_node_pad_bits_used counter); baseline: per-frame auth; <= 0.1%: \(allFrames <= 0.1 ? "met" : "not met") (the per-frame absorbed messages add 2 pads per round, the handshake a few per connection)"))
        rows.append(.init(metric: "pool pad bytes spent / distilled key", value: fraction(8 * round.poolPadBytes, round), unit: "% (per-round auth)",
                          baseline: fraction(8 * frame.poolPadBytes, frame),
                          note: "pad-stream offsets Alice's pool moved (tags, plus margins burned by the watermark syncs); baseline: per-frame auth"))
        printPostProcessingBench(workload: "pipeline-tcp", rows: rows, json: options.json)
    }

    static func clampPulses(_ p: Int) -> Int { min(max(p, 1_000), 4_000_000) }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    /// This executable, to start the peers.
    static func executable() throws -> String {
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return exe }
        if let exe = Bundle.main.executablePath { return exe }
        throw CLIError("cannot find the qkd-node executable to start the bench peers")
    }

    /// Runs Bob then Alice as child processes to the end; returns Alice's summary.
    static func runPair(dir: String, psk: String, granularity: AuthenticationGranularity, rounds: Int, pulses: Int, qber: Double) throws -> PeerSummary {
        let exe = try executable()
        let tag = granularity.rawValue
        let common = ["--psk", psk, "--rounds", "\(rounds)", "--granularity", tag, "--pulses", "\(pulses)", "--qber", "\(qber)", "--seed", "2026"]
        let bob = try Child(exe, ["bench", "pipeline-peer", "--role", "bob", "--listen", "127.0.0.1:0", "--quantum", "127.0.0.1:0",
                                  "--state", (dir as NSString).appendingPathComponent("bob-\(tag)")] + common)
        guard let first = bob.readLine(), let listening = try? JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any],
              let port = listening["port"] as? NSNumber, let qport = listening["quantum_port"] as? NSNumber else {
            bob.terminate()
            throw CLIError("the Bob bench peer did not report its ports")
        }
        let alice = try Child(exe, ["bench", "pipeline-peer", "--role", "alice", "--connect", "127.0.0.1:\(port)", "--quantum", "127.0.0.1:\(qport)",
                                    "--state", (dir as NSString).appendingPathComponent("alice-\(tag)")] + common)
        let aliceOut = alice.finish()
        if alice.status != 0 { bob.terminate() }  // Bob would wait for a connection forever.
        let bobOut = bob.finish()
        guard alice.status == 0, bob.status == 0 else {
            throw CLIError("a bench peer failed (\(tag)): alice exit \(alice.status), bob exit \(bob.status); alice said: \(aliceOut.suffix(400))")
        }
        guard let line = aliceOut.split(separator: "\n").last,
              let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], o["event"] as? String == "summary" else {
            throw CLIError("the Alice bench peer printed no summary (\(tag))")
        }
        _ = bobOut
        return try PeerSummary(o)
    }

    /// A child process whose standard output is read by this (CLI) thread.
    final class Child {
        let process = Process()
        let out = Pipe()
        var buffer = Data()

        init(_ exe: String, _ arguments: [String]) throws {
            process.executableURL = URL(fileURLWithPath: exe)
            process.arguments = arguments
            process.standardOutput = out
            try process.run()
        }

        /// The next line of standard output, or nil at its end.
        func readLine() -> String? {
            while true {
                if let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self)
                    buffer = Data(buffer[(nl + 1)...])
                    return line
                }
                let chunk = out.fileHandleForReading.availableData
                if chunk.isEmpty { return nil }
                buffer.append(chunk)
            }
        }

        /// Reads standard output to its end and waits for the exit.
        func finish() -> String {
            buffer.append(out.fileHandleForReading.readDataToEndOfFile())
            process.waitUntilExit()
            return String(decoding: buffer, as: UTF8.self)
        }

        var status: Int32 { process.terminationStatus }

        func terminate() {
            if process.isRunning { process.terminate() }
        }
    }
}

/// Counts the node's counters (the bench reads `qkd_node_pad_bits_used`).
final class BenchMetrics: MetricsFactory, Sendable {
    final class Handler: CounterHandler, RecorderHandler, MeterHandler, TimerHandler, Sendable {
        let total = Atomic<Int64>(0)
        func increment(by amount: Int64) { total.add(amount, ordering: .relaxed) }
        func reset() { total.store(0, ordering: .relaxed) }
        func record(_ value: Int64) {}
        func record(_ value: Double) {}
        func set(_ value: Int64) {}
        func set(_ value: Double) {}
        func increment(by amount: Double) {}
        func decrement(by amount: Double) {}
        func recordNanoseconds(_ duration: Int64) {}
    }

    private let counters = Mutex<[String: Handler]>([:])

    func counter(_ label: String) -> Int64 { counters.withLock { $0[label]?.total.load(ordering: .relaxed) ?? 0 } }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        counters.withLock { c in
            if let h = c[label] { return h }
            let h = Handler()
            c[label] = h
            return h
        }
    }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler { Handler() }
    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler { Handler() }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler { Handler() }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyMeter(_ handler: any MeterHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}

/// `qkd-node bench pipeline-peer` (hidden): one node of `bench pipeline --tcp`. Bob prints
/// `{"event":"listening","port":N,"quantum_port":M}` first; both print one
/// `{"event":"summary",...}` line at the end with counters, never key bytes.
struct BenchPipelinePeerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline-peer",
        abstract: "One node of 'bench pipeline --tcp' (started by it).",
        shouldDisplay: false
    )

    @Option(name: .long) var role: String
    @Option(name: .long) var listen: String?
    @Option(name: .long) var connect: String?
    @Option(name: .long) var quantum: String
    @Option(name: .long) var state: String
    @Option(name: .long) var psk: String
    @Option(name: .long) var rounds: Int
    @Option(name: .long) var granularity: AuthenticationGranularity
    @OptionGroup var simulation: SimulationOptions

    /// One unbuffered line on standard output (the parent reads Bob's ports before Alice starts).
    static func emit(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    func validate() throws {
        guard role == "alice" || role == "bob" else { throw ValidationError("--role must be 'alice' or 'bob'") }
        guard (listen == nil) != (connect == nil) else { throw ValidationError("give exactly one of --listen or --connect") }
    }

    func run() async throws {
        let sessionRole: SessionRole = role == "alice" ? .alice : .bob
        let pool = try RunCommand.openPool(state: state, role: sessionRole == .alice ? .alice : .bob, psk: psk)
        defer { pool.close() }
        let links: NodeLinks
        var listeners: [TransportListener] = []
        if let listen {
            let classical = try await RunCommand.endpoint(listen, option: "--listen").listen()
            let q = try await RunCommand.endpoint(quantum, option: "--quantum").listen()
            listeners = [classical, q]
            let router = LinkRouter()
            router.serve(classical)
            router.serve(q)
            var ports: [String] = []
            for l in listeners { if case .tcp(_, let port) = l.endpoint.kind { ports.append("\(port)") } }
            guard ports.count == 2 else { throw CLIError("the bench peer listens on TCP only") }
            Self.emit("{\"event\": \"listening\", \"port\": \(ports[0]), \"quantum_port\": \(ports[1])}")
            links = NodeLinks(classical: { try await router.next(.classical) }, quantum: { try await router.next(.quantum) })
        } else {
            let classical = try RunCommand.endpoint(connect!, option: "--connect")
            let q = try RunCommand.endpoint(quantum, option: "--quantum")
            links = NodeLinks(classical: { try await LinkRouter.connect(classical, .classical) },
                              quantum: { try await LinkRouter.connect(q, .quantum) })
        }
        defer { Task { [listeners] in for l in listeners { await l.close() } } }

        var logger = Logger(label: "qkd.bench")
        logger.logLevel = .error
        let metrics = BenchMetrics()
        var configuration = NodeConfiguration(role: sessionRole, simulation: simulation.parameters, logger: logger)
        configuration.seed = simulation.seed.map { $0 &+ (sessionRole == .alice ? 0 : 1) }
        configuration.rounds = rounds
        configuration.maxReconnectAttempts = 3
        configuration.granularity = granularity
        configuration.metricsFactory = metrics
        let node = try QKDLinkNode(configuration: configuration, pool: pool, links: links)
        let startOffsets = pool.servedWatermarks()

        let task = Task { try await node.run() }
        var established: ContinuousClock.Instant?
        var lastRound: ContinuousClock.Instant?
        var finished = 0, aborted = 0, sifted = 0, final = 0, padRounds = 0
        for await event in node.events {
            switch event {
            case .established: if established == nil { established = .now }
            case .roundFinished(let r):
                lastRound = .now
                finished += 1
                sifted += r.summary.siftedKeyBits
                final += r.summary.finalBits
                padRounds += r.padBitsUsed
            case .roundAborted: aborted += 1
            default: break
            }
        }
        var failure: String?
        do { try await task.value } catch { failure = "\(error)" }
        let endOffsets = pool.servedWatermarks()
        let poolBytes = (endOffsets.outbound - startOffsets.outbound) + (endOffsets.inbound - startOffsets.inbound)
        let seconds = established.flatMap { e in lastRound.map { BenchPipelineTCP.seconds($0 - e) } } ?? 0
        var line = "{\"event\": \"summary\", \"rounds_finished\": \(finished), \"rounds_aborted\": \(aborted), \"sifted_bits\": \(sifted), "
            + "\"final_bits\": \(final), \"pad_bits_rounds\": \(padRounds), \"pad_bits_total\": \(metrics.counter("qkd_node_pad_bits_used")), "
            + "\"pool_pad_bytes\": \(poolBytes), \"seconds\": \(seconds)"
        if let failure { line += ", \"error\": \(BenchSupport.jsonString(failure))" }
        Self.emit(line + "}")
        if failure != nil { throw ExitCode(1) }
    }
}
