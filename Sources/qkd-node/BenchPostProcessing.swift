import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import QKDCrypto
import QKDPostProcessing
import QKDSimulation

// `qkd-node bench sift|reconcile|amplify|pipeline`: post-processing workloads (issue 5). Each
// prints one JSON object with --json, as every `bench` workload does, with its baseline
// measured in the same run.

/// Options shared by the post-processing benchmarks.
struct PostProcessingBenchOptions: ParsableArguments {
    @Option(help: "QBER (default: workload-specific list).") var qber: Double?
    @Option(help: "Bits per block (default: workload-specific).") var bits: Int?
    @Option(help: "Runs per configuration.") var runs: Int?
    @Flag(help: "Print one JSON object.") var json = false
}

/// One result row.
struct PostProcessingBenchRow {
    var metric: String
    var value: Double
    var unit: String
    var baseline: Double?
    var note: String?
}

func printPostProcessingBench(workload: String, rows: [PostProcessingBenchRow], json: Bool) {
    func num(_ x: Double?) -> String {
        guard let x, x.isFinite else { return "null" }
        return "\(x)"
    }
    func str(_ s: String) -> String {
        "\"" + s.replacingOccurrencesOfQuote() + "\""
    }
    if json {
        let items = rows.map { r -> String in
            let ratio: Double? = r.baseline.flatMap { $0 == 0 ? nil : r.value / $0 }
            var item = "{\"metric\": \(str(r.metric)), \"value\": \(num(r.value)), \"unit\": \(str(r.unit)), \"baseline\": \(num(r.baseline)), \"ratio\": \(num(ratio))"
            if let note = r.note { item += ", \"note\": \(str(note))" }
            return item + "}"
        }
        print("{\"workload\": \(str(workload)), \"results\": [" + items.joined(separator: ", ") + "]}")
    } else {
        print("workload: \(workload)")
        for r in rows {
            var line = "  \(r.metric): \(fmt(r.value)) \(r.unit)"
            if let b = r.baseline { line += "   baseline \(fmt(b))   ratio \(b == 0 ? "-" : fmt(r.value / b))" }
            if let n = r.note { line += "   (\(n))" }
            print(line)
        }
    }
}

private func fmt(_ x: Double) -> String {
    if !x.isFinite { return "\(x)" }
    let scaled = (x * 1000).rounded() / 1000
    return "\(scaled)"
}

extension String {
    fileprivate func replacingOccurrencesOfQuote() -> String {
        var out = ""
        for c in self {
            if c == "\"" || c == "\\" { out.append("\\") }
            out.append(c)
        }
        return out
    }
}

private func timed<T>(_ body: () throws -> T) rethrows -> (T, Double) {
    let start = BenchSupport.cpuSeconds()
    let value = try body()
    return (value, BenchSupport.cpuSeconds() - start)
}

/// A random key and a copy with independent errors at rate `qber` (exactly Bernoulli); also
/// `bench cascade-scan`'s keys.
func correlatedKeys(bits n: Int, qber: Double, random: inout DeterministicRandomSource) -> (BitVector, BitVector, Int) {
    var words = [UInt64](repeating: 0, count: (n + 63) / 64)
    for i in words.indices { words[i] = random.next() }
    let alice = BitVector(words: words, count: n)
    var bob = alice
    var errors = 0
    for i in 0..<n where Double(random.next() >> 11) * 0x1p-53 < qber {
        bob.flip(i)
        errors += 1
    }
    return (alice, bob, errors)
}

