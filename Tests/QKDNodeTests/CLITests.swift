import Foundation
import QKDTestSupport
import Testing

/// `qkd-node` as a subprocess (QKDTestSupport's `QKDNodeBinary`), with JSON-line parsing.
enum NodeBinary {
    static func path() throws -> String {
        try #require(QKDNodeBinary.locate(), "qkd-node binary not found next to the test bundle; build it with 'swift build' or set QKD_NODE_BINARY")
    }

    /// Runs `qkd-node` to completion (awaited, never blocking a thread of the cooperative pool).
    static func run(_ arguments: [String], timeout: Duration = .seconds(120)) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await QKDNodeBinary.run(try path(), arguments, timeout: timeout)
    }

    static func jsonLines(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }
}


/// `qkd-node demo` as a subprocess: two more processes over loopback TCP.
@Suite(.serialized, .timeLimit(.minutes(3))) struct CLITests {
    @Test func demoEndsWithTheSameKeysOnBothNodes() async throws {
        try await offThePool {
            let result = try await NodeBinary.run(["demo", "--rounds", "3", "--pulses", "40000", "--json"])
            #expect(result.status == 0, "stderr: \(result.stderr)")
            let lines = NodeBinary.jsonLines(result.stdout)
            let rounds = lines.filter { $0["event"] as? String == "round" }
            #expect(rounds.count == 3)
            let demo = try #require(lines.last { $0["event"] as? String == "demo" })
            #expect(demo["match"] as? Bool == true)
            let a = try #require(demo["alice_digest"] as? String), b = try #require(demo["bob_digest"] as? String)
            #expect(a == b && a.count == 64)
            #expect((demo["alice_keys"] as? Int ?? 0) > 0)
        }
    }

    @Test func demoWithAnEavesdropperFails() async throws {
        try await offThePool {
            let result = try await NodeBinary.run(["demo", "--rounds", "2", "--pulses", "40000", "--eve", "1"])
            #expect(result.status != 0)
            #expect(result.stderr.contains("aborted"), "stderr: \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "one clear line on stderr")
        }
    }

    @Test func failuresAreOneLineOnStderr() async throws {
        try await offThePool {
            let bad = try await NodeBinary.run(["run", "--role", "carol", "--listen", "127.0.0.1:0", "--state", "/nonexistent", "--psk", "x"])
            #expect(bad.status != 0 && bad.stderr.contains("--role"))
            let missing = try await NodeBinary.run(["run", "--role", "alice", "--connect", "127.0.0.1:1", "--state", NSTemporaryDirectory() + "qkd-missing-\(UUID().uuidString)", "--psk", "/nonexistent/link.psk"])
            #expect(missing.status != 0)
            #expect(missing.stderr.contains("/nonexistent/link.psk"), "stderr: \(missing.stderr)")
            #expect(missing.stderr.split(separator: "\n").count == 1)
        }
    }
}
