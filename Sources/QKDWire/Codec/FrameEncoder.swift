import QKDCrypto

/// Writes frames (Spec/wire.md section 2) within a size limit. The serializer is a separate type
/// from the parser, ``FrameDecoder`` (STYLE.md, "Codecs").
///
/// Sealing is a separate step: ``FrameAuthenticator/seal(_:pad:)`` for a per-frame tag,
/// ``RoundTranscript/sealClosingFrame(_:pad:)`` for the frame that closes a round. A frame whose
/// key reference calls for a tag must be sealed before it is encoded.
public struct FrameEncoder: Sendable {
    /// The limit frames must respect; the peer's decoder should use a limit at least this large.
    public let limits: FrameLimits

    /// Creates an encoder.
    /// - Parameter limits: the size limit, 1 MiB by default.
    public init(limits: FrameLimits = .default) {
        self.limits = limits
    }

    /// Appends `frame` to `output`.
    /// - Parameters:
    ///   - frame: the frame; sealed if its key reference calls for a tag (a precondition).
    ///   - output: the buffer to append to.
    /// - Throws: ``QKDError/Code/framePayloadTooLarge`` if the frame would exceed the limit;
    ///   `output` is then unchanged.
    public func encode(_ frame: Frame, into output: inout [UInt8]) throws {
        guard frame.frameByteCount <= limits.maxFrameByteCount else {
            throw QKDError(.framePayloadTooLarge, "a \(frame.header.payloadLength)-byte payload makes a \(frame.frameByteCount)-byte frame, over the limit of \(limits.maxFrameByteCount); split the payload into pieces of at most \(limits.maxPayloadByteCount(tagged: frame.header.tagByteCount > 0)) bytes")
        }
        frame.encode(into: &output)
    }

    /// Encodes `frame` into a new array.
    /// - Parameter frame: the frame; sealed if its key reference calls for a tag.
    /// - Returns: the frame's bytes.
    /// - Throws: ``QKDError/Code/framePayloadTooLarge`` if the frame would exceed the limit.
    public func encode(_ frame: Frame) throws -> [UInt8] {
        var output: [UInt8] = []
        try encode(frame, into: &output)
        return output
    }
}
