import QKDCrypto
@testable import QKDTransport
import Testing

@Suite struct EndpointTests {
    static let accepted: [(String, TransportEndpoint.Kind)] = [
        ("tcp:127.0.0.1:7000", .tcp(host: "127.0.0.1", port: 7000)),
        ("tcp:localhost:0", .tcp(host: "localhost", port: 0)),
        ("tcp:alice.example:65535", .tcp(host: "alice.example", port: 65535)),
        ("tcp:[::1]:7000", .tcp(host: "::1", port: 7000)),
        ("tcp:[fe80::1%eth0]:22", .tcp(host: "fe80::1%eth0", port: 22)),
        ("unix:/tmp/qkd.sock", .unix(path: "/tmp/qkd.sock")),
        ("unix:relative.sock", .unix(path: "relative.sock")),
        ("serial:/dev/ttyUSB0", .serial(device: "/dev/ttyUSB0", settings: SerialSettings())),
        ("serial:/dev/ttyS1?baud=9600&parity=even&stop=2&bits=7",
         .serial(device: "/dev/ttyS1", settings: SerialSettings(baudRate: 9600, dataBits: 7, parity: .even, stopBits: 2))),
        ("serial:/dev/ttyACM0?flow=rtscts", .serial(device: "/dev/ttyACM0", settings: SerialSettings(flowControl: .rtscts))),
        ("exec:cat", .exec(arguments: ["cat"])),
        ("exec:ssh  bob.example qkd-bridge --port 3", .exec(arguments: ["ssh", "bob.example", "qkd-bridge", "--port", "3"])),
        ("exec:sh -c 'exec cat'", .exec(arguments: ["sh", "-c", "exec cat"])),
        ("exec:printf \"a \\\"b\\\"\" c\\ d", .exec(arguments: ["printf", "a \"b\"", "c d"])),
        ("exec:echo ''", .exec(arguments: ["echo", ""])),
        ("plugin:/opt/v/libq.so", .plugin(path: "/opt/v/libq.so", configuration: "")),
        ("plugin:/opt/v/libq.so?device=0&lane=2", .plugin(path: "/opt/v/libq.so", configuration: "device=0&lane=2")),
        ("plugin:./libq.so?key=a=b", .plugin(path: "./libq.so", configuration: "key=a=b")),
        ("plugin:/x.so?empty=", .plugin(path: "/x.so", configuration: "empty=")),
    ]

    @Test(arguments: accepted.indices)
    func acceptsAndRoundTrips(_ i: Int) throws {
        let (text, kind) = Self.accepted[i]
        let endpoint = try TransportEndpoint(parsing: text)
        #expect(endpoint.kind == kind, "\(text)")
        // The canonical form parses back to the same endpoint.
        let again = try TransportEndpoint(parsing: endpoint.description)
        #expect(again == endpoint, "\(text) -> \(endpoint.description)")
    }

    static let rejected: [String] = [
        "", "127.0.0.1:7000", "http://x", "tcp:", "tcp:host", "tcp::7000", "tcp:host:", "tcp:host:65536",
        "tcp:host:-1", "tcp:host:+80", "tcp:host:7000x", "tcp:::1:7000", "tcp:[::1]7000", "tcp:[::1:7000",
        "tcp:a b:1", "tcp:host/x:1", "unix:", "unix:/" + String(repeating: "x", count: 200),
        "serial:", "serial:?baud=9600", "serial:/dev/x?baud=12345", "serial:/dev/x?baud=fast",
        "serial:/dev/x?bits=9", "serial:/dev/x?bits=4", "serial:/dev/x?parity=mark", "serial:/dev/x?stop=3",
        "serial:/dev/x?speed=9600", "serial:/dev/x?baud", "serial:/dev/x?baud=9600&baud=9600",
        "serial:/dev/x?flow=xon", "exec:", "exec:   ", "exec:sh -c 'unterminated", "exec:sh \"x",
        "exec:x\\", "plugin:", "plugin:?k=v", "plugin:/x.so?novalue", "plugin:/x.so?=v",
        "plugin:/x.so?k=1&k=2", "plugin:/x.so?a=1&&b=2",
    ]

    @Test(arguments: rejected)
    func rejects(_ text: String) {
        #expect(throws: QKDError(.invalidEndpoint)) { try TransportEndpoint(parsing: text) }
    }

    @Test func errorMessagesSayWhatToDo() {
        do {
            _ = try TransportEndpoint(parsing: "tcp:host:99999")
            Issue.record("accepted an out-of-range port")
        } catch let error as QKDError {
            #expect(error.detail.contains("0...65535"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func programmaticInitValidatesLikeParsing() {
        #expect(throws: QKDError(.invalidEndpoint)) { try TransportEndpoint(.tcp(host: "h", port: 70_000)) }
        #expect(throws: QKDError(.invalidEndpoint)) { try TransportEndpoint(.exec(arguments: [])) }
        #expect(throws: QKDError(.invalidEndpoint)) {
            try TransportEndpoint(.serial(device: "/dev/x", settings: SerialSettings(baudRate: 7)))
        }
    }

    @Test func pluginConfigurationPairs() throws {
        let pairs = try TransportEndpoint.parsePluginConfiguration("a=1&b=&c=x=y")
        #expect(pairs.map(\.key) == ["a", "b", "c"])
        #expect(pairs.map(\.value) == ["1", "", "x=y"])
    }

    @Test func execQuotingRoundTripsAwkwardArguments() throws {
        let args = ["cmd", "it's", "a b", "", "\"q\"", "back\\slash", "$HOME"]
        let endpoint = try TransportEndpoint(.exec(arguments: args))
        let again = try TransportEndpoint(parsing: endpoint.description)
        #expect(again.kind == .exec(arguments: args), "\(endpoint.description)")
    }
}
