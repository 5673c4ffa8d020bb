import Foundation
import QKDCrypto
@testable import QKDTransport
import Testing

/// Fast retries for tests: the waits are short so a refused peer costs milliseconds.
let quickRetry = RetryPolicy(maxAttempts: 3, initialDelay: .milliseconds(1), maxDelay: .milliseconds(5))

@Suite struct SocketTransportTests {
    /// A listener on an ephemeral loopback port, one client connected to it, and the accepted end.
    static func tcpPair() async throws -> (listener: TransportListener, client: any ByteTransport, server: any ByteTransport) {
        let listener = try await TransportEndpoint(parsing: "tcp:127.0.0.1:0").listen()
        let port = try #require(listener.port)
        #expect(port != 0, "port 0 must be replaced by the bound port")
        async let accepted = listener.accept()
        let client = try await TransportEndpoint(parsing: "tcp:127.0.0.1:\(port)").connect(options: TransportOptions(retry: .none))
        return (listener, client, try await accepted)
    }

    @Test func tcpRoundTripOneMiBBothDirections() async throws {
        let (listener, client, server) = try await Self.tcpPair()
        #expect(client.peerDescription.hasPrefix("tcp 127.0.0.1:"))
        #expect(server.peerDescription.hasPrefix("tcp 127.0.0.1:"))
        try await checkRoundTrip(client, server, seed: 11)
        await client.close()
        await server.close()
        await listener.close()
    }

    /// A socket's preferred task executor is its event loop: a task that prefers it runs there,
    /// and stays there after a read and a write suspend it (each message handled on the thread
    /// that read it, no hop per message). An in-memory transport states no preference.
    @Test func socketWorkRunsOnItsEventLoop() async throws {
        let (listener, client, server) = try await Self.tcpPair()
        let nio = try #require(server as? NIOByteTransport)
        let executor = try #require(server.preferredTaskExecutor)
        #expect(nio.channel.eventLoop.inEventLoop == false)
        let onLoop = try await withTaskExecutorPreference(executor) { () async throws -> [Bool] in
            var seen = [nio.channel.eventLoop.inEventLoop]
            try await client.write([1, 2, 3])
            _ = try await readExactly(server, 3)  // suspends until the loop delivers the bytes
            seen.append(nio.channel.eventLoop.inEventLoop)
            try await server.write([4])
            seen.append(nio.channel.eventLoop.inEventLoop)
            return seen
        }
        #expect(onLoop == [true, true, true])
        #expect(try await readExactly(client, 1) == [4])
        // The transport keeps one executor: every connection task it serves runs on the same loop.
        #expect((server.preferredTaskExecutor as AnyObject?) === (executor as AnyObject))
        let (a, b) = InMemoryTransport.pair()
        #expect(a.preferredTaskExecutor == nil && b.preferredTaskExecutor == nil)
        await client.close()
        await server.close()
        await listener.close()
    }

    @Test func tcpCleanCloseIsEndOfStreamAfterTheData() async throws {
        let (listener, client, server) = try await Self.tcpPair()
        let data = Array(repeating: UInt8(7), count: 100_000)
        try await client.write(data)
        await client.close()
        #expect(try await readToEnd(server) == data)
        #expect(try await server.read() == nil)
        await expectTransportError(.transportClosed) { try await client.write([1]) }
        await client.close()  // idempotent
        await server.close()
        await listener.close()
    }

    @Test func tcpResetIsABrokenLink() async throws {
        let (listener, client, server) = try await Self.tcpPair()
        try await client.write([1, 2, 3])
        #expect(try await readExactly(server, 3) == [1, 2, 3])
        let nioServer = try #require(server as? NIOByteTransport)
        await nioServer.abort()  // SO_LINGER 0: the client receives a RST
        await expectTransportError(.transportBroken) { _ = try await readToEnd(client) }
        await client.close()
        await listener.close()
    }

    @Test func connectRetrySucceedsWhenListenerStartsLate() async throws {
        // Find a free port, then free it.
        let probe = try await TransportEndpoint(parsing: "tcp:127.0.0.1:0").listen()
        let port = try #require(probe.port)
        await probe.close()

        let (refusals, refusal) = AsyncStream<QKDError>.makeStream()
        let endpoint = try TransportEndpoint(parsing: "tcp:127.0.0.1:\(port)")
        let options = TransportOptions(retry: RetryPolicy(maxAttempts: 1000, initialDelay: .milliseconds(2), maxDelay: .milliseconds(20)))
        let connecting = Task {
            try await endpoint.connect(options: options, onRetry: { _, error in refusal.yield(error) })
        }
        // Start listening only after the connector has been refused at least once.
        var iterator = refusals.makeAsyncIterator()
        let first = try #require(await iterator.next())
        #expect(first.code == .connectionRefused)
        let listener = try await endpoint.listen()
        async let accepted = listener.accept()
        let client = try await connecting.value
        let server = try await accepted
        try await client.write([42])
        #expect(try await server.read() == [42])
        refusal.finish()
        await client.close()
        await server.close()
        await listener.close()
    }

