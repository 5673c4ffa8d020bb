import QKDCrypto

/// How ``TransportEndpoint/connect(options:)`` retries a refused or unreachable peer:
/// exponential backoff, `initialDelay * multiplier^(n-1)` before attempt `n + 1`, capped at
/// `maxDelay`. Only TCP and Unix-socket endpoints retry (the peer node may start later);
/// a serial device, a bridge command or a plugin that fails to open is a configuration error
/// and fails at once.
public struct RetryPolicy: Sendable, Hashable {
    /// Attempts in total, at least 1.
    public var maxAttempts: Int
    /// The wait after the first failed attempt.
    public var initialDelay: Duration
    /// The longest wait between two attempts.
    public var maxDelay: Duration
    /// The factor applied to the wait after each failed attempt (at least 1).
    public var multiplier: Double

    /// A retry policy.
    /// - Parameters:
    ///   - maxAttempts: attempts in total (at least 1).
    ///   - initialDelay: the wait after the first failure.
    ///   - maxDelay: the cap on the wait.
    ///   - multiplier: the growth factor of the wait (at least 1).
    public init(maxAttempts: Int, initialDelay: Duration = .milliseconds(100), maxDelay: Duration = .seconds(5), multiplier: Double = 2) {
        precondition(maxAttempts >= 1, "RetryPolicy.maxAttempts must be at least 1")
        precondition(multiplier >= 1, "RetryPolicy.multiplier must be at least 1")
        precondition(initialDelay >= .zero && maxDelay >= .zero, "RetryPolicy delays must not be negative")
        self.maxAttempts = maxAttempts
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.multiplier = multiplier
    }

    /// 10 attempts over about 12 s: 0.1, 0.2, 0.4 ... 5 s between attempts.
    public static let `default` = RetryPolicy(maxAttempts: 10)
    /// A single attempt.
    public static let none = RetryPolicy(maxAttempts: 1)

    /// The wait after failed attempt `attempt` (1-based).
    /// - Parameter attempt: the number of the attempt that failed, from 1.
    /// - Returns: the delay before the next attempt.
    public func delay(afterAttempt attempt: Int) -> Duration {
        var delay = initialDelay
        var n = 1
        while n < attempt && delay < maxDelay {
            delay = delay * multiplier
            n += 1
        }
        return min(delay, maxDelay)
    }
}

/// TCP keepalive: how soon an idle connection whose peer vanished (power loss, cable cut)
/// is reported as broken. Detection takes about `idle + interval * count`.
public struct KeepAlive: Sendable, Hashable {
    /// Idle time before the first probe.
    public var idle: Duration
    /// Time between probes.
    public var interval: Duration
    /// Unanswered probes before the link is declared broken.
    public var count: Int

    /// Keepalive settings.
    /// - Parameters:
    ///   - idle: idle time before the first probe (whole seconds are used).
    ///   - interval: time between probes (whole seconds).
    ///   - count: unanswered probes before the link is broken.
    public init(idle: Duration = .seconds(30), interval: Duration = .seconds(10), count: Int = 3) {
        self.idle = idle
        self.interval = interval
        self.count = count
    }
}

/// Options for ``TransportEndpoint/connect(options:)`` and ``TransportEndpoint/listen(options:)``.
public struct TransportOptions: Sendable, Hashable {
    /// Retries of a refused or unreachable connection (TCP and Unix sockets only).
    public var retry: RetryPolicy
    /// Limit on one TCP or Unix-socket connection attempt.
    public var connectTimeout: Duration
    /// TCP keepalive, or nil to leave it off.
    public var keepAlive: KeepAlive?
    /// How long `close()` of an exec bridge waits for the child to exit after closing its stdin,
    /// and again after SIGTERM, before SIGKILL.
    public var execExitGrace: Duration

    /// Options.
    /// - Parameters:
    ///   - retry: the connect retry policy.
    ///   - connectTimeout: the limit on one connection attempt.
    ///   - keepAlive: TCP keepalive settings, nil for none.
    ///   - execExitGrace: the exec bridge's exit grace period on close.
    public init(retry: RetryPolicy = .default, connectTimeout: Duration = .seconds(10), keepAlive: KeepAlive? = KeepAlive(), execExitGrace: Duration = .seconds(2)) {
        self.retry = retry
        self.connectTimeout = connectTimeout
        self.keepAlive = keepAlive
        self.execExitGrace = execExitGrace
    }
}

extension QKDError.Code {
    /// Whether a connect failure may go away if the peer starts later.
    var isRetryableConnectFailure: Bool {
        self == .connectionRefused || self == .hostUnreachable || self == .connectTimedOut
    }
}
