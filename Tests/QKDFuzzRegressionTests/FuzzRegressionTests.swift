import Foundation
import Testing
import QKDFuzzChecks
import QKDTestSupport

/// Replays every pinned fuzz input (`Fuzz/FailCases/<Target>/`) and every seed
/// (`Fuzz/Corpus/<Target>/`) through the same per-input logic the libFuzzer target runs, here
/// without sanitizers. Each must end as accepted or rejected with a typed error; an invariant
/// violation or a crash fails the test run (nio-ssh's FuzzResultTests: "must only not crash").
@Suite struct FuzzRegressionTests {
    struct Pinned: CustomTestStringConvertible, Sendable {
        let check: FuzzCheck
        let path: String
        var testDescription: String { "\(check.rawValue)/\(URL(fileURLWithPath: path).lastPathComponent)" }
    }

    static func inputs(in folder: String) -> [Pinned] {
        FuzzCheck.allCases.flatMap { check -> [Pinned] in
            let dir = PackagePaths.root.appendingPathComponent("Fuzz/\(folder)/\(check.rawValue)")
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            return names.filter { !$0.hasPrefix(".") && !$0.hasSuffix(".md") }.sorted()
                .map { Pinned(check: check, path: dir.appendingPathComponent($0).path) }
        }
    }

    static let failCases = inputs(in: "FailCases")
    static let corpus = inputs(in: "Corpus")

    @Test func everyTargetHasAFolder() {
        for check in FuzzCheck.allCases {
            let dir = PackagePaths.root.appendingPathComponent("Fuzz/Corpus/\(check.rawValue)")
            #expect(FileManager.default.fileExists(atPath: dir.path), "missing seed corpus for \(check.rawValue)")
        }
    }

    @Test(arguments: failCases)
    func pinnedCrashInputsNowPass(_ pinned: Pinned) throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: pinned.path)))
        #expect(throws: Never.self) { _ = try pinned.check.run(bytes) }
    }

    @Test(arguments: corpus)
    func seedCorpusPasses(_ pinned: Pinned) throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: pinned.path)))
        #expect(throws: Never.self) { _ = try pinned.check.run(bytes) }
    }

    /// The MAC crash the fuzzer found: an all-zero key made every message verify. It must now be
    /// refused with a typed error.
    @Test func zeroHashKeyIsRejectedWithATypedError() throws {
        let path = PackagePaths.root.appendingPathComponent("Fuzz/FailCases/FuzzMAC/zero-hash-key").path
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let outcome = try FuzzCheck.mac.run(bytes)
        guard case .rejected(let error) = outcome else {
            Issue.record("expected a typed rejection, got \(outcome)")
            return
        }
        #expect(error.code.identifier == "crypto.weak-hash-key")
    }
}
