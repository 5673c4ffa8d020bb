#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOPosix
import QKDCrypto
import Synchronization

/// A ``ByteTransport`` over a SwiftNIO channel: TCP and Unix-domain sockets, a serial tty and the
/// pipes of an exec'd bridge all use it (with ``ByteStreamHandler`` in the pipeline).
final class NIOByteTransport: ByteTransport {
    let channel: any Channel
    let peerDescription: String
    private let queue: ByteQueue
    private let closed = Mutex(false)
    private let executor: EventLoopTaskExecutor

    /// Bytes buffered on the read side before the handler stops reading from the kernel.
    static let readCapacity = 256 * 1024

    init(channel: any Channel, queue: ByteQueue, peerDescription: String) {
        self.channel = channel
        executor = EventLoopTaskExecutor(channel.eventLoop)
        self.queue = queue
        self.peerDescription = peerDescription
    }

    /// Adds a ``ByteStreamHandler`` to a fresh channel and wraps it. Runs on the channel's loop.
    /// - Parameter hangUpIsEndOfStream: for ttys: a read failing with EIO means the other side
    ///   hung up (a pty master sees this when the slave closes), the end of the stream.
    static func install(
        on channel: any Channel, peerDescription: String, hangUpIsEndOfStream: Bool = false,
        onActive: (@Sendable (NIOByteTransport) -> Void)? = nil
    ) throws -> NIOByteTransport {
        let queue = ByteQueue(capacity: readCapacity)
        let transport = NIOByteTransport(channel: channel, queue: queue, peerDescription: peerDescription)
        var activeCallback: (@Sendable () -> Void)?
        if let onActive {
            activeCallback = { onActive(transport) }
        }
        let handler = ByteStreamHandler(
            queue: queue, describe: { peerDescription }, hangUpIsEndOfStream: hangUpIsEndOfStream, onActive: activeCallback
        )
        try channel.pipeline.syncOperations.addHandler(handler)
        return transport
    }

    func write(_ bytes: [UInt8]) async throws {
        if bytes.isEmpty { return }
        if closed.withLock({ $0 }) {
            throw QKDError(.transportClosed, "write after close() on the transport to \(peerDescription)")
        }
        do {
            // The future completes once NIO handed the bytes to the kernel, which is the
            // back-pressure: a slow peer fills the socket buffer and this write waits.
            try await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
        } catch {
            if closed.withLock({ $0 }) {
                throw QKDError(.transportClosed, "the transport to \(peerDescription) was closed during the write")
            }
            throw TransportErrorMapping.linkError(error, peer: peerDescription)
        }
    }

    /// The channel's event loop as a task executor.
    var preferredTaskExecutor: (any TaskExecutor)? { executor }

    func read() async throws -> [UInt8]? {
        try await queue.pop()
    }

    func close() async {
        let wasClosed = closed.withLock { c -> Bool in
            defer { c = true }
            return c
        }
        queue.closeReader()
        if !wasClosed {
            try? await channel.close()
        }
        // Idempotent: a second close (or one after the peer hung up) waits for the same end.
        try? await channel.closeFuture.get()
    }

    /// Closes with a TCP reset (SO_LINGER 0) instead of a FIN: the peer sees a broken link.
    /// For tests of link failures.
    func abort() async {
        if let provider = channel as? any SocketOptionProvider {
            _ = try? await provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
        }
        await close()
    }
}

/// An event loop as a Swift task executor (SE-0417): jobs run on the loop's thread, in the order
/// enqueued. A task that prefers it and reads a channel of that loop resumes on the thread that
/// read the bytes, and its writes reach the socket without a thread hop.
final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {  // Immutable.
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        eventLoop.execute { job.runSynchronously(on: executor) }
    }
}
