import QKDCrypto
import QKDWire

/// FuzzFrameDecoder. Input: one byte choosing the frame limit, one byte seeding the chunk sizes,
/// then the byte stream.
/// Invariants (Spec/wire.md section 5):
/// - decoding never crashes; every error is a typed peer-misbehaviour ``QKDError``;
/// - the frames and the error are the same whether the stream arrives whole or in input-chosen
///   chunks (one-byte drip included);
/// - every accepted frame re-encodes to exactly the bytes it was decoded from (canonical form);
/// - after an error the decoder is poisoned: the next call throws the same code.
enum FrameDecoderCheck {
    struct Result: Equatable {
        var frames: [[UInt8]] = []
        var error: QKDError.Code?
    }

    static func decode(_ stream: [UInt8], limits: FrameLimits, chunkSeed: UInt8) throws(FuzzInvariantViolation) -> Result {
        var decoder = FrameDecoder(limits: limits)
        var result = Result()
        var offset = 0
        var chunks = FuzzChunks(seed: chunkSeed)
        repeat {
            let n = stream.isEmpty ? 0 : chunks.next(remaining: stream.count - offset)
            decoder.append(Array(stream[offset..<offset + n]))
            offset += n
            do {
                while let frame = try decoder.nextFrame() {
                    var bytes: [UInt8] = []
                    frame.encode(into: &bytes)
                    result.frames.append(bytes)
                }
            } catch let error as QKDError {
                guard error.code.isPeerMisbehaviour else {
                    throw FuzzInvariantViolation("decoding failed with a non-peer error \(error)")
                }
                result.error = error.code
                do {
                    _ = try decoder.nextFrame()
                    throw FuzzInvariantViolation("the decoder was not poisoned after \(error.code)")
                } catch let again as QKDError {
                    guard again.code == error.code else {
                        throw FuzzInvariantViolation("poisoned decoder changed its error from \(error.code) to \(again.code)")
                    }
                } catch let violation as FuzzInvariantViolation {
                    throw violation
                } catch {
                    throw FuzzInvariantViolation("untyped error \(error)")
                }
                return result
            } catch {
                throw FuzzInvariantViolation("untyped error \(error)")
            }
        } while offset < stream.count
        return result
    }

    static func run(_ bytes: [UInt8]) throws(FuzzInvariantViolation) -> FuzzCheck.Outcome {
        var input = FuzzInput(bytes)
        let limitChoice = input.byte()
        let chunkSeed = input.byte()
        let stream = input.rest()
        let limits: FrameLimits
        if limitChoice < 128 {
            limits = .default
        } else {
            // Small limits exercise the oversize path: 48 ... 48 + 127 * 64 bytes.
            limits = (try? FrameLimits(maxFrameByteCount: 48 + Int(limitChoice - 128) * 64)) ?? .default
        }
        let whole = try decode(stream, limits: limits, chunkSeed: 0)
        let chunked = try decode(stream, limits: limits, chunkSeed: chunkSeed)
        guard whole == chunked else {
            throw FuzzInvariantViolation("chunking changed the result: whole \(whole.frames.count) frames / \(String(describing: whole.error)), chunked \(chunked.frames.count) / \(String(describing: chunked.error))")
        }
        // Accepted frames are exactly the prefix of the stream, in order.
        let consumed = whole.frames.reduce(into: [UInt8]()) { $0 += $1 }
        guard consumed.count <= stream.count, Array(stream[0..<consumed.count]) == consumed else {
            throw FuzzInvariantViolation("re-encoded frames differ from the bytes they were decoded from")
        }
        if let code = whole.error { return .rejected(QKDError(code)) }
        return .accepted
    }
}
