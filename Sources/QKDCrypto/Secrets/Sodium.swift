internal import CSodium

/// One-time initialisation of libsodium. Every entry point that calls libsodium goes through
/// ``Sodium/ensureInitialized()`` first; `sodium_init` is thread-safe and idempotent, and the
/// lazy global makes sure it runs once per process.
enum Sodium {
    private static let initialized: Bool = sodium_init() >= 0

    /// Initialises libsodium once; traps if it cannot (no usable randomness source: a broken
    /// system on which no key material may be produced).
    @inline(__always)
    static func ensureInitialized() {
        precondition(initialized, "libsodium could not be initialised (sodium_init failed)")
    }

    /// The libsodium version string, for `qkd-node selftest` and diagnostics.
    static var versionString: String {
        ensureInitialized()
        return String(cString: sodium_version_string())
    }
}

/// The libsodium version this process uses, e.g. "1.0.18".
public var sodiumVersion: String { Sodium.versionString }
