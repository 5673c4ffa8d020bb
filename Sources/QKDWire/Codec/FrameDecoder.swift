public import QKDCrypto

/// An incremental parser of a stream of frames (Spec/wire.md section 5), in the shape of
/// swift-nio-ssh's `SSHPacketParser`: `append(_:)` bytes as they arrive in chunks of any
/// size, then call ``nextFrame()`` until it returns nil ("need more bytes").
///
/// - Checks run as early as the bytes they depend on are in, always in the order of Spec/wire.md
///   section 5, so the outcome (frames, then possibly one error) does not depend on how the stream
///   is chunked. The size limit is checked on the 4-byte length field, before anything is
///   buffered or allocated for the frame.
/// - An error poisons the decoder (rustls): the stream is out of sync with the peer's framing, so
///   every later ``nextFrame()`` throws the same error, and appended bytes are dropped.
/// - Payloads are not copied: a frame's payload is a slice of the buffer. Appending a whole
///   `[UInt8]` when nothing is buffered adopts the array without copying it.
///
/// The decoder holds what it is given; call ``nextFrame()`` after each append so that it never
/// holds more than one incomplete frame plus one append.
public struct FrameDecoder: Sendable {
    private enum State {
        /// At a frame boundary, or inside the first 32 bytes of a frame.
        case awaitingHeader
        /// The header of the next frame is in and checked; waiting for the rest of the frame.
        case awaitingBody(FrameHeader)
        /// Poisoned by a decoding error.
        case failed(QKDError)
    }

    private var state: State = .awaitingHeader
    /// Bytes received; those before `readIndex` belong to frames already handed out.
    private var buffer: [UInt8] = []
    private var readIndex = 0

    /// The size limit this decoder enforces.
    public let limits: FrameLimits

    /// Creates a decoder.
    /// - Parameter limits: the size limit, 1 MiB by default (Spec/wire.md section 4).
    public init(limits: FrameLimits = .default) {
        self.limits = limits
    }

    /// Bytes buffered and not yet handed out as frames.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    /// The error that poisoned the decoder, if any.
    public var error: QKDError? {
        if case .failed(let error) = state { return error }
        return nil
    }

    /// Appends received bytes. If nothing is buffered, the array is adopted without a copy.
    /// - Parameter bytes: the next bytes of the stream.
    public mutating func append(_ bytes: [UInt8]) {
        if case .failed = state { return }
        if readIndex == buffer.count {
            buffer = bytes
            readIndex = 0
        } else {
            bytes.withUnsafeBytes { appendCopying($0) }
        }
    }

    /// Appends received bytes (copied).
    /// - Parameter bytes: the next bytes of the stream.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if case .failed = state { return }
        appendCopying(bytes)
    }

    /// Appends received bytes (copied).
    /// - Parameter bytes: the next bytes of the stream.
    public mutating func append(_ bytes: ArraySlice<UInt8>) {
        if case .failed = state { return }
        bytes.withUnsafeBytes { appendCopying($0) }
    }

    private mutating func appendCopying(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        if readIndex > 0 {
            // Drop the bytes of frames already handed out. The fresh array is not shared with
            // those frames' payload slices, so later appends grow it in place; it is sized for
            // the pending frame when its header is known (already checked against the limit).
            let unread = buffer.count - readIndex
            var expected = unread + bytes.count
            if case .awaitingBody(let header) = state {
                expected = max(expected, header.frameByteCount)
            }
            var fresh: [UInt8] = []
            fresh.reserveCapacity(expected)
            fresh.append(contentsOf: buffer[readIndex...])
            buffer = fresh
            readIndex = 0
        } else if case .awaitingBody(let header) = state, buffer.capacity < header.frameByteCount {
            buffer.reserveCapacity(header.frameByteCount)
        }
        buffer.append(contentsOf: bytes)
    }

    /// Returns the next complete frame, or nil if more bytes are needed.
    /// - Returns: the frame; its payload is a slice of the buffered bytes (no copy).
    /// - Throws: the first decoding error of the stream (Spec/wire.md section 5); after that, the
    ///   same error on every call.
    public mutating func nextFrame() throws -> Frame? {
        switch state {
        case .failed(let error):
            throw error
        case .awaitingHeader:
            let available = buffer.count - readIndex
            guard available >= WireLayout.lengthFieldByteCount else { return nil }
            let header: FrameHeader?
            do {
                header = try buffer.withUnsafeBytes { raw -> FrameHeader? in
                    let p = UnsafeRawBufferPointer(rebasing: raw[readIndex...])
                    let length = try FrameHeader.checkLengthField(p, limits: limits)
                    guard available >= WireLayout.headerByteCount else { return nil }
                    return try FrameHeader.decodeFields(p, lengthField: length)
                }
            } catch let error as QKDError {
                fail(error)
                throw error
            }
            guard let header else { return nil }
            state = .awaitingBody(header)
            return takeFrame(header)
        case .awaitingBody(let header):
            return takeFrame(header)
        }
    }

    /// Hands out the frame whose checked header is `header` if all its bytes are in.
    private mutating func takeFrame(_ header: FrameHeader) -> Frame? {
        let start = readIndex
        let end = start + header.frameByteCount
        guard buffer.count >= end else { return nil }
        let payloadEnd = start + WireLayout.headerByteCount + header.payloadLength
        let tag: AuthenticationTag? = header.tagByteCount == 0
            ? nil : buffer.withUnsafeBytes { AuthenticationTag($0, offset: payloadEnd) }
        let frame = Frame(decodedHeader: header, received: buffer[start..<payloadEnd], tag: tag)
        state = .awaitingHeader
        if end == buffer.count {
            // Everything handed out: let go of the buffer so the frame's slice owns it alone and
            // the next append can adopt its array.
            buffer = []
            readIndex = 0
        } else {
            readIndex = end
        }
        return frame
    }

    /// Tells the decoder the stream has ended (the peer closed the connection). Call it after
    /// ``nextFrame()`` returned nil.
    /// - Throws: ``QKDError/Code/frameTruncated`` if part of a frame is still buffered (and the
    ///   decoder is then poisoned); the poisoning error if there was one.
    public mutating func finish() throws {
        if case .failed(let error) = state { throw error }
        let unread = buffer.count - readIndex
        guard unread == 0 else {
            let error = QKDError(.frameTruncated, "the stream ended inside a frame, \(unread) bytes into it; the peer closed the connection mid-frame")
            fail(error)
            throw error
        }
    }

    private mutating func fail(_ error: QKDError) {
        state = .failed(error)
        buffer = []
        readIndex = 0
    }
}
