import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A `qkd-node` child process whose stdout JSON lines are collected as they arrive, so a test
/// can wait for one (the listening port), kill the process with SIGKILL at any point, and read
/// everything it printed before it died.
final class NodeProcess: @unchecked Sendable {
    let name: String
    private let process = Process()
    private let out = Pipe()
    private let err = Pipe()
    private let state = Mutex<(lines: [String], partial: Data, stderr: Data, outClosed: Bool)>(([], Data(), Data(), false))

    /// Starts `qkd-node` with `arguments`.
    init(_ name: String, _ arguments: [String]) throws {
        self.name = name
        let binary = try #require(NodeBinary.locate(), "qkd-node binary not found; build it with 'swift build --product qkd-node' or set QKD_NODE_BINARY")
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let outHandle = out.fileHandleForReading, errHandle = err.fileHandleForReading
        Thread.detachNewThread { [self] in
            while true {
                let data = outHandle.availableData
                if data.isEmpty { state.withLock { $0.outClosed = true }; return }
                state.withLock { s in
                    s.partial.append(data)
                    while let nl = s.partial.firstIndex(of: UInt8(ascii: "\n")) {
                        s.lines.append(String(decoding: s.partial[s.partial.startIndex..<nl], as: UTF8.self))
                        s.partial = Data(s.partial[(nl + 1)...])
                    }
                }
            }
        }
        Thread.detachNewThread { [self] in
            while true {
                let data = errHandle.availableData
                if data.isEmpty { return }
                state.withLock { $0.stderr.append(data) }
            }
        }
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var stderrText: String { state.withLock { String(decoding: $0.stderr, as: UTF8.self) } }

    /// Every complete JSON line printed so far.
    var events: [[String: Any]] {
        state.withLock { $0.lines }.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    func events(_ kind: String) -> [[String: Any]] { events.filter { $0["event"] as? String == kind } }

    /// Waits (polling) for the first JSON line with `"event": kind`; nil on timeout or exit.
    func waitFor(_ kind: String, timeout: Double = 20) -> [String: Any]? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let e = events(kind).first { return e }
            if !process.isRunning && state.withLock({ $0.outClosed }) { return events(kind).first }
            usleep(20_000)
        }
        return nil
    }

    /// Waits for the process to exit; SIGKILLs it after `timeout` seconds. Returns its status.
    @discardableResult
    func wait(timeout: Double = 60) -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill9() }
        process.waitUntilExit()
        // Let the reader threads drain the pipes.
        let drain = Date().addingTimeInterval(2)
        while !state.withLock({ $0.outClosed }) && Date() < drain { usleep(5_000) }
        return process.terminationStatus
    }

    /// SIGKILL, then reap.
    func kill9() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}

/// A private temporary directory for one reliability test, removed afterwards.
func reliabilityDirectory() throws -> TempDir { TempDir() }

/// `qkd-node pool verify --state DIR`: status and output.
func poolVerify(_ state: String) throws -> (ok: Bool, text: String) {
    let r = try NodeBinary.run(["pool", "verify", "--state", state])
    return (r.status == 0, r.stdout + r.stderr)
}

/// `qkd-node pool status --json`, decoded.
func poolStatus(_ state: String) throws -> [String: Any] {
    let r = try NodeBinary.run(["pool", "status", "--state", state, "--json"])
    #expect(r.status == 0, "pool status failed: \(r.stderr)")
    return try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
}

/// The durable watermark of each stream (`outbound`/`inbound`) and the ledger's reserved plus
/// skipped pad bytes, from `pool status --json`.
struct PoolMarks: CustomStringConvertible {
    var outbound: UInt64
    var inbound: UInt64
    var ledgerSpent: Int
    var roundsAbsorbed: Int
    /// Unreserved pad bytes per stream (outbound, inbound).
    var remaining: (UInt64, UInt64)

    init(_ status: [String: Any]) {
        let streams = status["streams"] as? [[String: Any]] ?? []
        func mark(_ d: String) -> UInt64 {
            (streams.first { $0["direction"] as? String == d }?["durableWatermark"] as? NSNumber)?.uint64Value ?? 0
        }
        func left(_ d: String) -> UInt64 {
            (streams.first { $0["direction"] as? String == d }?["remaining"] as? NSNumber)?.uint64Value ?? 0
        }
        remaining = (left("outbound"), left("inbound"))
        outbound = mark("outbound")
        inbound = mark("inbound")
        let ledger = status["ledger"] as? [String: Any] ?? [:]
        let reserved = (ledger["padReserved"] as? [String: Int] ?? [:]).values.reduce(0, +)
        let skipped = (ledger["padSkipped"] as? [String: Int] ?? [:]).values.reduce(0, +)
        ledgerSpent = reserved + skipped
        roundsAbsorbed = status["roundsAbsorbed"] as? Int ?? -1
    }

    var description: String { "watermarks out \(outbound) / in \(inbound), ledger spent \(ledgerSpent), rounds \(roundsAbsorbed), unreserved out \(remaining.0) / in \(remaining.1)" }
}

/// A tiny seeded generator (SplitMix64) for the tests' random choices.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D6_049B_133D_111F
        return z ^ (z >> 31)
    }
}
