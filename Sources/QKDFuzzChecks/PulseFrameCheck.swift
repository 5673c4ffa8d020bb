import QKDCrypto
import QKDNode
import QKDSimulation

/// FuzzPulseFrame. Input: one byte seeding the chunk sizes, then the byte stream of the quantum
/// link (Spec/quantum-link.md sections 2 and 3), which is unauthenticated like a fibre: anyone
/// on the path can write it.
/// Invariants:
/// - parsing never crashes; every error is `node.malformed`, a peer-misbehaviour ``QKDError``,
///   and asking again gives the same error (the parser does not skip a bad frame);
/// - the frames and the error are the same whether the stream arrives whole or in input-chosen
///   chunks (one-byte drip included);
/// - every accepted frame re-encodes to exactly the bytes it was parsed from (canonical form),
///   its slots increase strictly below its slot count and its packed bitmaps have no bit past
///   the last photon;
/// - Bob's detector runs on the first four accepted frames as the node runs it (losses, dark counts,
///   efficiency below 1), and reports detections in strictly increasing slots below the slot
///   count, at most one per slot.
enum PulseFrameCheck {
    struct Result: Equatable {
        var frames: [[UInt8]] = []
        var error: QKDError.Code?
    }

    static func parse(_ stream: [UInt8], chunkSeed: UInt8) throws(FuzzInvariantViolation) -> (Result, [PulseFrame]) {
        var parser = PulseFrameParser()
        var result = Result()
        var decoded: [PulseFrame] = []
        var offset = 0
        var chunks = FuzzChunks(seed: chunkSeed)
        repeat {
            let n = stream.isEmpty ? 0 : chunks.next(remaining: stream.count - offset)
            parser.append(Array(stream[offset..<offset + n]))
            offset += n
            do {
                while let frame = try parser.nextFrame() {
                    var bytes: [UInt8] = []
                    frame.encode(into: &bytes)
                    result.frames.append(bytes)
                    decoded.append(frame)
                }
            } catch let error as QKDError {
                guard error.code == .nodeMalformed, error.code.isPeerMisbehaviour else {
                    throw FuzzInvariantViolation("a quantum-link frame failed with \(error), not node.malformed")
                }
                result.error = error.code
                do {
                    _ = try parser.nextFrame()
                    throw FuzzInvariantViolation("the parser went on after \(error.code)")
                } catch let again as QKDError {
                    guard again.code == error.code else {
                        throw FuzzInvariantViolation("asked again, the parser changed its error from \(error.code) to \(again.code)")
                    }
                } catch let violation as FuzzInvariantViolation {
                    throw violation
                } catch {
                    throw FuzzInvariantViolation("untyped error \(error)")
                }
                return (result, decoded)
            } catch {
                throw FuzzInvariantViolation("untyped error \(error)")
            }
        } while offset < stream.count
        return (result, decoded)
    }

    static func run(_ bytes: [UInt8]) throws(FuzzInvariantViolation) -> FuzzCheck.Outcome {
        var input = FuzzInput(bytes)
        let chunkSeed = input.byte()
        let stream = input.rest()
        let (whole, frames) = try parse(stream, chunkSeed: 0)
        let (chunked, _) = try parse(stream, chunkSeed: chunkSeed)
        guard whole == chunked else {
            throw FuzzInvariantViolation("chunking changed the result: whole \(whole.frames.count) frames / \(String(describing: whole.error)), chunked \(chunked.frames.count) / \(String(describing: chunked.error))")
        }
        // Accepted frames are exactly the prefix of the stream, in order.
        let consumed = whole.frames.reduce(into: [UInt8]()) { $0 += $1 }
        guard consumed.count <= stream.count, Array(stream[0..<consumed.count]) == consumed else {
            throw FuzzInvariantViolation("re-encoded pulse frames differ from the bytes they were parsed from")
        }
        // The detector on the first frames only: a stream of empty frames of 2^27 slots each
        // would otherwise spend its time on dark counts.
        for frame in frames.prefix(4) { try checkFrame(frame) }
        if let code = whole.error { return .rejected(QKDError(code)) }
        return .accepted
    }

    static func checkFrame(_ frame: PulseFrame) throws(FuzzInvariantViolation) {
        let n = frame.slots.count
        guard zip(frame.slots, frame.slots.dropFirst()).allSatisfy({ $0 < $1 }), frame.slots.last.map({ $0 < frame.slotCount }) ?? true else {
            throw FuzzInvariantViolation("an accepted frame's slots do not increase strictly below its slot count")
        }
        let words = (n + 63) >> 6
        guard frame.basisWords.count == words, frame.bitWords.count == words else {
            throw FuzzInvariantViolation("an accepted frame holds \(frame.basisWords.count) basis words for \(n) photons")
        }
        if n & 63 != 0 {
            let tail = ~((UInt64(1) << UInt64(n & 63)) - 1)
            guard frame.basisWords[words - 1] & tail == 0, frame.bitWords[words - 1] & tail == 0 else {
                throw FuzzInvariantViolation("an accepted frame has bits past its last photon")
            }
        }
        // Bob's detector on what the link delivered, with every slow path on: efficiency below 1
        // (clicks one by one) and dark counts (merged into the photons' slots).
        var bob = BobDevice(probabilityZ: 0.5, efficiency: 0.7, darkCountProbability: 1e-4, misalignment: 0.02, seed: frame.roundID)
        let record = bob.detect(frame.arrivals)
        guard zip(record.slots, record.slots.dropFirst()).allSatisfy({ $0 < $1 }), record.slots.last.map({ $0 < UInt64(frame.slotCount) }) ?? true,
              record.bases.count == (record.detectionCount + 63) >> 6 else {
            throw FuzzInvariantViolation("Bob's detections on an accepted frame are out of order, out of range or misshapen")
        }
    }

    /// Valid streams made with the encoder from the simulated channel: no photons, one, a word,
    /// a word and a bit, a lossy round with Eve, and two frames back to back.
    static func seeds() -> [(name: String, bytes: [UInt8])] {
        var alice = AliceDevice(probabilityZ: 0.75, seed: 3)
        var channel = QuantumChannel(transmittance: 0.5, interceptFraction: 0.1, seed: 3)
        var lossless = QuantumChannel(transmittance: 1, interceptFraction: 0, seed: 3)
        func frame(_ pulses: Int, round: UInt64, lossy: Bool = false) -> [UInt8] {
            let photons = alice.emit(pulses: pulses).photons
            var out: [UInt8] = []
            PulseFrame(roundID: round, arrivals: lossy ? channel.transmit(photons) : lossless.transmit(photons)).encode(into: &out)
            return out
        }
        return [
            ("empty", [0] + frame(0, round: 1)),
            ("one-photon", [1] + frame(1, round: 2)),
            ("one-word", [2] + frame(64, round: 3)),
            ("word-and-a-bit", [3] + frame(65, round: 4)),
            ("simulated-round", [5] + frame(300, round: 7, lossy: true)),
            ("two-frames", [9] + frame(30, round: 5, lossy: true) + frame(3, round: 6)),
        ]
    }
}
