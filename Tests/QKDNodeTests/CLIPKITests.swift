import Foundation
import QKDTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `qkd-node run` and `qkd-node demo` in PKI mode, as separate processes.
/// The processes are QKDTestSupport's `ChildProcess` (through `NodeBinary` and `NodeProcess`,
/// ReliabilitySupport.swift): awaited, off the cooperative pool.
@Suite(.serialized, .timeLimit(.minutes(3))) struct CLIPKITests {
    @Test func pkiDemoEndsWithTheSameKeysOnBothNodes() async throws {
        try await offThePool {
            let result = try await NodeBinary.run(["demo", "--mode", "pki", "--rounds", "2", "--json"])
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
    }

    @Test func pkiDemoWithAnEavesdropperFails() async throws {
        try await offThePool {
            let result = try await NodeBinary.run(["demo", "--mode", "pki", "--rounds", "2", "--pulses", "40000", "--eve", "1"])
            #expect(result.status != 0)
            #expect(result.stderr.contains("QBER"), "stderr: \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "one clear line on stderr")
        }
    }

    /// Bad flag combinations and unusable files: non-zero exit, one line on stderr naming the problem.
    @Test func badPKIArgumentsAreOneLineOnStderr() async throws {
        try await offThePool {
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
                let result = try await NodeBinary.run(base + c.arguments)
                #expect(result.status != 0, "\(c.arguments)")
                #expect(result.stderr.contains(c.mentions), "\(c.arguments): \(result.stderr)")
                #expect(result.stderr.split(separator: "\n").count == 1, "\(c.arguments): one line, got \(result.stderr)")
                #expect(!FileManager.default.fileExists(atPath: (state as NSString).appendingPathComponent("pool.sqlite")), "no pool is created on a refused start")
            }
        }
    }

    /// Certificates and keys made by the `openssl` command, as an operator would: the two
    /// nodes complete the PKI handshake and a round.
    static let openssl = ["/usr/bin/openssl", "/usr/local/bin/openssl", "/bin/openssl"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test(.enabled(if: openssl != nil, "skipped: no openssl binary on this machine to make the certificates"))
    func runWorksWithOpenSSLMadeCertificates() async throws {
        try await offThePool {
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
            let status = try await ChildProcess.run("/bin/sh", ["-c", script]).status
            try #require(status == 0, "openssl could not make the certificates")

            func pki(_ name: String) -> [String] {
                ["--cert", dir.sub("\(name).pem"), "--key", dir.sub("\(name).key"), "--ca", dir.sub("ca.pem"), "--pad-target", "2048",
                 "--kex", "x25519", "--pulses", "100000", "--json"]
            }
            // No --peer-name: alice.example expects bob.example and the other way round.
            let bob = try NodeProcess("bob", ["run", "--role", "bob", "--listen", "127.0.0.1:0", "--state", dir.sub("bob")] + pki("bob"))
            defer { bob.send(SIGTERM) }
            let listening = try #require(await bob.waitFor("listening"), "Bob did not listen: \(bob.stderrText)")
            let port = try #require(listening["port"] as? Int, "\(listening)")
            let alice = try NodeProcess("alice", ["run", "--role", "alice", "--connect", "127.0.0.1:\(port)", "--state", dir.sub("alice"),
                                                  "--rounds", "1"] + pki("alice"))
            defer { alice.send(SIGTERM) }
            let aliceStatus = await alice.wait(timeout: .seconds(120)), bobStatus = await bob.wait(timeout: .seconds(30))
            let a = (status: aliceStatus, stdout: alice.child.stdoutText, stderr: alice.stderrText)
            let b = (status: bobStatus, stdout: bob.child.stdoutText, stderr: bob.stderrText)
            #expect(a.status == 0 && b.status == 0, "alice: \(a.stderr) bob: \(b.stderr)")
            for out in [a.stdout, b.stdout] {
                let lines = NodeBinary.jsonLines(out)
                #expect(lines.first { $0["event"] as? String == "established" }?["security"] as? String == "computational")
                #expect(lines.contains { $0["event"] as? String == "round" })
            }
        }
    }
}
