import Foundation
import Testing
import X509
import SwiftASN1
import QKDTestSupport
import QKDCrypto
@testable import QKDSession

/// Certificates and keys made by the real openssl, read and validated by QKDSession
/// (Spec/handshake.md section 4). One openssl PKI is made per test run.
@Suite struct OpenSSLPKITests {
    /// Everything made with openssl, once.
    final class Fixture: Sendable {
        let ssl: OpenSSL
        init() throws {
            ssl = try OpenSSL()
            try ssl.makeCA("ca")
            try ssl.makeCA("evil-ca")
            try ssl.makeNode("bob", cn: "bob.example", san: "bob.example", ca: "ca")
            try ssl.makeNode("alice", cn: "alice.example", san: "alice.example", ca: "ca")
            try ssl.makeNode("carol", cn: "carol.example", san: nil, ca: "ca")
            try ssl.makeNode("erin", cn: "erin.example", san: "other.example", ca: "ca")
            // Empty subject: the SAN must then be critical (RFC 5280 4.2.1.6).
            try ssl.makeNode("frank", cn: "", san: "critical,DNS:frank.example", ca: "ca")
            try ssl.makeNode("gina", cn: "gina.example", san: "gina.example", ca: "ca",
                             extraExtension: "1.2.3.4=critical,ASN1:NULL")
            try ssl.makeNode("mallory", cn: "bob.example", san: "bob.example", ca: "evil-ca")
            try ssl.makeNode("ec", cn: "ec.example", san: "ec.example", ca: "ca",
                             keyArgs: ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])
            try ssl.makeNode("rsa", cn: "rsa.example", san: "rsa.example", ca: "ca",
                             keyArgs: ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
            try ssl.run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ec-traditional.key")
            try ssl.makeNode("inter", cn: "Intermediate CA", san: nil, ca: "ca", isCA: true)
            try ssl.makeNode("dave", cn: "dave.example", san: "dave.example", ca: "inter")
            try ssl.write("dave-chain.pem", try ssl.read("dave.pem") + ssl.read("inter.pem"))
            // A self-signed node certificate, to be pinned as its own anchor.
            try ssl.run("genpkey", "-algorithm", "ed25519", "-out", "pinned.key")
            try ssl.run("req", "-new", "-x509", "-key", "pinned.key", "-out", "pinned.pem", "-days", "30",
                        "-subj", "/CN=pinned.example", "-addext", "subjectAltName=DNS:pinned.example")
        }
        func path(_ name: String) -> String { ssl.path(name) }
        deinit { ssl.remove() }
    }

    static let fixture = Result { try Fixture() }
    var f: Fixture { get throws { try Self.fixture.get() } }

    func anchors(_ name: String = "ca.pem") throws -> TrustAnchors { try PKIFiles.loadTrustAnchors(f.path(name)) }
    func chain(_ name: String) throws -> [Certificate] { try PKIFiles.loadIdentityChain(f.path(name)) }

    @Test func opensslIdentityLoadsAndSignsVerifiably() async throws {
        let identity = try PKIFiles.loadIdentity(certificateChainPath: f.path("bob.pem"), privateKeyPath: f.path("bob.key"))
        // Our PKCS#8 reading agrees with openssl's own view of the public key.
        let spki = try f.ssl.run("pkey", "-in", "bob.key", "-pubout")
        let der = try PEMDocument(pemString: spki).derBytes
        #expect(Array(der.suffix(32)) == identity.signingKey.publicKey.rawRepresentation)
        // The peer side validates bob's chain and verifies his transcript signature with libsodium.
        let peer = try await PeerCertificateValidator(anchors: anchors()).validate(
            chainDER: identity.chainDER(), peerName: "bob.example", at: Date())
        let transcript = KeyDerivation.sha256([UInt8]("transcript".utf8))
        let signature = identity.signingKey.signature(for: transcript)
        #expect(peer.signingKey.isValidSignature(signature, for: transcript))
        #expect(!peer.signingKey.isValidSignature(signature, for: KeyDerivation.sha256([UInt8]("other".utf8))))
        #expect(peer.mlDSAKey == nil)
        #expect(peer.chain.count == 2)  // bob, ca
    }

