import Foundation

/// One figure of a `qkd-node bench` workload, beside its same-run baseline.
struct BenchResult {
    var metric: String
    var value: Double
    var unit: String
    var baseline: Double?
    var ratio: Double?
    var note: String?
}

/// Timing and output shared by the `bench` subcommands.
enum BenchSupport {
    /// CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`), in seconds. The machine is
    /// shared: wall time would count the time other processes hold the cores, which varies from
    /// one workload to the next and biases the ratio; CPU time does not.
    static func cpuSeconds() -> Double { seconds(CLOCK_THREAD_CPUTIME_ID) }

    /// CPU time of the whole process, for async workloads that may resume on another thread.
    static func processCPUSeconds() -> Double { seconds(CLOCK_PROCESS_CPUTIME_ID) }

    /// Monotonic wall-clock time, for workloads whose waits (fsync, sockets) are the point.
    static func wallSeconds() -> Double { seconds(CLOCK_MONOTONIC) }

    private static func seconds(_ clock: clockid_t) -> Double {
        var ts = timespec()
        clock_gettime(clock, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Accumulates timed runs of a workload and keeps the best (lowest) seconds per item.
    /// Batches double until one takes 5 ms, so clock reads do not count.
    struct Timer {
        let budget: Double
        var batch = 1
        var warmedUp = false
        var best = Double.infinity

        init(budget: Double) { self.budget = budget }

        /// One run of about `budget` seconds; `body(n)` processes n items and returns its seconds.
        mutating func runThrowing(_ body: (Int) throws -> Double) throws {
            if !warmedUp {
                _ = try body(1)  // Caches, lazy initialisation, page faults.
                warmedUp = true
            }
            var items = 0
            var elapsed = 0.0
            while elapsed < budget {
                let t = try body(batch)
                items += batch
                elapsed += t
                if t < 0.005 { batch *= 2 }
            }
            best = min(best, elapsed / Double(items))
        }

        mutating func run(_ body: (Int) -> Double) {
            try! runThrowing(body)  // `body` does not throw.
        }

        /// ``runThrowing(_:)`` for an async workload.
        mutating func run(_ body: (Int) async throws -> Double) async throws {
            if !warmedUp {
                _ = try await body(1)
                warmedUp = true
            }
            var items = 0
            var elapsed = 0.0
            while elapsed < budget {
                let t = try await body(batch)
                items += batch
                elapsed += t
                if t < 0.005 { batch *= 2 }
            }
            best = min(best, elapsed / Double(items))
        }
    }

    /// A number with 1, 3 or 4 decimals by magnitude; "null" for nil or non-finite.
    static func number(_ x: Double?) -> String {
        guard let x, x.isFinite else { return "null" }
        let magnitude = abs(x)
        let digits = magnitude >= 100 ? 1 : magnitude >= 1 ? 3 : 4
        let scale = (0..<digits).reduce(1.0) { r, _ in r * 10 }
        return String((x * scale).rounded() / scale)
    }

    /// A JSON string literal.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out + "\""
    }

    /// `{"workload": ..., "results": [{"metric", "value", "unit", "baseline", "ratio", "note"?}]}`.
    static func renderJSON(workload: String, _ results: [BenchResult]) -> String {
        let rows = results.map { r in
            var fields = ["\"metric\": \(jsonString(r.metric))", "\"value\": \(number(r.value))", "\"unit\": \(jsonString(r.unit))",
                          "\"baseline\": \(number(r.baseline))", "\"ratio\": \(number(r.ratio))"]
            if let note = r.note { fields.append("\"note\": \(jsonString(note))") }
            return "{" + fields.joined(separator: ", ") + "}"
        }
        return "{\"workload\": \(jsonString(workload)), \"results\": [" + rows.joined(separator: ", ") + "]}"
    }

    /// The human-readable table: metric, ours, baseline, ratio, unit; notes indented below
    /// their row, then `footer` if given.
    static func renderTable(workload: String, _ results: [BenchResult], footer: String? = nil) -> String {
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
        var lines = ["workload: \(workload)", pad("metric", 50) + pad("ours", 14) + pad("baseline", 14) + pad("ratio", 8) + "unit"]
        for r in results {
            lines.append(pad(r.metric, 50) + pad(number(r.value), 14) + pad(r.baseline.map { number($0) } ?? "-", 14)
                         + pad(r.ratio.map { number($0) } ?? "-", 8) + r.unit)
            if let note = r.note { lines.append("    " + note) }
        }
        if let footer { lines.append(""); lines.append(footer) }
        return lines.joined(separator: "\n")
    }
}
