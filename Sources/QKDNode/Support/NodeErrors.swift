public import QKDCrypto

/// The node layer's error codes.
extension QKDError.Code {
    /// A quantum-link frame or a node message does not follow Spec/quantum-link.md or
    /// Spec/node.md (in Spec/quantum-link.md section 4).
    public static let nodeMalformed = QKDError.Code("node.malformed", peerMisbehaviour: true)
    /// The peer broke the node protocol (a message out of order, a round id it may not use).
    public static let nodeProtocolViolation = QKDError.Code("node.protocol-violation", peerMisbehaviour: true)
    /// The peer absorbed a round this node lost (it crashed between the two round
    /// authentications): the pools differ and the link must be re-initialised.
    public static let nodePoolDiverged = QKDError.Code("node.pool-diverged")
    /// Keys were asked for while the policy forbids delivering them (computational security).
    public static let nodePolicyRefused = QKDError.Code("node.policy-refused")
    /// The node's configuration cannot work (e.g. a quantum link is missing).
    public static let nodeConfiguration = QKDError.Code("node.configuration")
    /// The link could not be (re)established within the configured attempts.
    public static let nodeLinkLost = QKDError.Code("node.link-lost")
}
