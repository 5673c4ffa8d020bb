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
/// - Bob's detector runs on every accepted frame as the node runs it (losses, dark counts,
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
        var chunkState = UInt32(chunkSeed) | 1
        repeat {
            var n = stream.count - offset
            if chunkSeed == 1 {
                n = min(n, 1)
            } else if chunkSeed > 1 {
                chunkState = chunkState &* 1_103_515_245 &+ 12345
                n = min(n, Int((chunkState >> 16) % 97) + 1)
            }
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
        let arrivals = Arrivals(roundSlotCount: Int(frame.slotCount), slots: frame.slots, basisWords: frame.basisWords, bitWords: frame.bitWords)
        var bob = BobDevice(probabilityZ: 0.5, efficiency: 0.7, darkCountProbability: 1e-4, misalignment: 0.02, seed: frame.roundID)
        let record = bob.detect(arrivals)
        guard zip(record.slots, record.slots.dropFirst()).allSatisfy({ $0 < $1 }), record.slots.last.map({ $0 < UInt64(frame.slotCount) }) ?? true,
              record.bases.count == (record.detectionCount + 63) >> 6 else {
            throw FuzzInvariantViolation("Bob's detections on an accepted frame are out of order, out of range or misshapen")
        }
    }

    /// Valid streams made with the encoder: no photons, one, a word, a word and a bit, a full
    /// round of a simulated link, and two frames back to back.
    static func seeds() -> [(name: String, bytes: [UInt8])] {
        var random = DeterministicRandomSource(seed: 404)
        func frame(_ n: Int, slotCount: UInt32, round: UInt64) -> [UInt8] {
            var slots: [UInt32] = []
            var s: UInt32 = 0
            while slots.count < n {
                let left = Int(slotCount) - Int(s), need = n - slots.count
                if left == need || random.next() % UInt64(left) < UInt64(need) { slots.append(s) }
                s += 1
            }
            var out: [UInt8] = []
            PulseFrame(roundID: round, slotCount: slotCount, slots: slots,
                       bases: slots.map { _ in random.next() & 1 == 1 }, bits: slots.map { _ in random.next() & 1 == 1 }).encode(into: &out)
            return out
        }
        var link = QuantumChannel(transmittance: 0.5, interceptFraction: 0.1, seed: 3)
        var alice = AliceDevice(probabilityZ: 0.75, seed: 3)
        let arrivals = link.transmit(alice.emit(pulses: 300).photons)
        var simulated: [UInt8] = []
        PulseFrame(roundID: 7, slotCount: 300, slots: arrivals.packedSlots, basisWords: arrivals.packedBases, bitWords: arrivals.packedBits)
            .encode(into: &simulated)
        return [
            ("empty", [0] + frame(0, slotCount: 0, round: 1)),
            ("one-photon", [1] + frame(1, slotCount: 9, round: 2)),
            ("one-word", [2] + frame(64, slotCount: 64, round: 3)),
            ("word-and-a-bit", [3] + frame(65, slotCount: 200, round: 4)),
            ("simulated-round", [5] + simulated),
            ("two-frames", [9] + frame(10, slotCount: 30, round: 5) + frame(3, slotCount: 3, round: 6)),
        ]
    }
}
