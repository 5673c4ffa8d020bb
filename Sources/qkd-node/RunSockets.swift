import Foundation
import QKDCrypto
import QKDNode
import QKDTransport
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// A minimal blocking-socket TCP transport for `qkd-node run` and `demo`, until QKDTransport's
// SwiftNIO TCP (branch `transport`) is merged; then `run` uses `TransportEndpoint` and this file
// goes. Reads run on a dedicated thread per connection (never on the cooperative pool, which
// has as many threads as cores), writes on a serial queue.

/// "HOST:PORT" split; IPv4 or a resolvable name.
struct HostPort: CustomStringConvertible {
    var host: String
    var port: Int

    init(parsing text: String, option: String) throws {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65_535).contains(port),
              colon != text.startIndex else {
            throw CLIError("\(option) '\(text)' is not HOST:PORT (e.g. 127.0.0.1:7000)")
        }
        host = String(text[..<colon])
        self.port = port
    }

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    var description: String { "\(host):\(port)" }

    func address() throws -> sockaddr_in {
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &result)
        guard rc == 0, let info = result else {
            throw QKDError(.nodeLinkLost, "cannot resolve '\(host)': \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(result) }
        return info.pointee.ai_addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }
    }
}

/// A connected TCP socket as a `ByteTransport`.
final class SocketTransport: ByteTransport {
    let peerDescription: String
    private let fd: Int32
    private let chunks: AsyncStream<Result<[UInt8], any Error>>
    private let writes = DispatchQueue(label: "qkd-node.socket.write")
    private let closed = Mutex(false)

    init(fd: Int32, peer: String) {
        self.fd = fd
        peerDescription = "tcp \(peer)"
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let (stream, sink) = AsyncStream<Result<[UInt8], any Error>>.makeStream()
        chunks = stream
        let thread = Thread {
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    sink.yield(.success(Array(buffer[0..<n])))
                } else if n == 0 {
                    sink.finish()
                    return
                } else if errno != EINTR {
                    sink.yield(.failure(QKDError(.nodeLinkLost, "reading from \(peer): \(String(cString: strerror(errno)))")))
                    sink.finish()
                    return
                }
            }
        }
        thread.start()
    }

    func write(_ bytes: [UInt8]) async throws {
        if bytes.isEmpty { return }
        let fd = self.fd
        let peer = peerDescription
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            writes.async {
                var sent = 0
                while sent < bytes.count {
                    let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
                    if n < 0 {
                        if errno == EINTR { continue }
                        c.resume(throwing: QKDError(.nodeLinkLost, "writing to \(peer): \(String(cString: strerror(errno)))"))
                        return
                    }
                    sent += n
                }
                c.resume()
            }
        }
    }

    func read() async throws -> [UInt8]? {
        // One read at a time (the ByteTransport contract); a fresh iterator continues the stream.
        var iterator = chunks.makeAsyncIterator()
        guard let next = await iterator.next() else { return nil }
        return try next.get()
    }

    func close() async {
        let already = closed.withLock { c -> Bool in defer { c = true }; return c }
        guard !already else { return }
        let fd = self.fd
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            writes.async {
                shutdown(fd, Int32(SHUT_RDWR))
                Glibc.close(fd)
                c.resume()
            }
        }
    }
}

/// A listening TCP socket; `accept()` hands out connections.
final class SocketListener: Sendable {
    let fd: Int32
    let port: Int

    /// Binds and listens.
    /// - Throws: a `CLIError` saying the port is in use or cannot be bound.
    init(_ address: HostPort) throws {
        var addr = try address.address()
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CLIError("cannot create a socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0 else {
            let reason = errno == EADDRINUSE ? "the port is in use by another process; choose another port" : String(cString: strerror(errno))
            Glibc.close(fd)
            throw CLIError("cannot listen on \(address): \(reason)")
        }
        guard listen(fd, 8) == 0 else {
            Glibc.close(fd)
            throw CLIError("cannot listen on \(address): \(String(cString: strerror(errno)))")
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        self.fd = fd
        port = Int(UInt16(bigEndian: actual.sin_port))
    }

    /// The next connection (blocks a dedicated thread, not the cooperative pool).
    func accept() async throws -> any ByteTransport {
        let fd = self.fd
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<any ByteTransport, any Error>) in
            Thread {
                var peer = sockaddr_in()
                var length = socklen_t(MemoryLayout<sockaddr_in>.size)
                while true {
                    let client = withUnsafeMutablePointer(to: &peer) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.accept(fd, $0, &length) } }
                    if client >= 0 {
                        var text = [CChar](repeating: 0, count: 64)
                        inet_ntop(AF_INET, &peer.sin_addr, &text, 64)
                        let host = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                        c.resume(returning: SocketTransport(fd: client, peer: "\(host):\(UInt16(bigEndian: peer.sin_port))"))
                        return
                    }
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    c.resume(throwing: QKDError(.nodeLinkLost, "accept failed: \(String(cString: strerror(errno)))"))
                    return
                }
            }.start()
        }
    }

    func close() { Glibc.close(fd) }
}

/// Connects, retrying refused connections with backoff for up to `timeout`.
func connectTCP(_ address: HostPort, timeout: Duration = .seconds(10)) async throws -> any ByteTransport {
    let deadline = ContinuousClock.now + timeout
    var delay = Duration.milliseconds(50)
    while true {
        var addr = try address.address()
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CLIError("cannot create a socket: \(String(cString: strerror(errno)))") }
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if rc == 0 { return SocketTransport(fd: fd, peer: address.description) }
        let error = errno
        Glibc.close(fd)
        guard error == ECONNREFUSED || error == EINTR || error == ETIMEDOUT, ContinuousClock.now + delay < deadline else {
            throw QKDError(.nodeLinkLost, "cannot connect to \(address): \(String(cString: strerror(error))); is the peer running and listening there?")
        }
        try await Task.sleep(for: delay)
        delay = min(delay * 2, .milliseconds(800))
    }
}