    @Test func refusedAfterRetriesIsTyped() async throws {
        let probe = try await TransportEndpoint(parsing: "tcp:127.0.0.1:0").listen()
        let port = try #require(probe.port)
        await probe.close()
        let counter = Counter()
        do {
            _ = try await TransportEndpoint(parsing: "tcp:127.0.0.1:\(port)")
                .connect(options: TransportOptions(retry: quickRetry), onRetry: { _, _ in counter.increment() })
            Issue.record("connected to a closed port")
        } catch let error as QKDError {
            #expect(error.code == .connectionRefused)
            #expect(error.detail.contains("3 attempts"), "\(error)")
        }
        #expect(counter.value == 2, "3 attempts = 2 retries")
    }

    @Test func portInUseIsTyped() async throws {
        let first = try await TransportEndpoint(parsing: "tcp:127.0.0.1:0").listen()
        let port = try #require(first.port)
        await expectTransportError(.addressInUse) {
            _ = try await TransportEndpoint(parsing: "tcp:127.0.0.1:\(port)").listen()
        }
        await first.close()
    }

    @Test func closedListenerEndsAccept() async throws {
        let listener = try await TransportEndpoint(parsing: "tcp:127.0.0.1:0").listen()
        let waiting = Task { try await listener.accept() }
        await listener.close()
        await expectTransportError(.transportClosed) { _ = try await waiting.value }
        var iterator = listener.makeAsyncIterator()
        #expect(try await iterator.next() == nil)
    }

    @Test func listenerIsAnAsyncSequenceOfConnections() async throws {
        let listener = try await TransportEndpoint(parsing: "tcp:127.0.0.1:0").listen()
        let endpoint = try TransportEndpoint(.tcp(host: "127.0.0.1", port: try #require(listener.port)))
        let clients = [try await endpoint.connect(), try await endpoint.connect()]
        for (i, client) in clients.enumerated() { try await client.write([UInt8(i)]) }
        var seen: Set<UInt8> = []
        for try await server in listener {
            if let byte = try await server.read()?.first { seen.insert(byte) }
            await server.close()
            if seen.count == 2 { break }
        }
        #expect(seen == [0, 1])
        for client in clients { await client.close() }
        await listener.close()
    }

    // MARK: Unix-domain sockets

    @Test func unixRoundTripAndCleanEnd() async throws {
        let dir = try makeTempDirectory()
        defer { removeTree(dir) }
        let endpoint = try TransportEndpoint(parsing: "unix:\(dir)/link.sock")
        let listener = try await endpoint.listen()
        async let accepted = listener.accept()
        let client = try await endpoint.connect()
        let server = try await accepted
        #expect(client.peerDescription == "unix \(dir)/link.sock")
        try await checkRoundTrip(client, server, seed: 12)
        try await server.write([1, 2])
        await server.close()
        #expect(try await readToEnd(client) == [1, 2])
        await client.close()
        await listener.close()
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/link.sock"), "the listener removes its socket file")
    }

    @Test func unixAddressInUseAndStaleSocketFile() async throws {
        let dir = try makeTempDirectory()
        defer { removeTree(dir) }
        let path = "\(dir)/s.sock"
        let endpoint = try TransportEndpoint(parsing: "unix:\(path)")
        let live = try await endpoint.listen()
        await expectTransportError(.addressInUse) { _ = try await endpoint.listen() }
        await live.close()

        // A socket file left by a process that died: bound, never unlinked, nobody listening.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(rc == 0)
        close(fd)
        #expect(FileManager.default.fileExists(atPath: path))
        let replaced = try await endpoint.listen()
        await replaced.close()

        // A regular file is never removed.
        #expect(FileManager.default.createFile(atPath: path, contents: Data([1])))
        await expectTransportError(.addressInUse) { _ = try await endpoint.listen() }
        #expect(FileManager.default.fileExists(atPath: path))
    }

    @Test func unixConnectWithoutListenerIsRefused() async throws {
        let dir = try makeTempDirectory()
        defer { removeTree(dir) }
        await expectTransportError(.connectionRefused) {
            _ = try await TransportEndpoint(parsing: "unix:\(dir)/nobody.sock").connect(options: TransportOptions(retry: quickRetry))
        }
    }

    @Test func retryWaitIsCancellable() async throws {
        let probe = try await TransportEndpoint(parsing: "tcp:127.0.0.1:0").listen()
        let port = try #require(probe.port)
        await probe.close()
        let endpoint = try TransportEndpoint(parsing: "tcp:127.0.0.1:\(port)")
        let (refusals, refusal) = AsyncStream<Void>.makeStream()
        let connecting = Task {
            try await endpoint.connect(
                options: TransportOptions(retry: RetryPolicy(maxAttempts: 100, initialDelay: .seconds(3600))),
                onRetry: { _, _ in refusal.yield() }
            )
        }
        var iterator = refusals.makeAsyncIterator()
        _ = await iterator.next()  // now sleeping an hour before the next attempt
        connecting.cancel()
        await #expect(throws: CancellationError.self) { _ = try await connecting.value }
    }

    @Test func backoffDoublesUpToTheCap() {
        let policy = RetryPolicy(maxAttempts: 10, initialDelay: .milliseconds(100), maxDelay: .seconds(1), multiplier: 2)
        #expect(policy.delay(afterAttempt: 1) == .milliseconds(100))
        #expect(policy.delay(afterAttempt: 2) == .milliseconds(200))
        #expect(policy.delay(afterAttempt: 4) == .milliseconds(800))
        #expect(policy.delay(afterAttempt: 5) == .seconds(1))
        #expect(policy.delay(afterAttempt: 50) == .seconds(1))
    }
}

/// A thread-safe counter for callbacks.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
