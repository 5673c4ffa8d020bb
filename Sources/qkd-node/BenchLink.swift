import ArgumentParser
import QKDNode
import QKDSimulation

/// `qkd-node bench link`: the simulated quantum link of the demo and of `pipeline --tcp`, in
/// pulses per second of CPU time: Alice's source, the channel, Bob's detector, and the pulse
/// frame that carries the photons between two processes. Baseline: the same physics photon by
/// photon (``PhotonByPhotonLink``, the devices as they were before they worked a word at a
/// time), and for the frame a plain copy of its bytes.
struct BenchLinkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "link",
        abstract: "Simulated quantum link (source, channel, detector, pulse frame) in pulses/s; baseline: photon by photon.")
    @OptionGroup var options: PostProcessingBenchOptions

    func run() throws {
        let pulses = options.bits ?? 1_863_494  // The pulses of a 2^20-bit sifted round of `pipeline --tcp`.
        let runs = max(1, options.runs ?? 5)
        let links: [(name: String, parameters: LinkParameters)] = [
            ("demo link (no loss, p_Z 0.75, misalignment 2%)",
             LinkParameters(pulsesPerRound: pulses, probabilityZ: 0.75, misalignment: 0.02)),
            ("lossy link (10 dB, efficiency 0.8, dark 1e-6, misalignment 2%, p_Z 0.9)",
             LinkParameters(pulsesPerRound: pulses, probabilityZ: 0.9, channelLossDB: 10, detectorEfficiency: 0.8,
                            darkCountProbability: 1e-6, misalignment: 0.02)),
            ("eavesdropped link (3 dB, efficiency 0.6, dark 1e-4, Eve on 20%)",
             LinkParameters(pulsesPerRound: pulses, probabilityZ: 0.5, channelLossDB: 3, detectorEfficiency: 0.6,
                            darkCountProbability: 1e-4, misalignment: 0.01, interceptFraction: 0.2)),
        ]
        var rows: [PostProcessingBenchRow] = []
        for (index, link) in links.enumerated() {
            var words = BB84Link(parameters: link.parameters, seed: UInt64(index) + 1)
            var photons = PhotonByPhotonLink(parameters: link.parameters, seed: UInt64(index) + 1)
            var best = Double.infinity, reference = Double.infinity, detections = 0, referenceDetections = 0
            for _ in 0..<runs {
                var start = BenchSupport.cpuSeconds()
                let round = words.runRound()
                best = min(best, BenchSupport.cpuSeconds() - start)
                detections = round.bob.detectionCount
                start = BenchSupport.cpuSeconds()
                let old = photons.runRound()
                reference = min(reference, BenchSupport.cpuSeconds() - start)
                referenceDetections = old.bob.detectionCount
            }
            rows.append(.init(metric: "link round, \(link.name)", value: Double(pulses) / best / 1e6, unit: "M pulses/s",
                              baseline: Double(pulses) / reference / 1e6,
                              note: "\(pulses) pulses, \(detections) detections (photon by photon: \(referenceDetections)); source, channel and detector, best of \(runs); baseline: the same physics photon by photon"))
        }
        // The pulse frame of the demo link: Alice encodes, Bob parses (Spec/quantum-link.md 2).
        var alice = AliceDevice(probabilityZ: 0.75, seed: 9)
        var channel = QuantumChannel(transmittance: 1, interceptFraction: 0, seed: 9)
        let arrivals = channel.transmit(alice.emit(pulses: pulses).photons)
        let frame = PulseFrame(roundID: 1, arrivals: arrivals)
        var coded = Double.infinity, copied = Double.infinity, bytes = 0
        for _ in 0..<runs {
            var start = BenchSupport.cpuSeconds()
            var out: [UInt8] = []
            frame.encode(into: &out)
            var parser = PulseFrameParser()
            parser.append(out)
            let back = try parser.nextFrame()
            coded = min(coded, BenchSupport.cpuSeconds() - start)
            guard back == frame else { throw ValidationError("the pulse frame did not survive its codec") }
            bytes = out.count
            start = BenchSupport.cpuSeconds()
            // A real copy (Array(out) would share the storage): the floor of moving the bytes once.
            let copy = out.withUnsafeBufferPointer { src in
                [UInt8](unsafeUninitializedCapacity: src.count) { dst, count in
                    dst.baseAddress!.update(from: src.baseAddress!, count: src.count)
                    count = src.count
                }
            }
            copied = min(copied, BenchSupport.cpuSeconds() - start)
            if copy.last != out.last { throw ValidationError("the copy differs") }
        }
        rows.append(.init(metric: "pulse frame encode + parse", value: Double(arrivals.photonCount) / coded / 1e6, unit: "M photons/s",
                          baseline: Double(arrivals.photonCount) / copied / 1e6,
                          note: "\(arrivals.photonCount) photons, \(bytes) bytes, best of \(runs); baseline: one copy of the frame's bytes"))
        printPostProcessingBench(workload: "link", rows: rows, json: options.json)
    }
}
