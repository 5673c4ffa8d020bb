public import QKDKeyPool
public import QKDPostProcessing
public import QKDSession

/// The figures of one settled round, as a node reports them (no key bytes).
public struct RoundReport: Sendable {
    /// The round id (unique per link).
    public var roundID: UInt64
    /// Post-processing figures (QBER, efficiency f, final bits, ...).
    public var summary: RoundSummary
    /// Pad bits this node used during the round (its own tags and the peer's it verified).
    public var padBitsUsed: Int
    /// The session's security level when the round settled.
    public var securityLevel: SecurityLevel
    /// Unreserved bytes of the outbound and inbound pad streams after the absorb.
    public var poolLevels: (outbound: UInt64, inbound: UInt64)
    /// Consumer keys the round added (0 if its keys were withheld by the policy).
    public var consumerKeys: Int
    /// Whether the policy let the round's consumer keys through.
    public var deliverable: Bool
}

/// What a ``QKDLinkNode`` reports while it runs.
public enum NodeEvent: Sendable {
    /// Both links are open to the peer (described without secrets).
    case connected(peer: String)
    /// The handshake finished.
    case established(SecurityLevel)
    /// The session switched epochs (e.g. to information-theoretic after the first round).
    case securityLevelChanged(SecurityLevel)
    /// A round produced a key, absorbed into the pool on both sides.
    case roundFinished(RoundReport)
    /// A round ended without a key (QBER above the threshold, a failed authentication, a lost link).
    case roundAborted(roundID: UInt64, reason: String)
    /// A pad stream is running low.
    case poolStarving(direction: QKDKeyPool.Direction, remainingBytes: UInt64)
    /// Consumer keys are available from ``QKDLinkNode/fetchKeys(count:)``.
    case keyAvailable(count: Int)
    /// The link failed; the node reconnects.
    case disconnected(reason: String)
    /// The node stopped: nil after a graceful end, else why.
    case closed(String?)
}
