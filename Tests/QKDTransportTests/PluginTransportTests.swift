import Foundation
import QKDCrypto
import QKDTestSupport
@testable import QKDTransport
import Testing

/// Builds plugins with the system C compiler into a temporary directory, once per test run.
enum PluginBuilds {
    struct Built: Sendable {
        var directory: String
        var socketPlugin: String
        var wrongABI: String
        var missingSymbol: String
        var notALibrary: String
    }

    static let built: Result<Built, QKDError> = {
        do {
            let dir = try makeTempDirectory()
            let include = PackagePaths.root.appendingPathComponent("Sources/CQKDTransportPlugin/include").path
            let example = PackagePaths.root.appendingPathComponent("Examples/TransportPlugins/qkd_socket_plugin.c").path
            func compile(_ source: String, _ output: String) throws {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                process.arguments = ["cc", "-shared", "-fPIC", "-O1", "-I", include, "-o", output, source]
                try process.run()
                process.waitUntilExit()
                guard process.terminationStatus == 0 else {
                    throw QKDError(.pluginLoadFailed, "cc failed (status \(process.terminationStatus)) for \(source)")
                }
            }
            let built = Built(
                directory: dir, socketPlugin: "\(dir)/libqkd_socket_plugin.so", wrongABI: "\(dir)/libwrong_abi.so",
                missingSymbol: "\(dir)/libmissing.so", notALibrary: "\(dir)/not-a-library.so"
            )
            try compile(example, built.socketPlugin)
            // A plugin built against a future ABI.
            try "#include <stdint.h>\nuint32_t qkd_transport_plugin_abi_version(void) { return 99; }\n"
                .write(toFile: "\(dir)/wrong_abi.c", atomically: true, encoding: .utf8)
            try compile("\(dir)/wrong_abi.c", built.wrongABI)
            // The right version, but no functions.
            try "#include <stdint.h>\nuint32_t qkd_transport_plugin_abi_version(void) { return 1; }\n"
                .write(toFile: "\(dir)/missing.c", atomically: true, encoding: .utf8)
            try compile("\(dir)/missing.c", built.missingSymbol)
            try "not an ELF file".write(toFile: built.notALibrary, atomically: true, encoding: .utf8)
            return .success(built)
        } catch let error as QKDError {
            return .failure(error)
        } catch {
            return .failure(QKDError(.pluginLoadFailed, "cannot build test plugins: \(error)"))
        }
    }()

    static func get() throws -> Built { try built.get() }
}

@Suite struct PluginTransportTests {
    /// A TCP listener and a plugin transport connected to it through the example plugin.
    static func pair() async throws -> (listener: TransportListener, plugin: any ByteTransport, server: any ByteTransport) {
        let built = try PluginBuilds.get()
        let listener = try await TransportEndpoint(parsing: "tcp:127.0.0.1:0").listen()
        let port = try #require(listener.port)
        async let accepted = listener.accept()
        let plugin = try await TransportEndpoint(parsing: "plugin:\(built.socketPlugin)?host=127.0.0.1&port=\(port)").connect()
        return (listener, plugin, try await accepted)
    }

    @Test func roundTripOneMiBBothDirections() async throws {
        let (listener, plugin, server) = try await Self.pair()
        #expect(plugin.peerDescription.hasSuffix("libqkd_socket_plugin.so"))
        try await checkRoundTrip(plugin, server, seed: 41)
        await plugin.close()
        #expect(try await server.read() == nil, "the plugin's close ends the peer's stream")
        await server.close()
        await listener.close()
    }

    @Test func overAUnixSocketAndCleanEndFromThePeer() async throws {
        let built = try PluginBuilds.get()
        let dir = try makeTempDirectory()
        defer { removeTree(dir) }
        let listener = try await TransportEndpoint(parsing: "unix:\(dir)/p.sock").listen()
        async let accepted = listener.accept()
        let plugin = try await TransportEndpoint(parsing: "plugin:\(built.socketPlugin)?path=\(dir)/p.sock").connect()
        let server = try await accepted
        try await server.write([1, 2, 3])
        await server.close()
        #expect(try await readToEnd(plugin) == [1, 2, 3])
        await expectTransportError(.transportClosed) {
            await plugin.close()
            try await plugin.write([1])
        }
        #expect(try await plugin.read() == nil)
        await listener.close()
    }

