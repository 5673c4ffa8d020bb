#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOPosix
import QKDCrypto

/// TCP and Unix-domain stream sockets on SwiftNIO (Spec/transport.md section 3.1).
enum SocketTransports {
    static var group: MultiThreadedEventLoopGroup { .singleton }

    // MARK: TCP

    /// One connection attempt.
    static func connectTCP(host: String, port: Int, options: TransportOptions) async throws -> any ByteTransport {
        let peer = "tcp \(host.contains(":") ? "[\(host)]" : host):\(port)"
        let bootstrap = applyTCPOptions(ClientBootstrap(group: group), options)
            .connectTimeout(options.connectTimeout.timeAmount)
        do {
            // The handler goes in before the channel is registered: no inbound byte can reach
            // the pipeline before it.
            return try await bootstrap.connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOByteTransport.install(on: channel, peerDescription: peer) }
            }
        } catch {
            throw TransportErrorMapping.connectError(error, peer: peer)
        }
    }

    static func listenTCP(host: String, port: Int, options: TransportOptions) async throws -> TransportListener {
        let address = "tcp \(host.contains(":") ? "[\(host)]" : host):\(port)"
        let connections = AcceptQueue()
        let bootstrap = ServerBootstrap(group: group)
            // SO_REUSEADDR lets a restarted node bind while old connections sit in TIME_WAIT;
            // it does not let two listeners share a port on Linux, so "in use" is still seen.
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.so_keepalive), value: options.keepAlive == nil ? 0 : 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    try applyKeepAliveTuning(child, options.keepAlive)
                    let remote = child.remoteAddress.map(describe) ?? "tcp ?"
                    _ = try NIOByteTransport.install(on: child, peerDescription: remote) { transport in
                        if !connections.offer(transport) { transport.channel.close(promise: nil) }
                    }
                }
            }
        let server: any Channel
        do {
            server = try await bootstrap.bind(host: host, port: port).get()
        } catch {
            throw TransportErrorMapping.bindError(error, address: address)
        }
        let boundPort = server.localAddress?.port ?? port
        let endpoint = try TransportEndpoint(.tcp(host: host, port: boundPort))
        return TransportListener(endpoint: endpoint, connections: connections) {
            try? await server.close()
        }
    }

    private static func applyTCPOptions(_ bootstrap: ClientBootstrap, _ options: TransportOptions) -> ClientBootstrap {
        bootstrap
            // Frames are small and latency-bound (a round is many request/response exchanges).
            .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(ChannelOptions.socketOption(.so_keepalive), value: options.keepAlive == nil ? 0 : 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try applyKeepAliveTuning(channel, options.keepAlive) }
            }
    }

    /// Keepalive timing (Linux): without it the kernel waits two hours before probing.
    private static func applyKeepAliveTuning(_ channel: any Channel, _ keepAlive: KeepAlive?) throws {
        #if os(Linux)
        guard let keepAlive else { return }
        guard let options = channel.syncOptions else { return }
        try options.setOption(ChannelOptions.tcpOption(.init(rawValue: TCP_KEEPIDLE)), value: SocketOptionValue(max(1, keepAlive.idle.components.seconds)))
        try options.setOption(ChannelOptions.tcpOption(.init(rawValue: TCP_KEEPINTVL)), value: SocketOptionValue(max(1, keepAlive.interval.components.seconds)))
        try options.setOption(ChannelOptions.tcpOption(.init(rawValue: TCP_KEEPCNT)), value: SocketOptionValue(max(1, keepAlive.count)))
        #endif
    }

    // MARK: Unix-domain sockets

    static func connectUnix(path: String, options: TransportOptions) async throws -> any ByteTransport {
        let peer = "unix \(path)"
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(options.connectTimeout.timeAmount)
        do {
            return try await bootstrap.connect(unixDomainSocketPath: path) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOByteTransport.install(on: channel, peerDescription: peer) }
            }
        } catch {
            throw TransportErrorMapping.connectError(error, peer: peer)
        }
    }

    static func listenUnix(path: String, options: TransportOptions) async throws -> TransportListener {
        let address = "unix \(path)"
        try await removeStaleSocket(at: path, address: address)
        let connections = AcceptQueue()
        let bootstrap = ServerBootstrap(group: group)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    _ = try NIOByteTransport.install(on: child, peerDescription: "unix \(path) (accepted)") { transport in
                        if !connections.offer(transport) { transport.channel.close(promise: nil) }
                    }
                }
            }
        let server: any Channel
        do {
            server = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: false).get()
        } catch {
            throw TransportErrorMapping.bindError(error, address: address)
        }
        let endpoint = try TransportEndpoint(.unix(path: path))
        return TransportListener(endpoint: endpoint, connections: connections) {
            try? await server.close()
            unlink(path)
        }
    }

    /// A socket file left behind by a crashed listener is removed; a live listener's is not
    /// (that is `transport.address-in-use`), and neither is a file that is not a socket.
    private static func removeStaleSocket(at path: String, address: String) async throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard (info.st_mode & S_IFMT) == S_IFSOCK else {
            throw QKDError(.addressInUse, "\(path) exists and is not a socket: remove it or choose another path")
        }
        do {
            let probe = try await ClientBootstrap(group: group).connect(unixDomainSocketPath: path).get()
            try? await probe.close()
            throw QKDError(.addressInUse, "\(address) is already in use: another process listens there")
        } catch let error as QKDError {
            throw error
        } catch {
            // Nobody answers: a stale file from a process that died.
            unlink(path)
        }
    }

    static func describe(_ address: SocketAddress) -> String {
        switch address {
        case .v4, .v6:
            let ip = address.ipAddress ?? "?"
            let host = ip.contains(":") ? "[\(ip)]" : ip
            return "tcp \(host):\(address.port ?? 0)"
        case .unixDomainSocket:
            return "unix \(address.pathname ?? "?")"
        }
    }
}

extension Duration {
    /// The same span as a SwiftNIO `TimeAmount` (nanosecond resolution).
    var timeAmount: TimeAmount {
        let (seconds, attoseconds) = components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
