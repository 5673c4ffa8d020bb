import ArgumentParser
import Foundation
import QKDCrypto
import QKDKeyPool
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
                key.bytes.withUnsafeBytes { Base64.append($0, to: &out) }
                out.append(contentsOf: Array("\"}".utf8))
            }
            out.append(contentsOf: Array("]\n".utf8))
            var written = 0
            while written < out.count {
                let n = out.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress! + written, out.count - written) }
                guard n > 0 else { secureZero(&out); throw CLIError("cannot write to stdout: \(String(cString: strerror(errno)))") }
                written += n
            }
            secureZero(&out)
        }
    }
}

/// Base64 (RFC 4648, with padding) straight into a buffer the caller wipes: no intermediate
/// `Data` or `String` copy of key material.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func append(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        var i = 0
        while i + 3 <= bytes.count {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out.append(alphabet[Int(v >> 18 & 63)]); out.append(alphabet[Int(v >> 12 & 63)])
            out.append(alphabet[Int(v >> 6 & 63)]); out.append(alphabet[Int(v & 63)])
            i += 3
        }
        let rest = bytes.count - i
        if rest > 0 {
            let v = UInt32(bytes[i]) << 16 | (rest == 2 ? UInt32(bytes[i + 1]) << 8 : 0)
            out.append(alphabet[Int(v >> 18 & 63)]); out.append(alphabet[Int(v >> 12 & 63)])
            out.append(rest == 2 ? alphabet[Int(v >> 6 & 63)] : UInt8(ascii: "="))
            out.append(UInt8(ascii: "="))
        }
    }
}
