#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import QKDCrypto
import QKDSession

/// FuzzCertificateChain. Input: one mode byte, then the bytes. The byte-level entry points of
/// the PKI bootstrap (Spec/handshake.md 4.1-4.4), never a file or the async path validator:
/// - mode 0 (`mode % 4`): a PEM chain file (``PKIParsing/certificates(pem:source:)``), then
///   per certificate its Ed25519 key and ML-DSA-65 binding extension;
/// - mode 1: one DER certificate as the peer sends it (``PKIParsing/certificate(der:source:peer:)``),
///   then the same bytes wrapped as a PEM block through the file parser;
/// - mode 2: an Ed25519 PKCS#8 private key PEM; mode 3: an ML-DSA-65 PKCS#8 private key PEM.
///
/// Invariants: nothing crashes; every error is a typed ``QKDError`` with a `pki.` code, and
/// the peer path (mode 1) throws only `pki.bad-certificate` (peer misbehaviour) or
/// `pki.unsupported-key`; DER parsed directly and the same DER wrapped in PEM give the same
/// certificate, or both fail; a chain file parses to at least one certificate.
enum CertificateChainCheck {
    static func run(_ bytes: [UInt8]) throws(FuzzInvariantViolation) -> FuzzCheck.Outcome {
        var input = FuzzInput(bytes)
        let mode = input.byte() % 4
        let rest = input.rest()
        do {
            switch mode {
            case 0:
                let chain = try PKIParsing.certificates(pem: String(decoding: rest, as: UTF8.self), source: "fuzz.pem")
                guard !chain.isEmpty else { throw FuzzInvariantViolation("a PEM chain parsed to no certificate") }
                for (index, certificate) in chain.enumerated() {
                    let source = "certificate \(index + 1)"
                    try keys({ try certificate.ed25519PublicKey(source: source) },
                             { try MLDSA65Binding.publicKey(in: certificate, source: source) })
                }
            case 1:
                let parsed = Result { try PKIParsing.certificate(der: rest, source: "fuzz.der", peer: true) }
                if case .failure(let error as QKDError) = parsed {
                    guard error.code == .pkiBadCertificate || error.code == .pkiUnsupportedKey else {
                        throw FuzzInvariantViolation("the peer certificate path threw \(error.code.identifier)")
                    }
                    if let fromPEM = try? PKIParsing.certificates(pem: pem(rest), source: "fuzz.pem"), !fromPEM.isEmpty {
                        throw FuzzInvariantViolation("DER refused (\(error.code.identifier)) but the same DER in PEM parsed")
                    }
                    throw error
                }
                let der = try parsed.get()
                let fromPEM = Result { try PKIParsing.certificates(pem: pem(rest), source: "fuzz.pem") }
                guard case .success(let pemChain) = fromPEM else {
                    throw FuzzInvariantViolation("DER parsed but the same DER in PEM did not")
                }
                guard pemChain == [der] else {
                    throw FuzzInvariantViolation("DER and the same DER in PEM parsed to different certificates")
                }
                try keys({ try der.ed25519PublicKey(source: "the peer certificate") },
                         { try MLDSA65Binding.publicKey(in: der, source: "the peer certificate") })
            case 2:
                _ = try PKIParsing.ed25519PrivateKey(pem: String(decoding: rest, as: UTF8.self), source: "fuzz.key")
            default:
                _ = try PKIParsing.mlDSA65PrivateKey(pem: String(decoding: rest, as: UTF8.self), source: "fuzz.mldsa.key")
            }
        } catch let violation as FuzzInvariantViolation {
            throw violation
        } catch let error as QKDError {
            guard error.code.identifier.hasPrefix("pki.") || error.code.identifier.hasPrefix("crypto.") else {
                throw FuzzInvariantViolation("PKI parsing failed with a foreign error \(error)")
            }
            return .rejected(error)
        } catch {
            throw FuzzInvariantViolation("PKI parsing threw an untyped error \(error)")
        }
        return .accepted
    }

