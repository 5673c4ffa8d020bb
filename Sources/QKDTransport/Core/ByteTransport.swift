/// An open, ordered, reliable byte stream to the peer: a TCP connection, a Unix-domain socket,
/// a serial line, an exec'd bridge process, a hardware plugin, or an in-memory pair.
///
/// The session and post-processing layers are sans-IO (DESIGN.md): they consume and produce
/// bytes. A `ByteTransport` is the only thing the node needs to move those bytes, so every
/// link kind is interchangeable (Spec/transport.md section 1).
///
/// Contract, the same for every implementation:
/// - Bytes arrive in order, without loss or duplication, in chunks whose boundaries carry no
///   meaning (a write of 10 bytes may be read as 3 + 7).
/// - At most one `read()` at a time (a second concurrent read is a programming error). Writes
///   may come from several tasks; each `write` is delivered contiguously.
/// - `read()` honours task cancellation while it waits: it throws `CancellationError` and
///   leaves the link usable. The in-memory `write(_:)` does too (a write cancelled while
///   waiting for buffer space wrote nothing); socket, serial, exec and plugin writes already
///   handed to the OS or the plugin run to completion or fail with the link.
/// - After the local `close()`, `read()` returns nil and `write(_:)` throws `transport.closed`.
/// - When the peer closes cleanly, `read()` returns the remaining bytes, then nil; writes then
///   throw `transport.closed` or `transport.broken` (the OS may not know yet).
/// - A failed link makes `read()` and `write(_:)` throw `transport.broken` (or a more specific
///   `transport.plugin-io-failed`).
public protocol ByteTransport: AnyObject, Sendable {
    /// Where the bytes go, for logs and messages, e.g. `tcp 127.0.0.1:7000`. Never a secret.
    var peerDescription: String { get }

    /// Writes all the bytes, suspending while the link applies back-pressure.
    /// - Parameter bytes: the bytes to send; an empty array is a no-op.
    /// - Throws: `QKDError(.transportClosed)` after `close()` or when the peer stopped reading;
    ///   `QKDError(.transportBroken)` on a failed link; `CancellationError`.
    func write(_ bytes: [UInt8]) async throws

    /// The next chunk of bytes from the peer.
    /// - Returns: at least one byte, or nil at the clean end of the stream (or after `close()`).
    /// - Throws: `QKDError(.transportBroken)` on a failed link; `CancellationError`.
    func read() async throws -> [UInt8]?

    /// Closes the stream cleanly: the peer reads the end of the stream after the bytes already
    /// written. Idempotent; waits until the underlying resources (socket, child process, plugin
    /// handle) are released.
    func close() async

    /// The executor whose thread delivers this transport's bytes, if it has one (a socket's
    /// event loop), for the code that consumes them: a task that prefers it reads, computes and
    /// writes on that one thread, without a thread hop per message. Nil: no preference.
    var preferredTaskExecutor: (any TaskExecutor)? { get }
}

extension ByteTransport {
    /// No preference: the global concurrent executor.
    public var preferredTaskExecutor: (any TaskExecutor)? { nil }
}