/// `qkd-node bench reconcile`.
struct BenchReconcileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconcile",
        abstract: "Cascade efficiency f, round trips, bytes and throughput; baseline: original Cascade.")
    @OptionGroup var options: PostProcessingBenchOptions

    func run() throws {
        let n = options.bits ?? (1 << 20)
        let runs = max(1, options.runs ?? 20)
        let qbers = options.qber.map { [$0] } ?? [0.01, 0.02, 0.05, 0.08]
        var rows: [PostProcessingBenchRow] = []
        var random = DeterministicRandomSource(seed: 2026)
        for q in qbers {
            var stats: [ReconciliationSchedule: (f: [Double], steps: [Int], bytes: [Int], time: Double, residual: Int,
                                                 alice: Double, bob: Double)] = [:]
            for r in 0..<runs {
                let (alice, bob, errors) = correlatedKeys(bits: n, qber: q, random: &random)
                let seed = random.bytes(count: 32)
                for schedule in [ReconciliationSchedule.improved, .original] {
                    let (report, t) = try timed {
                        try CascadeRunner.run(alice: alice, bob: bob, qber: q, schedule: schedule, seed: seed, clock: BenchSupport.cpuSeconds)
                    }
                    let h = FiniteKey.binaryEntropy(Double(errors) / Double(n))
                    var s = stats[schedule] ?? ([], [], [], 0, 0, 0, 0)
                    s.alice += report.aliceSeconds
                    s.bob += report.bobSeconds
                    s.f.append(Double(report.leakedBits) / (Double(n) * h))
                    s.steps.append(report.steps)
                    s.bytes.append(report.bytesAliceToBob + report.bytesBobToAlice)
                    s.time += t
                    s.residual += report.residualErrors == 0 ? 0 : 1
                    stats[schedule] = s
                }
                _ = r
            }
            let imp = stats[.improved]!, orig = stats[.original]!
            func mean(_ a: [Double]) -> Double { a.reduce(0, +) / Double(a.count) }
            let qs = "Q=\(q)"
            rows.append(.init(metric: "efficiency f mean \(qs)", value: mean(imp.f), unit: "leak/(n h(Q))", baseline: mean(orig.f),
                              note: "\(runs) runs of \(n) bits; baseline original Cascade (4 passes, k1=0.73/Q)"))
            rows.append(.init(metric: "efficiency f worst \(qs)", value: imp.f.max()!, unit: "leak/(n h(Q))", baseline: orig.f.max()!, note: nil))
            rows.append(.init(metric: "round trips mean \(qs)", value: Double(imp.steps.reduce(0, +)) / Double(runs), unit: "round trips",
                              baseline: Double(orig.steps.reduce(0, +)) / Double(runs), note: nil))
            rows.append(.init(metric: "bytes per sifted bit \(qs)", value: Double(imp.bytes.reduce(0, +)) / Double(runs * n), unit: "bytes/bit",
                              baseline: Double(orig.bytes.reduce(0, +)) / Double(runs * n), note: "both directions"))
            rows.append(.init(metric: "throughput \(qs)", value: Double(runs * n) / imp.time / 1e6, unit: "Mbit/s sifted key per core",
                              baseline: Double(runs * n) / orig.time / 1e6, note: "both roles on one core"))
            // What one node spends: each role's own CPU time (a link runs them on two machines).
            rows.append(.init(metric: "throughput per role, Alice \(qs)", value: Double(runs * n) / imp.alice / 1e6,
                              unit: "Mbit/s sifted key per core", baseline: Double(runs * n) / orig.alice / 1e6,
                              note: "Alice's engine time only"))
            rows.append(.init(metric: "throughput per role, Bob \(qs)", value: Double(runs * n) / imp.bob / 1e6,
                              unit: "Mbit/s sifted key per core", baseline: Double(runs * n) / orig.bob / 1e6,
                              note: "Bob's engine time only (incl. his flips)"))
            rows.append(.init(metric: "failed frames \(qs)", value: Double(imp.residual), unit: "frames with residual errors",
                              baseline: Double(orig.residual), note: "caught by verification in a round"))
        }
        printPostProcessingBench(workload: "reconcile", rows: rows, json: options.json)
    }
}

