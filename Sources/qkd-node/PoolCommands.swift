import ArgumentParser
import Foundation
import QKDCrypto
import QKDKeyPool
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `qkd-node pool ...`: create, inspect and check a link's key pool (Spec/keypool.md).
struct PoolCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pool",
        abstract: "Create, inspect and verify a link's key pool.",
        subcommands: [PoolInit.self, PoolImportPSK.self, PoolStatusCommand.self, PoolVerify.self, PoolTorture.self]
    )
}

struct PoolInit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a pool in a new state directory (mode 0700) and seed it from a PSK file. The link id is the PSK's id."
    )

    @Option(name: .long, help: "The state directory to create.")
    var state: String

    @Option(name: .long, help: "This node's role: alice (initiator) or bob (responder).")
    var role: String

    @Option(name: .long, help: "The PSK file (from 'qkd-node psk generate'), the same file on both nodes.")
    var psk: String

    func run() throws {
        try CLIError.report {
            guard let role = Role(rawValue: role) else { throw CLIError("--role must be 'alice' or 'bob', got '\(role)'") }
            var bytes = try SecretFile.readPrivate(psk)
            defer { secureZero(&bytes) }
            let file = try PSKFile(decoding: bytes)
            let pool = try KeyPool.create(directory: state, role: role, linkID: file.id)
            defer { pool.close() }
            let added = try pool.importPSK(file)
            print("created \(role) pool for link \(file.id.uuidString.lowercased()) in \(state): outbound \(added.outbound) bytes, inbound \(added.inbound) bytes")
        }
    }
}

struct PoolImportPSK: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import-psk",
        abstract: "Add a further PSK's material to an existing pool (each PSK is imported once)."
    )

    @Option(name: .long, help: "The pool's state directory.")
    var state: String

    @Option(name: .long, help: "The PSK file.")
    var psk: String

    func run() throws {
        try CLIError.report {
            var bytes = try SecretFile.readPrivate(psk)
            defer { secureZero(&bytes) }
            let file = try PSKFile(decoding: bytes)
            let pool = try KeyPool.open(directory: state)
            defer { pool.close() }
            let added = try pool.importPSK(file)
            print("imported \(file): outbound +\(added.outbound) bytes, inbound +\(added.inbound) bytes")
        }
    }
}

struct PoolStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Print levels, watermarks and ledger totals (never key bytes)."
    )

    @Option(name: .long, help: "The pool's state directory.")
    var state: String

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    func run() throws {
        try CLIError.report {
            let pool = try KeyPool.open(directory: state)
            defer { pool.close() }
            let status = try pool.status()
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(status), as: UTF8.self))
                return
            }
            print("link \(status.linkID.uuidString.lowercased()), role \(status.role)")
            print("stream     link  length      watermark   synced      remaining")
            for s in status.streams {
                print("\(s.direction.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)) \(s.linkStream.rawValue)   \(pad(s.length)) \(pad(s.durableWatermark)) \(pad(s.syncedWatermark)) \(pad(s.remaining))")
            }
            let l = status.ledger
            print("consumer keys: \(status.consumerKeys["available"] ?? 0) available, \(status.consumerKeys["delivered"] ?? 0) delivered, \(status.consumerKeys["discarded"] ?? 0) discarded")
            print("hash-key epoch: \(status.hashKeyEpoch.map(String.init) ?? "none"); rounds absorbed: \(status.roundsAbsorbed); PSKs imported: \(status.pskImported)")
            print("ledger (bytes): produced \(l.produced) = pad streams \(l.toPadStream.values.reduce(0, +)) + hash keys \(l.toHashKeys) + consumer \(l.toConsumer) + discarded at split \(l.discardedAtSplit)")
            print("  pads reserved \(l.padReserved.values.reduce(0, +)), skipped \(l.padSkipped.values.reduce(0, +)), remaining \(l.padRemaining.values.reduce(0, +)); consumer delivered \(l.delivered), discarded \(l.consumerDiscarded), available \(l.consumerAvailable)")
            print("  reconciles: \(l.reconciles ? "yes" : "NO")")
        }
    }

    private func pad(_ v: UInt64) -> String { String(v).padding(toLength: 11, withPad: " ", startingAt: 0) }
}

struct PoolVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every invariant that can be checked offline; exit 1 on a violation, 2 if the pool cannot be read."
    )

    @Option(name: .long, help: "The pool's state directory.")
    var state: String

    func run() throws {
        var violations: [QKDError] = []
        try CLIError.report { violations = try PoolVerifier.check(directory: state) }
        if violations.isEmpty {
            print("pool in \(state): all invariants hold (permissions, integrity_check, ledger, watermarks, stored pads, consumer keys, PSK records, staged round)")
            return
        }
        for v in violations { FileHandle.standardError.write(Data("qkd-node: error: \(v)\n".utf8)) }
        throw ExitCode(1)
    }
}

/// Hidden: the child process of the crash-safety test (Tests/QKDKeyPoolTests/CrashSafetyTests).
/// Reserves pads forever and appends "<direction> <offset> <count>" to the log, with fsync,
/// after each reservation returned: the log is the set of pads that may have "left the process".
struct PoolTorture: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "torture",
        abstract: "Reserve pads in a loop and log every one (crash-safety test child).",
        shouldDisplay: false
    )

    @Option(name: .long, help: "The pool's state directory.")
    var state: String

    @Option(name: .long, help: "The log to append to.")
    var log: String

    @Option(name: .long, help: "Pads per durable reservation (small, so kills land in commits).")
    var chunkPads: Int = 8

    @Option(name: .long, help: "Stop after this many reservations (default: run until killed).")
    var maxReservations: Int = Int.max

    func run() throws {
        try CLIError.report {
            let pool = try KeyPool.open(directory: state, configuration: .init(chunkPads: chunkPads, lowWaterBytes: 0))
            let fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw CLIError("cannot open log '\(log)': \(String(cString: strerror(errno)))") }
            var done = 0
            while done < maxReservations {
                let direction: Direction = Bool.random() ? .outbound : .inbound
                let count = Int.random(in: 1...3)
                let line: String
                if count == 1 {
                    let reserved = try pool.reserveOnePad(direction: direction)
                    line = "\(direction == .outbound ? "o" : "i") \(reserved.offset) 1\n"
                } else {
                    let reserved = try pool.reservePad(direction: direction, count: count)
                    line = "\(direction == .outbound ? "o" : "i") \(reserved.offset) \(count)\n"
                }
                let bytes = Array(line.utf8)
                guard write(fd, bytes, bytes.count) == bytes.count, fsync(fd) == 0 else {
                    throw CLIError("cannot append to log '\(log)': \(String(cString: strerror(errno)))")
                }
                done += 1
                if Int.random(in: 0..<16) == 0 { usleep(UInt32.random(in: 0...300)) }
            }
            close(fd)
            pool.close()
        }
    }
}
