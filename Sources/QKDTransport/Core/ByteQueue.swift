import QKDCrypto
import Synchronization

/// One direction of a byte stream: a bounded FIFO of chunks between producers and one consumer.
///
/// Every transport funnels its inbound bytes through a `ByteQueue`, so read semantics
/// (ordering, end of stream, failure after the buffered bytes, cancellation) are implemented
/// once. Producers are either async (`push`, which suspends while the queue holds `capacity`
/// bytes or more: the in-memory pair, the plugin reader) or event-driven (`offer`, which never
/// suspends and asks the producer to pause: the SwiftNIO handler).
final class ByteQueue: Sendable {
    private enum End {
        case finished
        case failed(any Error)
    }

    private struct Writer {
        var id: UInt64
        var chunk: [UInt8]
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var chunks: [[UInt8]] = []
        var head = 0
        var buffered = 0
        var end: End?
        var readerClosed = false
        var reader: (id: UInt64, continuation: CheckedContinuation<[UInt8]?, any Error>)?
        var writers: [Writer] = []
        var nextID: UInt64 = 0
        var producerPaused = false
        var onSpace: (@Sendable () -> Void)?

        var isEmpty: Bool { head == chunks.count }

        mutating func append(_ chunk: [UInt8]) {
            chunks.append(chunk)
            buffered += chunk.count
        }

        mutating func removeFirst() -> [UInt8] {
            let chunk = chunks[head]
            chunks[head] = []
            head += 1
            buffered -= chunk.count
            if head == chunks.count {
                chunks.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 64 && head * 2 >= chunks.count {
                chunks.removeFirst(head)
                head = 0
            }
            return chunk
        }
    }

    /// Bytes buffered before producers must wait. Not a hard limit: one chunk may overshoot it,
    /// so a write is never split.
    let capacity: Int
    private let state = Mutex(State())

    /// Creates an empty queue.
    /// - Parameter capacity: the back-pressure threshold in bytes (at least 1).
    init(capacity: Int) {
        precondition(capacity > 0, "ByteQueue capacity must be positive")
        self.capacity = capacity
    }

    // MARK: consumer

