import Foundation
import QKDTestSupport
import Testing

/// `qkd-node bench pipeline --json` at a small size (large enough for a secret key): one thread, two threads, two and four rounds in flight.
/// The command itself checks that the threaded rounds give the same summaries as the one-thread
/// rounds (it fails otherwise), so a zero exit status also covers the threaded driver.
@Suite struct BenchPipelineTests {
    @Test func pipelineBenchPrintsOneJSONObjectWithThreadedRows() async throws {
        let binary = try #require(QKDNodeBinary.locate(), "qkd-node is not built")
        let r = try await QKDNodeBinary.run(binary, ["bench", "pipeline", "--json", "--bits", "100000", "--runs", "3"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.split(separator: "\n").count == 1, "exactly one JSON object: \(r.stdout)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(object["workload"] as? String == "pipeline")
        let results = try #require(object["results"] as? [[String: Any]])
        for metric in ["pipeline Q=0.03, 2 threads", "pipeline Q=0.03, 2 threads, 2 rounds in flight", "pipeline Q=0.03, 2 threads, 4 rounds in flight",
                       "pipeline Q=0.03, one thread", "pipeline Q=0.03, 2 rounds side by side"] {
            let row = try #require(results.first { $0["metric"] as? String == metric }, "missing row \(metric)")
            #expect(((row["value"] as? NSNumber)?.doubleValue ?? 0) > 0, "\(metric)")
            #expect(((row["baseline"] as? NSNumber)?.doubleValue ?? 0) > 0, "\(metric) has a same-run baseline")
        }
    }

    /// `qkd-node bench sift --json`: the sparse row against uncompressed records, each role's
    /// part of it (against that role's part of the uncompressed exchange), and the dense
    /// row (Rice parameter 0, the word-at-a-time kernel) against the code-at-a-time kernel on the
    /// same stream.
    @Test func siftBenchHasSparseAndDenseRows() async throws {
        let binary = try #require(QKDNodeBinary.locate(), "qkd-node is not built")
        let r = try await QKDNodeBinary.run(binary, ["bench", "sift", "--json", "--bits", "400000", "--runs", "1"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(object["workload"] as? String == "sift")
        let results = try #require(object["results"] as? [[String: Any]])
        for metric in ["sifting", "sifting per role, Alice", "sifting per role, Bob", "classical bits per detection",
                       "sifting, dense detections", "classical bits per detection, dense"] {
            let row = try #require(results.first { $0["metric"] as? String == metric }, "missing row \(metric)")
            #expect(((row["value"] as? NSNumber)?.doubleValue ?? 0) > 0, "\(metric)")
            #expect(((row["baseline"] as? NSNumber)?.doubleValue ?? 0) > 0, "\(metric) has a same-run baseline")
        }
        // Each role's part is a part of the exchange, so it runs faster than the whole.
        func value(_ metric: String) -> Double {
            ((results.first { $0["metric"] as? String == metric }?["value"]) as? NSNumber)?.doubleValue ?? 0
        }
        #expect(value("sifting per role, Alice") > value("sifting") && value("sifting per role, Bob") > value("sifting"))
        let dense = try #require(results.first { $0["metric"] as? String == "sifting, dense detections" })
        #expect((dense["note"] as? String ?? "").contains("Rice parameter 0"), "the dense row must exercise r = 0")
    }

    /// `qkd-node bench link --json`: a row per link setting against the photon-by-photon
    /// devices, and the pulse frame's codec against a copy of its bytes (the command itself
    /// fails if the frame does not decode to what was encoded).
    @Test func linkBenchHasARowPerLinkAndTheFrame() async throws {
        let binary = try #require(QKDNodeBinary.locate(), "qkd-node is not built")
        let r = try await QKDNodeBinary.run(binary, ["bench", "link", "--json", "--bits", "200000", "--runs", "1"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(object["workload"] as? String == "link")
        let results = try #require(object["results"] as? [[String: Any]])
        #expect(results.count == 4)
        for prefix in ["link round, demo link", "link round, lossy link", "link round, eavesdropped link", "pulse frame encode + parse"] {
            let row = try #require(results.first { ($0["metric"] as? String)?.hasPrefix(prefix) == true }, "missing row \(prefix)")
            #expect(((row["value"] as? NSNumber)?.doubleValue ?? 0) > 0, "\(prefix)")
            #expect(((row["baseline"] as? NSNumber)?.doubleValue ?? 0) > 0, "\(prefix) has a same-run baseline")
        }
    }
}
