import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import QKDCrypto
import QKDPostProcessing

// `qkd-node bench cascade-scan` (hidden): the tool that tuned the improved Cascade schedule
// (Spec/postprocessing.md section 5.1). Every candidate schedule reconciles the same keys with
// the same seeds (a paired comparison), so differences in f are not sampling noise between
// candidates.

/// `qkd-node bench cascade-scan`.
struct BenchCascadeScanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cascade-scan",
        abstract: "Compare Cascade schedules on the same keys (schedule tuning, Spec/postprocessing.md 5.1).",
        discussion: """
            A candidate is a named rule (improved, least-leakage, pp4, original) or a comma-separated list of \
            block sizes, where 'h' is ceil(n/2) and a suffix 'xN' repeats a size N times, e.g. \
            '12,48,hx8'. Candidates are separated by ';'.
            """,
        shouldDisplay: false
    )
    @Option(help: "QBERs, comma-separated.") var qber = "0.01,0.02,0.05,0.08"
    @Option(help: "Bits per block.") var bits = 1 << 20
    @Option(help: "Runs per QBER (the same keys for every candidate).") var runs = 20
    @Option(help: "Candidates separated by ';'.") var candidates = "improved;pp4"
    @Option(help: "Seed of the key generator.") var seed = 2026

    func run() throws {
        let n = bits
        let qbers: [Double] = qber.split(separator: ",").compactMap { Double(String($0.filter { $0 != " " })) }
        let names: [String] = candidates.split(separator: ";").map { String($0.filter { $0 != " " }) }
        var random = DeterministicRandomSource(seed: UInt64(seed))
        for q in qbers {
            let plans = try names.map { try Self.plan($0, qber: q, keyBits: n) }
            var f = [[Double]](repeating: [], count: plans.count)
            var failed = [Int](repeating: 0, count: plans.count)
            var steps = [Int](repeating: 0, count: plans.count)
            var time = [Double](repeating: 0, count: plans.count)
            for _ in 0..<runs {
                let (alice, bob, errors) = correlatedKeys(bits: n, qber: q, random: &random)
                let s = random.bytes(count: 32)
                let h = FiniteKey.binaryEntropy(Double(errors) / Double(n))
                for (i, plan) in plans.enumerated() {
                    let start = BenchSupport.cpuSeconds()
                    let r = try CascadeRunner.run(alice: alice, bob: bob, plan: plan, seed: s)
                    time[i] += BenchSupport.cpuSeconds() - start
                    f[i].append(Double(r.leakedBits) / (Double(n) * h))
                    failed[i] += r.residualErrors == 0 ? 0 : 1
                    steps[i] += r.steps
                }
            }
            print("Q=\(q) n=\(n) runs=\(runs)")
            for (i, name) in names.enumerated() {
                let m: Double = f[i].reduce(0, +) / Double(runs)
                var ss = 0.0
                for x in f[i] { ss += (x - m) * (x - m) }
                let sd: Double = (ss / Double(max(1, runs - 1))).squareRoot()
                let half = (n + 1) / 2
                let sizes: String = plans[i].blockSizes.map { (k: Int) -> String in k == half ? "h" : String(k) }.joined(separator: ",")
                let se: Double = sd / Double(runs).squareRoot()
                let worst: Double = f[i].max() ?? 0
                let mbps: Double = Double(runs * n) / time[i] / 1e6
                var line = "  " + pad(name, 22) + " f mean " + r4(m) + " (se " + r4(se) + ") worst " + r4(worst)
                line += "  failed " + String(failed[i]) + "  steps " + String(steps[i] / runs)
                line += "  " + r4(mbps) + " Mbit/s  [" + sizes + "]"
                print(line)
            }
        }
    }

    /// The block sizes of candidate `name` at `qber`.
    static func plan(_ name: String, qber q: Double, keyBits n: Int) throws -> CascadeSchedule {
        switch name {
        case "improved": return CascadeSchedule.improved(qber: q, keyBits: n)
        case "original": return CascadeSchedule.original(qber: q, keyBits: n)
        case "least-leakage": return CascadeSchedule.leastLeakage(qber: q, keyBits: n)
        case "pp4":
            // The rule before session 5: k1 = 2^floor(log2(1/Q)), k2 = 4 k1, then n/2; 10 passes.
            let k1 = max(1, min(n, 1 << max(0, Int(log2(1 / min(max(q, 1e-4), 0.25)).rounded(.down)))))
            let half = max(1, (n + 1) / 2)
            return CascadeSchedule(blockSizes: [k1, min(half, 4 * k1)] + Array(repeating: half, count: 8))
        default:
            var sizes: [Int] = []
            for token in name.split(separator: ",") {
                let parts = token.split(separator: "x")
                guard (1...2).contains(parts.count), let count = parts.count == 2 ? Int(parts[1]) : 1 else {
                    throw ValidationError("bad candidate token '\(token)'")
                }
                let size = parts[0] == "h" ? max(1, (n + 1) / 2) : Int(parts[0])
                guard let size, size >= 1 else { throw ValidationError("bad block size in '\(token)'") }
                sizes += Array(repeating: min(size, n), count: count)
            }
            guard !sizes.isEmpty, sizes.count < 128 else { throw ValidationError("1 to 127 passes") }
            return CascadeSchedule(blockSizes: sizes)
        }
    }
}

private func r4(_ x: Double) -> String { "\((x * 10_000).rounded() / 10_000)" }
private func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : s + String(repeating: " ", count: w - s.count) }

