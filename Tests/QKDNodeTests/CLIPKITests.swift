import Foundation
import QKDTestSupport
import Synchronization
import Testing

/// A `qkd-node` child process driven asynchronously: stdout lines arrive on an `AsyncStream`
/// (read on a dedicated thread, never a cooperative one), stderr is collected, and the exit
/// is awaited through the process's termination handler.
final class NodeProcess: Sendable {
    let lines: AsyncStream<String>
    private let process: Process
    private let exit: AsyncStream<Int32>
    private let stdoutText = Mutex("")
    private let stderrText = Mutex("")
    private let readersDone = Mutex(0)

    init(_ arguments: [String]) throws {
        let binary = try #require(QKDNodeBinary.locate(), "qkd-node binary not found next to the test bundle; build it with 'swift build' or set QKD_NODE_BINARY")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        let (lines, lineSink) = AsyncStream<String>.makeStream()
        let (exit, exitSink) = AsyncStream<Int32>.makeStream()
        self.lines = lines
        self.exit = exit
        process = p
        p.terminationHandler = { exitSink.yield($0.terminationStatus); exitSink.finish() }
        try p.run()
        let outHandle = out.fileHandleForReading, errHandle = err.fileHandleForReading
        Thread { [self] in
            var pending = Data()
            while true {
                let chunk = outHandle.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let nl = pending.firstIndex(of: 0x0A) {
                    let line = String(decoding: pending[pending.startIndex..<nl], as: UTF8.self)
                    stdoutText.withLock { $0 += line + "\n" }
                    lineSink.yield(line)
                    pending = Data(pending[(nl + 1)...])
                }
            }
            lineSink.finish()
            readersDone.withLock { $0 += 1 }
        }.start()
        Thread { [self] in
            let data = errHandle.readDataToEndOfFile()
            stderrText.withLock { $0 = String(decoding: data, as: UTF8.self) }
            readersDone.withLock { $0 += 1 }
        }.start()
    }

    /// Waits for the exit (and for both pipes to be read to their end).
    func finish() async -> (status: Int32, stdout: String, stderr: String) {
        var status: Int32 = -1
        for await s in exit { status = s }
        while readersDone.withLock({ $0 }) < 2 { try? await Task.sleep(for: .milliseconds(10)) }
        return (status, stdoutText.withLock { $0 }, stderrText.withLock { $0 })
    }

    /// The next JSON object on stdout, or nil at its end.
    func nextJSON() async -> [String: Any]? {
        var it = lines.makeAsyncIterator()
        while let line = await it.next() {
            if let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] { return o }
        }
        return nil
    }

    func terminate() { if process.isRunning { process.terminate() } }

    /// Runs to completion.
    static func run(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await NodeProcess(arguments).finish()
    }
}

