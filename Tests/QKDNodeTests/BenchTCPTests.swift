import Foundation
import QKDTestSupport
import Testing

/// `qkd-node bench pipeline --tcp --json` at a tiny size: two peer processes over loopback TCP.
@Suite struct BenchTCPTests {
    @Test func tcpPipelineBenchPrintsOneJSONObjectWithBothGranularities() async throws {
        let binary = try #require(QKDNodeBinary.locate(), "qkd-node is not built")
        let r = try await QKDNodeBinary.run(binary, ["bench", "pipeline", "--tcp", "--json", "--bits", "16384", "--rounds", "2"])
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
