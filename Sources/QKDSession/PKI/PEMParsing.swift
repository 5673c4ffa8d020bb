public import X509
import SwiftASN1
public import QKDCrypto

/// Parsers for the PEM files of the PKI bootstrap (Spec/handshake.md section 4.1). Pure: they
/// take text, not paths; ``PKIFiles`` does the reading. `source` is the file name that goes into
/// error messages ("... in ca.pem").
public enum PKIParsing {
    /// Parses every `CERTIFICATE` block of a PEM text, in order (leaf first for a chain file).
    /// - Parameters:
    ///   - pem: the file contents.
    ///   - source: a name for the file in messages.
    /// - Returns: the certificates, at least one.
    /// - Throws: ``QKDError/Code/pkiBadPEM`` if there is no certificate, a block is not a
    ///   certificate, or one does not parse; ``QKDError/Code/pkiUnsupportedKey`` if a certificate
    ///   holds a key swift-certificates does not know (e.g. Ed448).
    public static func certificates(pem: String, source: String) throws -> [Certificate] {
        let documents: [PEMDocument]
        do {
            documents = try PEMDocument.parseMultiple(pemString: pem)
        } catch {
            throw QKDError(.pkiBadPEM, "\(source) is not valid PEM (\(error)); it should hold one or more '-----BEGIN CERTIFICATE-----' blocks")
        }
        guard !documents.isEmpty else {
            throw QKDError(.pkiBadPEM, "\(source) holds no '-----BEGIN CERTIFICATE-----' block")
        }
        return try documents.enumerated().map { index, document in
            guard document.discriminator == "CERTIFICATE" else {
                throw QKDError(.pkiBadPEM, "block \(index + 1) of \(source) is '\(document.discriminator)', expected 'CERTIFICATE'")
            }
            return try certificate(der: document.derBytes, source: "certificate \(index + 1) of \(source)", peer: false)
        }
    }

    /// Parses one DER certificate, e.g. as received from the peer in the handshake.
    /// - Parameters:
    ///   - der: the DER bytes.
    ///   - source: a name for messages.
    ///   - peer: true if the bytes came from the peer (the error is then
    ///     ``QKDError/Code/pkiBadCertificate``, a peer-misbehaviour code).
    /// - Returns: the certificate.
    /// - Throws: ``QKDError/Code/pkiBadCertificate`` (peer) or ``QKDError/Code/pkiBadPEM`` (local)
    ///   if it does not parse; ``QKDError/Code/pkiUnsupportedKey`` for an unknown key algorithm.
    public static func certificate(der: [UInt8], source: String, peer: Bool = true) throws -> Certificate {
        do {
            return try Certificate(derEncoded: der)
        } catch let error as CertificateError where error.code == .unsupportedPublicKeyAlgorithm {
            throw QKDError(.pkiUnsupportedKey, "\(source) holds a public key of an algorithm that is not supported; only Ed25519 certificates are accepted (make the key with 'openssl genpkey -algorithm ed25519')")
        } catch {
            throw QKDError(peer ? .pkiBadCertificate : .pkiBadPEM, "\(source) is not a valid X.509 certificate: \(error)")
        }
    }

    /// Parses an unencrypted PKCS#8 Ed25519 private key (`-----BEGIN PRIVATE KEY-----`, as
    /// `openssl genpkey -algorithm ed25519` writes it; RFC 8410 section 7).
    /// - Parameters:
    ///   - pem: the file contents (secret: the caller wipes its copy where it can).
    ///   - source: a name for the file in messages.
    /// - Returns: the key.
    /// - Throws: ``QKDError/Code/pkiBadPEM`` if it is not a PEM private key;
    ///   ``QKDError/Code/pkiUnsupportedKey`` for an encrypted key or any algorithm but Ed25519.
    public static func ed25519PrivateKey(pem: String, source: String) throws -> Ed25519.PrivateKey {
        let key = try pkcs8(pem: pem, source: source)
        guard key.algorithm == PKIObjectIdentifiers.ed25519 else {
            throw QKDError(.pkiUnsupportedKey, "\(source) holds a \(PKIObjectIdentifiers.keyAlgorithmName(key.algorithm)) private key; only Ed25519 is supported (make one with 'openssl genpkey -algorithm ed25519')")
        }
        guard let seed = Ed25519PKCS8.unwrap(key.privateKey) else {
            throw QKDError(.pkiBadPEM, "\(source) is an Ed25519 PKCS#8 key whose private key is not a 32-byte CurvePrivateKey (RFC 8410 section 7)")
        }
        return try seed.withUnsafeBytes { try Ed25519.PrivateKey(rawRepresentation: $0) }
    }

