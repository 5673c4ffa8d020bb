import ArgumentParser
import Foundation
import QKDCrypto
import QKDKeyPool
import QKDSession
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Hidden: the child process of the session crash test
/// (Tests/QKDSessionTests/StateMachine/SessionCrashTests.swift). Opens Alice's and Bob's pools
/// (`<state>/alice`, `<state>/bob`), runs pool-mode sessions between them over an in-memory
/// byte pipe (each one a resume from the stored pools), sends authenticated payloads both ways
/// with frequent hash-key rotations, and appends every outbound slot to the log (`a <slot>` /
/// `b <slot>`, write + fsync) **before** the session gets the slot's bytes, i.e. before any
/// frame tagged with it can leave; `E` after each handshake, `C` after each graceful close.
struct SessionTortureCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "session-torture",
        abstract: "Run resumed session pairs over two pools and log every pad slot (crash-test child).",
        shouldDisplay: false
    )

    @Option(name: .long, help: "Directory holding the two pools, 'alice' and 'bob'.")
    var state: String

    @Option(name: .long, help: "The log to append to.")
    var log: String

    @Option(name: .long, help: "Pads per durable reservation (small, so kills land in commits).")
    var chunkPads: Int = 4

    @Option(name: .long, help: "Sessions to run before exiting (default: until killed).")
    var sessions: Int = Int.max

    @Option(name: .long, help: "Payloads each side sends per session.")
    var messages: Int = 12

    static let linkID = [UInt8](repeating: 0x51, count: 16)

    /// A ``SessionKeyStore`` that logs every outbound slot durably before lending its bytes.
    final class LoggingStore: SessionKeyStore {
        let inner: PoolKeyStore
        let tag: String
        let fd: Int32
        init(_ inner: PoolKeyStore, tag: String, fd: Int32) {
            self.inner = inner
            self.tag = tag
            self.fd = fd
        }
        var holdsPoolMaterial: Bool { inner.holdsPoolMaterial }
        var watermarks: PoolWatermarks { inner.watermarks }
        func takeOutbound<R>(_ body: (UInt64, UnsafeRawBufferPointer) throws -> R) throws -> R {
            try inner.takeOutbound { slot, bytes in
                try SessionTortureCommand.append("\(tag) \(slot)\n", fd)
                return try body(slot, bytes)
            }
        }
        func inboundPad<R>(at slot: UInt64, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
            try inner.inboundPad(at: slot, body)
        }
        func consumeInbound(through slot: UInt64) throws { try inner.consumeInbound(through: slot) }
        func advance(to watermarks: PoolWatermarks) throws { try inner.advance(to: watermarks) }
    }

    static func append(_ line: String, _ fd: Int32) throws {
        let bytes = Array(line.utf8)
        guard write(fd, bytes, bytes.count) == bytes.count, fsync(fd) == 0 else {
            throw CLIError("cannot append to the log: \(String(cString: strerror(errno)))")
        }
    }

    /// Moves every transmitted frame to the other session until both are quiet; returns the
    /// payloads each side delivered.
    static func pump(_ alice: inout Session, _ bob: inout Session, delivered: inout (alice: [[UInt8]], bob: [[UInt8]])) throws {
        var moved = true
        while moved {
            moved = false
            while let action = alice.nextAction() {
                moved = true
                switch action {
                case .transmit(let bytes): try bob.receive(bytes, now: 0)
                case .deliver(let payload, _): delivered.alice.append(payload)
                case .closed(let error?): throw error
                default: break
                }
            }
            while let action = bob.nextAction() {
                moved = true
                switch action {
                case .transmit(let bytes): try alice.receive(bytes, now: 0)
                case .deliver(let payload, _): delivered.bob.append(payload)
                case .closed(let error?): throw error
                default: break
                }
            }
        }
    }

    func run() throws {
        try CLIError.report {
            let configuration = KeyPool.Configuration(chunkPads: chunkPads, lowWaterBytes: 0)
            let alicePool = try KeyPool.open(directory: (state as NSString).appendingPathComponent("alice"), configuration: configuration)
            let bobPool = try KeyPool.open(directory: (state as NSString).appendingPathComponent("bob"), configuration: configuration)
            let fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw CLIError("cannot open log '\(log)': \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            let aliceStore = LoggingStore(PoolKeyStore(pool: alicePool), tag: "a", fd: fd)
            let bobStore = LoggingStore(PoolKeyStore(pool: bobPool), tag: "b", fd: fd)
            var aliceConfig = SessionConfiguration(role: .alice, mode: .pool, linkID: Self.linkID)
            var bobConfig = SessionConfiguration(role: .bob, linkID: Self.linkID)
            aliceConfig.rotateAfterTags = 5  // frequent key slots: rotations are pad uses too
            bobConfig.rotateAfterTags = 5
            var done = 0
            while done < sessions {
                var alice = Session(configuration: aliceConfig, keyStore: aliceStore, random: SystemRandomSource())
                var bob = Session(configuration: bobConfig, keyStore: bobStore, random: SystemRandomSource())
                var delivered: (alice: [[UInt8]], bob: [[UInt8]]) = ([], [])
                try alice.start(now: 0)
                try Self.pump(&alice, &bob, delivered: &delivered)
                guard alice.isEstablished && bob.isEstablished else { throw CLIError("the resumed handshake did not complete") }
                try Self.append("E\n", fd)
                var sent: (alice: [[UInt8]], bob: [[UInt8]]) = ([], [])
                for i in 0..<messages {
                    let a = Array("a\(done)-\(i)".utf8), b = Array("b\(done)-\(i)".utf8)
                    try alice.send(a)
                    try bob.send(b)
                    sent.alice.append(a)
                    sent.bob.append(b)
                    try Self.pump(&alice, &bob, delivered: &delivered)
                }
                guard delivered.bob == sent.alice, delivered.alice == sent.bob else {
                    throw CLIError("payloads were not delivered exactly as sent")
                }
                try alice.close()
                try Self.pump(&alice, &bob, delivered: &delivered)
                guard alice.isClosed && bob.isClosed else { throw CLIError("the close did not reach Bob") }
                try Self.append("C\n", fd)
                done += 1
            }
            alicePool.close()
            bobPool.close()
        }
    }
}