/// `qkd-node bench amplify`.
struct BenchAmplifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "amplify",
        abstract: "Multiply-add-shift privacy amplification at 2^20, 2^22, 2^24 bits (l = n/2), 1 and 2 threads; baseline: bare GMP product of the same sizes.")
    @OptionGroup var options: PostProcessingBenchOptions

    func run() throws {
        let sizes = options.bits.map { [$0] } ?? [1 << 20, 1 << 22, 1 << 24]
        let runs = max(1, options.runs ?? 3)
        var random = DeterministicRandomSource(seed: 5)
        var rows: [PostProcessingBenchRow] = []
        for n in sizes {
            let l = n / 2
            let x = BitVector(words: (0..<((n + 63) / 64)).map { _ in random.next() }, count: n)
            let seed = MultiplyAddShiftHash.drawSeed(inputBits: n, outputBits: l, random: &random)
            var best1 = Double.infinity, best2 = Double.infinity, best2cpu = Double.infinity, best2crit = Double.infinity
            var bestBare = Double.infinity
            for _ in 0..<runs {
                let (_, t1) = timed { MultiplyAddShiftHash.hash(x, multiplier: seed.multiplier, addend: seed.addend, outputBits: l, threads: 1) }
                best1 = min(best1, t1)
                let ((_, t2, c2), main) = timed {
                    wallAndProcessTimed { MultiplyAddShiftHash.hash(x, multiplier: seed.multiplier, addend: seed.addend, outputBits: l, threads: 2) }
                }
                best2 = min(best2, t2)
                best2cpu = min(best2cpu, c2)
                // Critical path with two free cores: the longer of the two threads' CPU times.
                best2crit = min(best2crit, max(main, c2 - main))
                let (_, tb) = timed { MultiplyAddShiftHash.bareProduct(seed.multiplier, x) }
                bestBare = min(bestBare, tb)
            }
            let tag = "n=2^\(n.trailingZeroBitCount) l=n/2"
            rows.append(.init(metric: "multiply-add-shift \(tag), 1 thread", value: Double(n) / best1 / 1e6, unit: "Mbit/s input",
                              baseline: Double(n) / bestBare / 1e6,
                              note: "thread CPU time, best of \(runs); baseline: bare GMP mpn_mul of the same (n+l-1) x n bits"))
            rows.append(.init(metric: "multiply-add-shift \(tag), 2 threads", value: Double(n) / best2crit / 1e6, unit: "Mbit/s input",
                              baseline: Double(n) / bestBare / 1e6,
                              note: "critical path = max of the two threads' CPU times, best of \(runs); wall \(fmt(Double(n) / best2 / 1e6)) Mbit/s on the shared machine; \(fmt(Double(n) / best2cpu / 1e6)) Mbit per CPU-second"))
        }
        printPostProcessingBench(workload: "amplify", rows: rows, json: options.json)
    }
}

/// Wall-clock and process CPU seconds (for work spread over several threads).
private func wallAndProcessTimed<T>(_ body: () throws -> T) rethrows -> (T, Double, Double) {
    let w0 = BenchSupport.wallSeconds(), c0 = BenchSupport.processCPUSeconds()
    let value = try body()
    return (value, BenchSupport.wallSeconds() - w0, BenchSupport.processCPUSeconds() - c0)
}

