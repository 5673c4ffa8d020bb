import ArgumentParser
import Foundation
import GRDB
import QKDCrypto
import QKDKeyPool

/// `qkd-node bench pool`: durable pad reservations per second (single 16-byte pads and whole
/// rounds, chunked) against the unchunked approach (one durable transaction per reservation),
/// and absorb throughput against one raw durable GRDB insert of the same bytes. All in one run,
/// on the same disk (a temporary state directory).
struct BenchPool: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pool",
        abstract: "Durable pad reservations per second and absorb throughput, with same-run baselines."
    )

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    @Option(name: .long, help: "Seconds per measured loop (each loop also stops at its operation cap).")
    var seconds: Double = 0.5

    @Option(name: .long, help: "Runs per reservation workload; the best run is reported.")
    var runs: Int = 3

    @Option(name: .long, help: "Where to create the temporary pools (default: the system temporary directory).")
    var dir: String?

    @Option(name: .long, help: "Run only these workloads (comma-separated: single, round, absorb).")
    var only: String?

    private func selected(_ name: String) -> Bool { only.map { $0.split(separator: ",").contains(Substring(name)) } ?? true }

    typealias Result = BenchResult

    func run() throws {
        try CLIError.report {
            let root = URL(fileURLWithPath: dir ?? NSTemporaryDirectory())
                .appendingPathComponent("qkd-bench-pool-\(getpid())-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            defer { try? FileManager.default.removeItem(atPath: root) }
            var results: [Result] = []

            // Single 16-byte pads.
            if selected("single") {
            let chunked = try rate(root: root, name: "single-chunked", chunkPads: 4096, padsPerCall: 1, cap: 400_000)
            let unchunked = try rate(root: root, name: "single-unchunked", chunkPads: 1, padsPerCall: 1, cap: 5_000)
            results.append(Result(metric: "pad reservations (16 B, chunk 4096)", value: chunked, unit: "reservations/s",
                                  baseline: unchunked, ratio: chunked / unchunked,
                                  note: "reserveOnePad; baseline: one durable (fsync) transaction per pad"))
            let chunkedAlloc = try rate(root: root, name: "single-alloc", chunkPads: 4096, padsPerCall: 1, cap: 100_000, allocating: true)
            results.append(Result(metric: "pad reservations (16 B, SecretBytes result)", value: chunkedAlloc, unit: "reservations/s",
                                  baseline: unchunked, ratio: chunkedAlloc / unchunked,
                                  note: "reservePad(count: 1): adds a locked allocation per call"))
            }
            if selected("round") {
            // Whole rounds: 64 pads = 1 KiB, the default policy's padBytesPerRound.
            let rounds = try rate(root: root, name: "round-chunked", chunkPads: 4096, padsPerCall: 64, cap: 6_000)
            let roundsUnchunked = try rate(root: root, name: "round-unchunked", chunkPads: 64, padsPerCall: 64, cap: 1_000)
            results.append(Result(metric: "round reservations (64 pads, chunk 4096)", value: rounds, unit: "reservations/s",
                                  baseline: roundsUnchunked, ratio: rounds / roundsUnchunked,
                                  note: "baseline: one durable transaction per round"))
            }
            if selected("absorb") {

            // Absorb: 1 MiB distilled keys into 32-byte consumer keys, vs one raw durable insert.
            for keyBytes in [32, 4096] {
                let (absorbRate, rawRate) = try absorb(root: root, consumerKeyBytes: keyBytes)
                results.append(Result(metric: "absorb (1 MiB rounds, \(keyBytes) B consumer keys)", value: absorbRate, unit: "MB/s",
                                      baseline: rawRate, ratio: absorbRate / rawRate,
                                      note: "baseline: the same bytes as one blob in one raw durable GRDB transaction"))
            }
            }
            try emit(results)
        }
    }

    private func newPool(_ root: String, _ name: String, pskBytes: Int, chunkPads: Int) throws -> KeyPool {
        var random = SystemRandomSource()
        let psk = try PSKFile.generate(byteCount: pskBytes, using: &random)
        let dir = (root as NSString).appendingPathComponent(name)
        _ = try KeyPool.create(directory: dir, role: .alice, linkID: psk.id).importPSK(psk)
        return try KeyPool.open(directory: dir, configuration: .init(chunkPads: chunkPads, lowWaterBytes: 0))
    }

    /// Reservations per second until `seconds` elapse or `cap` calls were made; the best of
    /// `runs` runs on one pool (the machine is shared: the best run is the least disturbed).
    private func rate(root: String, name: String, chunkPads: Int, padsPerCall: Int, cap: Int, allocating: Bool = false) throws -> Double {
        // Enough material for every run plus a chunk, per stream (the PSK halves between streams).
        let need = runs * min(cap * padsPerCall * 16, 32 << 20) + chunkPads * 16 + 4096
        let pool = try newPool(root, name, pskBytes: 2 * need + 64, chunkPads: chunkPads)
        defer { pool.close() }
        let clock = ContinuousClock()
        let limit = Duration.milliseconds(Int(seconds * 1000))
        var best = 0.0
        var sink: UInt64 = 0
        for _ in 0..<runs {
            let start = clock.now
            var calls = 0
            while calls < cap {
                do {
                    if padsPerCall == 1 && !allocating {
                        let pad = try pool.reserveOnePad(direction: .outbound)
                        sink &+= pad.offset
                    } else {
                        let r = try pool.reservePad(direction: .outbound, count: padsPerCall)
                        sink &+= r.offset
                    }
                } catch let e as QKDError where e.code == .poolExhausted {
                    break
                }
                calls += 1
                if calls & 63 == 0, clock.now - start > limit { break }
            }
            best = max(best, Double(calls) / seconds(clock.now - start))
        }
        if sink == UInt64.max { print("") }  // Keep the loop observable.
        return best
    }

    private func absorb(root: String, consumerKeyBytes: Int) throws -> (Double, Double) {
        let pool = try newPool(root, "absorb-\(consumerKeyBytes)", pskBytes: 64, chunkPads: 4096)
        defer { pool.close() }
        var random = SystemRandomSource()
        let key = SecretBytes(randomCount: 1 << 20, using: &random)
        let policy = RefillPolicy(padBytesPerRound: 1024, roundsAhead: 4, reserveBytes: 4096, newHashKeys: true, consumerKeyBytes: consumerKeyBytes)
        let clock = ContinuousClock()
        let limit = Duration.milliseconds(Int(seconds * 1000))
        var start = clock.now
        var rounds = 0
        while rounds < 200 {
            try pool.absorbDistilledKey(roundID: UInt64(rounds), bytes: key, policy: policy)
            rounds += 1
            if rounds >= 3, clock.now - start > limit { break }
        }
        let absorbSeconds = seconds(clock.now - start)
        let absorbRate = Double(rounds) * Double(key.count) / 1e6 / absorbSeconds

        let path = (root as NSString).appendingPathComponent("raw-\(consumerKeyBytes).sqlite")
        var config = Configuration()
        config.prepareDatabase { db in
            _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        let raw = try DatabaseQueue(path: path, configuration: config)
        try raw.write { try $0.execute(sql: "CREATE TABLE blob (id INTEGER PRIMARY KEY, bytes BLOB NOT NULL)") }
        let data = key.withUnsafeBytes { Data($0) }
        start = clock.now
        var inserts = 0
        while inserts < 200 {
            try raw.write { try $0.execute(sql: "INSERT INTO blob (bytes) VALUES (?)", arguments: [data]) }
            inserts += 1
            if inserts >= 3, clock.now - start > limit { break }
        }
        let rawRate = Double(inserts) * Double(key.count) / 1e6 / seconds(clock.now - start)
        try raw.close()
        return (absorbRate, rawRate)
    }

    private func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    private func emit(_ results: [Result]) throws {
        print(json ? BenchSupport.renderJSON(workload: "pool", results) : BenchSupport.renderTable(workload: "pool", results))
    }
}
