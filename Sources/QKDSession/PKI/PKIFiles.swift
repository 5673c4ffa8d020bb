#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import X509
import SwiftASN1
import QKDCrypto

/// The file side of the PKI configuration (Spec/handshake.md 4.1): reads PEM files into the
/// pure parsers of ``PKIParsing`` and writes a ``TestPKI`` to disk.
///
/// This is the only file I/O in QKDSession, kept here so the handshake core stays sans-IO;
/// the CLI calls it once at start-up and hands the results to the session.
public enum PKIFiles {
    /// Loads a node identity: a PEM chain (leaf first), its PKCS#8 Ed25519 key, and optionally
    /// an ML-DSA-65 PKCS#8 key bound in the leaf.
    /// - Parameters:
    ///   - certificateChainPath: the PEM certificate chain.
    ///   - privateKeyPath: the PEM private key (`openssl genpkey -algorithm ed25519`).
    ///   - mlDSAKeyPath: an optional ML-DSA-65 key.
    /// - Returns: the identity.
    /// - Throws: ``QKDError/Code/pkiUnreadableFile``, ``QKDError/Code/pkiKeyFilePermissions``
    ///   (a key file readable by group or others), ``QKDError/Code/pkiBadPEM``,
    ///   ``QKDError/Code/pkiUnsupportedKey``, ``QKDError/Code/pkiKeyMismatch``.
    public static func loadIdentity(certificateChainPath: String, privateKeyPath: String, mlDSAKeyPath: String? = nil) throws -> NodeIdentity {
        let chain = try PKIParsing.certificates(pem: readText(certificateChainPath), source: certificateChainPath)
        let key = try withSecretText(privateKeyPath) { try PKIParsing.ed25519PrivateKey(pem: $0, source: privateKeyPath) }
        let mlDSAKey = try mlDSAKeyPath.map { path in
            try withSecretText(path) { try PKIParsing.mlDSA65PrivateKey(pem: $0, source: path) }
        }
        return try NodeIdentity(chain: chain, signingKey: key, mlDSAKey: mlDSAKey, source: "\(certificateChainPath) / \(privateKeyPath)")
    }

    /// Loads trust anchors from a PEM file of one or more CA certificates.
    /// - Parameter path: the file, e.g. `ca.pem`.
    /// - Returns: the anchors, named by `path` in messages.
    /// - Throws: ``QKDError/Code/pkiUnreadableFile``, ``QKDError/Code/pkiBadPEM``.
    public static func loadTrustAnchors(_ path: String) throws -> TrustAnchors {
        try TrustAnchors(PKIParsing.certificates(pem: readText(path), source: path), source: path)
    }

    /// The files ``write(_:to:)`` made.
    public struct WrittenPaths: Sendable {
        /// The CA certificate (trust anchor) file.
        public let caCertificate: String
        /// Per node name: certificate, Ed25519 key, and ML-DSA-65 key (if any).
        public let nodes: [String: (certificate: String, privateKey: String, mlDSAKey: String?)]
    }

    /// Writes a test PKI as PEM: `ca.pem`, and per node `<name>.pem`, `<name>.key` and
    /// `<name>.mldsa.key`. Key files are created with mode 0600 (DESIGN.md, invariant 5).
    /// - Parameters:
    ///   - pki: what to write.
    ///   - directory: an existing directory.
    /// - Returns: the paths.
    /// - Throws: ``QKDError/Code/pkiUnreadableFile`` if a file cannot be written.
    @discardableResult
    public static func write(_ pki: TestPKI, to directory: String) throws -> WrittenPaths {
        func path(_ name: String) -> String { directory.hasSuffix("/") ? directory + name : directory + "/" + name }
        let caPath = path("ca.pem")
        try writeFile(caPath, pem(type: "CERTIFICATE", der: derEncoding(pki.caCertificate)), mode: 0o644)
        var nodes: [String: (certificate: String, privateKey: String, mlDSAKey: String?)] = [:]
        for node in pki.nodes {
            let certPath = path("\(node.name).pem")
            try writeFile(certPath, pem(type: "CERTIFICATE", der: derEncoding(node.certificate)), mode: 0o644)
            let keyPath = path("\(node.name).key")
            var keyDER = try PKCS8Key(algorithm: PKIObjectIdentifiers.ed25519, privateKey: Ed25519PKCS8.wrap(seed: node.signingKey.rawRepresentation)).serialized()
            var keyPEM = pem(type: "PRIVATE KEY", der: keyDER)
            secureZero(&keyDER)
            defer { secureZero(&keyPEM) }
            try writeFile(keyPath, keyPEM, mode: 0o600)
            var mlPath: String? = nil
            if let ml = node.mlDSAKey {
                let p = path("\(node.name).mldsa.key")
                var der = try PKCS8Key(algorithm: PKIObjectIdentifiers.mlDSA65, privateKey: MLDSA65PKCS8.wrap(seed: ml.seedRepresentation)).serialized()
                var text = pem(type: "PRIVATE KEY", der: der)
                secureZero(&der)
                defer { secureZero(&text) }
                try writeFile(p, text, mode: 0o600)
                mlPath = p
            }
            nodes[node.name] = (certPath, keyPath, mlPath)
        }
        return WrittenPaths(caCertificate: caPath, nodes: nodes)
    }

