/// Which end of the link this pool belongs to (Spec/keypool.md, "Roles and streams").
///
/// The split of every distilled key and of every PSK is defined on the two *link streams*
/// (``LinkStream``), which have the same name on both sides; the role maps them to this node's
/// ``Direction``s. That is what makes Alice's outbound stream equal Bob's inbound stream byte for
/// byte (DESIGN.md invariant 2).
public enum Role: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// The initiator ("Alice"): its outbound stream is ``LinkStream/aliceToBob``.
    case alice
    /// The responder ("Bob"): its outbound stream is ``LinkStream/bobToAlice``.
    case bob

    /// "alice" or "bob".
    public var description: String { rawValue }

    /// The link stream this node uses in `direction`.
    /// - Parameter direction: outbound (tags this node makes) or inbound (tags it checks).
    /// - Returns: the link stream.
    public func stream(for direction: Direction) -> LinkStream {
        switch (self, direction) {
        case (.alice, .outbound), (.bob, .inbound): .aliceToBob
        case (.alice, .inbound), (.bob, .outbound): .bobToAlice
        }
    }

    /// The direction in which this node uses `stream`.
    /// - Parameter linkStream: a link stream.
    /// - Returns: outbound or inbound.
    public func direction(of linkStream: LinkStream) -> Direction {
        self.stream(for: .outbound) == linkStream ? .outbound : .inbound
    }
}

/// A pad stream of the link, named the same on both sides: the pads for tags Alice makes
/// (and Bob checks), and the pads for tags Bob makes (and Alice checks).
public enum LinkStream: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// Tags made by Alice, checked by Bob.
    case aliceToBob = "a2b"
    /// Tags made by Bob, checked by Alice.
    case bobToAlice = "b2a"

    /// "a2b" or "b2a".
    public var description: String { rawValue }
}

/// A pad stream from this node's point of view.
public enum Direction: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// Pads for tags this node makes.
    case outbound
    /// Pads for tags this node checks.
    case inbound

    /// "outbound" or "inbound".
    public var description: String { rawValue }
}
