import ArgumentParser
import Foundation
import QKDCrypto
import QKDKeyPool

/// `qkd-node keys ...`: consumer key delivery.
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Deliver consumer keys from a pool.",
        subcommands: [KeysExport.self]
    )
}

struct KeysExport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Deliver available consumer keys as JSON [{\"id\": ..., \"key\": base64}] and mark them delivered (their bytes are wiped from the pool)."
    )

    @Option(name: .long, help: "The pool's state directory.")
    var state: String

    @Flag(name: .long, help: "Print JSON (the only output format; required so keys are never printed by accident).")
    var json = false

    @Option(name: .long, help: "Deliver at most this many keys (default: all available).")
    var count: Int?

    func run() throws {
        try CLIError.report {
            guard json else { throw CLIError("keys export prints key material; pass --json to confirm") }
            let pool = try KeyPool.open(directory: state)
            defer { pool.close() }
            let keys = try pool.deliverConsumerKeys(count: count ?? Int(Int32.max))
            var out: [UInt8] = Array("[".utf8)
            for (i, key) in keys.enumerated() {
                if i > 0 { out.append(contentsOf: Array(",\n ".utf8)) }
                out.append(contentsOf: Array("{\"id\": \"\(key.id.uuidString.lowercased())\", \"key\": \"".utf8))
                var b64 = key.bytes.withUnsafeBytes { Array(Data($0).base64EncodedData()) }
                out.append(contentsOf: b64)
                secureZero(&b64)
                out.append(contentsOf: Array("\"}".utf8))
            }
            out.append(contentsOf: Array("]\n".utf8))
            FileHandle.standardOutput.write(Data(out))
            secureZero(&out)
        }
    }
}
