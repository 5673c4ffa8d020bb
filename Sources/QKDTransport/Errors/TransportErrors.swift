public import QKDCrypto

/// The transport layer's error codes (Spec/transport.md, section 4).
///
/// None of them is peer misbehaviour in the protocol sense: a transport only moves bytes, and a
/// peer that hangs up or resets is a link failure, not an attack the session must count.
extension QKDError.Code {
    /// The endpoint string does not follow any of the forms of Spec/transport.md section 2.
    public static let invalidEndpoint = QKDError.Code("transport.invalid-endpoint")
    /// The transport was closed (locally, or by the peer for writing); no more bytes can be written.
    public static let transportClosed = QKDError.Code("transport.closed")
    /// The link failed: reset by the peer, I/O error, the bridge process died, the plugin
    /// reported an error. Reconnect to continue.
    public static let transportBroken = QKDError.Code("transport.broken")
    /// Nothing accepts connections at the address (after every retry).
    public static let connectionRefused = QKDError.Code("transport.connection-refused")
    /// The host name did not resolve, or the network or host is unreachable (after every retry).
    public static let hostUnreachable = QKDError.Code("transport.host-unreachable")
    /// The connection attempt timed out (after every retry).
    public static let connectTimedOut = QKDError.Code("transport.connect-timeout")
    /// Another process already listens on the address.
    public static let addressInUse = QKDError.Code("transport.address-in-use")
    /// Any other failure to connect or to listen (permission denied, address not available, ...).
    public static let connectFailed = QKDError.Code("transport.connect-failed")
    /// The serial device could not be opened or configured (missing, busy, not a tty, bad speed).
    public static let serialOpenFailed = QKDError.Code("transport.serial-open-failed")
    /// The bridge command of an `exec:` endpoint could not be started.
    public static let execFailed = QKDError.Code("transport.exec-failed")
    /// The plugin file does not exist or is not readable.
    public static let pluginNotFound = QKDError.Code("transport.plugin-not-found")
    /// `dlopen` refused the plugin (the detail carries `dlerror()`).
    public static let pluginLoadFailed = QKDError.Code("transport.plugin-load-failed")
    /// The plugin lacks one of the symbols of qkd_transport_plugin.h.
    public static let pluginMissingSymbol = QKDError.Code("transport.plugin-missing-symbol")
    /// The plugin was built against another version of qkd_transport_plugin.h.
    public static let pluginABIMismatch = QKDError.Code("transport.plugin-abi-mismatch")
    /// The plugin's `open` failed (the detail carries the plugin's `last_error`).
    public static let pluginOpenFailed = QKDError.Code("transport.plugin-open-failed")
    /// The plugin's `read` or `write` reported an error (the detail carries its `last_error`).
    public static let pluginIOFailed = QKDError.Code("transport.plugin-io-failed")
}
