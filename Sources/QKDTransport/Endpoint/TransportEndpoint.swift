import QKDCrypto

/// How to reach the peer, as written on a command line or in a config file
/// (Spec/transport.md section 2):
///
/// | form | example |
/// |---|---|
/// | `tcp:HOST:PORT` | `tcp:127.0.0.1:7000`, `tcp:[::1]:7000`, `tcp:alice.example:7000` |
/// | `unix:PATH` | `unix:/run/qkd/link.sock` |
/// | `serial:DEVICE[?baud=B&bits=8&parity=none&stop=1&flow=none]` | `serial:/dev/ttyUSB0?baud=115200` |
/// | `exec:CMD ARGS` | `exec:ssh bob.example qkd-bridge` (shell-like quoting, no shell) |
/// | `plugin:PATH[?key=value&...]` | `plugin:/opt/vendor/libqkdlink.so?device=0&lane=2` |
///
/// `description` gives back the canonical form, which parses to an equal endpoint.
public struct TransportEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// The kind of link and its parameters.
    public enum Kind: Sendable, Hashable {
        /// A TCP connection. `host` is a name or an address (IPv6 without brackets); port 0 asks
        /// `listen()` for an ephemeral port.
        case tcp(host: String, port: Int)
        /// A Unix-domain stream socket at a file-system path.
        case unix(path: String)
        /// A serial line (a tty in raw mode) at a device path.
        case serial(device: String, settings: SerialSettings)
        /// A child process that carries the bytes on its stdin and stdout. `arguments[0]` is the
        /// command (looked up in `PATH`).
        case exec(arguments: [String])
        /// A shared library implementing qkd_transport_plugin.h. `configuration` is passed to the
        /// plugin's `open` verbatim: `key=value` pairs joined by `&`, possibly empty.
        case plugin(path: String, configuration: String)
    }

    /// The kind of link and its parameters.
    public let kind: Kind

    /// Longest Unix-domain socket path in bytes: `sizeof(sun_path) - 1` (108 - 1 on Linux,
    /// 104 - 1 on macOS), so the path and its NUL fit in `sockaddr_un`.
    #if os(Linux)
    public static let maxUnixPathLength = 107
    #else
    public static let maxUnixPathLength = 103
    #endif

    /// An endpoint from its parts, validated like a parsed one.
    /// - Parameter kind: the link kind and its parameters.
    /// - Throws: `QKDError(.invalidEndpoint)` if a parameter is out of range.
    public init(_ kind: Kind) throws {
        switch kind {
        case .tcp(let host, let port):
            try Self.validate(host: host)
            guard (0...65_535).contains(port) else {
                throw QKDError(.invalidEndpoint, "TCP port \(port) is out of range: use 0...65535")
            }
        case .unix(let path):
            try Self.validate(unixPath: path)
        case .serial(let device, let settings):
            try Self.validate(device: device)
            try settings.validate()
        case .exec(let arguments):
            guard let command = arguments.first, !command.isEmpty else {
                throw QKDError(.invalidEndpoint, "exec: needs a command, e.g. exec:cat or exec:'ssh bob qkd-bridge'")
            }
            if arguments.contains(where: { $0.utf8.contains(0) }) {
                throw QKDError(.invalidEndpoint, "exec: arguments must not contain NUL bytes")
            }
        case .plugin(let path, let configuration):
            guard !path.isEmpty else {
                throw QKDError(.invalidEndpoint, "plugin: needs the path of a shared library, e.g. plugin:/opt/vendor/libqkd.so?device=0")
            }
            if path.utf8.contains(0) { throw QKDError(.invalidEndpoint, "plugin: path must not contain NUL bytes") }
            _ = try Self.parsePluginConfiguration(configuration)
        }
        self.kind = kind
    }

    /// Parses an endpoint string.
    /// - Parameter text: one of the forms in the type's documentation.
    /// - Throws: `QKDError(.invalidEndpoint)` with a sentence that says what is wrong and shows
    ///   the expected form.
    public init(parsing text: String) throws {
        guard let colon = text.firstIndex(of: ":") else {
            throw QKDError(.invalidEndpoint, "'\(text)' has no scheme: use tcp:HOST:PORT, unix:PATH, serial:DEVICE?baud=B, exec:CMD ARGS or plugin:PATH?key=value")
        }
        let scheme = text[..<colon]
        let rest = String(text[text.index(after: colon)...])
        switch scheme {
        case "tcp":
            let (host, port) = try Self.parseHostPort(rest)
            try self.init(.tcp(host: host, port: port))
        case "unix":
            try self.init(.unix(path: rest))
        case "serial":
            let (device, query) = Self.splitQuery(rest)
            try self.init(.serial(device: device, settings: try SerialSettings(query: query)))
        case "exec":
            try self.init(.exec(arguments: try CommandLineSplitter.split(rest)))
        case "plugin":
            let (path, query) = Self.splitQuery(rest)
            try self.init(.plugin(path: path, configuration: query ?? ""))
        default:
            throw QKDError(.invalidEndpoint, "unknown transport '\(scheme)' in '\(text)': use tcp, unix, serial, exec or plugin")
        }
    }

    /// The canonical endpoint string; `TransportEndpoint(parsing: e.description) == e`.
    public var description: String {
        switch kind {
        case .tcp(let host, let port):
            return host.contains(":") ? "tcp:[\(host)]:\(port)" : "tcp:\(host):\(port)"
        case .unix(let path):
            return "unix:\(path)"
        case .serial(let device, let settings):
            return "serial:\(device)?\(settings.query)"
        case .exec(let arguments):
            return "exec:" + arguments.map(CommandLineSplitter.quote).joined(separator: " ")
        case .plugin(let path, let configuration):
            return configuration.isEmpty ? "plugin:\(path)" : "plugin:\(path)?\(configuration)"
        }
    }

    /// The plugin configuration's pairs, in order.
    /// - Parameter configuration: `key=value` pairs joined by `&`, or the empty string.
    /// - Returns: the pairs.
    /// - Throws: `QKDError(.invalidEndpoint)` on an empty key, a pair without `=`, a repeated
    ///   key or a NUL byte.
    public static func parsePluginConfiguration(_ configuration: String) throws -> [(key: String, value: String)] {
        if configuration.isEmpty { return [] }
        if configuration.utf8.contains(0) {
            throw QKDError(.invalidEndpoint, "plugin configuration must not contain NUL bytes")
        }
        var pairs: [(key: String, value: String)] = []
        for item in configuration.split(separator: "&", omittingEmptySubsequences: false) {
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw QKDError(.invalidEndpoint, "plugin configuration item '\(item)' is not key=value")
            }
            let key = String(item[..<eq])
            if pairs.contains(where: { $0.key == key }) {
                throw QKDError(.invalidEndpoint, "plugin configuration key '\(key)' is given twice")
            }
            pairs.append((key, String(item[item.index(after: eq)...])))
        }
        return pairs
    }

    // MARK: parsing helpers

    static func splitQuery(_ text: String) -> (String, String?) {
        guard let q = text.firstIndex(of: "?") else { return (text, nil) }
        return (String(text[..<q]), String(text[text.index(after: q)...]))
    }

    static func parseHostPort(_ text: String) throws -> (String, Int) {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"),
                  text.index(after: close) < text.endIndex, text[text.index(after: close)] == ":" else {
                throw QKDError(.invalidEndpoint, "'tcp:\(text)': an IPv6 address is written [ADDR]:PORT, e.g. tcp:[::1]:7000")
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                throw QKDError(.invalidEndpoint, "'tcp:\(text)' has no port: use tcp:HOST:PORT, e.g. tcp:127.0.0.1:7000")
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") {
                throw QKDError(.invalidEndpoint, "'tcp:\(text)': write an IPv6 address in brackets, e.g. tcp:[::1]:7000")
            }
        }
        guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
              let port = Int(portText), port <= 65_535 else {
            throw QKDError(.invalidEndpoint, "'\(portText)' in 'tcp:\(text)' is not a port number (0...65535)")
        }
        return (String(host), port)
    }

    static func validate(host: String) throws {
        guard !host.isEmpty else {
            throw QKDError(.invalidEndpoint, "a TCP endpoint needs a host, e.g. tcp:127.0.0.1:7000")
        }
        let forbidden: Set<Character> = [" ", "\t", "\n", "/", "?", "[", "]", "@", "\0"]
        if host.contains(where: { forbidden.contains($0) }) {
            throw QKDError(.invalidEndpoint, "'\(host)' is not a host name or address")
        }
    }

    static func validate(unixPath path: String) throws {
        guard !path.isEmpty else {
            throw QKDError(.invalidEndpoint, "unix: needs a socket path, e.g. unix:/tmp/qkd.sock")
        }
        if path.utf8.contains(0) { throw QKDError(.invalidEndpoint, "unix: path must not contain NUL bytes") }
        guard path.utf8.count <= maxUnixPathLength else {
            throw QKDError(.invalidEndpoint, "unix socket path is \(path.utf8.count) bytes; the limit is \(maxUnixPathLength): use a shorter path")
        }
    }

    static func validate(device: String) throws {
        guard !device.isEmpty else {
            throw QKDError(.invalidEndpoint, "serial: needs a device path, e.g. serial:/dev/ttyUSB0?baud=115200")
        }
        if device.utf8.contains(0) { throw QKDError(.invalidEndpoint, "serial: device must not contain NUL bytes") }
    }
}