    /// The leaf-key accessors the handshake calls on a parsed certificate: each returns or
    /// throws a typed error.
    /// - Parameters:
    ///   - ed25519PublicKey: calls ``Certificate/ed25519PublicKey(source:)``.
    ///   - mlDSABinding: calls ``MLDSA65Binding/publicKey(in:source:)``.
    private static func keys(_ ed25519PublicKey: () throws -> Any, _ mlDSABinding: () throws -> Any?) throws(FuzzInvariantViolation) {
        do {
            _ = try ed25519PublicKey()
        } catch let error as QKDError {
            guard error.code.identifier.hasPrefix("pki.") || error.code.identifier.hasPrefix("crypto.") else {
                throw FuzzInvariantViolation("ed25519PublicKey threw a foreign error \(error)")
            }
        } catch {
            throw FuzzInvariantViolation("ed25519PublicKey threw an untyped error \(error)")
        }
        do {
            _ = try mlDSABinding()
        } catch let error as QKDError {
            guard error.code == .pkiBadMLDSABinding else {
                throw FuzzInvariantViolation("MLDSA65Binding.publicKey threw \(error.code.identifier)")
            }
        } catch {
            throw FuzzInvariantViolation("MLDSA65Binding.publicKey threw an untyped error \(error)")
        }
    }

    /// `bytes` as one PEM `CERTIFICATE` block (RFC 7468: base64 in 64-character lines).
    static func pem(_ der: [UInt8], label: String = "CERTIFICATE") -> String {
        let base64 = Data(der).base64EncodedString()
        var lines: [Substring] = []
        var start = base64.startIndex
        while start < base64.endIndex {
            let end = base64.index(start, offsetBy: 64, limitedBy: base64.endIndex) ?? base64.endIndex
            lines.append(base64[start..<end])
            start = end
        }
        return "-----BEGIN \(label)-----\n" + lines.joined(separator: "\n") + "\n-----END \(label)-----\n"
    }

    /// Valid inputs made with the real certificate builder (``TestPKI``) from a deterministic
    /// source: a chain file, a peer DER certificate with and without the ML-DSA-65 binding, and
    /// both private key kinds (throw-away test keys).
    static func seeds() throws -> [(name: String, bytes: [UInt8])] {
        var random = try DeterministicRandomSource(seed: [UInt8](repeating: 0xce, count: 32))
        let notBefore = Date(timeIntervalSince1970: 1_767_225_600)  // 2026-01-01
        let pki = try TestPKI.make(nodeNames: ["alice.example"], notBefore: notBefore, validity: 86_400 * 365,
                                   withMLDSA: true, using: &random)
        let plain = try TestPKI.make(nodeNames: ["bob.example"], notBefore: notBefore, validity: 86_400 * 365, using: &random)
        let node = pki.nodes[0]
        let leafDER = try node.identity().chainDER()[0]
        let plainDER = try plain.nodes[0].identity().chainDER()[0]
        let chainPEM = pem(leafDER) + pem(plainDER)
        // The private keys' PEM text comes from the real writer (PKIFiles.write), read back.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qkd-fuzz-seeds-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let paths = try PKIFiles.write(pki, to: directory.path)
        guard let written = paths.nodes[node.name], let mlPath = written.mlDSAKey else {
            throw QKDError(.pkiUnreadableFile, "the test PKI writer wrote no keys")
        }
        let edKey = try [UInt8](Data(contentsOf: URL(fileURLWithPath: written.privateKey)))
        let mlKey = try [UInt8](Data(contentsOf: URL(fileURLWithPath: mlPath)))
        return [
            ("chain-pem", [0] + Array(chainPEM.utf8)),
            ("leaf-der-mldsa", [1] + leafDER),
            ("leaf-der-plain", [1] + plainDER),
            ("ed25519-key-pem", [2] + edKey),
            ("mldsa65-key-pem", [3] + mlKey),
        ]
    }
}
