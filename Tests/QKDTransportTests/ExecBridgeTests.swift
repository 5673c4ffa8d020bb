import Foundation
import QKDCrypto
@testable import QKDTransport
import Testing

@Suite struct ExecBridgeTests {
    static let fastClose = TransportOptions(execExitGrace: .milliseconds(100))

    @Test func catEchoesOneMiB() async throws {
        let bridge = try await TransportEndpoint(parsing: "exec:cat").connect()
        #expect(bridge.peerDescription == "exec cat")
        var rng = TestRNG(seed: 31)
        let data = rng.bytes(1 << 20)
        async let echoed = readExactly(bridge, data.count)
        try await writeChunked(bridge, data, seed: 32)
        #expect(try await echoed == data)
        await bridge.close()
    }

    /// Two bridges joined by two named pipes: what one child reads on stdin the other writes on
    /// stdout, so the two exec transports form a link between two processes.
    @Test func twoBridgesFormALink() async throws {
        let dir = try makeTempDirectory()
        defer { removeTree(dir) }
        #expect(mkfifo("\(dir)/ab", 0o600) == 0)
        #expect(mkfifo("\(dir)/ba", 0o600) == 0)
        // A background job's stdin is /dev/null in sh, hence the copy of stdin on fd 3.
        let a = try await TransportEndpoint(.exec(arguments: ["sh", "-c", "exec 3<&0; cat <&3 > \"$0/ab\" & exec cat < \"$0/ba\"", dir]))
            .connect(options: Self.fastClose)
        let b = try await TransportEndpoint(.exec(arguments: ["sh", "-c", "exec 3<&0; cat <&3 > \"$0/ba\" & exec cat < \"$0/ab\"", dir]))
            .connect(options: Self.fastClose)
        try await checkRoundTrip(a, b, seed: 33)
        // Closing a's stdin ends its writer to b: b reads the clean end of the stream.
        await a.close()
        #expect(try await b.read() == nil)
        await b.close()
    }

    @Test func exitZeroIsCleanEndOfStream() async throws {
        let bridge = try await TransportEndpoint(parsing: "exec:sh -c 'printf hello'").connect()
        #expect(try await readToEnd(bridge) == Array("hello".utf8))
        #expect(try await bridge.read() == nil)
        await bridge.close()
    }

    @Test func nonZeroExitIsABrokenLink() async throws {
        let bridge = try await TransportEndpoint(parsing: "exec:sh -c 'printf x; exit 3'").connect()
        do {
            _ = try await readToEnd(bridge)
            Issue.record("a bridge that exits with status 3 must break the link")
        } catch let error as QKDError {
            #expect(error.code == .transportBroken)
            #expect(error.detail.contains("status 3"), "\(error)")
        }
        await bridge.close()
    }

    @Test func missingCommandIsTyped() async throws {
        await expectTransportError(.execFailed) {
            _ = try await TransportEndpoint(parsing: "exec:/nonexistent/qkd-bridge --x").connect()
        }
        await expectTransportError(.execFailed) {
            _ = try await TransportEndpoint(parsing: "exec:qkd-no-such-command-on-path").connect()
        }
    }

    @Test func closeStopsAndReapsAChildThatIgnoresEndOfInput() async throws {
        // `sleep` never reads stdin: closing the pipes does not end it, SIGTERM does.
        let bridge = try await TransportEndpoint(parsing: "exec:sleep 3600").connect(options: Self.fastClose)
        let exec = try #require(bridge as? ExecBridge)
        let pid = exec.childPID
        await bridge.close()
        // Reaped: the pid no longer exists (kill(pid, 0) fails with ESRCH).
        #expect(kill(pid, 0) == -1 && errno == ESRCH)
        await bridge.close()  // idempotent
        #expect(try await bridge.read() == nil)
        await expectTransportError(.transportClosed) { try await bridge.write([1]) }
    }

    @Test func closeEndsAChildThatStopsOnEndOfInput() async throws {
        let bridge = try await TransportEndpoint(parsing: "exec:cat").connect()
        try await bridge.write([1])
        #expect(try await bridge.read() == [1])
        let pid = try #require(bridge as? ExecBridge).childPID
        await bridge.close()
        #expect(kill(pid, 0) == -1 && errno == ESRCH)
    }

    @Test func childKilledBySignalIsABrokenLink() async throws {
        let bridge = try await TransportEndpoint(parsing: "exec:sh -c 'kill -9 $$'").connect()
        do {
            _ = try await readToEnd(bridge)
            Issue.record("a killed bridge must break the link")
        } catch let error as QKDError {
            #expect(error.code == .transportBroken)
            #expect(error.detail.contains("signal 9"), "\(error)")
        }
        await bridge.close()
    }
}
