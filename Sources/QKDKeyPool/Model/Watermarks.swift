/// The durable watermarks of both pad streams: every pad below the watermark may have been
/// used and is never handed out again (Spec/keypool.md, "Watermark protocol").
///
/// This is what the two nodes exchange on reconnect. Each side then calls
/// ``KeyPool/advance(to:)`` with ``merged(withPeer:)``, so both sides continue from the same
/// offsets, and only forward (DESIGN.md invariant 3).
public struct Watermarks: Sendable, Codable, Equatable, Hashable, CustomStringConvertible {
    /// Byte offset in the outbound stream (tags this node makes).
    public var outbound: UInt64
    /// Byte offset in the inbound stream (tags this node checks).
    public var inbound: UInt64

    /// Creates watermarks.
    /// - Parameters:
    ///   - outbound: byte offset in the outbound stream.
    ///   - inbound: byte offset in the inbound stream.
    public init(outbound: UInt64, inbound: UInt64) {
        self.outbound = outbound
        self.inbound = inbound
    }

    /// The watermarks both sides continue from after a reconnect: for each link stream, the
    /// larger of the sender's and the receiver's watermark. The peer's outbound stream is this
    /// node's inbound stream, and the other way round.
    /// - Parameter peer: the watermarks the peer reported (from its own point of view).
    /// - Returns: the targets for ``KeyPool/advance(to:)``.
    public func merged(withPeer peer: Watermarks) -> Watermarks {
        Watermarks(outbound: max(outbound, peer.inbound), inbound: max(inbound, peer.outbound))
    }

    /// The value for `direction`.
    /// - Parameter direction: outbound or inbound.
    public subscript(direction: Direction) -> UInt64 {
        get { direction == .outbound ? outbound : inbound }
        set { if direction == .outbound { outbound = newValue } else { inbound = newValue } }
    }

    /// "outbound=N inbound=M".
    public var description: String { "outbound=\(outbound) inbound=\(inbound)" }
}

/// Something the session should act on, polled with ``KeyPool/nextEvent()``.
public enum PoolEvent: Sendable, Equatable, CustomStringConvertible {
    /// A stream's unreserved bytes fell below the low-water threshold: run a QKD round (or
    /// slow down) before the stream is exhausted. Raised once per crossing; raised again only
    /// after a refill lifts the stream above the threshold.
    case starving(direction: Direction, remainingBytes: UInt64)

    /// A sentence without key material.
    public var description: String {
        switch self {
        case .starving(let direction, let remaining):
            "\(direction) pad stream is starving: \(remaining) bytes left"
        }
    }
}