    /// PEM text as bytes (so a key's text can be wiped after writing).
    static func pem(type: String, der: [UInt8]) -> [UInt8] {
        Array(PEMDocument(type: type, derBytes: der).pemString.utf8) + [0x0A]
    }

    /// Reads a small text file.
    static func readText(_ path: String, secret: Bool = false) throws -> String {
        var bytes = try readBytes(path, secret: secret)
        defer { secureZero(&bytes) }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw QKDError(.pkiBadPEM, "\(path) is not a text file; expected PEM ('-----BEGIN ...-----')")
        }
        return text
    }

    /// Reads a secret text file and hands the text to `body`. The byte buffer is wiped; the
    /// String made from it cannot be (Swift strings are immutable), which is the one copy of
    /// the base64 key text that lives until released.
    static func withSecretText<R>(_ path: String, _ body: (String) throws -> R) throws -> R {
        try body(readText(path, secret: true))
    }

    /// Reads a file of at most ``PKILimits/maximumPEMFileBytes``. With `secret`, the file must
    /// not be accessible to group or others (DESIGN.md invariant 5; the rule OpenSSH applies to
    /// private keys): a key other users can read is a key that may have leaked.
    static func readBytes(_ path: String, secret: Bool = false) throws -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw QKDError(.pkiUnreadableFile, "cannot open \(path): \(String(cString: strerror(errno))); check the path in the configuration and the file's permissions")
        }
        defer { close(fd) }
        if secret {
            var info = stat()
            guard fstat(fd, &info) == 0 else {
                throw QKDError(.pkiUnreadableFile, "cannot stat \(path): \(String(cString: strerror(errno)))")
            }
            let mode = info.st_mode & 0o777
            guard mode & 0o077 == 0 else {
                throw QKDError(.pkiKeyFilePermissions, "the private key \(path) is accessible to other users (mode \(String(mode, radix: 8))); run 'chmod 600 \(path)', and replace the key if others may have read it")
            }
        }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        defer { secureZero(&chunk) }
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                secureZero(&result)
                throw QKDError(.pkiUnreadableFile, "cannot read \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            result.append(contentsOf: chunk[0..<n])
            if result.count > PKILimits.maximumPEMFileBytes {
                secureZero(&result)
                throw QKDError(.pkiUnreadableFile, "\(path) is larger than \(PKILimits.maximumPEMFileBytes) bytes; it is not a certificate or key file")
            }
        }
        return result
    }

    /// Creates or truncates `path` with `mode` (set at creation and again with fchmod, so an
    /// existing file with wider permissions is narrowed before any byte is written).
    static func writeFile(_ path: String, _ bytes: [UInt8], mode: mode_t) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode)
        guard fd >= 0 else {
            throw QKDError(.pkiUnreadableFile, "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        guard fchmod(fd, mode) == 0 else {
            throw QKDError(.pkiUnreadableFile, "cannot set mode \(String(mode, radix: 8)) on \(path): \(String(cString: strerror(errno)))")
        }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { posixWrite(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                throw QKDError(.pkiUnreadableFile, "cannot write \(path): \(String(cString: strerror(errno)))")
            }
            written += n
        }
        guard fsync(fd) == 0 else {
            throw QKDError(.pkiUnreadableFile, "cannot sync \(path): \(String(cString: strerror(errno)))")
        }
    }
}

/// POSIX write(2), named apart from ``PKIFiles/write(_:to:)``.
private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, buffer, count)
}
