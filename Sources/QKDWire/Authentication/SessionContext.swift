#if canImport(FoundationEssentials)
public import FoundationEssentials  // ContiguousBytes
#else
public import Foundation
#endif
public import QKDCrypto

/// Which way a frame travels. Each direction has its own sequence numbers and its own pad
/// stream, and the direction is part of every MAC input (Spec/wire.md section 6), so a frame
/// reflected back to its sender never verifies.
public enum Direction: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// Sent by Alice (the initiator), received by Bob.
    case aliceToBob = 0
    /// Sent by Bob (the responder), received by Alice.
    case bobToAlice = 1

    /// The other direction.
    public var reversed: Direction {
        switch self {
        case .aliceToBob: .bobToAlice
        case .bobToAlice: .aliceToBob
        }
    }

    /// "alice->bob" or "bob->alice".
    public var description: String {
        switch self {
        case .aliceToBob: "alice->bob"
        case .bobToAlice: "bob->alice"
        }
    }
}

/// The 16-byte identifier of a session, agreed in the handshake and bound into every MAC input
/// (Spec/wire.md section 6), so a frame from one session never verifies in another.
public struct SessionID: Hashable, Sendable, CustomStringConvertible {
    /// Bytes of a session identifier.
    public static let byteCount = 16

    /// The bytes, in wire order.
    public let rawRepresentation: [UInt8]

    /// Creates an identifier from its bytes.
    /// - Parameter rawRepresentation: exactly 16 bytes.
    /// - Throws: ``QKDError/Code/invalidSessionID`` for any other length.
    public init(rawRepresentation: some ContiguousBytes) throws {
        let bytes = rawRepresentation.withUnsafeBytes { [UInt8]($0) }
        guard bytes.count == Self.byteCount else {
            throw QKDError(.invalidSessionID, "a session id is \(Self.byteCount) bytes, got \(bytes.count)")
        }
        self.rawRepresentation = bytes
    }

    /// Draws a fresh identifier.
    /// - Parameter random: the source (injected: the core has no global randomness).
    /// - Returns: the identifier.
    public static func random(using random: inout some RandomSource) -> SessionID {
        // The length is right by construction.
        try! SessionID(rawRepresentation: random.bytes(count: byteCount))
    }

    /// The identifier in hex (it is public).
    public var description: String { Hex.encode(rawRepresentation) }
}

/// The domain-separation strings of Spec/wire.md section 6.
enum MACDomain {
    /// ASCII "QKDChannel/1 frame": protocol, frame format version, per-frame tags.
    static let frameLabel = Array("QKDChannel/1 frame".utf8)
    /// ASCII "QKDChannel/1 round": protocol, frame format version, round transcripts.
    static let roundLabel = Array("QKDChannel/1 round".utf8)

    /// D = "QKDChannel/1 frame" || suite u8 || direction u8 || session id (36 bytes).
    static func frame(suite: MACSuite, direction: Direction, sessionID: SessionID) -> [UInt8] {
        var d = frameLabel
        d.reserveCapacity(frameLabel.count + 2 + SessionID.byteCount)
        d.append(suite.rawValue)
        d.append(direction.rawValue)
        d.append(contentsOf: sessionID.rawRepresentation)
        return d
    }

    /// D = "QKDChannel/1 round" || suite u8 || direction u8 || session id || round u64 (44 bytes).
    static func round(suite: MACSuite, direction: Direction, sessionID: SessionID, round: UInt64) -> [UInt8] {
        var d = roundLabel
        d.reserveCapacity(roundLabel.count + 2 + SessionID.byteCount + 8)
        d.append(suite.rawValue)
        d.append(direction.rawValue)
        d.append(contentsOf: sessionID.rawRepresentation)
        withUnsafeBytes(of: round.bigEndian) { d.append(contentsOf: $0) }
        return d
    }
}
