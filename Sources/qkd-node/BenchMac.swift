import ArgumentParser
import QKDCrypto
import QKDWire
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `qkd-node bench mac`: throughput of complete authenticated frames (Spec/wire.md), against bare
/// libsodium doing the same MAC work over the same bytes, measured in the same run.
///
/// Ours, per frame: build the frame, seal it (per-frame Wegman-Carter tag, fresh pad), encode it,
/// append the bytes to a decoder, decode, verify with the same pad. Pads come from a buffer
/// filled before timing, so pad generation is not timed.
/// Baseline, per frame: `crypto_onetimeauth_poly1305` then `crypto_onetimeauth_poly1305_verify`
/// over the frame's bytes from offset 0 through the end of the payload (what our MAC covers,
/// without the domain and length blocks), with key `r || s` and `s` from the same pad buffer.
/// Each figure is the best of five runs, timed in thread CPU time (the machine is shared), with
/// baseline and ours alternating run by run.
struct BenchMacCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mac",
        abstract: "Authenticated frame throughput (encode + tag, decode + verify) against bare libsodium Poly1305."
    )

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(help: "Seconds to spend on each measurement (split over five interleaved runs; the best counts).")
    var seconds: Double = 1.0

    @Option(help: "Payload sizes in bytes, comma-separated.")
    var sizes: String = "64,1024,65536"

    @Option(help: "Suites, comma-separated (poly1305-otp, gf128-otp).")
    var suites: String = "poly1305-otp,gf128-otp"

    static let runs = 5
    static let padCount = 4096
    static let baselineNote = "baseline: bare libsodium crypto_onetimeauth_poly1305 + crypto_onetimeauth_poly1305_verify over the same frame bytes (offset 0 to end of payload), fresh s per frame, same run; thread CPU time, best of 5 alternating runs"

    typealias Result = BenchResult
    typealias Timer = BenchSupport.Timer
    static func cpuSeconds() -> Double { BenchSupport.cpuSeconds() }
    static func number(_ x: Double?) -> String { BenchSupport.number(x) }

    var payloadSizes: [Int] { sizes.split(separator: ",").compactMap { Int(String($0.filter { $0 != " " })) } }
    var selectedSuites: [MACSuite] { suites.split(separator: ",").compactMap { MACSuite(name: String($0.filter { $0 != " " })) } }

    func validate() throws {
        guard seconds > 0, seconds <= 600 else { throw ValidationError("--seconds must be in (0, 600]") }
        guard !payloadSizes.isEmpty, payloadSizes.allSatisfy({ $0 >= 0 && $0 <= FrameLimits.default.maxPayloadByteCount(tagged: true) }) else {
            throw ValidationError("--sizes must list payload sizes between 0 and \(FrameLimits.default.maxPayloadByteCount(tagged: true))")
        }
        guard selectedSuites.count == suites.split(separator: ",").count, !selectedSuites.isEmpty else {
            throw ValidationError("--suites must list poly1305-otp and/or gf128-otp")
        }
    }

    func run() throws {
        var random = SystemRandomSource()
        let padBuffer = SecretBytes(randomCount: Self.padCount * MACSuite.padByteCount, using: &random)
        let hashKeyBytes = random.bytes(count: MACSuite.hashKeyByteCount)
        let session = SessionID.random(using: &random)
        var results: [Result] = []

        for size in payloadSizes {
            let payload = random.bytes(count: size)
            let keys = try selectedSuites.map { try HashKey(suite: $0, rawRepresentation: hashKeyBytes) }
            // Baseline and ours alternate, run by run, so that a change in machine load between
            // them (the machine is shared) shows as noise in both, not as a bias in the ratio.
            var baselineTimer = Timer(budget: seconds / Double(Self.runs))
            var ourTimers = keys.map { _ in Timer(budget: seconds / Double(Self.runs)) }
            var macTimers = keys.map { _ in Timer(budget: seconds / Double(Self.runs)) }
            for _ in 0..<Self.runs {
                baselineTimer.run { frames in Self.runBaseline(payload: payload, hashKey: hashKeyBytes, pads: padBuffer, frames: frames) }
                for (i, key) in keys.enumerated() {
                    try ourTimers[i].runThrowing { frames in
                        try Self.runFrames(payload: payload, hashKey: key, session: session, pads: padBuffer, frames: frames)
                    }
                    macTimers[i].run { frames in
                        Self.runWegmanCarter(payload: payload, hashKey: key, session: session, pads: padBuffer, frames: frames)
                    }
                }
            }
            let baseline = baselineTimer.best
            for (i, suite) in selectedSuites.enumerated() {
                let ours = ourTimers[i].best
                let mac = macTimers[i].best
                let label = "\(suite) frame \(Self.sizeLabel(size))"
                let oursBytes = Double(size) / ours, baseBytes = Double(size) / baseline
                results.append(Result(metric: "\(label) payload throughput", value: oursBytes / 1e9, unit: "GB/s",
                                      baseline: baseBytes / 1e9, ratio: baseline / ours, note: Self.baselineNote))
                results.append(Result(metric: "\(label) frames", value: 1 / ours, unit: "frames/s",
                                      baseline: 1 / baseline, ratio: baseline / ours, note: nil))
                results.append(Result(metric: "\(suite) WegmanCarter tag+verify only, \(Self.sizeLabel(size))", value: Double(size) / mac / 1e9,
                                      unit: "GB/s", baseline: baseBytes / 1e9, ratio: baseline / mac,
                                      note: "QKDCrypto WegmanCarter over the same 32+n bytes with a 36-byte domain, no framing: separates the MAC construction's cost from the frame layer's"))
                if size == 64 {
                    results.append(Result(metric: "\(suite) per-frame overhead at \(Self.sizeLabel(size))",
                                          value: (ours - baseline) * 1e9, unit: "ns", baseline: baseline * 1e9, ratio: nil,
                                          note: "our time per frame minus the baseline's; baseline = baseline ns per frame"))
                }
            }
        }
        let raw = Self.rawPoly1305(seconds: seconds)
        results.append(Result(metric: "libsodium crypto_onetimeauth_poly1305 single pass, 1 MiB", value: raw / 1e9,
                              unit: "GB/s", baseline: nil, ratio: nil, note: "reference: one call over a 1 MiB buffer"))
        print(json ? Self.renderJSON(results) : Self.renderTable(results))
    }

    // MARK: Workloads. Each returns the elapsed seconds for `frames` frames.

    static func runFrames(payload: [UInt8], hashKey: HashKey, session: SessionID, pads: SecretBytes, frames: Int) throws -> Double {
        let sender = FrameAuthenticator(hashKey: hashKey, direction: .aliceToBob, sessionID: session)
        let receiver = FrameAuthenticator(hashKey: hashKey, direction: .aliceToBob, sessionID: session)
        let encoder = FrameEncoder()
        var decoder = FrameDecoder()
        var wire: [UInt8] = []
        wire.reserveCapacity(payload.count + 64)
        let slice = payload[...]
        let start = cpuSeconds()
        for i in 0..<frames {
            let slot = UInt64(i)
            let padOffset = (i % padCount) * MACSuite.padByteCount
            var frame = Frame(header: FrameHeader(type: .data, sequenceNumber: slot, keyReference: .padSlot(epoch: 1, slot: slot),
                                                  payloadLength: slice.count), payload: slice)
            pads.withUnsafeBytes { sender.seal(&frame, pad: OneTimePad($0, offset: padOffset)) }
            wire.removeAll(keepingCapacity: true)
            try encoder.encode(frame, into: &wire)
            decoder.append(wire)
            guard let received = try decoder.nextFrame() else { throw ValidationError("decoder returned no frame") }
            let valid = pads.withUnsafeBytes { receiver.isValidAuthenticationTag(of: received, pad: OneTimePad($0, offset: padOffset)) }
            guard valid else { throw ValidationError("a frame failed to verify") }
        }
        return cpuSeconds() - start
    }

    static func runWegmanCarter(payload: [UInt8], hashKey: HashKey, session: SessionID, pads: SecretBytes, frames: Int) -> Double {
        let message = [UInt8](repeating: 0x5a, count: FrameHeader.byteCount) + payload
        let domain = Array("QKDChannel/1 frame".utf8) + [hashKey.suite.rawValue, 0] + session.rawRepresentation
        let start = cpuSeconds()
        message.withUnsafeBytes { m in
            domain.withUnsafeBytes { d in
                pads.withUnsafeBytes { p in
                    for i in 0..<frames {
                        let offset = (i % padCount) * MACSuite.padByteCount
                        let tag = WegmanCarter.authenticationTag(for: m, domain: d, hashKey: hashKey, pad: OneTimePad(p, offset: offset))
                        guard WegmanCarter.isValidAuthenticationTag(tag, authenticating: m, domain: d, hashKey: hashKey,
                                                                    pad: OneTimePad(p, offset: offset)) else {
                            fatalError("WegmanCarter rejected its own tag")
                        }
                    }
                }
            }
        }
        return cpuSeconds() - start
    }

    static func runBaseline(payload: [UInt8], hashKey: [UInt8], pads: SecretBytes, frames: Int) -> Double {
        // The frame bytes our MAC covers: a header (any 32 bytes do) and the payload.
        let message = [UInt8](repeating: 0x5a, count: FrameHeader.byteCount) + payload
        var key = hashKey + [UInt8](repeating: 0, count: 16)
        var tag = [UInt8](repeating: 0, count: BareLibsodium.poly1305TagByteCount)
        let start = cpuSeconds()
        message.withUnsafeBytes { m in
            key.withUnsafeMutableBytes { k in
                tag.withUnsafeMutableBytes { t in
                    pads.withUnsafeBytes { p in
                        for i in 0..<frames {
                            (k.baseAddress! + 16).copyMemory(from: p.baseAddress! + (i % padCount) * 16, byteCount: 16)
                            BareLibsodium.poly1305Tag(t, message: m, key: UnsafeRawBufferPointer(k))
                            guard BareLibsodium.poly1305Verify(UnsafeRawBufferPointer(t), message: m, key: UnsafeRawBufferPointer(k)) else {
                                fatalError("libsodium rejected its own tag")
                            }
                        }
                    }
                }
            }
        }
        let elapsed = cpuSeconds() - start
        secureZero(&key)
        return elapsed
    }

    /// Bytes per second of one `crypto_onetimeauth_poly1305` call over 1 MiB (best of `runs`).
    static func rawPoly1305(seconds budget: Double) -> Double {
        let message = [UInt8](repeating: 0xa5, count: 1 << 20)
        var key = [UInt8](repeating: 0x11, count: 32)
        var tag = [UInt8](repeating: 0, count: 16)
        var timer = Timer(budget: budget / Double(runs))
        for _ in 0..<runs { timer.run { calls in
            let start = cpuSeconds()
            message.withUnsafeBytes { m in
                key.withUnsafeMutableBytes { k in
                    tag.withUnsafeMutableBytes { t in
                        for i in 0..<calls {
                            k[0] = UInt8(truncatingIfNeeded: i)
                            BareLibsodium.poly1305Tag(t, message: m, key: UnsafeRawBufferPointer(k))
                        }
                    }
                }
            }
            return cpuSeconds() - start
        } }
        return Double(message.count) / timer.best
    }

    // MARK: Output.

    static func sizeLabel(_ n: Int) -> String {
        n >= 1024 ? "\(n / 1024) KiB" : "\(n) B"
    }

    static func renderJSON(_ results: [Result]) -> String { BenchSupport.renderJSON(workload: "mac", results) }

    static func renderTable(_ results: [Result]) -> String {
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        var lines = [pad("metric", 56) + pad("ours", 14) + pad("baseline", 14) + pad("ratio", 8) + "unit"]
        for r in results {
            lines.append(pad(r.metric, 56) + pad(number(r.value), 14) + pad(r.baseline.map { number($0) } ?? "-", 14)
                         + pad(r.ratio.map { number($0) } ?? "-", 8) + r.unit)
        }
        lines.append("")
        lines.append(baselineNote)
        return lines.joined(separator: "\n")
    }
}
