import Foundation
import QKDTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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

/// Issue 6: a refused peer, a port in use and bad timeouts end `run` with one line on stderr.
@Suite(.timeLimit(.minutes(1))) struct RunFailureTests {
    /// A fresh state directory path (not created).
    private static func stateDirectory() -> String { NSTemporaryDirectory() + "qkd-clifail-\(UUID().uuidString)" }

    /// A PSK file for `run`, in a fresh directory.
    private static func makePSK() async throws -> String {
        let dir = NSTemporaryDirectory() + "qkd-clifail-psk-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/link.psk"
        let r = try await NodeBinary.run(["psk", "generate", "--bytes", "65536", "--out", path])
        try #require(r.status == 0, "psk generate failed: \(r.stderr)")
        return path
    }

    /// A listening TCP socket on 127.0.0.1 with an ephemeral port (no SO_REUSEADDR), closed by
    /// the caller: nothing else can bind that port meanwhile, and connecting to the port of a
    /// closed one is refused.
    private static func listeningSocket() throws -> (fd: Int32, port: Int) {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        try #require(fd >= 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { a in
                bind(fd, a, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, a, &length) == 0
            }
        }
        if !bound { close(fd) }
        try #require(bound, "could not bind a listening socket on 127.0.0.1: errno \(errno)")
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    @Test func aRefusedPeerEndsWithinTheConnectTimeout() async throws {
        try await offThePool {
            let psk = try await Self.makePSK()
            // A port that was just free: bound, then closed, so a connection there is refused.
            let closed = try Self.listeningSocket()
            close(closed.fd)
            let address = "127.0.0.1:\(closed.port)"
            // Without --connect-timeout the node would try for about 30 s; the child is killed
            // after 20 s, so a status 0 or a kill fails the test.
            let r = try await NodeBinary.run(["run", "--role", "alice", "--connect", address, "--state", Self.stateDirectory(),
                                              "--psk", psk, "--connect-timeout", "2"], timeout: .seconds(20))
            #expect(r.status != 0 && r.status != 128 + SIGKILL, "status \(r.status)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1, "one line on stderr: \(r.stderr)")
            #expect(r.stderr.contains("cannot reach the peer at \(address)"), "stderr: \(r.stderr)")
            #expect(r.stderr.contains("connection refused"), "stderr: \(r.stderr)")
        }
    }

    @Test func aPortInUseFailsBeforeThePoolIsCreated() async throws {
        try await offThePool {
            let psk = try await Self.makePSK()
            let taken = try Self.listeningSocket()
            defer { close(taken.fd) }
            let state = Self.stateDirectory()
            let r = try await NodeBinary.run(["run", "--role", "bob", "--listen", "127.0.0.1:\(taken.port)", "--state", state, "--psk", psk],
                                             timeout: .seconds(20))
            #expect(r.status != 0 && r.status != 128 + SIGKILL, "status \(r.status)")
            #expect(r.stderr.split(separator: "\n").count == 1, "one line on stderr: \(r.stderr)")
            #expect(r.stderr.contains("127.0.0.1:\(taken.port)") && r.stderr.contains("already in use"), "stderr: \(r.stderr)")
            #expect(!r.stdout.contains("listening"), "stdout: \(r.stdout)")
            // The listen comes before the pool: --state holds no pool.
            #expect(!FileManager.default.fileExists(atPath: state + "/pool.sqlite"))
        }
    }

    @Test(arguments: [["--stall-timeout", "0"], ["--connect-timeout", "-1"], ["--stall-timeout", "nan"], ["--connect-timeout", "1e9"], ["--handshake-timeout", "0"]])
    func aBadTimeoutIsOneLine(_ option: [String]) async throws {
        try await offThePool {
            let r = try await NodeBinary.run(["run", "--role", "alice", "--connect", "127.0.0.1:1", "--state", Self.stateDirectory(),
                                              "--psk", "/nonexistent/link.psk"] + option, timeout: .seconds(20))
            #expect(r.status != 0 && r.status != 128 + SIGKILL, "status \(r.status)")
            #expect(r.stderr.split(separator: "\n").count == 1, "one line on stderr: \(r.stderr)")
            #expect(r.stderr.contains(option[0]), "stderr: \(r.stderr)")
        }
    }

    /// `--cascade` offers the node schedules only (the 1993 baseline is for benchmarks): an
    /// unknown name exits with ArgumentParser's usage status, naming the choices.
    @Test(arguments: ["original", "fast"])
    func anUnknownCascadeScheduleIsRefused(_ name: String) async throws {
        try await offThePool {
            let r = try await NodeBinary.run(["run", "--role", "alice", "--connect", "127.0.0.1:1", "--state", Self.stateDirectory(),
                                              "--psk", "/nonexistent/link.psk", "--cascade", name], timeout: .seconds(20))
            #expect(r.status == 64, "status \(r.status)")
            let first = r.stderr.split(separator: "\n").first.map(String.init) ?? ""
            #expect(first.contains("--cascade") && first.contains("improved") && first.contains("least-leakage"), "stderr: \(r.stderr)")
        }
    }
}
