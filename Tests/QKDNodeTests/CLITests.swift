import Foundation
import Testing

/// The `qkd-node` binary next to the test bundle (as Tests/QKDKeyPoolTests/Support.swift finds it).
enum NodeBinary {
    static func locate() -> String? {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["QKD_NODE_BINARY"], fm.isExecutableFile(atPath: env) { return env }
        var starts: [URL] = []
        if let exe = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe") { starts.append(URL(fileURLWithPath: exe)) }
        if let exe = Bundle.main.executableURL { starts.append(exe) }
        starts.append(Bundle.main.bundleURL)
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") { starts.append(bundle.bundleURL) }
        for start in starts {
            var dir = start.deletingLastPathComponent()
            for _ in 0..<5 {
                let candidate = dir.appendingPathComponent("qkd-node").path
                if fm.isExecutableFile(atPath: candidate) { return candidate }
                dir.deleteLastPathComponent()
            }
        }
        return nil
    }

    static func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let binary = try #require(locate(), "qkd-node binary not found next to the test bundle; build it with 'swift build' or set QKD_NODE_BINARY")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let errData = Mutex(Data())
        let reader = Thread { errData.withLock { $0 = err.fileHandleForReading.readDataToEndOfFile() } }
        reader.start()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        while errData.withLock({ $0.isEmpty }) && !reader.isFinished { usleep(1000) }
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: errData.withLock { $0 }, as: UTF8.self))
    }

    static func jsonLines(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }
}

import Synchronization

/// `qkd-node demo` as a subprocess: two more processes over loopback TCP.
@Suite(.serialized) struct CLITests {
    @Test func demoEndsWithTheSameKeysOnBothNodes() throws {
        let result = try NodeBinary.run(["demo", "--rounds", "3", "--pulses", "40000", "--json"])
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

    @Test func demoWithAnEavesdropperFails() throws {
        let result = try NodeBinary.run(["demo", "--rounds", "2", "--pulses", "40000", "--eve", "1"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("aborted"), "stderr: \(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "one clear line on stderr")
    }

    @Test func failuresAreOneLineOnStderr() throws {
        let bad = try NodeBinary.run(["run", "--role", "carol", "--listen", "127.0.0.1:0", "--state", "/nonexistent", "--psk", "x"])
        #expect(bad.status != 0 && bad.stderr.contains("--role"))
        let missing = try NodeBinary.run(["run", "--role", "alice", "--connect", "127.0.0.1:1", "--state", NSTemporaryDirectory() + "qkd-missing-\(UUID().uuidString)", "--psk", "/nonexistent/link.psk"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("/nonexistent/link.psk"), "stderr: \(missing.stderr)")
        #expect(missing.stderr.split(separator: "\n").count == 1)
    }
}
