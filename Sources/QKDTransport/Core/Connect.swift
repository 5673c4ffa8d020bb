import QKDCrypto

extension TransportEndpoint {
    /// Opens a transport to the peer (Spec/transport.md section 3).
    ///
    /// TCP and Unix sockets connect, retrying a refused, unreachable or timed-out peer with
    /// exponential backoff (``RetryPolicy``), so the connecting node may start first. A serial
    /// endpoint opens the device, an exec endpoint starts the bridge, a plugin endpoint loads the
    /// library and calls its `open`.
    ///
    /// - Parameter options: retry, timeout and keepalive settings.
    /// - Returns: the open transport.
    /// - Throws: the last attempt's `QKDError` (`.connectionRefused`, `.hostUnreachable`,
    ///   `.connectTimedOut`, `.connectFailed`, `.serialOpenFailed`, `.execFailed`, `.plugin...`);
    ///   `CancellationError` if the task is cancelled (also while waiting between attempts).
    public func connect(options: TransportOptions = TransportOptions()) async throws -> any ByteTransport {
        try await connect(options: options, onRetry: nil)
    }

    /// ``connect(options:)`` with an observer of failed attempts (tests wait for a refusal
    /// before starting the listener, instead of sleeping).
    func connect(options: TransportOptions, onRetry: (@Sendable (Int, QKDError) -> Void)?) async throws -> any ByteTransport {
        switch kind {
        case .tcp(let host, let port):
            guard port != 0 else {
                throw QKDError(.invalidEndpoint, "cannot connect to port 0 in \(self): give the peer's port")
            }
            return try await Self.withRetry(options.retry, onRetry: onRetry) {
                try await SocketTransports.connectTCP(host: host, port: port, options: options)
            }
        case .unix(let path):
            return try await Self.withRetry(options.retry, onRetry: onRetry) {
                try await SocketTransports.connectUnix(path: path, options: options)
            }
        case .serial(let device, let settings):
            return try await SerialLine.open(device: device, settings: settings)
        case .exec(let arguments):
            return try await ExecBridge.start(arguments: arguments, options: options)
        case .plugin(let path, let configuration):
            return try await PluginTransport.open(path: path, configuration: configuration)
        }
    }

    /// Listens for the peer (Spec/transport.md section 3).
    ///
    /// TCP and Unix sockets bind and accept any number of connections (`tcp:HOST:0` binds an
    /// ephemeral port, readable from ``TransportListener/port``). A stale Unix socket file left
    /// by a dead process is replaced. Serial, exec and plugin endpoints are point to point: the
    /// link is opened now and the listener yields it once.
    ///
    /// - Parameter options: keepalive settings for accepted connections; for point-to-point
    ///   endpoints, as in ``connect(options:)``.
    /// - Returns: the listener.
    /// - Throws: `QKDError(.addressInUse)` if another process listens there;
    ///   `.connectFailed` for other bind failures; the open errors of ``connect(options:)`` for
    ///   point-to-point endpoints.
    public func listen(options: TransportOptions = TransportOptions()) async throws -> TransportListener {
        switch kind {
        case .tcp(let host, let port):
            return try await SocketTransports.listenTCP(host: host, port: port, options: options)
        case .unix(let path):
            return try await SocketTransports.listenUnix(path: path, options: options)
        case .serial, .exec, .plugin:
            var once = options
            once.retry = .none
            let transport = try await connect(options: once)
            let connections = AcceptQueue()
            _ = connections.offer(transport)
            connections.seal()
            return TransportListener(endpoint: self, connections: connections) {}
        }
    }

    /// Runs `attempt` until it succeeds, fails with a non-retryable error, or the policy's
    /// attempts are used up; sleeps between attempts (cancellable).
    static func withRetry<T>(_ policy: RetryPolicy, onRetry: (@Sendable (Int, QKDError) -> Void)? = nil, _ attempt: () async throws -> T) async throws -> T {
        var n = 1
        while true {
            try Task.checkCancellation()
            do {
                return try await attempt()
            } catch let error as QKDError where error.code.isRetryableConnectFailure {
                guard n < policy.maxAttempts else {
                    if policy.maxAttempts == 1 { throw error }
                    throw QKDError(error.code, "\(error.detail) (gave up after \(n) attempts)")
                }
                onRetry?(n, error)
                try await Task.sleep(for: policy.delay(afterAttempt: n))
                n += 1
            }
        }
    }
}