/// `qkd-node run` and `qkd-node demo` in PKI mode, as separate processes.
@Suite(.serialized) struct CLIPKITests {
    @Test func pkiDemoEndsWithTheSameKeysOnBothNodes() async throws {
        let result = try await NodeProcess.run(["demo", "--mode", "pki", "--rounds", "2", "--json"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let lines = NodeBinary.jsonLines(result.stdout)
        #expect(lines.first { $0["event"] as? String == "established" }?["security"] as? String == "computational")
        let rounds = lines.filter { $0["event"] as? String == "round" }
        #expect(rounds.map { $0["security"] as? String } == ["computational", "information-theoretic"])
        let demo = try #require(lines.last { $0["event"] as? String == "demo" })
        #expect(demo["match"] as? Bool == true)
        let a = try #require(demo["alice_digest"] as? String), b = try #require(demo["bob_digest"] as? String)
        #expect(a == b && a.count == 64)
        #expect((demo["alice_keys"] as? Int ?? 0) > 0)
        #expect(result.stdout.split(separator: "\n").allSatisfy { $0.hasPrefix("{") }, "--json prints only JSON lines")
        #expect(!result.stderr.contains("running for"), "no progress line off a terminal")
    }

    @Test func pkiDemoWithAnEavesdropperFails() async throws {
        let result = try await NodeProcess.run(["demo", "--mode", "pki", "--rounds", "2", "--pulses", "40000", "--eve", "1"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("QBER"), "stderr: \(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "one clear line on stderr")
    }

    /// Bad flag combinations and unusable files: non-zero exit, one line on stderr naming the problem.
    @Test func badPKIArgumentsAreOneLineOnStderr() async throws {
        let dir = TempDir()
        let garbage = dir.sub("garbage.pem")
        try "not a certificate\n".write(toFile: garbage, atomically: true, encoding: .utf8)
        let state = dir.sub("state")
        let base = ["run", "--role", "alice", "--connect", "127.0.0.1:1", "--state", state]
        let cases: [(arguments: [String], mentions: String)] = [
            (["--psk", garbage, "--cert", garbage, "--key", garbage, "--ca", garbage], "not both"),
            (["--cert", garbage, "--ca", garbage], "--key"),
            (["--psk", garbage, "--peer-name", "bob.example"], "--peer-name"),
            (["--cert", dir.sub("missing.pem"), "--key", garbage, "--ca", garbage], "missing.pem"),
            (["--cert", garbage, "--key", garbage, "--ca", garbage], "garbage.pem"),
            (["--cert", garbage, "--key", garbage, "--ca", garbage, "--kex", "rsa"], "--kex"),
            ([], "--psk"),
        ]
        for c in cases {
            let result = try await NodeProcess.run(base + c.arguments)
            #expect(result.status != 0, "\(c.arguments)")
            #expect(result.stderr.contains(c.mentions), "\(c.arguments): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(c.arguments): one line, got \(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: (state as NSString).appendingPathComponent("pool.sqlite")), "no pool is created on a refused start")
        }
    }

    /// Certificates and keys made by the `openssl` command, as an operator would: the two
    /// nodes complete the PKI handshake and a round.
    static let openssl = ["/usr/bin/openssl", "/usr/local/bin/openssl", "/bin/openssl"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test(.enabled(if: openssl != nil, "skipped: no openssl binary on this machine to make the certificates"))
    func runWorksWithOpenSSLMadeCertificates() async throws {
        let openssl = try #require(Self.openssl)
        let dir = TempDir()
        let script = """
        set -e
        cd '\(dir.path)'
        O='\(openssl)'
        $O genpkey -algorithm ed25519 -out ca.key
        $O req -new -x509 -key ca.key -out ca.pem -days 2 -subj /CN=test-ca -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
        for n in alice bob; do
          $O genpkey -algorithm ed25519 -out $n.key
          chmod 600 $n.key
          $O req -new -key $n.key -out $n.csr -subj /CN=$n.example
          printf 'basicConstraints=CA:FALSE\\nkeyUsage=critical,digitalSignature\\nsubjectAltName=DNS:%s.example\\n' $n > $n.ext
          $O x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $n.pem -days 2 -extfile $n.ext
        done
        """
        let make = Process()
        make.executableURL = URL(fileURLWithPath: "/bin/sh")
        make.arguments = ["-c", script]
        make.standardOutput = FileHandle.nullDevice
        make.standardError = FileHandle.nullDevice
        let made = AsyncStream<Int32>.makeStream()
        make.terminationHandler = { made.continuation.yield($0.terminationStatus); made.continuation.finish() }
        try make.run()
        var status: Int32 = -1
        for await s in made.stream { status = s }
        try #require(status == 0, "openssl could not make the certificates")

        func pki(_ name: String) -> [String] {
            ["--cert", dir.sub("\(name).pem"), "--key", dir.sub("\(name).key"), "--ca", dir.sub("ca.pem"), "--pad-target", "2048",
             "--kex", "x25519", "--pulses", "100000", "--json"]
        }
        // No --peer-name: alice.example expects bob.example and the other way round.
        let bob = try NodeProcess(["run", "--role", "bob", "--listen", "127.0.0.1:0", "--state", dir.sub("bob")] + pki("bob"))
        defer { bob.terminate() }
        let listening = try #require(await bob.nextJSON())
        let port = try #require(listening["port"] as? Int, "\(listening)")
        let alice = try NodeProcess(["run", "--role", "alice", "--connect", "127.0.0.1:\(port)", "--state", dir.sub("alice"),
                                     "--rounds", "1"] + pki("alice"))
        defer { alice.terminate() }
        let a = await alice.finish(), b = await bob.finish()
        #expect(a.status == 0 && b.status == 0, "alice: \(a.stderr) bob: \(b.stderr)")
        for out in [a.stdout, b.stdout] {
            let lines = NodeBinary.jsonLines(out)
            #expect(lines.first { $0["event"] as? String == "established" }?["security"] as? String == "computational")
            #expect(lines.contains { $0["event"] as? String == "round" })
        }
    }
}
