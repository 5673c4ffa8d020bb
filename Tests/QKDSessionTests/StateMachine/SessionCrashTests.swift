import Foundation
import QKDTestSupport
import QKDCrypto
import QKDKeyPool
import Testing
@testable import QKDSession

/// DESIGN.md key pool invariant 1 through the session, proved by killing processes: a child
/// `qkd-node session-torture` runs resumed pool-mode session pairs between two real pools and
/// logs every outbound slot (append + fsync) before the session gets its bytes. We `kill -9` it
/// at random moments, at least 20 times, and restart it over the same pools. No slot may appear
/// twice per side across all runs, every run that lived long enough resumed (its handshake
/// succeeded), a final run completes cleanly, every logged slot lies below the pool's durable
/// watermark, and `PoolVerifier` passes on both pools.
@Suite struct SessionCrashTests {
    static let kills = Int(ProcessInfo.processInfo.environment["QKD_SESSION_CRASH_KILLS"] ?? "") ?? 24

    struct LogSummary {
        var slots: [String: [UInt64]] = ["a": [], "b": []]
        var established = 0
        var closes = 0
    }

    static func readLog(_ path: String) -> LogSummary {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if !text.hasSuffix("\n") { lines.removeLast() }  // a line cut by the kill: not a sent slot
        var summary = LogSummary()
        for line in lines where !line.isEmpty {
            let fields = line.split(separator: " ")
            switch fields.first {
            case "E": summary.established += 1
            case "C": summary.closes += 1
            case "a", "b":
                guard fields.count == 2, let slot = UInt64(fields[1]) else { Issue.record("malformed log line '\(line)'"); continue }
                summary.slots[String(fields[0])]!.append(slot)
            default:
                Issue.record("malformed log line '\(line)'")
            }
        }
        return summary
    }

    /// Async: the child's exit is awaited and the waits are `Task.sleep`s (``ChildProcess``),
    /// so the test never holds a thread of the cooperative pool while a child runs.
    @Test(.timeLimit(.minutes(2)))
    func killNineDuringResumedSessionsNeverReusesASlot() async throws {
        try await offThePool {
            let binary = try #require(QKDNodeBinary.locate(), "qkd-node binary not found next to the test bundle; build it with 'swift build' or set QKD_NODE_BINARY")
            let dir = TempDirectory()
            var random = DeterministicRandomSource(seed: 2026)
            let psk = try PSKFile.generate(byteCount: 1 << 20, using: &random)
            let configuration = KeyPool.Configuration(chunkPads: 4, lowWaterBytes: 0)
            for (name, role) in [("alice", QKDKeyPool.Role.alice), ("bob", .bob)] {
                let pool = try KeyPool.create(directory: dir.sub(name), role: role, linkID: psk.id, configuration: configuration)
                _ = try pool.importPSK(psk)
                pool.close()
            }
            let log = dir.sub("slots.log"), errors = dir.sub("stderr.log")
            _ = FileManager.default.createFile(atPath: errors, contents: nil)
            let errorHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: errors))
            func child(_ extra: [String] = []) throws -> ChildProcess {
                try ChildProcess(binary, ["session-torture", "--state", dir.path, "--log", log, "--chunk-pads", "4"] + extra,
                                 stdout: .discard, stderr: .file(errorHandle))
            }

            var system = SystemRandomNumberGenerator()
            var killed = 0, attempts = 0, selfExits = 0, waitedRuns = 0, missedResumes = 0
            while killed < Self.kills && attempts < Self.kills * 3 {
                attempts += 1
                let before = Self.readLog(log).established
                let p = try child()
                if Int.random(in: 0..<4, using: &system) == 0 {
                    // Anywhere: while opening the pools, recovering the WAL, in the handshake.
                    try await Task.sleep(for: .microseconds(Int.random(in: 0...30_000, using: &system)))
                } else {
                    // After this run's handshake succeeded, in the middle of its traffic.
                    waitedRuns += 1
                    _ = await p.waitUntil(timeout: .seconds(10)) { Self.readLog(log).established > before }
                    if Self.readLog(log).established <= before { missedResumes += 1 }
                    try await Task.sleep(for: .microseconds(Int.random(in: 0...50_000, using: &system)))
                }
                if p.isRunning {
                    await p.kill9()
                    if p.killedBySignal { killed += 1 }
                } else {
                    await p.exit()
                    selfExits += 1
                }
            }
            // A last run to completion: it resumes after the last kill and closes cleanly.
            let beforeFinal = Self.readLog(log)
            let last = try child(["--sessions", "2"])
            let lastStatus = await last.exit(timeout: .seconds(60))
            try errorHandle.close()
            let childErrors = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
            #expect(lastStatus == 0 && !last.killedBySignal, "the final run failed: \(childErrors.suffix(2000))")
            #expect(selfExits == 0, "children exited on their own: \(childErrors.prefix(2000))")
            #expect(killed >= Self.kills, "only \(killed) kills in \(attempts) attempts")
            #expect(missedResumes == 0, "\(missedResumes) of \(waitedRuns) runs never finished their resumed handshake")

            let summary = Self.readLog(log)
            #expect(summary.established >= beforeFinal.established + 2 && summary.closes >= beforeFinal.closes + 2)
            #expect(summary.established >= waitedRuns)
            for side in ["a", "b"] {
                let slots = summary.slots[side]!
                #expect(Set(slots).count == slots.count, "side \(side): \(slots.count - Set(slots).count) slots handed out twice")
                #expect(slots.count > Self.kills, "too few slots logged for the test to mean anything")
            }
            // Every logged slot lies below the durable outbound watermark of its pool.
            for (name, side) in [("alice", "a"), ("bob", "b")] {
                let pool = try KeyPool.open(directory: dir.sub(name), configuration: configuration)
                let durable = pool.watermarks().outbound
                pool.close()
                #expect(((summary.slots[side]!.max() ?? 0) + 1) * 16 <= durable)
                #expect(try PoolVerifier.verify(directory: dir.sub(name)).isEmpty, "pool verify failed for \(name)")
            }
        }
    }
}

