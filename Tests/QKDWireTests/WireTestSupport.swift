@testable import QKDWire
import QKDCrypto

/// What a decoder makes of a byte stream: the frames, then at most one error (at the end of the
/// stream, `finish()` is called).
struct DecodeOutcome: Equatable {
    var frames: [Frame]
    var error: QKDError?
    /// Compares error codes and frames.
    static func == (a: DecodeOutcome, b: DecodeOutcome) -> Bool {
        a.frames == b.frames && a.error?.code == b.error?.code
    }
}

/// Feeds `bytes` to a fresh decoder in pieces of the given sizes (the last piece takes the rest),
/// draining frames after every piece, then ends the stream.
func decodeStream(_ bytes: [UInt8], pieces: [Int] = [], limits: FrameLimits = .default,
                  useArrayAppend: Bool = true) -> DecodeOutcome {
    var decoder = FrameDecoder(limits: limits)
    var outcome = DecodeOutcome(frames: [], error: nil)
    var offset = 0
    var sizes = pieces[...]
    func drain(_ decoder: inout FrameDecoder) -> Bool {
        do {
            while let frame = try decoder.nextFrame() { outcome.frames.append(frame) }
            return true
        } catch {
            outcome.error = (error as! QKDError)
            return false
        }
    }
    while offset < bytes.count {
        let size = min(sizes.popFirst() ?? bytes.count, bytes.count - offset)
        let piece = Array(bytes[offset..<offset + size])
        if useArrayAppend {
            decoder.append(piece)
        } else {
            piece.withUnsafeBytes { decoder.append($0) }
        }
        offset += size
        if !drain(&decoder) { return outcome }
    }
    if !drain(&decoder) { return outcome }
    do { try decoder.finish() } catch { outcome.error = (error as! QKDError) }
    return outcome
}

/// Random pieces summing to at least `total` (sizes 1...maxPiece).
func randomPieces(total: Int, maxPiece: Int, using rng: inout some RandomSource) -> [Int] {
    var pieces: [Int] = []
    var sum = 0
    while sum < total {
        let n = Int.random(in: 1...maxPiece, using: &rng)
        pieces.append(n)
        sum += n
    }
    return pieces
}

/// A random, well-formed, unsealed frame (tags are random bytes where the reference needs one).
func randomFrame(maxPayload: Int, using rng: inout some RandomSource) -> Frame {
    let type = FrameType.allCases.randomElement(using: &rng)!
    let epoch = UInt32.random(in: 0...UInt32.max, using: &rng)
    let slot = UInt64.random(in: 0...UInt64.max, using: &rng)
    let reference: KeyReference
    switch Int.random(in: 0..<4, using: &rng) {
    case 0: reference = .none
    case 1: reference = .padSlot(epoch: epoch, slot: slot)
    case 2: reference = .roundTranscript(epoch: epoch)
    default: reference = .roundClose(epoch: epoch, slot: slot)
    }
    let payload = rng.bytes(count: Int.random(in: 0...maxPayload, using: &rng))
    let tag = reference.tagByteCount == 0 ? nil : try! AuthenticationTag(rawRepresentation: rng.bytes(count: 16))
    return Frame(type: type, sequenceNumber: UInt64.random(in: 0...UInt64.max, using: &rng), keyReference: reference,
                 payload: payload, tag: tag)
}

func encoded(_ frames: [Frame]) -> [UInt8] {
    var out: [UInt8] = []
    for frame in frames { frame.encode(into: &out) }
    return out
}

func pad(_ hex: String) -> OneTimePad { try! OneTimePad(rawRepresentation: Hex.decode(hex)!) }
