public import QKDCrypto

/// One frame of the wire (Spec/wire.md section 2): header, payload, and a tag of 0 or 16 bytes.
///
/// A decoded frame's payload is a slice of the bytes the ``FrameDecoder`` was given: no copy.
/// Holding a frame keeps that buffer alive; copy the payload out (`Array(frame.payload)`) to keep
/// it longer than the frame.
public struct Frame: Sendable, Equatable, CustomStringConvertible {
    /// The header.
    public let header: FrameHeader
    /// The payload: exactly `header.payloadLength` bytes.
    public let payload: ArraySlice<UInt8>
    /// The tag: present exactly when the key reference calls for one (``KeyReference/tagByteCount``
    /// is 16) and the frame has been sealed. ``FrameAuthenticator/seal(_:pad:)`` and
    /// ``RoundTranscript/sealClosingFrame(_:pad:)`` set it.
    public var tag: AuthenticationTag?
    /// For a decoded frame: its bytes from offset 0 through the end of the payload, as received
    /// (a slice of the decoder's buffer), so that verification hashes them in place in one pass.
    /// Nil for a frame built locally. Not part of the frame's value (see ``==(_:_:)``).
    let receivedBytes: ArraySlice<UInt8>?

    /// Creates a frame from a header and a payload.
    /// - Parameters:
    ///   - header: the header; `header.payloadLength` must equal `payload.count`.
    ///   - payload: the payload.
    ///   - tag: the tag, or nil (for an untagged frame, or one not sealed yet).
    public init(header: FrameHeader, payload: ArraySlice<UInt8>, tag: AuthenticationTag? = nil) {
        precondition(header.payloadLength == payload.count, "header.payloadLength must equal payload.count")
        precondition(tag == nil || header.tagByteCount == MACSuite.tagByteCount, "a tag on a frame whose key reference has none")
        self.header = header
        self.payload = payload
        self.tag = tag
        self.receivedBytes = nil
    }

    /// A decoded frame; `received` holds its header and payload bytes, `payload` the last
    /// `header.payloadLength` of them.
    init(decodedHeader header: FrameHeader, received: ArraySlice<UInt8>, tag: AuthenticationTag?) {
        self.header = header
        self.payload = received.dropFirst(WireLayout.headerByteCount)
        self.tag = tag
        self.receivedBytes = received
    }

    /// Frames are equal when their headers, payloads and tags are; where the bytes came from
    /// does not matter.
    public static func == (lhs: Frame, rhs: Frame) -> Bool {
        lhs.header == rhs.header && lhs.payload == rhs.payload && lhs.tag == rhs.tag
    }

    /// Creates a frame.
    /// - Parameters:
    ///   - type: what the frame carries.
    ///   - sequenceNumber: the sender's sequence number in this direction.
    ///   - keyReference: which key authenticates it.
    ///   - payload: the payload (not copied if it is an array).
    ///   - tag: the tag, or nil (untagged, or not sealed yet).
    public init(type: FrameType, sequenceNumber: UInt64, keyReference: KeyReference, payload: [UInt8],
                tag: AuthenticationTag? = nil) {
        self.init(header: FrameHeader(type: type, sequenceNumber: sequenceNumber, keyReference: keyReference,
                                      payloadLength: payload.count),
                  payload: payload[...], tag: tag)
    }

    /// Decodes exactly one complete frame (Spec/wire.md section 5).
    /// - Parameters:
    ///   - bytes: one frame, nothing before or after it.
    ///   - limits: the size limit.
    /// - Throws: the frame's decoding error; ``QKDError/Code/frameTruncated`` if `bytes` ends inside
    ///   the frame; ``QKDError/Code/frameTrailingGarbage`` if bytes follow it.
    public init(decoding bytes: [UInt8], limits: FrameLimits = .default) throws {
        var decoder = FrameDecoder(limits: limits)
        decoder.append(bytes)
        guard let frame = try decoder.nextFrame() else {
            throw QKDError(.frameTruncated, "\(bytes.count) bytes hold an incomplete frame")
        }
        guard decoder.bufferedByteCount == 0 else {
            throw QKDError(.frameTrailingGarbage, "\(decoder.bufferedByteCount) bytes follow the frame")
        }
        self = frame
    }

    /// Bytes of the frame on the wire.
    public var frameByteCount: Int { header.frameByteCount }

    /// Appends the frame's bytes to `output`. No limit is applied here; ``FrameEncoder`` applies
    /// one.
    /// - Parameter output: the buffer to append to.
    public func encode(into output: inout [UInt8]) {
        precondition((tag != nil) == (header.tagByteCount == MACSuite.tagByteCount),
                     "a frame with key reference \(header.keyReference) must \(tag == nil ? "be sealed before it is encoded" : "not carry a tag")")
        output.reserveCapacity(output.count + frameByteCount)
        header.encode(into: &output)
        output.append(contentsOf: payload)
        if let tag {
            tag.withUnsafeBytes { output.append(contentsOf: $0) }
        }
    }

    /// Calls `body` with the bytes the MAC covers (Spec/wire.md section 6): the frame from offset
    /// 0 through the end of the payload. A decoded frame hands over the received bytes in place,
    /// in one piece; a local frame its header (encoded on the stack) and then its payload. The
    /// decoder accepts only the canonical encoding of a header (Spec/wire.md section 5), so both
    /// give the same bytes.
    func withAuthenticatedBytes(_ body: (UnsafeRawBufferPointer) -> Void) {
        if let receivedBytes {
            receivedBytes.withUnsafeBytes(body)
        } else {
            header.withEncodedBytes(body)
            payload.withUnsafeBytes(body)
        }
    }

    /// "data #7 pad(epoch 1, slot 7) 1024 B tagged".
    public var description: String { "Frame(\(header)\(tag == nil ? "" : " tagged"))" }
}
