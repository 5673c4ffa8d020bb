#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import QKDCrypto

/// The one channel handler of every SwiftNIO-backed transport (TCP, Unix socket, serial tty,
/// exec pipes): it moves inbound bytes into a ``ByteQueue`` and turns channel events into the
/// ``ByteTransport`` contract.
///
/// Back-pressure: when the queue reaches its capacity the handler stops forwarding `read()`
/// (auto-read stays on, but NIO only reads when the pipeline asks it to), so the kernel buffer
/// fills and the peer's writes slow down. The queue's `onSpace` callback resumes reading.
final class ByteStreamHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let queue: ByteQueue
    private let describe: @Sendable () -> String
    private let onActive: (@Sendable () -> Void)?
    private let hangUpIsEndOfStream: Bool
    private var paused = false
    private var readPending = false
    private var failure: QKDError?
    private var context: ChannelHandlerContext?

    /// - Parameters:
    ///   - queue: where inbound bytes go.
    ///   - describe: the peer description, for error messages.
    ///   - onActive: runs once the channel is active (the listener hands out the connection then).
    ///   - hangUpIsEndOfStream: treat EIO (a tty hang-up) as the end of the stream.
    init(queue: ByteQueue, describe: @escaping @Sendable () -> String, hangUpIsEndOfStream: Bool = false, onActive: (@Sendable () -> Void)? = nil) {
        self.queue = queue
        self.describe = describe
        self.hangUpIsEndOfStream = hangUpIsEndOfStream
        self.onActive = onActive
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        queue.setOnSpace {
            eventLoop.execute { loopBound.value.resumeReading() }
        }
        if context.channel.isActive { activated() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        queue.setOnSpace {}
    }

    func channelActive(context: ChannelHandlerContext) {
        activated()
        context.fireChannelActive()
    }

    private var activeReported = false
    private func activated() {
        guard !activeReported else { return }
        activeReported = true
        onActive?()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let bytes = Array(buffer.readableBytesView)
        if !queue.offer(bytes) { paused = true }
    }

    func read(context: ChannelHandlerContext) {
        if paused {
            readPending = true
        } else {
            context.read()
        }
    }

    private func resumeReading() {
        paused = false
        if readPending, let context {
            readPending = false
            context.read()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            // The peer finished sending (only seen with half-closure enabled).
            queue.finish()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if hangUpIsEndOfStream, let io = error as? IOError, io.errnoCode == EIO {
            queue.finish()
            context.close(promise: nil)
            return
        }
        let mapped = TransportErrorMapping.linkError(error, peer: describe())
        if failure == nil { failure = mapped }
        queue.fail(mapped)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let failure {
            queue.fail(failure)
        } else {
            queue.finish()
        }
        context.fireChannelInactive()
    }
}