/// `qkd-node bench sift`.
struct BenchSiftCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sift",
        abstract: "Sifting exchange (report encode, decode, match, response) in detections/s; baseline: uncompressed report.")
    @OptionGroup var options: PostProcessingBenchOptions

    func run() throws {
        let pulses = options.bits ?? (1 << 24)
        let runs = max(1, options.runs ?? 3)
        // Sparse: 10 dB, 80% detectors, p about 0.08 (Rice parameter 3). Dense: the pipeline's
        // link (4 dB, ideal detectors), p about 0.4: Rice parameter 0, whose stream is the
        // complement of the slot bitmap and is coded a word at a time (Spec 2.3).
        var sparseLink = BB84Link(parameters: LinkParameters(pulsesPerRound: pulses, probabilityZ: 0.9, channelLossDB: 10,
                                                             detectorEfficiency: 0.8, darkCountProbability: 1e-6, misalignment: 0.02), seed: 1)
        var denseLink = BB84Link(parameters: LinkParameters(pulsesPerRound: pulses / 4, probabilityZ: 0.9, channelLossDB: 4,
                                                            detectorEfficiency: 1, darkCountProbability: 0, misalignment: 0.03), seed: 2)
        let sparse = sparseLink.runRound(), dense = denseLink.runRound()
        let sparseTime = try Self.bestExchange(sparse.0, sparse.1, runs: runs)
        var uncompressed = (exchange: Double.infinity, alice: Double.infinity, bob: Double.infinity)
        for _ in 0..<runs {
            let t = uncompressedSift(sparse.0, sparse.1)
            uncompressed = (min(uncompressed.exchange, t.bob + t.alice), min(uncompressed.alice, t.alice), min(uncompressed.bob, t.bob))
        }
        let denseTime = try Self.bestExchange(dense.0, dense.1, runs: runs)
        let denseGeneric = try DetectionReport.withCodeAtATimeRiceKernel { try Self.bestExchange(dense.0, dense.1, runs: runs) }.exchange
        let (bitsPerDetection, bound, p) = Self.wireCost(sparse.1)
        let (denseBits, denseBound, denseP) = Self.wireCost(dense.1)
        let d = sparse.1.detectionCount, dd = dense.1.detectionCount
        let rows: [PostProcessingBenchRow] = [
            .init(metric: "sifting", value: Double(d) / sparseTime.exchange / 1e6, unit: "M detections/s", baseline: Double(d) / uncompressed.exchange / 1e6,
                  note: "\(d) detections in \(pulses) slots (p = \(fmt(p)), Rice parameter \(DetectionReport.riceParameter(count: d, slotCount: UInt64(pulses)))), best of \(runs); both roles' work on one thread: encode+decode+match+response; baseline: 9-byte uncompressed records"),
            .init(metric: "sifting per role, Alice", value: Double(d) / sparseTime.alice / 1e6, unit: "M detections/s",
                  baseline: Double(d) / uncompressed.alice / 1e6,
                  note: "Alice's part of the same exchange (decode the report, match, encode the response): the rate of the node that runs it; best of \(runs); baseline: her part of the uncompressed exchange (read and match the records)"),
            .init(metric: "sifting per role, Bob", value: Double(d) / sparseTime.bob / 1e6, unit: "M detections/s",
                  baseline: Double(d) / uncompressed.bob / 1e6,
                  note: "Bob's part (encode the report, decode the response, take his key and test bits); best of \(runs); baseline: his part of the uncompressed exchange (write the records)"),
            .init(metric: "classical bits per detection", value: bitsPerDetection, unit: "bits", baseline: bound,
                  note: "baseline = entropy bound h(p)/p + 1, p = \(p)"),
            .init(metric: "sifting, dense detections", value: Double(dd) / denseTime.exchange / 1e6, unit: "M detections/s",
                  baseline: Double(dd) / denseGeneric / 1e6,
                  note: "\(dd) detections in \(pulses / 4) slots (p = \(fmt(denseP)), the pipeline's link: Rice parameter \(DetectionReport.riceParameter(count: dd, slotCount: UInt64(pulses / 4)))), best of \(runs); the same exchange; baseline: the same stream coded a code at a time (the kernel every other parameter uses)"),
            .init(metric: "classical bits per detection, dense", value: denseBits, unit: "bits", baseline: denseBound,
                  note: "baseline = entropy bound h(p)/p + 1, p = \(denseP)"),
        ]
        printPostProcessingBench(workload: "sift", rows: rows, json: options.json)
    }

    /// The best wall times of the sifting exchange (report encode, decode, match, response,
    /// Bob's sift) over `runs` runs: the whole exchange, and each role's part of it (the best of
    /// each separately).
    static func bestExchange(_ a: AliceRecord, _ b: BobRecord, runs: Int) throws -> (exchange: Double, alice: Double, bob: Double) {
        let d = b.detectionCount
        var best = (exchange: Double.infinity, alice: Double.infinity, bob: Double.infinity)
        for r in 0..<runs {
            var alice = AliceRound(roundID: 1, configuration: .init(), bits: BitVector(words: a.bits, count: a.slotCount),
                                   bases: BitVector(words: a.bases, count: a.slotCount), random: DeterministicRandomSource(seed: UInt64(r)))
            let t0 = BenchSupport.wallSeconds()
            var bob = BobRound(roundID: 1, configuration: .init(), slotCount: UInt64(b.slotCount), positions: b.slots,
                               bases: BitVector(words: b.bases, count: d), bits: BitVector(words: b.bits, count: d))
            guard case .send(let report) = bob.nextAction() else { throw QKDError(.ppInconsistent, "Bob sent no detection report; the bench driver is wrong") }
            let reportBytes = report.encoded(roundID: 1)
            let t1 = BenchSupport.wallSeconds()
            try alice.receive(bytes: reportBytes)
            guard case .send(let response) = alice.nextAction() else { throw QKDError(.ppInconsistent, "Alice sent no sift response; the bench driver is wrong") }
            let responseBytes = response.encoded(roundID: 1)
            let t2 = BenchSupport.wallSeconds()
            try bob.receive(bytes: responseBytes)
            _ = bob.nextAction()
            let t3 = BenchSupport.wallSeconds()
            best = (min(best.exchange, t3 - t0), min(best.alice, t2 - t1), min(best.bob, (t1 - t0) + (t3 - t2)))
        }
        return best
    }

    /// Bits on the wire for the sifting exchange per detection, the entropy bound, and p.
    static func wireCost(_ b: BobRecord) -> (bits: Double, bound: Double, p: Double) {
        let d = b.detectionCount
        let report = PostProcessingMessage.detections(DetectionReport(slotCount: UInt64(b.slotCount), positions: b.slots,
                                                                      bases: BitVector(words: b.bases, count: d)))
        let p = Double(d) / Double(b.slotCount)
        return (Double(8 * (report.encodedByteCount - 10) + d) / Double(d), FiniteKey.binaryEntropy(p) / p + 1, p)
    }
}

