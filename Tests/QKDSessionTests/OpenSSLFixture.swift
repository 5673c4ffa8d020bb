import Foundation
import Testing

/// Runs the real `openssl` command in a temporary directory to make certificates and keys the
/// way an operator would (issue 4: "certificates and keys made by openssl must work").
struct OpenSSL {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("qkd-pki-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// Runs `openssl args...` in the directory; throws with stderr if it fails.
    @discardableResult
    func run(_ args: String...) throws -> String { try runArray(args) }

    func write(_ name: String, _ text: String) throws {
        try text.write(toFile: path(name), atomically: true, encoding: .utf8)
    }

    func read(_ name: String) throws -> String { try String(contentsOfFile: path(name), encoding: .utf8) }

    /// A self-signed Ed25519 CA: `<name>.key`, `<name>.pem`.
    func makeCA(_ name: String, days: Int = 30) throws {
        try run("genpkey", "-algorithm", "ed25519", "-out", "\(name).key")
        try run("req", "-new", "-x509", "-key", "\(name).key", "-out", "\(name).pem", "-days", "\(days)",
                "-subj", "/CN=\(name)", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    }

    /// A node key and certificate signed by `ca`: `<file>.key`, `<file>.pem`.
    /// - Parameters:
    ///   - keyArgs: `genpkey` arguments for the key (Ed25519 by default).
    ///   - san: the subjectAltName DNS name, or nil for a certificate without SAN.
    ///   - isCA: issue an intermediate CA instead of a leaf.
    func makeNode(_ file: String, cn: String, san: String?, ca: String, days: Int = 30,
                  keyArgs: [String] = ["-algorithm", "ed25519"], isCA: Bool = false, extraExtension: String? = nil) throws {
        try runArray(["genpkey"] + keyArgs + ["-out", "\(file).key"])
        try run("req", "-new", "-key", "\(file).key", "-out", "\(file).csr", "-subj", cn.isEmpty ? "/" : "/CN=\(cn)")
        var ext = isCA ? "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
                       : "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        if let extraExtension { ext += extraExtension + "\n" }
        if let san { ext += "subjectAltName=\(san.hasPrefix("critical,") ? san : "DNS:" + san)\n" }
        try write("\(file).ext", ext)
        try run("x509", "-req", "-in", "\(file).csr", "-CA", "\(ca).pem", "-CAkey", "\(ca).key", "-CAcreateserial",
                "-out", "\(file).pem", "-days", "\(days)", "-extfile", "\(file).ext")
    }

    @discardableResult
    func runArray(_ args: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + args
        process.currentDirectoryURL = directory
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let error = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw OpenSSLFailure(message: "openssl \(args.joined(separator: " ")): \(String(decoding: error, as: UTF8.self))")
        }
        return String(decoding: output, as: UTF8.self)
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}

struct OpenSSLFailure: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
