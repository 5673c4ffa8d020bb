import ArgumentParser
import Foundation
import QKDCrypto
import QKDKeyPool
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `qkd-node psk ...`: pre-shared key files (Spec/keypool.md, "PSK file format").
struct PSKCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "psk",
        abstract: "Generate pre-shared key files.",
        subcommands: [PSKGenerate.self]
    )
}

struct PSKGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write a new PSK file of random bytes (mode 0600; never overwrites). Copy it to the peer out of band."
    )

    @Option(name: .long, help: "Key bytes (>= \(PSKFile.minimumKeyByteCount)).")
    var bytes: Int

    @Option(name: .long, help: "The file to create.")
    var out: String

    func run() throws {
        try CLIError.report {
            var random = SystemRandomSource()
            let psk = try PSKFile.generate(byteCount: bytes, using: &random)
            var encoded: [UInt8] = []
            psk.encode(into: &encoded)
            defer { secureZero(&encoded) }
            try SecretFile.createExclusive(out, contents: encoded)
            print("wrote \(psk) to \(out)")
        }
    }
}

/// Reading and writing files that hold key material.
enum SecretFile {
    /// Creates `path` with mode 0600, refusing to overwrite, and fsyncs it.
    static func createExclusive(_ path: String, contents: [UInt8]) throws {
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            if errno == EEXIST { throw CLIError("'\(path)' already exists; refusing to overwrite a key file. Choose another --out path") }
            throw CLIError("cannot create '\(path)': \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        _ = fchmod(fd, 0o600)
        var written = 0
        while written < contents.count {
            let n = contents.withUnsafeBytes { write(fd, $0.baseAddress! + written, contents.count - written) }
            guard n > 0 else { throw CLIError("cannot write '\(path)': \(String(cString: strerror(errno)))") }
            written += n
        }
        guard fsync(fd) == 0 else { throw CLIError("cannot sync '\(path)': \(String(cString: strerror(errno)))") }
    }

    /// Reads a key file after checking it is private (mode 0600 or stricter, owned by this user).
    /// The caller wipes the returned bytes.
    static func readPrivate(_ path: String) throws -> [UInt8] {
        var st = stat()
        guard stat(path, &st) == 0 else { throw CLIError("cannot read '\(path)': \(String(cString: strerror(errno)))") }
        guard st.st_mode & 0o077 == 0, st.st_uid == geteuid() else {
            throw QKDError(.insecurePermissions, "'\(path)' has mode \(String(st.st_mode & 0o777, radix: 8)) or another owner; a PSK file must be private: run 'chmod 600 \(path)'")
        }
        guard st.st_size <= off_t(PSKFile.maximumKeyByteCount + 1024) else {
            throw QKDError(.pskTooLarge, "'\(path)' is \(st.st_size) bytes, larger than any PSK file")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CLIError("cannot open '\(path)': \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let size = Int(st.st_size)
        var out = [UInt8](repeating: 0, count: size)
        var got = 0
        while got < size {
            let n = out.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, size - got) }
            guard n > 0 else { break }
            got += n
        }
        out.removeSubrange(got...)
        return out
    }
}

/// A CLI-level error: a message for stderr.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }

    /// Runs `body`; on any error prints "qkd-node: error: <message>" to stderr and exits non-zero
    /// (1 for a violated invariant or refused operation, 2 for storage or input problems).
    static func report(_ body: () throws -> Void) throws {
        do {
            try body()
        } catch let error as ExitCode {
            throw error
        } catch let error as QKDError {
            FileHandle.standardError.write(Data("qkd-node: error: \(error)\n".utf8))
            throw ExitCode(2)
        } catch {
            FileHandle.standardError.write(Data("qkd-node: error: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }
}