/// Line settings of a serial endpoint (`serial:DEVICE?baud=115200&bits=8&parity=none&stop=1&flow=none`).
/// The defaults are 115200 baud, 8 data bits, no parity, 1 stop bit, no flow control ("8N1").
public struct SerialSettings: Sendable, Hashable {
    /// Parity bit.
    public enum Parity: String, Sendable, Hashable, CaseIterable {
        /// No parity bit.
        case none
        /// Even parity.
        case even
        /// Odd parity.
        case odd
    }

    /// Flow control.
    public enum FlowControl: String, Sendable, Hashable, CaseIterable {
        /// None: both ends must keep up (the stack's frames are small and acknowledged).
        case none
        /// Hardware flow control on the RTS/CTS lines.
        case rtscts
    }

    /// The speeds termios can set on every supported platform.
    public static let supportedBaudRates: [Int] = [
        1200, 2400, 4800, 9600, 19_200, 38_400, 57_600, 115_200, 230_400,
        460_800, 500_000, 576_000, 921_600, 1_000_000, 1_152_000, 1_500_000,
        2_000_000, 2_500_000, 3_000_000, 3_500_000, 4_000_000,
    ]

    /// Bits per second.
    public var baudRate: Int
    /// Data bits per character: 5...8.
    public var dataBits: Int
    /// Parity.
    public var parity: Parity
    /// Stop bits: 1 or 2.
    public var stopBits: Int
    /// Flow control.
    public var flowControl: FlowControl

