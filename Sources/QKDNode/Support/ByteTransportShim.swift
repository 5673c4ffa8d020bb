// TEMPORARY: a copy of QKDTransport's `ByteTransport` protocol (branch `transport`), so this
// module builds before that branch lands. Delete this file when merging `transport`.

/// An open, ordered, reliable byte stream to the peer (QKDTransport's protocol).
public protocol ByteTransport: AnyObject, Sendable {
    /// Where the bytes go, for logs and messages. Never a secret.
    var peerDescription: String { get }
    /// Writes all the bytes.
    /// - Parameter bytes: the bytes to send.
    /// - Throws: a transport error or `CancellationError`.
    func write(_ bytes: [UInt8]) async throws
    /// The next chunk of bytes from the peer.
    /// - Returns: at least one byte, or nil at the clean end of the stream.
    /// - Throws: a transport error or `CancellationError`.
    func read() async throws -> [UInt8]?
    /// Closes the stream cleanly.
    func close() async
}
