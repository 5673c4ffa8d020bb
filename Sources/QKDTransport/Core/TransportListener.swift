import QKDCrypto
import Synchronization

/// Connections accepted by ``TransportEndpoint/listen(options:)``, as an `AsyncSequence`.
///
/// For TCP and Unix sockets every accepted connection is an element; the sequence ends when
/// ``close()`` is called. A serial line, an exec bridge or a plugin has no listening side (the
/// link is point to point): `listen()` opens it and the sequence yields that one transport,
/// then ends, so a node can treat both roles alike.
public final class TransportListener: AsyncSequence, Sendable {
    /// Each element is a connected transport.
    public typealias Element = any ByteTransport

    /// The endpoint actually bound: for `tcp:HOST:0`, the port the system chose.
    public let endpoint: TransportEndpoint
    private let connections: AcceptQueue
    private let onClose: @Sendable () async -> Void

    init(endpoint: TransportEndpoint, connections: AcceptQueue, onClose: @escaping @Sendable () async -> Void) {
        self.endpoint = endpoint
        self.connections = connections
        self.onClose = onClose
    }

    /// The bound TCP port (useful after listening on port 0), or nil for other kinds.
    public var port: Int? {
        if case .tcp(_, let port) = endpoint.kind { return port }
        return nil
    }

    /// The next accepted connection.
    /// - Returns: a connected transport.
    /// - Throws: `QKDError(.transportClosed)` once the listener is closed (or, for a
    ///   point-to-point endpoint, after its one transport was taken); `CancellationError`.
    public func accept() async throws -> any ByteTransport {
        guard let next = try await connections.next() else {
            throw QKDError(.transportClosed, "the listener on \(endpoint) is closed")
        }
        return next
    }

    /// Stops accepting: unblocks a waiting `accept()` and ends the sequence. Connections already
    /// accepted stay open; connections accepted but not yet taken are closed. Idempotent.
    public func close() async {
        for pending in connections.finish() { await pending.close() }
        await onClose()
    }

    /// Iterates over accepted connections until the listener closes.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let connections: AcceptQueue
        /// The next connection, or nil once the listener is closed.
        /// - Returns: a connected transport or nil.
        /// - Throws: `CancellationError`.
        public mutating func next() async throws -> (any ByteTransport)? {
            try await connections.next()
        }
    }

    /// An iterator over accepted connections.
    /// - Returns: the iterator.
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(connections: connections)
    }
}

/// The hand-over of accepted connections between the event loop and `accept()` callers.
final class AcceptQueue: Sendable {
    private struct State {
        var pending: [any ByteTransport] = []
        var waiters: [(id: UInt64, continuation: CheckedContinuation<(any ByteTransport)?, any Error>)] = []
        var finished = false
        var nextID: UInt64 = 0
    }

    /// Accepted connections not yet taken, beyond which new ones are closed (a node takes one
    /// connection at a time; a flood of connects must not pile up sockets).
    static let maxPending = 16

    private let state = Mutex(State())

    /// Hands over a connection; returns false (and the caller closes it) if nobody will take it.
    func offer(_ transport: any ByteTransport) -> Bool {
        let (accepted, waiter) = state.withLock { s -> (Bool, CheckedContinuation<(any ByteTransport)?, any Error>?) in
            if s.finished { return (false, nil) }
            if !s.waiters.isEmpty { return (true, s.waiters.removeFirst().continuation) }
            if s.pending.count >= Self.maxPending { return (false, nil) }
            s.pending.append(transport)
            return (true, nil)
        }
        waiter?.resume(returning: transport)
        return accepted
    }

    /// No more connections after those pending (a point-to-point listener's one transport).
    func seal() {
        let waiters = state.withLock { s in
            s.finished = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.continuation.resume(returning: nil) }
    }

    /// No more connections; returns those not taken, for closing.
    func finish() -> [any ByteTransport] {
        let (pending, waiters) = state.withLock { s in
            s.finished = true
            defer {
                s.pending = []
                s.waiters = []
            }
            return (s.pending, s.waiters)
        }
        for w in waiters { w.continuation.resume(returning: nil) }
        return pending
    }

    func next() async throws -> (any ByteTransport)? {
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<(any ByteTransport)?, any Error>) in
                let result = state.withLock { s -> Result<(any ByteTransport)?, any Error>? in
                    if !s.pending.isEmpty { return .success(s.pending.removeFirst()) }
                    if s.finished { return .success(nil) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    s.waiters.append((id, continuation))
                    return nil
                }
                if let result { continuation.resume(with: result) }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<(any ByteTransport)?, any Error>? in
                guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return s.waiters.remove(at: i).continuation
            }
            waiter?.resume(throwing: CancellationError())
        }
    }
}