    /// Line settings; the defaults are 115200 8N1 without flow control.
    /// - Parameters:
    ///   - baudRate: one of ``supportedBaudRates``.
    ///   - dataBits: 5...8.
    ///   - parity: the parity bit.
    ///   - stopBits: 1 or 2.
    ///   - flowControl: none or RTS/CTS.
    public init(baudRate: Int = 115_200, dataBits: Int = 8, parity: Parity = .none, stopBits: Int = 1, flowControl: FlowControl = .none) {
        self.baudRate = baudRate
        self.dataBits = dataBits
        self.parity = parity
        self.stopBits = stopBits
        self.flowControl = flowControl
    }

    init(query: String?) throws {
        self.init()
        guard let query, !query.isEmpty else { return }
        var seen: Set<String> = []
        for item in query.split(separator: "&", omittingEmptySubsequences: false) {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw QKDError(.invalidEndpoint, "serial option '\(item)' is not key=value (keys: baud, bits, parity, stop, flow)")
            }
            let key = String(parts[0])
            let value = String(parts[1])
            guard seen.insert(key).inserted else {
                throw QKDError(.invalidEndpoint, "serial option '\(key)' is given twice")
            }
            switch key {
            case "baud":
                guard let v = Int(value) else { throw QKDError(.invalidEndpoint, "serial baud '\(value)' is not a number") }
                baudRate = v
            case "bits":
                guard let v = Int(value) else { throw QKDError(.invalidEndpoint, "serial bits '\(value)' is not a number (5...8)") }
                dataBits = v
            case "parity":
                guard let v = Parity(rawValue: value) else { throw QKDError(.invalidEndpoint, "serial parity '\(value)' is not none, even or odd") }
                parity = v
            case "stop":
                guard let v = Int(value) else { throw QKDError(.invalidEndpoint, "serial stop '\(value)' is not 1 or 2") }
                stopBits = v
            case "flow":
                guard let v = FlowControl(rawValue: value) else { throw QKDError(.invalidEndpoint, "serial flow '\(value)' is not none or rtscts") }
                flowControl = v
            default:
                throw QKDError(.invalidEndpoint, "unknown serial option '\(key)': use baud, bits, parity, stop, flow")
            }
        }
        try validate()
    }

    func validate() throws {
        guard Self.supportedBaudRates.contains(baudRate) else {
            throw QKDError(.invalidEndpoint, "serial baud rate \(baudRate) is not supported: use one of \(Self.supportedBaudRates.map(String.init).joined(separator: ", "))")
        }
        guard (5...8).contains(dataBits) else {
            throw QKDError(.invalidEndpoint, "serial data bits \(dataBits) is out of range: use 5, 6, 7 or 8")
        }
        guard stopBits == 1 || stopBits == 2 else {
            throw QKDError(.invalidEndpoint, "serial stop bits \(stopBits) is invalid: use 1 or 2")
        }
    }

    /// The canonical query string, every key present.
    var query: String {
        "baud=\(baudRate)&bits=\(dataBits)&parity=\(parity.rawValue)&stop=\(stopBits)&flow=\(flowControl.rawValue)"
    }
}

