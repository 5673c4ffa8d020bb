import ArgumentParser
import Foundation
import QKDCrypto

/// `qkd-node selftest`: runs the known-answer vectors compiled into the binary and prints a
/// verdict. Exit code 0 if every check passed, 1 otherwise.
struct SelftestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Run the built-in known-answer vectors and print a verdict.",
        discussion: "Checks Poly1305 (RFC 8439), the poly1305-otp and gf128-otp constructions, and the GF(2^128) kernels. Exits non-zero if any check fails.")

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func run() throws {
        let results = SelfTest.run()
        let passed = results.allSatisfy(\.passed)
        if json {
            let object: [String: Any] = [
                "verdict": passed ? "pass" : "fail",
                "libsodium": sodiumVersion,
                "gf128": SelfTest.gf128Implementation,
                "checks": results.map { ["name": $0.name, "passed": $0.passed] },
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("qkd-node selftest: libsodium \(sodiumVersion), GF(2^128) kernel: \(SelfTest.gf128Implementation)")
            for r in results { print("  [\(r.passed ? "pass" : "FAIL")] \(r.name)") }
            print(passed ? "verdict: PASS (\(results.count) checks)"
                         : "verdict: FAIL: this build or CPU computes wrong results; do not use it for key material")
        }
        if !passed { throw ExitCode(1) }
    }
}