    @Test func closeWakesABlockedRead() async throws {
        let (listener, plugin, server) = try await Self.pair()
        let reading = Task { try await plugin.read() }
        await plugin.close()  // the reader thread is blocked in recv: shutdown must wake it
        #expect(try await reading.value == nil)
        await server.close()
        await listener.close()
    }

    @Test func resetIsAPluginIOError() async throws {
        let (listener, plugin, server) = try await Self.pair()
        try await plugin.write([7])
        #expect(try await server.read() == [7])
        await (server as! NIOByteTransport).abort()
        do {
            _ = try await readToEnd(plugin)
            Issue.record("a reset must fail the plugin's read")
        } catch let error as QKDError {
            #expect(error.code == .pluginIOFailed)
            #expect(error.detail.contains("recv"), "the plugin's last_error is in the message: \(error)")
        }
        await plugin.close()
        await listener.close()
    }

    @Test func openFailureCarriesLastError() async throws {
        let built = try PluginBuilds.get()
        let probe = try await TransportEndpoint(parsing: "tcp:127.0.0.1:0").listen()
        let port = try #require(probe.port)
        await probe.close()
        do {
            _ = try await TransportEndpoint(parsing: "plugin:\(built.socketPlugin)?port=\(port)").connect()
            Issue.record("open must fail when nothing listens")
        } catch let error as QKDError {
            #expect(error.code == .pluginOpenFailed)
            #expect(error.detail.contains("Connection refused"), "\(error)")
        }
        do {
            _ = try await TransportEndpoint(parsing: "plugin:\(built.socketPlugin)?prot=1").connect()
            Issue.record("open must reject an unknown key")
        } catch let error as QKDError {
            #expect(error.code == .pluginOpenFailed)
            #expect(error.detail.contains("unknown configuration key 'prot'"), "\(error)")
        }
    }

    @Test func missingFile() async throws {
        await expectTransportError(.pluginNotFound) {
            _ = try await TransportEndpoint(parsing: "plugin:/nonexistent/libqkd.so?x=1").connect()
        }
    }

    @Test func notALibraryCarriesDlerror() async throws {
        let built = try PluginBuilds.get()
        do {
            _ = try await TransportEndpoint(parsing: "plugin:\(built.notALibrary)").connect()
            Issue.record("loaded a text file")
        } catch let error as QKDError {
            #expect(error.code == .pluginLoadFailed)
            #expect(error.detail.contains(built.notALibrary), "dlerror names the file: \(error)")
        }
    }

    @Test func wrongABIVersion() async throws {
        let built = try PluginBuilds.get()
        do {
            _ = try await TransportEndpoint(parsing: "plugin:\(built.wrongABI)").connect()
            Issue.record("accepted ABI 99")
        } catch let error as QKDError {
            #expect(error.code == .pluginABIMismatch)
            #expect(error.detail.contains("version 99"), "\(error)")
        }
    }

    @Test func missingSymbol() async throws {
        let built = try PluginBuilds.get()
        do {
            _ = try await TransportEndpoint(parsing: "plugin:\(built.missingSymbol)").connect()
            Issue.record("accepted a plugin without functions")
        } catch let error as QKDError {
            #expect(error.code == .pluginMissingSymbol)
            #expect(error.detail.contains("qkd_transport_plugin_open"), "\(error)")
        }
    }

    @Test func listenYieldsThePluginLinkOnce() async throws {
        let built = try PluginBuilds.get()
        let server = try await TransportEndpoint(parsing: "tcp:127.0.0.1:0").listen()
        let port = try #require(server.port)
        async let accepted = server.accept()
        let listener = try await TransportEndpoint(parsing: "plugin:\(built.socketPlugin)?port=\(port)").listen()
        let plugin = try await listener.accept()
        await expectTransportError(.transportClosed) { _ = try await listener.accept() }
        let peer = try await accepted
        try await peer.write([3])
        #expect(try await plugin.read() == [3])
        await plugin.close()
        await peer.close()
        await server.close()
        await listener.close()
    }
}