    /// The next chunk; nil at the end of the stream or once the reader side is closed.
    func pop() async throws -> [UInt8]? {
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[UInt8]?, any Error>) in
                let (result, effects) = state.withLock { s -> (Result<[UInt8]?, any Error>?, Effects) in
                    precondition(s.reader == nil, "ByteTransport.read() called while another read is in progress")
                    if s.readerClosed { return (.success(nil), Effects()) }
                    if !s.isEmpty {
                        let chunk = s.removeFirst()
                        return (.success(chunk), self.afterRemoval(&s))
                    }
                    switch s.end {
                    case .finished?: return (.success(nil), Effects())
                    case .failed(let error)?: return (.failure(error), Effects())
                    case nil: break
                    }
                    if Task.isCancelled { return (.failure(CancellationError()), Effects()) }
                    s.reader = (id, continuation)
                    return (nil, Effects())
                }
                effects.run()
                if let result { continuation.resume(with: result) }
            }
        } onCancel: {
            let reader = state.withLock { s -> CheckedContinuation<[UInt8]?, any Error>? in
                guard let r = s.reader, r.id == id else { return nil }
                s.reader = nil
                return r.continuation
            }
            reader?.resume(throwing: CancellationError())
        }
    }

    /// The consumer is gone: buffered and future bytes are dropped, a pending `pop` returns
    /// nil, producers get `transport.closed`. Idempotent.
    func closeReader() {
        let (reader, writers) = state.withLock { s -> (CheckedContinuation<[UInt8]?, any Error>?, [Writer]) in
            s.readerClosed = true
            s.chunks = []
            s.head = 0
            s.buffered = 0
            let r = s.reader?.continuation
            s.reader = nil
            let w = s.writers
            s.writers = []
            return (r, w)
        }
        reader?.resume(returning: nil)
        let error = QKDError(.transportClosed, "the peer closed the connection and reads no more bytes")
        for w in writers { w.continuation.resume(throwing: error) }
    }

    // MARK: producers

    /// Appends a chunk, suspending while the queue is at capacity.
    /// - Throws: `transport.closed` if the reader is gone or the queue was finished; the failure
    ///   error if the queue failed; `CancellationError` if cancelled while waiting (nothing
    ///   was appended then).
    func push(_ chunk: [UInt8]) async throws {
        if chunk.isEmpty { return }
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let (result, reader) = state.withLock { s -> (Result<Void, any Error>?, CheckedContinuation<[UInt8]?, any Error>?) in
                    if let error = Self.producerError(s) { return (.failure(error), nil) }
                    if s.buffered < capacity && s.writers.isEmpty {
                        if let r = s.reader {
                            s.reader = nil
                            return (.success(()), r.continuation)
                        }
                        s.append(chunk)
                        return (.success(()), nil)
                    }
                    if Task.isCancelled { return (.failure(CancellationError()), nil) }
                    s.writers.append(Writer(id: id, chunk: chunk, continuation: continuation))
                    return (nil, nil)
                }
                reader?.resume(returning: chunk)
                if let result { continuation.resume(with: result) }
            }
        } onCancel: {
            let writer = state.withLock { s -> Writer? in
                guard let i = s.writers.firstIndex(where: { $0.id == id }) else { return nil }
                return s.writers.remove(at: i)
            }
            writer?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Appends a chunk without waiting (an event-driven producer such as a NIO handler).
    /// - Returns: false when the queue is now at capacity: the producer should pause until the
    ///   `onSpace` callback runs.
    @discardableResult
    func offer(_ chunk: [UInt8]) -> Bool {
        if chunk.isEmpty { return true }
        let (reader, more) = state.withLock { s -> (CheckedContinuation<[UInt8]?, any Error>?, Bool) in
            if s.readerClosed || s.end != nil { return (nil, true) }  // nobody will read it
            if let r = s.reader {
                s.reader = nil
                return (r.continuation, true)
            }
            s.append(chunk)
            if s.buffered >= capacity {
                s.producerPaused = true
                return (nil, false)
            }
            return (nil, true)
        }
        reader?.resume(returning: chunk)
        return more
    }

    /// Installs the callback that resumes a paused event-driven producer. It runs (outside the
    /// lock) when the consumer brings the buffer below capacity after `offer` returned false.
    func setOnSpace(_ callback: @escaping @Sendable () -> Void) {
        state.withLock { $0.onSpace = callback }
    }

    /// Marks the clean end of the stream: the consumer reads the buffered bytes, then nil.
    /// Pending and later `push`es throw `transport.closed`. Idempotent; a failure wins over a
    /// later finish.
    func finish() {
        end(.finished)
    }

    /// Marks a failed stream: the consumer reads the buffered bytes, then gets `error`; pending
    /// and later `push`es throw it. The first end (finish or fail) wins.
    func fail(_ error: any Error) {
        end(.failed(error))
    }

    /// Like `fail`, but also wins over an earlier clean finish, and drops buffered bytes (a link
    /// that breaks loses what was in flight).
    func breakLink(_ error: any Error) {
        end(.failed(error), force: true)
    }

    private func end(_ end: End, force: Bool = false) {
        let (reader, writers) = state.withLock { s -> (CheckedContinuation<[UInt8]?, any Error>?, [Writer]) in
            if s.end != nil && !force { return (nil, []) }
            s.end = end
            if force {
                s.chunks = []
                s.head = 0
                s.buffered = 0
            }
            var r: CheckedContinuation<[UInt8]?, any Error>?
            if s.isEmpty {
                r = s.reader?.continuation
                s.reader = nil
            }
            let w = s.writers
            s.writers = []
            return (r, w)
        }
        let producerError: any Error
        switch end {
        case .finished:
            reader?.resume(returning: nil)
            producerError = QKDError(.transportClosed, "the transport is closed for writing")
        case .failed(let error):
            reader?.resume(throwing: error)
            producerError = error
        }
        for w in writers { w.continuation.resume(throwing: producerError) }
    }

    // MARK: helpers

    private static func producerError(_ s: State) -> (any Error)? {
        if s.readerClosed {
            return QKDError(.transportClosed, "the peer closed the connection and reads no more bytes")
        }
        switch s.end {
        case .finished?: return QKDError(.transportClosed, "the transport is closed for writing")
        case .failed(let error)?: return error
        case nil: return nil
        }
    }

    /// Work to do outside the lock after a removal freed space.
    private struct Effects {
        var writers: [Writer] = []
        var onSpace: (@Sendable () -> Void)?
        func run() {
            for w in writers { w.continuation.resume() }
            onSpace?()
        }
    }

    /// After a removal: admit waiting writers while there is room, and wake a paused producer.
    private func afterRemoval(_ s: inout State) -> Effects {
        var effects = Effects()
        while s.buffered < capacity, !s.writers.isEmpty {
            let w = s.writers.removeFirst()
            s.append(w.chunk)
            effects.writers.append(w)
        }
        if s.producerPaused && s.buffered < capacity {
            s.producerPaused = false
            effects.onSpace = s.onSpace
        }
        return effects
    }
}