    @Test func chainThroughAnIntermediateValidates() async throws {
        let identity = try PKIFiles.loadIdentity(certificateChainPath: f.path("dave-chain.pem"), privateKeyPath: f.path("dave.key"))
        #expect(identity.chain.count == 2)
        let peer = try await PeerCertificateValidator(anchors: anchors()).validate(chain: identity.chain, peerName: "dave.example", at: Date())
        #expect(peer.chain.count == 3)
        // Without the intermediate there is no path to the anchor.
        await #expect(throws: QKDError(.pkiUntrusted)) {
            _ = try await PeerCertificateValidator(anchors: anchors()).validate(chain: [identity.leaf], peerName: "dave.example", at: Date())
        }
    }

    /// A peer's self-signed certificate configured as the anchor is trusted directly (pinning).
    @Test func pinnedSelfSignedCertificate() async throws {
        let identity = try PKIFiles.loadIdentity(certificateChainPath: f.path("pinned.pem"), privateKeyPath: f.path("pinned.key"))
        _ = try await PeerCertificateValidator(anchors: anchors("pinned.pem")).validate(chain: identity.chain, peerName: "pinned.example", at: Date())
        await #expect(throws: QKDError(.pkiUntrusted)) {
            _ = try await PeerCertificateValidator(anchors: anchors()).validate(chain: identity.chain, peerName: "pinned.example", at: Date())
        }
    }

    @Test func wrongCAIsUntrustedWithAClearMessage() async throws {
        let validator = try PeerCertificateValidator(anchors: anchors())
        let caPath = try f.path("ca.pem")
        do {
            _ = try await validator.validate(chain: chain("mallory.pem"), peerName: "bob.example", at: Date())
            Issue.record("a certificate from another CA was accepted")
        } catch let error as QKDError {
            #expect(error.code == .pkiUntrusted)
            #expect(error.detail.contains("certificate for 'bob.example' is not signed by any trust anchor in \(caPath)"))
        }
        // And the other way round: bob is not trusted by the evil CA's anchors.
        await #expect(throws: QKDError(.pkiUntrusted)) {
            _ = try await PeerCertificateValidator(anchors: anchors("evil-ca.pem")).validate(chain: chain("bob.pem"), peerName: "bob.example", at: Date())
        }
    }

    @Test func expiredAndNotYetValid() async throws {
        let validator = try PeerCertificateValidator(anchors: anchors())
        let bob = try chain("bob.pem")
        let leaf = try #require(bob.first)
        await #expect(throws: QKDError(.pkiExpired)) {
            _ = try await validator.validate(chain: bob, peerName: "bob.example", at: leaf.notValidAfter.addingTimeInterval(1))
        }
        await #expect(throws: QKDError(.pkiNotYetValid)) {
            _ = try await validator.validate(chain: bob, peerName: "bob.example", at: leaf.notValidBefore.addingTimeInterval(-1))
        }
        // Inside the window it is fine: the injected time is what counts.
        _ = try await validator.validate(chain: bob, peerName: "bob.example", at: leaf.notValidAfter.addingTimeInterval(-60))
    }

    @Test func peerNameRules() async throws {
        let validator = try PeerCertificateValidator(anchors: anchors())
        await #expect(throws: QKDError(.pkiNameMismatch)) {
            _ = try await validator.validate(chain: chain("bob.pem"), peerName: "alice.example", at: Date())
        }
        // Case and a trailing dot do not matter.
        _ = try await validator.validate(chain: chain("bob.pem"), peerName: "BOB.Example.", at: Date())
        // No SAN: the subject CN is used.
        _ = try await validator.validate(chain: chain("carol.pem"), peerName: "carol.example", at: Date())
        // With a SAN, the CN is not a fallback.
        await #expect(throws: QKDError(.pkiNameMismatch)) {
            _ = try await validator.validate(chain: chain("erin.pem"), peerName: "erin.example", at: Date())
        }
        _ = try await validator.validate(chain: chain("erin.pem"), peerName: "other.example", at: Date())
        // A critical SAN (empty subject) is processed by QKDChannel, so it is accepted.
        _ = try await validator.validate(chain: chain("frank.pem"), peerName: "frank.example", at: Date())
        await #expect(throws: QKDError(.pkiNameMismatch)) {
            _ = try await validator.validate(chain: chain("frank.pem"), peerName: "bob.example", at: Date())
        }
    }

    @Test func unknownCriticalExtensionIsNamed() async throws {
        let validator = try PeerCertificateValidator(anchors: anchors())
        do {
            _ = try await validator.validate(chain: chain("gina.pem"), peerName: "gina.example", at: Date())
            Issue.record("a certificate with an unknown critical extension was accepted")
        } catch let error as QKDError {
            #expect(error.code == .pkiUntrusted)
            #expect(error.detail.contains("critical extension 1.2.3.4"))
        }
    }

    @Test(arguments: ["ec", "rsa"])
    func nonEd25519KeysAreUnsupported(_ name: String) async throws {
        await #expect(throws: QKDError(.pkiUnsupportedKey)) {
            _ = try await PeerCertificateValidator(anchors: anchors()).validate(chain: chain("\(name).pem"), peerName: "\(name).example", at: Date())
        }
        #expect(throws: QKDError(.pkiUnsupportedKey)) {
            _ = try PKIFiles.loadIdentity(certificateChainPath: f.path("\(name).pem"), privateKeyPath: f.path("\(name).key"))
        }
        // The key file alone, with an Ed25519 certificate, is refused for its algorithm too.
        #expect(throws: QKDError(.pkiUnsupportedKey)) {
            _ = try PKIFiles.loadIdentity(certificateChainPath: f.path("bob.pem"), privateKeyPath: f.path("\(name).key"))
        }
    }

    @Test func traditionalECKeyFileIsUnsupported() throws {
        #expect(throws: QKDError(.pkiUnsupportedKey)) {
            _ = try PKIFiles.loadIdentity(certificateChainPath: f.path("bob.pem"), privateKeyPath: f.path("ec-traditional.key"))
        }
    }

    @Test func corruptedPEMIsABadPEMError() throws {
        let text = try f.ssl.read("bob.pem")
        func corrupt(line: Int, column: Int) -> String {
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            var chars = Array(lines[line])
            chars[column] = chars[column] == "A" ? "B" : "A"
            lines[line] = String(chars)
            return lines.joined(separator: "\n")
        }
        // Damage the DER structure inside valid base64 (the outer length of the SEQUENCE).
        try f.ssl.write("bob-corrupt.pem", corrupt(line: 1, column: 3))
        try f.ssl.write("bob-truncated.pem", String(text.prefix(text.count / 2)))
        try f.ssl.write("bob-garbage.pem", "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n")
        try f.ssl.write("empty.pem", "")
        for name in ["bob-corrupt.pem", "bob-truncated.pem", "bob-garbage.pem", "empty.pem", "bob.key"] {
            #expect(throws: QKDError(.pkiBadPEM), "\(name)") {
                _ = try PKIFiles.loadIdentity(certificateChainPath: f.path(name), privateKeyPath: f.path("bob.key"))
            }
        }
        // A certificate where the key should be (in a file with key permissions).
        try f.ssl.write("bob-cert-as-key.pem", text)
        chmod(try f.path("bob-cert-as-key.pem"), 0o600)
        #expect(throws: QKDError(.pkiBadPEM)) {
            _ = try PKIFiles.loadIdentity(certificateChainPath: f.path("bob.pem"), privateKeyPath: f.path("bob-cert-as-key.pem"))
        }
        // Human-readable text around the PEM block (as 'openssl x509 -text' writes it) is fine.
        try f.ssl.write("bob-with-text.pem", try f.ssl.run("x509", "-in", "bob.pem", "-text"))
        _ = try PKIFiles.loadIdentity(certificateChainPath: f.path("bob-with-text.pem"), privateKeyPath: f.path("bob.key"))
        #expect(throws: QKDError(.pkiBadPEM)) { _ = try PKIFiles.loadTrustAnchors(f.path("bob-garbage.pem")) }
    }

    /// A change deep inside a certificate (here: in the signed part or the signature) may still
    /// parse; validation then refuses it, because the CA's signature no longer matches.
    @Test func damagedCertificateBodyIsRefused() async throws {
        let text = try f.ssl.read("bob.pem")
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let validator = try PeerCertificateValidator(anchors: anchors())
        for line in 2..<(lines.count - 3) {
            var chars = Array(lines[line])
            chars[10] = chars[10] == "A" ? "B" : "A"
            let saved = lines[line]
            lines[line] = String(chars)
            defer { lines[line] = saved }
            let damaged: [Certificate]
            do {
                damaged = try PKIParsing.certificates(pem: lines.joined(separator: "\n"), source: "damaged")
            } catch let error as QKDError {
                #expect(error.code == .pkiBadPEM || error.code == .pkiUnsupportedKey)
                continue
            }
            await #expect(throws: QKDError.self, "line \(line)") {
                _ = try await validator.validate(chain: damaged, peerName: "bob.example", at: Date())
            }
        }
    }

    /// A key file that group or others can read is refused, like OpenSSH does.
    @Test func keyFileReadableByOthersIsRefused() throws {
        try f.ssl.write("bob-open.key", try f.ssl.read("bob.key"))
        for mode: mode_t in [0o644, 0o640, 0o604] {
            chmod(try f.path("bob-open.key"), mode)
            #expect(throws: QKDError(.pkiKeyFilePermissions)) {
                _ = try PKIFiles.loadIdentity(certificateChainPath: f.path("bob.pem"), privateKeyPath: f.path("bob-open.key"))
            }
        }
        chmod(try f.path("bob-open.key"), 0o400)
        _ = try PKIFiles.loadIdentity(certificateChainPath: f.path("bob.pem"), privateKeyPath: f.path("bob-open.key"))
    }

    @Test func keyNotMatchingTheCertificate() throws {
        #expect(throws: QKDError(.pkiKeyMismatch)) {
            _ = try PKIFiles.loadIdentity(certificateChainPath: f.path("bob.pem"), privateKeyPath: f.path("alice.key"))
        }
    }

    @Test func unreadableFiles() throws {
        #expect(throws: QKDError(.pkiUnreadableFile)) { _ = try PKIFiles.loadTrustAnchors(f.path("no-such-file.pem")) }
        #expect(throws: QKDError(.pkiUnreadableFile)) {
            _ = try PKIFiles.loadIdentity(certificateChainPath: f.path("bob.pem"), privateKeyPath: f.path("missing.key"))
        }
        #expect(throws: QKDError(.pkiUnreadableFile)) { _ = try PKIFiles.loadTrustAnchors(f.path("")) }  // a directory
    }

    @Test func malformedPeerChains() async throws {
        let validator = try PeerCertificateValidator(anchors: anchors())
        await #expect(throws: QKDError(.pkiBadCertificate)) {
            _ = try await validator.validate(chainDER: [], peerName: "bob.example", at: Date())
        }
        await #expect(throws: QKDError(.pkiBadCertificate)) {
            _ = try await validator.validate(chainDER: [[0x30, 0x03, 0x02, 0x01, 0x00]], peerName: "bob.example", at: Date())
        }
        let der = try derEncoding(try #require(chain("bob.pem").first))
        await #expect(throws: QKDError(.pkiBadCertificate)) {
            _ = try await validator.validate(chainDER: Array(repeating: der, count: PKILimits.maximumChainLength + 1), peerName: "bob.example", at: Date())
        }
        #expect(QKDError(.pkiBadCertificate).code.isPeerMisbehaviour)
    }
}

