import ArgumentParser
import Foundation
import QKDCrypto
#if canImport(Glibc)
import Glibc
#endif

/// `qkd-node fault-proxy`: a TCP relay between two nodes that injects the faults a real
/// classical channel has (DESIGN.md: the channel is untrusted): it cuts connections mid-stream,
/// delays, duplicates and bit-flips chunks. The reliability tests put it between Alice and Bob
/// and check that rounds are completed or discarded on both sides, never accepted wrongly, and
/// that the nodes reconnect and resume.
///
/// Every decision comes from a seeded generator, so a failing run can be replayed. Each fault
/// is reported as one JSON line on stdout; the first line is `{"event":"listening","port":N}`.
/// After `--faulty-connections` connections the proxy relays cleanly, so a run can finish.
struct FaultProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fault-proxy",
        abstract: "Relay TCP between two nodes, injecting cuts, delays, duplicates and bit flips (for tests).",
        shouldDisplay: false
    )

    @Option(help: "HOST:PORT to listen on (port 0: an ephemeral port, printed on stdout).")
    var listen: String = "127.0.0.1:0"

    @Option(help: "HOST:PORT of the node to relay to.")
    var upstream: String

    @Option(help: "Seed of the fault generator.")
    var seed: UInt64 = 1

    @Option(help: "Cut each faulty connection after a random number of relayed bytes in [N/2, 3N/2] (0: never).")
    var cutAfterBytes: Int = 0

    @Option(help: "Probability that a relayed chunk has one bit flipped.")
    var flipProbability: Double = 0

    @Option(help: "Probability that a relayed chunk is sent twice.")
    var duplicateProbability: Double = 0

    @Option(help: "Largest delay before a chunk is relayed, in milliseconds (uniform).")
    var maxDelayMs: Int = 0

    @Option(help: "Connections that get faults; later ones are relayed cleanly.")
    var faultyConnections: Int = 1_000_000

    func validate() throws {
        for p in [flipProbability, duplicateProbability] where !(0...1).contains(p) {
            throw ValidationError("probabilities lie in [0, 1]")
        }
        guard cutAfterBytes >= 0, maxDelayMs >= 0, faultyConnections >= 0 else {
            throw ValidationError("--cut-after-bytes, --max-delay-ms and --faulty-connections are non-negative")
        }
    }

    func run() throws {
        try CLIError.report {
            let (listenHost, listenPort) = try Self.parse(listen)
            let (upHost, upPort) = try Self.parse(upstream)
            let server = try Socket.listen(host: listenHost, port: listenPort)
            Self.emit(#"{"event":"listening","port":\#(try Socket.localPort(server))}"#)
            var connection = 0
            while true {
                let client = accept(server, nil, nil)
                guard client >= 0 else {
                    if errno == EINTR { continue }
                    throw CLIError("accept failed: \(String(cString: strerror(errno)))")
                }
                connection += 1
                let faults = connection <= faultyConnections
                let config = Faults(seed: seed &+ UInt64(connection) &* 0x9E37_79B9_7F4A_7C15,
                                    cutAfter: faults ? cutAfterBytes : 0,
                                    flip: faults ? flipProbability : 0,
                                    duplicate: faults ? duplicateProbability : 0,
                                    maxDelayMs: faults ? maxDelayMs : 0)
                let id = connection
                Thread.detachNewThread {
                    Self.relay(client: client, upstreamHost: upHost, upstreamPort: upPort, faults: config, connection: id)
                }
            }
        }
    }

    struct Faults {
        var seed: UInt64
        var cutAfter: Int
        var flip: Double
        var duplicate: Double
        var maxDelayMs: Int
    }

    static let outputLock = NSLock()

    static func emit(_ line: String) {
        outputLock.lock()
        defer { outputLock.unlock() }
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    static func parse(_ endpoint: String) throws -> (String, UInt16) {
        guard let colon = endpoint.lastIndex(of: ":"), let port = UInt16(endpoint[endpoint.index(after: colon)...]) else {
            throw CLIError("'\(endpoint)' is not HOST:PORT")
        }
        return (String(endpoint[..<colon]), port)
    }

    /// Relays one connection until either side closes or the cut fires, then closes both.
    static func relay(client: Int32, upstreamHost: String, upstreamPort: UInt16, faults: Faults, connection: Int) {
        var upstream: Int32 = -1
        for attempt in 0..<50 {
            if let fd = try? Socket.connect(host: upstreamHost, port: upstreamPort) { upstream = fd; break }
            usleep(UInt32(20_000 * min(attempt + 1, 10)))
        }
        guard upstream >= 0 else {
            emit(#"{"event":"upstream-unreachable","connection":\#(connection)}"#)
            close(client)
            return
        }
        var random = DeterministicRandomSource(seed: faults.seed)
        let cutAt = faults.cutAfter > 0 ? faults.cutAfter / 2 + Int.random(in: 0...faults.cutAfter, using: &random) : Int.max
        var relayed = 0
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        var fds = [pollfd(fd: client, events: Int16(POLLIN), revents: 0), pollfd(fd: upstream, events: Int16(POLLIN), revents: 0)]
        loop: while true {
            guard poll(&fds, 2, -1) > 0 else {
                if errno == EINTR { continue }
                break
            }
            for i in 0..<2 where fds[i].revents != 0 {
                let from = fds[i].fd
                let to = fds[1 - i].fd
                let n = read(from, &buffer, buffer.count)
                if n <= 0 { break loop }
                var chunk = Array(buffer[0..<n])
                let direction = i == 0 ? "to-upstream" : "to-client"
                if faults.maxDelayMs > 0 {
                    usleep(UInt32(Int.random(in: 0...faults.maxDelayMs, using: &random) * 1000))
                }
                if relayed + chunk.count >= cutAt {
                    let keep = max(0, cutAt - relayed)
                    _ = Socket.writeAll(to, Array(chunk[0..<keep]))
                    emit(#"{"event":"cut","connection":\#(connection),"after_bytes":\#(relayed + keep),"direction":"\#(direction)"}"#)
                    break loop
                }
                if faults.flip > 0, Double.random(in: 0..<1, using: &random) < faults.flip {
                    let bit = Int.random(in: 0..<(chunk.count * 8), using: &random)
                    chunk[bit / 8] ^= UInt8(1 << (bit % 8))
                    emit(#"{"event":"flip","connection":\#(connection),"bit":\#(relayed * 8 + bit),"direction":"\#(direction)"}"#)
                }
                var copies = 1
                if faults.duplicate > 0, Double.random(in: 0..<1, using: &random) < faults.duplicate {
                    copies = 2
                    emit(#"{"event":"duplicate","connection":\#(connection),"bytes":\#(chunk.count),"direction":"\#(direction)"}"#)
                }
                for _ in 0..<copies where !Socket.writeAll(to, chunk) { break loop }
                relayed += chunk.count
            }
        }
        close(client)
        close(upstream)
        emit(#"{"event":"closed","connection":\#(connection),"relayed_bytes":\#(relayed)}"#)
    }
}

/// The few blocking POSIX socket calls the proxy needs.
enum Socket {
    static func address(host: String, port: UInt16) throws -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &addr.sin_addr) == 1 else {
            throw CLIError("'\(host)' is not an IPv4 address")
        }
        return addr
    }

    static func listen(host: String, port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CLIError("socket failed: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = try address(host: host, port: port)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0 else { throw CLIError("cannot listen on \(host):\(port): \(String(cString: strerror(errno)))") }
        guard Glibc.listen(fd, 16) == 0 else { throw CLIError("listen failed: \(String(cString: strerror(errno)))") }
        return fd
    }

    static func localPort(_ fd: Int32) throws -> UInt16 {
        var addr = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        guard ok == 0 else { throw CLIError("getsockname failed: \(String(cString: strerror(errno)))") }
        return UInt16(bigEndian: addr.sin_port)
    }

    static func connect(host: String, port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CLIError("socket failed") }
        var addr = try address(host: host, port: port)
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0 else {
            close(fd)
            throw CLIError("cannot connect to \(host):\(port): \(String(cString: strerror(errno)))")
        }
        return fd
    }

    /// Writes every byte; false if the peer went away.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }
}
