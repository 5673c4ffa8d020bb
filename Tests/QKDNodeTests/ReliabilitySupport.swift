import Foundation
import QKDKeyPool
import QKDTestSupport
import Synchronization
import Testing

/// A `qkd-node` child process whose stdout JSON lines are collected as they arrive (by
/// QKDTestSupport's ``ChildProcess``: reader threads off the cooperative pool, exit awaited from
/// the termination handler), so a test can await one (the listening port), signal or SIGKILL
/// the process at any point, and read everything it printed before it died.
final class NodeProcess: @unchecked Sendable {
    let name: String
    let child: ChildProcess
    /// The lines parsed so far (waits poll every 10 ms: parse each line once).
    private let parsed = Mutex<[[String: Any]]>([])

    /// Starts `qkd-node` with `arguments`.
    init(_ name: String, _ arguments: [String]) throws {
        self.name = name
        child = try ChildProcess(try NodeBinary.path(), arguments, name: name)
    }

    var isRunning: Bool { child.isRunning }
    var stderrText: String { child.stderrText }

    /// Every complete JSON line printed so far.
    var events: [[String: Any]] {
        let lines = child.lines
        return parsed.withLock { p in
            if p.count < lines.count {
                p += lines[p.count...].map { (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) ?? [:] }
            }
            return p.filter { !$0.isEmpty }
        }
    }

    func events(_ kind: String) -> [[String: Any]] { events.filter { $0["event"] as? String == kind } }

    /// "t=1.2s connected, t=1.3s established, ..." with the first 60 characters of any reason.
    var timeline: String {
        zip(child.lineTimes, child.lines).compactMap { time, line -> String? in
            guard let e = NodeBinary.jsonLines(line).first, let kind = e["event"] as? String else { return nil }
            let reason = (e["reason"] as? String).map { " (\($0.prefix(60)))" } ?? ""
            return String(format: "t=%.1fs ", Double(time.components.seconds) + Double(time.components.attoseconds) / 1e18) + kind + reason
        }.joined(separator: ", ")
    }

    /// Awaits the `count`-th JSON line with `"event": kind` (1: the first); nil on timeout or
    /// exit.
    func waitFor(_ kind: String, count: Int = 1, timeout: Duration = .seconds(30)) async -> [String: Any]? {
        _ = await child.waitUntil(timeout: timeout) { events(kind).count >= count }
        let found = events(kind)
        return found.count >= count ? found[count - 1] : nil
    }

    /// Awaits the exit; SIGKILLs the process after `timeout`. Returns its status.
    @discardableResult
    func wait(timeout: Duration = .seconds(60)) async -> Int32 { await child.exit(timeout: timeout) }

    /// Sends a signal (SIGINT, SIGTERM).
    func send(_ signal: Int32) { child.send(signal) }

    /// SIGKILL, then reap.
    func kill9() async { await child.kill9() }
}

/// `qkd-node pool verify --state DIR`: status and output.
func poolVerify(_ state: String) async throws -> (ok: Bool, text: String) {
    let r = try await NodeBinary.run(["pool", "verify", "--state", state])
    return (r.status == 0, r.stdout + r.stderr)
}

/// `qkd-node pool status --json`, decoded.
func poolStatus(_ state: String) async throws -> [String: Any] {
    let r = try await NodeBinary.run(["pool", "status", "--state", state, "--json"])
    #expect(r.status == 0, "pool status failed: \(r.stderr)")
    return try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
}

/// The same figures in process (no child: cheap enough to check after every kill). Opens the
/// pool the way `pool status` does; only while no node holds it.
func poolMarksInProcess(_ state: String) throws -> PoolMarks {
    let pool = try KeyPool.open(directory: state)
    defer { pool.close() }
    let data = try JSONEncoder().encode(try pool.status())
    return PoolMarks(try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any]))
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