/// The straightforward sifting exchange: 8-byte slot and 1-byte basis per detection.
/// The straightforward sifting exchange: 8-byte slot and 1-byte basis per detection. Returns
/// the wall time of Bob's part (writing the records) and of Alice's (reading and matching them).
private func uncompressedSift(_ a: AliceRecord, _ b: BobRecord) -> (bob: Double, alice: Double) {
    let t0 = BenchSupport.wallSeconds()
    var wire = [UInt8]()
    wire.reserveCapacity(9 * b.detectionCount)
    for (i, s) in b.slots.enumerated() {
        for k in stride(from: 56, through: 0, by: -8) { wire.append(UInt8((s >> UInt64(k)) & 0xff)) }
        wire.append(UInt8((b.bases[i >> 6] >> UInt64(i & 63)) & 1))
    }
    let t1 = BenchSupport.wallSeconds()
    var matches = [Bool]()
    matches.reserveCapacity(b.detectionCount)
    var off = 0
    while off < wire.count {
        var s: UInt64 = 0
        for k in 0..<8 { s = (s << 8) | UInt64(wire[off + k]) }
        let basis = UInt64(wire[off + 8])
        let aliceBasis = (a.bases[Int(s) >> 6] >> (s & 63)) & 1
        matches.append(basis == aliceBasis)
        off += 9
    }
    let t2 = BenchSupport.wallSeconds()
    precondition(matches.count == b.detectionCount)
    return (t1 - t0, t2 - t1)
}

