import Foundation
import QKDTestSupport
import QKDCrypto
import Testing
@testable import QKDKeyPool
#if canImport(Glibc)
import Glibc
#endif

/// DESIGN.md invariant 1, proved by killing processes (Spec/keypool.md, "Invariants"): a child
/// `qkd-node pool torture` reserves pads and logs every pad it "sent" (append + fsync, after the
/// reservation returned). We `kill -9` it at random moments, at least 200 times, restarting it
/// against the same state directory each time. No pad may appear twice in the log, every logged
/// pad must lie below the durable watermark, and `qkd-node pool verify` must pass.
@Suite struct CrashSafetyTests {
    /// Kills per run; `QKD_CRASH_KILLS` overrides (the issue asks for at least 200).
    static let kills = Int(ProcessInfo.processInfo.environment["QKD_CRASH_KILLS"] ?? "") ?? 200

    /// Async with `Task.sleep` and an awaited exit (``ChildProcess``): two hundred children
    /// must not hold a thread of the cooperative pool while they run (it starved the suite).
    @Test(.timeLimit(.minutes(5)))
    func killNineNeverReusesAPad() async throws {
        try await offThePool {
            let binary = try #require(QKDNodeBinary.locate(), "qkd-node binary not found next to the test bundle; build it with 'swift build' or set QKD_NODE_BINARY")
            let dir = TempDir()
            let psk = dir.sub("link.psk"), state = dir.sub("state"), log = dir.sub("sent.log"), errors = dir.sub("stderr.log")
            var r = try await QKDNodeBinary.run(binary, ["psk", "generate", "--bytes", "2000000", "--out", psk])
            #expect(r.status == 0, "psk generate: \(r.stderr)")
            r = try await QKDNodeBinary.run(binary, ["pool", "init", "--state", state, "--role", "alice", "--psk", psk])
            try #require(r.status == 0, "pool init: \(r.stderr)")
            _ = FileManager.default.createFile(atPath: errors, contents: nil)
            let errorHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: errors))

            var random = SystemRandomNumberGenerator()
            var killed = 0, attempts = 0, selfExits = 0
            while killed < Self.kills && attempts < Self.kills * 3 {
                attempts += 1
                let before = Self.lineCount(log)
                let child = try ChildProcess(binary, ["pool", "torture", "--state", state, "--log", log, "--chunk-pads", "8"],
                                             stdout: .discard, stderr: .file(errorHandle))
                if Int.random(in: 0..<4, using: &random) == 0 {
                    // A quarter of the kills land anywhere: loading, opening, WAL recovery, first chunk.
                    try await Task.sleep(for: .microseconds(Int.random(in: 0...40_000, using: &random)))
                } else {
                    // The rest land while it reserves: wait until it logged something, then a bit more.
                    _ = await child.waitUntil(timeout: .seconds(5)) { Self.lineCount(log) > before }
                    try await Task.sleep(for: .microseconds(Int.random(in: 0...8_000, using: &random)))
                }
                if child.isRunning {
                    await child.kill9()
                    if child.killedBySignal { killed += 1 }
                } else {
                    await child.exit()
                    selfExits += 1
                }
            }
            try errorHandle.close()
            let childErrors = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
            #expect(selfExits == 0, "children exited on their own: \(childErrors.prefix(2000))")
            #expect(killed >= Self.kills, "only \(killed) kills in \(attempts) attempts")

            // No pad offset twice, per direction.
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            if !text.hasSuffix("\n") { lines.removeLast() }  // A line cut by the kill is not a sent pad.
            var seen: [String: Set<UInt64>] = ["o": [], "i": []]
            var maxEnd: [String: UInt64] = ["o": 0, "i": 0]
            var duplicates = 0
            for line in lines where !line.isEmpty {
                let f = line.split(separator: " ")
                guard f.count == 3, let offset = UInt64(f[1]), let count = UInt64(f[2]), seen[String(f[0])] != nil else {
                    Issue.record("malformed log line '\(line)'"); continue
                }
                let d = String(f[0])
                for k in 0..<count {
                    if !seen[d]!.insert(offset + 16 * k).inserted { duplicates += 1 }
                }
                maxEnd[d] = max(maxEnd[d]!, offset + 16 * count)
            }
            #expect(duplicates == 0, "\(duplicates) pads were handed out twice")
            #expect(seen["o"]!.count + seen["i"]!.count > Self.kills, "too few pads logged for the test to mean anything")

            // Served <= durable: every logged pad lies below the durable watermark.
            let pool = try KeyPool.open(directory: state)
            let w = pool.watermarks()
            #expect(maxEnd["o"]! <= w.outbound && maxEnd["i"]! <= w.inbound)
            #expect(pool.watermarks().outbound % 16 == 0)
            pool.close()

            r = try await QKDNodeBinary.run(binary, ["pool", "verify", "--state", state])
            #expect(r.status == 0, "pool verify failed: \(r.stderr)")
        }
    }

    @Test func verifyCommandFailsOnAViolation() async throws {
        try await offThePool {
            let binary = try #require(QKDNodeBinary.locate())
            let dir = TempDir()
            let psk = dir.sub("psk"), state = dir.sub("s")
            _ = try await QKDNodeBinary.run(binary, ["psk", "generate", "--bytes", "4096", "--out", psk])
            #expect(try await QKDNodeBinary.run(binary, ["pool", "init", "--state", state, "--role", "bob", "--psk", psk]).status == 0)
            #expect(try await QKDNodeBinary.run(binary, ["pool", "verify", "--state", state]).status == 0)
            let again = try await QKDNodeBinary.run(binary, ["pool", "init", "--state", state, "--role", "bob", "--psk", psk])
            #expect(again.status != 0 && again.stderr.contains("already exists"))
            chmod(state, 0o755)
            let r = try await QKDNodeBinary.run(binary, ["pool", "verify", "--state", state])
            #expect(r.status != 0 && r.stderr.contains("insecure-permissions"))
            chmod(state, 0o700)
            let export = try await QKDNodeBinary.run(binary, ["keys", "export", "--state", state, "--json"])
            #expect(export.status == 0 && export.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[]")
        }
    }

    static func lineCount(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : 0  // Size grows with every logged line.
    }
}
