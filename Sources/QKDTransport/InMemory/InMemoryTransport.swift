import QKDCrypto

/// One end of an in-memory byte stream: two connected ends in one process, for tests and for
/// running two nodes in one process (the rustls/quinn "pair" idea of STYLE.md).
///
/// It follows the whole ``ByteTransport`` contract, including back-pressure (a write suspends
/// while the peer has `capacity` unread bytes) and end-of-stream, and can simulate a failed link
/// with ``breakLink()``.
public final class InMemoryTransport: ByteTransport {
    /// The default back-pressure threshold: 64 KiB unread per direction.
    public static let defaultCapacity = 64 * 1024

    /// What the peer has written and this end has not read yet.
    private let inbound: ByteQueue
    /// What this end has written and the peer has not read yet.
    private let outbound: ByteQueue

    /// `memory NAME`, NAME being the other end's label from ``pair(capacity:names:)``.
    public let peerDescription: String

    private init(inbound: ByteQueue, outbound: ByteQueue, peerDescription: String) {
        self.inbound = inbound
        self.outbound = outbound
        self.peerDescription = peerDescription
    }

    /// Two connected ends: what one writes, the other reads.
    /// - Parameters:
    ///   - capacity: bytes a writer may have unread at the peer before `write` suspends.
    ///   - names: labels for ``peerDescription`` (each end describes the other).
    /// - Returns: the two ends.
    public static func pair(
        capacity: Int = defaultCapacity,
        names: (String, String) = ("a", "b")
    ) -> (InMemoryTransport, InMemoryTransport) {
        let aToB = ByteQueue(capacity: capacity)
        let bToA = ByteQueue(capacity: capacity)
        let a = InMemoryTransport(inbound: bToA, outbound: aToB, peerDescription: "memory \(names.1)")
        let b = InMemoryTransport(inbound: aToB, outbound: bToA, peerDescription: "memory \(names.0)")
        return (a, b)
    }

    /// Writes all the bytes; suspends while the peer has `capacity` or more unread bytes.
    /// - Parameter bytes: the bytes to send.
    /// - Throws: `QKDError(.transportClosed)` after a close by either end;
    ///   `QKDError(.transportBroken)` after ``breakLink()``; `CancellationError`.
    public func write(_ bytes: [UInt8]) async throws {
        try await outbound.push(bytes)
    }

    /// The next chunk written by the peer (one `write` of the peer may come back whole).
    /// - Returns: at least one byte, or nil after the peer's or the local `close()`.
    /// - Throws: `QKDError(.transportBroken)` after ``breakLink()``; `CancellationError`.
    public func read() async throws -> [UInt8]? {
        try await inbound.pop()
    }

    /// Closes this end: the peer reads what was written, then the end of the stream; the peer's
    /// writes throw `transport.closed`. Idempotent.
    public func close() async {
        outbound.finish()
        inbound.closeReader()
    }

    /// Simulates a failed link (a cable pulled, a reset): unread bytes in both directions are
    /// lost, and every pending and later read or write on both ends throws
    /// `transport.broken`. Idempotent.
    public func breakLink() {
        let error = QKDError(.transportBroken, "the in-memory link was broken (simulated link failure)")
        inbound.breakLink(error)
        outbound.breakLink(error)
    }
}