extension PKIFiles {
    /// Test helper: a PEM chain file's certificates.
    static func loadIdentityChain(_ path: String) throws -> [Certificate] {
        try PKIParsing.certificates(pem: readText(path), source: path)
    }
}

/// The swift-certificates test-PKI helper (Spec/handshake.md 4.5) and the ML-DSA-65 binding.
@Suite struct TestPKITests {
    static let start = Date(timeIntervalSince1970: 1_790_000_000)  // injected, 2026-09

    @Test func madeCertificatesValidate() async throws {
        var random = DeterministicRandomSource(seed: 11)
        let pki = try TestPKI.make(nodeNames: ["alice.example", "bob.example"], notBefore: Self.start, validity: 86_400, using: &random)
        let validator = PeerCertificateValidator(anchors: pki.anchors())
        for node in pki.nodes {
            let identity = try node.identity()
            let peer = try await validator.validate(chainDER: identity.chainDER(), peerName: node.name, at: Self.start.addingTimeInterval(60))
            #expect(peer.signingKey == node.signingKey.publicKey)
        }
        await #expect(throws: QKDError(.pkiNameMismatch)) {
            _ = try await validator.validate(chain: [pki.nodes[0].certificate], peerName: "bob.example", at: Self.start.addingTimeInterval(60))
        }
        await #expect(throws: QKDError(.pkiExpired)) {
            _ = try await validator.validate(chain: [pki.nodes[0].certificate], peerName: "alice.example", at: Self.start.addingTimeInterval(86_401))
        }
        // Another test PKI's CA does not vouch for these nodes.
        let other = try TestPKI.make(nodeNames: ["alice.example"], notBefore: Self.start, validity: 86_400, using: &random)
        await #expect(throws: QKDError(.pkiUntrusted)) {
            _ = try await PeerCertificateValidator(anchors: other.anchors()).validate(
                chain: [pki.nodes[0].certificate], peerName: "alice.example", at: Self.start.addingTimeInterval(60))
        }
    }

    /// Written files: keys are 0600, everything reloads through PKIFiles, and openssl itself
    /// accepts the certificates and keys.
    @Test func writtenFilesReloadAndOpenSSLAcceptsThem() async throws {
        var random = DeterministicRandomSource(seed: 12)
        let now = Date()
        let pki = try TestPKI.make(nodeNames: ["alice.example", "bob.example"], notBefore: now.addingTimeInterval(-3600),
                                   validity: 86_400, withMLDSA: true, using: &random)
        let ssl = try OpenSSL()
        defer { ssl.remove() }
        let paths = try PKIFiles.write(pki, to: ssl.directory.path)
        let alice = try #require(paths.nodes["alice.example"])
        for keyPath in [alice.privateKey, try #require(alice.mlDSAKey)] {
            let mode = try #require(FileManager.default.attributesOfItem(atPath: keyPath)[.posixPermissions] as? NSNumber)
            #expect(mode.intValue & 0o777 == 0o600)
        }
        let identity = try PKIFiles.loadIdentity(certificateChainPath: alice.certificate, privateKeyPath: alice.privateKey, mlDSAKeyPath: alice.mlDSAKey)
        #expect(identity.signingKey.publicKey == pki.nodes[0].signingKey.publicKey)
        #expect(identity.mlDSAKey?.publicKey == pki.nodes[0].mlDSAKey?.publicKey)
        let anchors = try PKIFiles.loadTrustAnchors(paths.caCertificate)
        let peer = try await PeerCertificateValidator(anchors: anchors).validate(chainDER: identity.chainDER(), peerName: "alice.example", at: now)
        #expect(peer.mlDSAKey == pki.nodes[0].mlDSAKey?.publicKey)
        // openssl verifies the chain swift-certificates made, and reads our PKCS#8 Ed25519 key.
        let verify = try ssl.run("verify", "-CAfile", "ca.pem", "alice.example.pem")
        #expect(verify.contains("OK"))
        let pub = try ssl.run("pkey", "-in", "alice.example.key", "-pubout")
        #expect(Array(try PEMDocument(pemString: pub).derBytes.suffix(32)) == identity.signingKey.publicKey.rawRepresentation)
        // Bob's ML-DSA key with Alice's certificate is a mismatch.
        let bob = try #require(paths.nodes["bob.example"])
        #expect(throws: QKDError(.pkiKeyMismatch)) {
            _ = try PKIFiles.loadIdentity(certificateChainPath: alice.certificate, privateKeyPath: alice.privateKey, mlDSAKeyPath: bob.mlDSAKey)
        }
        // An ML-DSA key file where the Ed25519 key belongs.
        #expect(throws: QKDError(.pkiUnsupportedKey)) {
            _ = try PKIFiles.loadIdentity(certificateChainPath: alice.certificate, privateKeyPath: try #require(alice.mlDSAKey))
        }
    }

    /// The libsodium-backed signer serialises as the same PKCS#8 that PKIParsing (and openssl) read.
    @Test func customSignerSerialisesAsPKCS8() throws {
        var random = DeterministicRandomSource(seed: 15)
        let key = Ed25519.PrivateKey(using: &random)
        let pem = try Certificate.PrivateKey(SodiumEd25519CertificateKey(key: key)).serializeAsPEM().pemString
        #expect(try PKIParsing.ed25519PrivateKey(pem: pem, source: "test").publicKey == key.publicKey)
    }

    /// A peer certificate with any single bit flipped (one bit per byte position, the bit index
    /// rotating) is never accepted, and every rejection is a typed QKDError.
    @Test func everyBitFlipInThePeerCertificateIsRefused() async throws {
        var random = DeterministicRandomSource(seed: 14)
        let pki = try TestPKI.make(nodeNames: ["alice.example"], notBefore: Self.start, validity: 86_400, using: &random)
        let validator = PeerCertificateValidator(anchors: pki.anchors())
        let der = try derEncoding(pki.nodes[0].certificate)
        let at = Self.start.addingTimeInterval(60)
        _ = try await validator.validate(chainDER: [der], peerName: "alice.example", at: at)
        var accepted: [Int] = []
        for position in der.indices {
            var flipped = der
            flipped[position] ^= UInt8(1) << (position % 8)
            do {
                _ = try await validator.validate(chainDER: [flipped], peerName: "alice.example", at: at)
                accepted.append(position)
            } catch is QKDError {
                // refused with a typed error
            }
        }
        #expect(accepted.isEmpty, "flips accepted at byte offsets \(accepted)")
    }

    /// The bound ML-DSA-65 key verifies the second transcript signature; a malformed binding
    /// extension (signed by the CA, so only the contents are wrong) is a typed error.
    @Test func mlDSABinding() async throws {
        var random = DeterministicRandomSource(seed: 13)
        let pki = try TestPKI.make(nodeNames: ["alice.example"], notBefore: Self.start, validity: 86_400, withMLDSA: true, using: &random)
        let node = pki.nodes[0]
        let at = Self.start.addingTimeInterval(60)
        let peer = try await PeerCertificateValidator(anchors: pki.anchors()).validate(chain: [node.certificate], peerName: "alice.example", at: at)
        let key = try #require(node.mlDSAKey)
        let transcript = KeyDerivation.sha256([UInt8]("transcript".utf8))
        #expect(try #require(peer.mlDSAKey).isValidSignature(try key.signature(for: transcript), for: transcript))

        let caSigner = Certificate.PrivateKey(SodiumEd25519CertificateKey(key: pki.caKey))
        for value: [UInt8] in [[0x30, 0x00], [0x04, 0x01, 0x00], try SubjectPublicKeyInfoFields(algorithm: PKIObjectIdentifiers.ed25519, key: [UInt8](repeating: 1, count: 32)).serialized()] {
            let bad = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(bytes: [1, 2, 3]),
                publicKey: Certificate.PublicKey(ed25519: node.signingKey.publicKey),
                notValidBefore: Self.start, notValidAfter: Self.start.addingTimeInterval(86_400),
                issuer: pki.caCertificate.subject, subject: try DistinguishedName { CommonName("alice.example") },
                signatureAlgorithm: .ed25519,
                extensions: try Certificate.Extensions {
                    SubjectAlternativeNames([.dnsName("alice.example")])
                    Certificate.Extension(oid: PKIObjectIdentifiers.mlDSA65BindingExtension, critical: false, value: value[...])
                },
                issuerPrivateKey: caSigner)
            await #expect(throws: QKDError(.pkiBadMLDSABinding)) {
                _ = try await PeerCertificateValidator(anchors: pki.anchors()).validate(chain: [bad], peerName: "alice.example", at: at)
            }
        }
    }
}