    /// Parses an ML-DSA-65 private key in PKCS#8 seed form (RFC 9881 section 6).
    /// - Parameters:
    ///   - pem: the file contents.
    ///   - source: a name for messages.
    /// - Returns: the key.
    /// - Throws: ``QKDError/Code/pkiBadPEM`` or ``QKDError/Code/pkiUnsupportedKey``.
    public static func mlDSA65PrivateKey(pem: String, source: String) throws -> MLDSA65Signing.PrivateKey {
        let key = try pkcs8(pem: pem, source: source)
        guard key.algorithm == PKIObjectIdentifiers.mlDSA65 else {
            throw QKDError(.pkiUnsupportedKey, "\(source) holds a \(PKIObjectIdentifiers.keyAlgorithmName(key.algorithm)) private key where an ML-DSA-65 key was expected")
        }
        guard let seed = MLDSA65PKCS8.unwrap(key.privateKey) else {
            throw QKDError(.pkiUnsupportedKey, "\(source) is an ML-DSA-65 key not in seed form; only the 32-byte seed form of RFC 9881 section 6 is supported")
        }
        return try seed.withUnsafeBytes { try MLDSA65Signing.PrivateKey(seedRepresentation: $0) }
    }

    static func pkcs8(pem: String, source: String) throws -> PKCS8Key {
        let document: PEMDocument
        do {
            document = try PEMDocument(pemString: pem)
        } catch {
            throw QKDError(.pkiBadPEM, "\(source) is not a PEM private key (\(error)); it should hold one '-----BEGIN PRIVATE KEY-----' block")
        }
        switch document.discriminator {
        case "PRIVATE KEY":
            break
        case "ENCRYPTED PRIVATE KEY":
            throw QKDError(.pkiUnsupportedKey, "\(source) is encrypted; store it unencrypted with mode 0600 ('openssl pkey -in \(source) -out plain.pem') or keep it in a protected directory")
        case "RSA PRIVATE KEY":
            throw QKDError(.pkiUnsupportedKey, "\(source) holds an RSA private key; only Ed25519 is supported (make one with 'openssl genpkey -algorithm ed25519')")
        case "EC PRIVATE KEY":
            throw QKDError(.pkiUnsupportedKey, "\(source) holds an EC private key; only Ed25519 is supported (make one with 'openssl genpkey -algorithm ed25519')")
        default:
            throw QKDError(.pkiBadPEM, "\(source) holds a '\(document.discriminator)' block, expected 'PRIVATE KEY'")
        }
        var der = document.derBytes
        defer { secureZero(&der) }
        do {
            return try PKCS8Key(derEncoded: der)
        } catch {
            throw QKDError(.pkiBadPEM, "\(source) is not a valid PKCS#8 private key: \(error)")
        }
    }
}

extension Certificate {
    /// A short human name for messages: the first SAN dNSName, else the subject CN, else the
    /// whole subject.
    var displayName: String {
        if let dns = (try? extensions.subjectAlternativeNames)??.compactMap({ name -> String? in
            if case .dnsName(let value) = name { return value }
            return nil
        }).first {
            return dns
        }
        return subject.commonNames.first ?? subject.description
    }
}

extension DistinguishedName {
    /// Every commonName attribute value, in order.
    var commonNames: [String] {
        flatMap { rdn in
            rdn.compactMap { attribute -> String? in
                attribute.type == .RDNAttributeType.commonName ? String(attribute.value) : nil
            }
        }
    }
}
