#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOPosix
import QKDCrypto
import Synchronization

/// A ``ByteTransport`` over a hardware plugin (Spec/transport.md section 5).
///
/// The plugin's calls block, so none of them runs on the Swift concurrency pool or an event
/// loop: a dedicated reader thread runs `open` and the `read` loop, feeding a ``ByteQueue``
/// (back-pressure: the loop waits while the queue is full); a dedicated writer thread runs
/// `write`. `close()` calls the plugin's `shutdown` (which wakes both), waits for the reader
/// loop and the queued writes, then runs the plugin's `close` on the writer thread, after every
/// write that was submitted.
final class PluginTransport: ByteTransport {
    /// The opaque plugin handle, shared by the two threads as the ABI allows.
    struct Handle: @unchecked Sendable {
        let pointer: UnsafeMutableRawPointer
    }

    private struct State {
        var closed = false
        var shutdownCalled = false
    }

    let peerDescription: String
    private let library: PluginLibrary
    private let handle: Handle
    private let readerThread: NIOThreadPool
    private let writerThread: NIOThreadPool
    private let queue = ByteQueue(capacity: readCapacity)
    private let state = Mutex(State())
    private let loop: any EventLoop
    private let readerDone: EventLoopPromise<Void>
    private let closeDone: EventLoopPromise<Void>

    /// Bytes buffered on the read side before the reader thread waits.
    static let readCapacity = 256 * 1024
    /// The buffer handed to one plugin `read` call.
    static let readChunk = 64 * 1024

    private init(library: PluginLibrary, handle: Handle, readerThread: NIOThreadPool, writerThread: NIOThreadPool, description: String) {
        self.library = library
        self.handle = handle
        self.readerThread = readerThread
        self.writerThread = writerThread
        self.peerDescription = description
        self.loop = MultiThreadedEventLoopGroup.singleton.next()
        self.readerDone = loop.makePromise(of: Void.self)
        self.closeDone = loop.makePromise(of: Void.self)
    }

    static func open(path: String, configuration: String) async throws -> PluginTransport {
        let description = "plugin \(path)"
        let readerThread = NIOThreadPool(numberOfThreads: 1)
        readerThread.start()
        let opened: Result<(PluginLibrary, Handle), QKDError>
        do {
            opened = try await readerThread.runIfActive {
                do {
                    let library = try PluginLibrary.load(path: path)
                    var raw: UnsafeMutableRawPointer?
                    let rc = configuration.withCString { library.open($0, &raw) }
                    guard rc == 0, let raw else {
                        let reason = library.lastErrorText(nil)
                        dlcloseQuietly(library)
                        return .failure(QKDError(.pluginOpenFailed, "plugin \(path) could not open the link: \(reason)"))
                    }
                    return .success((library, Handle(pointer: raw)))
                } catch let error as QKDError {
                    return .failure(error)
                }
            }
        } catch {
            try? await readerThread.shutdownGracefully()
            throw error
        }
        switch opened {
        case .failure(let error):
            try? await readerThread.shutdownGracefully()
            throw error
        case .success(let (library, handle)):
            let writerThread = NIOThreadPool(numberOfThreads: 1)
            writerThread.start()
            let transport = PluginTransport(library: library, handle: handle, readerThread: readerThread, writerThread: writerThread, description: description)
            transport.startReading()
            return transport
        }
    }

    /// The read loop: one blocking plugin `read` at a time on the reader thread, each chunk
    /// pushed into the queue (waiting while it is full).
    private func startReading() {
        let library = self.library
        let handle = self.handle
        let queue = self.queue
        let readerThread = self.readerThread
        let readerDone = self.readerDone
        let peer = peerDescription
        Task { [self] in
            defer { readerDone.succeed() }
            while true {
                let result: Result<[UInt8], QKDError>?
                do {
                    result = try await readerThread.runIfActive {
                        var buffer = [UInt8](repeating: 0, count: Self.readChunk)
                        let n = buffer.withUnsafeMutableBufferPointer { library.read(handle.pointer, $0.baseAddress!, $0.count) }
                        if n > 0 { return .success(Array(buffer[0..<n])) }
                        if n == 0 { return nil }
                        return .failure(QKDError(.pluginIOFailed, "plugin read from \(peer) failed: \(library.lastErrorText(handle.pointer))"))
                    }
                } catch {
                    queue.fail(QKDError(.transportBroken, "the reader thread of \(peer) stopped: \(error)"))
                    return
                }
                switch result {
                case .success(let bytes)?:
                    do {
                        try await queue.push(bytes)
                    } catch {
                        return  // the reader side is closed
                    }
                case nil:
                    queue.finish()
                    return
                case .failure(let error)?:
                    if state.withLock({ $0.shutdownCalled }) {
                        queue.finish()
                    } else {
                        queue.fail(error)
                    }
                    return
                }
            }
        }
    }

    func write(_ bytes: [UInt8]) async throws {
        if bytes.isEmpty { return }
        let library = self.library
        let handle = self.handle
        let peer = peerDescription
        // Submitted under the lock, so `close` queues the plugin's close after every write
        // that passed this check (the writer thread runs its work in order).
        let future = state.withLock { s -> EventLoopFuture<Void>? in
            if s.closed { return nil }
            return writerThread.runIfActive(eventLoop: loop) {
                var offset = 0
                while offset < bytes.count {
                    let n = bytes.withUnsafeBufferPointer { buffer in
                        library.write(handle.pointer, buffer.baseAddress! + offset, buffer.count - offset)
                    }
                    guard n > 0 else {
                        throw QKDError(.pluginIOFailed, "plugin write to \(peer) failed: \(library.lastErrorText(handle.pointer))")
                    }
                    offset += n
                }
            }
        }
        guard let future else {
            throw QKDError(.transportClosed, "write after close() on the transport to \(peer)")
        }
        do {
            try await future.get()
        } catch let error as QKDError {
            if state.withLock({ $0.closed }) {
                throw QKDError(.transportClosed, "the transport to \(peer) was closed during the write")
            }
            throw error
        }
    }

    func read() async throws -> [UInt8]? {
        try await queue.pop()
    }

    func close() async {
        let first = state.withLock { s -> Bool in
            defer {
                s.closed = true
                s.shutdownCalled = true
            }
            return !s.closed
        }
        queue.closeReader()
        guard first else {
            try? await closeDone.futureResult.get()
            return
        }
        defer { closeDone.succeed() }
        library.shutdown(handle.pointer)
        try? await readerDone.futureResult.get()
        let library = self.library
        let handle = self.handle
        try? await writerThread.runIfActive(eventLoop: loop) {
            library.close(handle.pointer)
            dlcloseQuietly(library)
        }.get()
        try? await readerThread.shutdownGracefully()
        try? await writerThread.shutdownGracefully()
    }
}

/// Drops this transport's reference on the library (dlopen counts references).
private func dlcloseQuietly(_ library: PluginLibrary) {
    _ = dlclose(library.dl)
}