/// Splits `exec:` command lines into arguments with shell-like quoting, without a shell:
/// whitespace separates arguments; `'...'` is literal; `"..."` allows `\"` and `\\`; a
/// backslash outside quotes escapes the next character. No expansion of any kind.
enum CommandLineSplitter {
    static func split(_ text: String) throws -> [String] {
        var arguments: [String] = []
        var current = ""
        var inArgument = false
        var iterator = text.makeIterator()
        while let c = iterator.next() {
            switch c {
            case " ", "\t", "\n":
                if inArgument {
                    arguments.append(current)
                    current = ""
                    inArgument = false
                }
            case "'":
                inArgument = true
                var closed = false
                while let d = iterator.next() {
                    if d == "'" { closed = true; break }
                    current.append(d)
                }
                if !closed { throw QKDError(.invalidEndpoint, "exec: unterminated single quote in '\(text)'") }
            case "\"":
                inArgument = true
                var closed = false
                while let d = iterator.next() {
                    if d == "\"" { closed = true; break }
                    if d == "\\" {
                        guard let e = iterator.next() else { break }
                        if e != "\"" && e != "\\" { current.append("\\") }
                        current.append(e)
                    } else {
                        current.append(d)
                    }
                }
                if !closed { throw QKDError(.invalidEndpoint, "exec: unterminated double quote in '\(text)'") }
            case "\\":
                inArgument = true
                guard let d = iterator.next() else {
                    throw QKDError(.invalidEndpoint, "exec: trailing backslash in '\(text)'")
                }
                current.append(d)
            default:
                inArgument = true
                current.append(c)
            }
        }
        if inArgument { arguments.append(current) }
        if arguments.isEmpty {
            throw QKDError(.invalidEndpoint, "exec: needs a command, e.g. exec:cat or exec:'ssh bob qkd-bridge'")
        }
        return arguments
    }

    /// One argument, quoted only if it must be.
    static func quote(_ argument: String) -> String {
        let safe = !argument.isEmpty && argument.allSatisfy { c in
            c.isASCII && (c.isLetter || c.isNumber || "-_./=:,+@%".contains(c))
        }
        if safe { return argument }
        var quoted = "'"
        for c in argument {
            if c == "'" { quoted += "'\\''" } else { quoted.append(c) }
        }
        return quoted + "'"
    }
}