/// `qkd-node bench pipeline`.
struct BenchPipelineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "Both roles over an in-memory pipe, sifting through amplification, in Mbit/s of sifted key; baseline: original Cascade. With --tcp: two processes over loopback TCP (BenchPipelineTCP.swift).")
    @OptionGroup var options: PostProcessingBenchOptions
    @OptionGroup var tcpOptions: PipelineTCPOptions

    /// Rounds in flight of the threaded rows: 1 is strict ping-pong; with more, each role thread
    /// has another round's message to work on while its peer computes.
    static let inFlightCounts = [1, 2, 4]

    func run() throws {
        if tcpOptions.tcp { return try BenchPipelineTCP(options: options, tcp: tcpOptions).run() }
        let q = options.qber ?? 0.03
        let sifted = options.bits ?? (1 << 20)
        let runs = max(1, options.runs ?? 6)
        let workers = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        // Efficient BB84, p_Z = 0.9, 4 dB total loss: about p_Z^2 = 81% of detections are key bits.
        let pulses = Int(Double(sifted) / (0.81 * 0.4) * 1.02)
        // The simulated link runs before any timing: only post-processing is measured.
        let records: [(AliceRecord, BobRecord)] = (0..<runs).map { r in
            var link = BB84Link(parameters: LinkParameters(pulsesPerRound: pulses, probabilityZ: 0.9, channelLossDB: 4,
                                                           detectorEfficiency: 1, darkCountProbability: 0, misalignment: q), seed: UInt64(r))
            return link.runRound()
        }
        /// One threaded batch: wall-clock rate and each role's work rate, Mbit/s sifted.
        struct Threaded {
            var wall = 0.0, alice = 0.0, bob = 0.0
        }
        struct Figures {
            var oneThreadBest = 0.0        // Mbit/s sifted per CPU-second, best round
            var oneThreadMean = 0.0        // all rounds' bits over all rounds' CPU time
            var threaded: [Int: Threaded] = [:]  // by rounds in flight
            var parallelWall = 0.0         // whole rounds side by side on every core: Mbit/s wall clock
            var parallelCPU = 0.0          // the same rounds' bits over the workers' CPU time
            var summary: RoundSummary?
        }
        var results: [ReconciliationSchedule: Figures] = [:]
        // One untimed round per schedule first: the schedule timed first otherwise pays for the
        // cold buffer pools, page faults and caches (its one-thread figures came out about 25%
        // low, whichever schedule it was).
        for schedule in [ReconciliationSchedule.improved, .original] {
            _ = try runPipeline(records[0].0, records[0].1, config: PostProcessingConfiguration(reconciliation: schedule), seed: 0)
        }
        for schedule in [ReconciliationSchedule.improved, .original] {
            let config = PostProcessingConfiguration(reconciliation: schedule)
            var f = Figures()
            var single: [RoundSummary?] = []
            var totalBits = 0.0, totalTime = 0.0
            for (r, (a, b)) in records.enumerated() {
                let (summary, t) = try timed { try runPipeline(a, b, config: config, seed: UInt64(r)) }
                single.append(summary)
                guard let s = summary else { continue }
                let bits = Double(s.siftedKeyBits + s.testBits)
                f.oneThreadBest = max(f.oneThreadBest, bits / t / 1e6)
                totalBits += bits
                totalTime += t
                f.summary = s
            }
            f.oneThreadMean = totalTime > 0 ? totalBits / totalTime / 1e6 : 0
            for inFlight in BenchPipelineCommand.inFlightCounts {
                // Best of two batches: other processes on the shared machine only ever slow a batch down.
                for _ in 0..<2 {
                    let batch = try runThreadedPipeline(records, config: config, inFlight: inFlight, seedBase: 0)
                    guard batch.summaries == single.compactMap({ $0 }) else {
                        throw QKDError(.ppInconsistent, "the two-thread rounds (\(inFlight) in flight) differ from the one-thread rounds; the bench driver is wrong")
                    }
                    let bits = Double(batch.siftedBits)
                    let t = Threaded(wall: bits / batch.wallSeconds / 1e6, alice: bits / batch.aliceCPUSeconds / 1e6,
                                     bob: bits / batch.bobCPUSeconds / 1e6)
                    if t.wall > f.threaded[inFlight]?.wall ?? 0 { f.threaded[inFlight] = t }
                }
            }
            for _ in 0..<2 {
                let batch = try runParallelRounds(records, config: config, workers: workers, seedBase: 0)
                guard batch.summaries == single.compactMap({ $0 }) else {
                    throw QKDError(.ppInconsistent, "the parallel rounds differ from the one-thread rounds; the bench driver is wrong")
                }
                let bits = Double(batch.siftedBits)
                if bits / batch.wallSeconds / 1e6 > f.parallelWall {
                    f.parallelWall = bits / batch.wallSeconds / 1e6
                    f.parallelCPU = bits / batch.cpuSeconds / 1e6
                }
            }
            results[schedule] = f
        }
        let imp = results[.improved]!, orig = results[.original]!
        let load = loadAverage().map { "load average \(fmt($0)) on the shared machine" } ?? "shared machine"
        var rows: [PostProcessingBenchRow] = []
        for inFlight in BenchPipelineCommand.inFlightCounts {
            let i = imp.threaded[inFlight]!, o = orig.threaded[inFlight]!
            let how = inFlight == 1
                ? "one round at a time (strict ping-pong: the roles mostly take turns)"
                : "\(inFlight) rounds in flight: Bob opens round k+\(inFlight) when round k ends and each role thread serves every open round, as a node pair would to keep both cores busy"
            rows.append(.init(metric: inFlight == 1 ? "pipeline Q=\(q), 2 threads" : "pipeline Q=\(q), 2 threads, \(inFlight) rounds in flight",
                              value: i.wall, unit: "Mbit/s sifted key (wall clock)", baseline: o.wall,
                              note: "Alice and Bob each on their own thread, messages through an in-memory queue; \(how); all \(runs) rounds' sifted bits over the wall time, best of 2 batches; per role work CPU (thread CPU time outside the queue): Alice \(fmt(i.alice)), Bob \(fmt(i.bob)) Mbit/s (original \(fmt(o.alice)), \(fmt(o.bob)))\(inFlight > 1 ? ", so with a free core per role at most \(fmt(min(i.alice, i.bob)))" : ""); \(load); baseline: same with original Cascade"))
        }
        rows.append(.init(metric: "pipeline Q=\(q), \(workers) rounds side by side", value: imp.parallelWall, unit: "Mbit/s sifted key (wall clock)",
                          baseline: orig.parallelWall,
                          note: "\(workers) worker threads (one per core), each runs whole rounds, both roles over the in-memory pipe, so no message waits for another thread: the rate of a machine that carries both roles; all \(runs) rounds' sifted bits over the wall time, best of 2 batches; over the workers' CPU time \(fmt(imp.parallelCPU)) Mbit/s (original \(fmt(orig.parallelCPU))); \(load); baseline: same with original Cascade"))
        rows.append(.init(metric: "pipeline Q=\(q), one thread", value: imp.oneThreadBest, unit: "Mbit/s sifted key per core", baseline: orig.oneThreadBest,
                          note: "sifting..amplification, both roles on one thread, thread CPU time, best of \(runs) (all rounds: \(fmt(imp.oneThreadMean)), original \(fmt(orig.oneThreadMean))); baseline: same with original Cascade"))
        if let s = imp.summary {
            rows.append(.init(metric: "final key fraction", value: Double(s.finalBits) / Double(s.siftedKeyBits), unit: "final/sifted key bits",
                              baseline: orig.summary.map { Double($0.finalBits) / Double($0.siftedKeyBits) },
                              note: "n=\(s.siftedKeyBits), k=\(s.testBits), f=\(s.efficiency.map { fmt($0) } ?? "-"), round trips \(s.roundTrips) (original \(orig.summary.map { "\($0.roundTrips)" } ?? "-"): each is a wait for the peer in the threaded rows)"))
        }
        printPostProcessingBench(workload: "pipeline", rows: rows, json: options.json)
    }
}

