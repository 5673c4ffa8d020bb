import Foundation
import QKDTestSupport
import Synchronization
import Testing

/// Runs a child process without blocking a cooperative thread: pipes drain through
/// `readabilityHandler`, the exit arrives through `terminationHandler`, and the caller awaits
/// both through one continuation. A Task.sleep watchdog terminates a child that hangs.
enum AsyncChild {
    private final class State: Sendable {
        struct Inner {
            var out = Data(), err = Data()
            var outDone = false, errDone = false, exited = false
            var continuation: CheckedContinuation<Void, Never>?
        }
        let inner = Mutex(Inner())

        func update(_ body: (inout Inner) -> Void) {
            let resume = inner.withLock { s -> CheckedContinuation<Void, Never>? in
                body(&s)
                guard s.outDone, s.errDone, s.exited, let c = s.continuation else { return nil }
                s.continuation = nil
                return c
            }
            resume?.resume()
        }
    }

    static func run(_ binary: String, _ arguments: [String], timeout: Duration = .seconds(300)) async throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        let state = State()
        out.fileHandleForReading.readabilityHandler = { h in
            let d = h.availableData
            state.update { s in if d.isEmpty { s.outDone = true; h.readabilityHandler = nil } else { s.out.append(d) } }
        }
        err.fileHandleForReading.readabilityHandler = { h in
            let d = h.availableData
            state.update { s in if d.isEmpty { s.errDone = true; h.readabilityHandler = nil } else { s.err.append(d) } }
        }
        p.terminationHandler = { _ in state.update { $0.exited = true } }
        try p.run()
        let watchdog = Task {
            try await Task.sleep(for: timeout)
            p.terminate()
        }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            state.update { $0.continuation = c }
        }
        watchdog.cancel()
        let (o, e) = state.inner.withLock { ($0.out, $0.err) }
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }
}

/// `qkd-node bench pipeline --tcp --json` at a tiny size: two peer processes over loopback TCP.
@Suite struct BenchTCPTests {
    @Test func tcpPipelineBenchPrintsOneJSONObjectWithBothGranularities() async throws {
        let binary = try #require(QKDNodeBinary.locate(), "qkd-node is not built")
        let r = try await AsyncChild.run(binary, ["bench", "pipeline", "--tcp", "--json", "--bits", "16384", "--rounds", "2"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == 1, "exactly one JSON object: \(r.stdout)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(object["workload"] as? String == "pipeline-tcp")
        let results = try #require(object["results"] as? [[String: Any]])
        for row in results {
            #expect(row["metric"] is String && row["unit"] is String)
            #expect(row["value"] is NSNumber)
            #expect(row["baseline"] is NSNumber, "every row has a same-run baseline: \(row)")
            #expect(row["ratio"] is NSNumber)
        }
        func row(_ metric: String) -> [String: Any]? { results.first { $0["metric"] as? String == metric } }
        for name in ["per-round", "per-frame"] {
            let sifted = try #require(row("sifted key, TCP, \(name) auth"))
            #expect(((sifted["value"] as? NSNumber)?.doubleValue ?? 0) > 0)
            let final = try #require(row("final key, TCP, \(name) auth"))
            #expect(((final["value"] as? NSNumber)?.doubleValue ?? 0) > 0)
        }
        // Measured from the nodes' counters: per-round authentication (value) must cost fewer
        // pad bits per distilled bit than per-frame (baseline) on the same rounds.
        for metric in ["auth pad bits / distilled key, round frames", "auth pad bits / distilled key, all frames"] {
            let pads = try #require(row(metric))
            let perRound = try #require((pads["value"] as? NSNumber)?.doubleValue)
            let perFrame = try #require((pads["baseline"] as? NSNumber)?.doubleValue)
            #expect(perRound > 0)
            #expect(perRound < perFrame, "\(metric): per-round \(perRound)% vs per-frame \(perFrame)%")
        }
    }
}
