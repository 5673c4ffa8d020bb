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

    /// Seeds made with the real encoders and writers (``FuzzCheck/generatedSeeds()``) must be
    /// accepted, not merely survive: a seed the check rejects would start the fuzzer off the
    /// accepting path. With `QKD_WRITE_FUZZ_SEEDS=1` the test (re)writes them into
    /// `Fuzz/Corpus/<Target>/seed-<name>`, which is how the committed seeds were made.
    @Test(arguments: FuzzCheck.allCases)
    func generatedSeedsAreAccepted(_ check: FuzzCheck) throws {
        guard let seeds = try check.generatedSeeds() else { return }
        #expect(!seeds.isEmpty)
        let write = ProcessInfo.processInfo.environment["QKD_WRITE_FUZZ_SEEDS"] == "1"
        let dir = PackagePaths.root.appendingPathComponent("Fuzz/Corpus/\(check.rawValue)")
        for seed in seeds {
            let outcome = try check.run(seed.bytes)
            #expect(outcome == .accepted, "seed \(seed.name) of \(check.rawValue) ended as \(outcome)")
            if write {
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                try Data(seed.bytes).write(to: dir.appendingPathComponent("seed-\(seed.name)"))
            }
        }
    }

    /// Each seed of the new targets, cut short by 30 bytes, ends as a typed rejection, not as
    /// acceptance (30 bytes breaks a PEM END line, which one byte would not): the checks can tell malformed input from valid input.
    @Test(arguments: [FuzzCheck.postProcessingMessages, .pskFile, .certificateChain])
    func corruptedSeedsAreRejected(_ check: FuzzCheck) throws {
        let seeds = try #require(try check.generatedSeeds())
        for seed in seeds {
            let truncated = Array(seed.bytes.dropLast(30))
            guard case .rejected = try check.run(truncated) else {
                Issue.record("truncated seed \(seed.name) of \(check.rawValue) was accepted")
                continue
            }
        }
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