/// The one-minute load average (/proc/loadavg), to put wall-clock figures in context.
private func loadAverage() -> Double? {
    var loads = [Double](repeating: 0, count: 3)
    return getloadavg(&loads, 3) >= 1 ? loads[0] : nil
}

/// Runs both roles to the end over an in-memory pipe of encoded messages.
func runPipeline(_ a: AliceRecord, _ b: BobRecord, config: PostProcessingConfiguration, seed: UInt64) throws -> RoundSummary? {
    var bob = BobRound(roundID: seed, configuration: config, slotCount: UInt64(b.slotCount), positions: b.slots,
                       bases: BitVector(words: b.bases, count: b.detectionCount), bits: BitVector(words: b.bits, count: b.detectionCount))
    var alice = AliceRound(roundID: seed, configuration: config, bits: BitVector(words: a.bits, count: a.slotCount),
                           bases: BitVector(words: a.bases, count: a.slotCount), random: DeterministicRandomSource(seed: seed))
    var result: RoundSummary?
    var progress = true
    while progress {
        progress = false
        while let action = bob.nextAction() {
            progress = true
            if case .send(let m) = action { try alice.receive(bytes: m.encoded(roundID: seed)) }
        }
        while let action = alice.nextAction() {
            progress = true
            switch action {
            case .send(let m): try bob.receive(bytes: m.encoded(roundID: seed))
            case .finished(let r): result = r.summary
            case .aborted: break
            }
        }
    }
    return result
}
