import QKDCrypto

/// The size limit a ``FrameDecoder`` enforces and a ``FrameEncoder`` respects
/// (Spec/wire.md section 4, "Limits").
///
/// A limit counts every byte of a frame on the wire, the 4-byte length field included. The
/// decoder checks it against the length field as soon as the first 4 bytes of a frame are in,
/// before it buffers or allocates anything for the frame.
public struct FrameLimits: Sendable, Hashable, CustomStringConvertible {
    /// The protocol's ceiling, 1 MiB (Spec/wire.md section 4). A peer never has to accept more;
    /// a limit can be lowered but never raised above this.
    public static let maximumFrameByteCount = 1 << 20
    /// The smallest limit allowed: a header (32 bytes) and a tag (16 bytes) with an empty payload,
    /// so that every frame kind can still be sent (Spec/wire.md section 4).
    public static let minimumFrameByteCount = WireLayout.headerByteCount + MACSuite.tagByteCount

    /// The default: ``maximumFrameByteCount``.
    public static let `default` = FrameLimits(checked: maximumFrameByteCount)

    /// The largest frame accepted, in bytes on the wire (length field included).
    public let maxFrameByteCount: Int

    /// Creates a limit.
    /// - Parameter maxFrameByteCount: between ``minimumFrameByteCount`` and
    ///   ``maximumFrameByteCount`` inclusive.
    /// - Throws: ``QKDError/Code/frameInvalidLimit`` outside that range.
    public init(maxFrameByteCount: Int) throws {
        guard maxFrameByteCount >= Self.minimumFrameByteCount, maxFrameByteCount <= Self.maximumFrameByteCount else {
            throw QKDError(.frameInvalidLimit, "a frame limit must be between \(Self.minimumFrameByteCount) and \(Self.maximumFrameByteCount) bytes (Spec/wire.md section 4), got \(maxFrameByteCount); lower the configured value or leave it unset for 1 MiB")
        }
        self.maxFrameByteCount = maxFrameByteCount
    }

    private init(checked: Int) { maxFrameByteCount = checked }

    /// The largest payload a frame may carry under this limit.
    /// - Parameter tagged: whether the frame carries a 16-byte tag.
    /// - Returns: the limit minus the header and, if `tagged`, the tag.
    public func maxPayloadByteCount(tagged: Bool) -> Int {
        maxFrameByteCount - WireLayout.headerByteCount - (tagged ? MACSuite.tagByteCount : 0)
    }

    /// "FrameLimits(max 1048576 bytes)".
    public var description: String { "FrameLimits(max \(maxFrameByteCount) bytes)" }
}
