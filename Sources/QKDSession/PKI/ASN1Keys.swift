public import SwiftASN1
import QKDCrypto

/// Object identifiers used by the PKI code (Spec/handshake.md section 4).
public enum PKIObjectIdentifiers {
    /// id-Ed25519 (RFC 8410 section 3).
    public static let ed25519: ASN1ObjectIdentifier = [1, 3, 101, 112]
    /// id-Ed448 (RFC 8410), recognised only to name it in an error.
    static let ed448: ASN1ObjectIdentifier = [1, 3, 101, 113]
    /// id-X25519 (RFC 8410), recognised only to name it in an error.
    static let x25519: ASN1ObjectIdentifier = [1, 3, 101, 110]
    /// rsaEncryption (RFC 8017), recognised only to name it in an error.
    static let rsa: ASN1ObjectIdentifier = [1, 2, 840, 113549, 1, 1, 1]
    /// id-ecPublicKey (RFC 5480), recognised only to name it in an error.
    static let ecPublicKey: ASN1ObjectIdentifier = [1, 2, 840, 10045, 2, 1]
    /// id-ml-dsa-65 (NIST CSOR; RFC 9881, "Algorithm Identifiers for ML-DSA").
    public static let mlDSA65: ASN1ObjectIdentifier = [2, 16, 840, 1, 101, 3, 4, 3, 18]
    /// The certificate extension that binds a node's ML-DSA-65 public key to its identity
    /// (Spec/handshake.md 4.4). The arc 1.3.6.1.4.1.32473 is IANA's enterprise number reserved
    /// for documentation (RFC 5612): a deployment must replace it with an OID under its own arc
    /// before certificates are issued in production.
    public static let mlDSA65BindingExtension: ASN1ObjectIdentifier = [1, 3, 6, 1, 4, 1, 32473, 1, 1]

    /// A readable name for a key algorithm OID, for error messages.
    static func keyAlgorithmName(_ oid: ASN1ObjectIdentifier) -> String {
        switch oid {
        case ed25519: "Ed25519"
        case ed448: "Ed448"
        case x25519: "X25519"
        case rsa: "RSA"
        case ecPublicKey: "ECDSA (EC)"
        case mlDSA65: "ML-DSA-65"
        default: "an algorithm with OID \(oid)"
        }
    }
}

/// Takes the next node of a constructed value, or throws if there is none.
func nextNode(_ nodes: inout ASN1NodeCollection.Iterator, _ what: String) throws -> ASN1Node {
    guard let node = nodes.next() else { throw ASN1Error.invalidASN1Object(reason: "missing \(what)") }
    return node
}

/// AlgorithmIdentifier (RFC 5280 section 4.1.1.2): `SEQUENCE { OID, parameters ANY OPTIONAL }`.
/// Only the OID matters here; parameters are skipped (RFC 8410 says they are absent for Ed25519).
func parseAlgorithmIdentifier(_ node: ASN1Node) throws -> ASN1ObjectIdentifier {
    try DER.sequence(node, identifier: .sequence) { nodes in
        let oid = try ASN1ObjectIdentifier(derEncoded: &nodes)
        while nodes.next() != nil {}
        return oid
    }
}

/// Writes `SEQUENCE { oid }` (parameters absent, RFC 8410 section 3 and RFC 9881).
func serializeAlgorithmIdentifier(_ oid: ASN1ObjectIdentifier, into coder: inout DER.Serializer) throws {
    try coder.appendConstructedNode(identifier: .sequence) { coder in try coder.serialize(oid) }
}

/// SubjectPublicKeyInfo (RFC 5280 section 4.1.2.7): the algorithm OID and the key bits.
struct SubjectPublicKeyInfoFields: Equatable {
    var algorithm: ASN1ObjectIdentifier
    var key: [UInt8]

    init(algorithm: ASN1ObjectIdentifier, key: [UInt8]) {
        self.algorithm = algorithm
        self.key = key
    }

    /// Parses `SEQUENCE { AlgorithmIdentifier, BIT STRING }`.
    init(derEncoded bytes: ArraySlice<UInt8>) throws {
        let root = try DER.parse(bytes)
        (algorithm, key) = try DER.sequence(root, identifier: .sequence) { nodes in
            let oid = try parseAlgorithmIdentifier(try nextNode(&nodes, "algorithm"))
            let bits = try ASN1BitString(derEncoded: &nodes)
            guard bits.paddingBits == 0 else { throw ASN1Error.invalidASN1Object(reason: "key bit string not whole bytes") }
            return (oid, Array(bits.bytes))
        }
    }

    /// The DER encoding.
    func serialized() throws -> [UInt8] {
        var coder = DER.Serializer()
        try coder.appendConstructedNode(identifier: .sequence) { coder in
            try serializeAlgorithmIdentifier(algorithm, into: &coder)
            try coder.serialize(ASN1BitString(bytes: key[...]))
        }
        return coder.serializedBytes
    }
}

/// A PKCS#8 `PrivateKeyInfo` / `OneAsymmetricKey` (RFC 5958 section 2) as openssl writes it
/// under `-----BEGIN PRIVATE KEY-----`: version, algorithm, and the privateKey OCTET STRING.
/// Optional attributes and the v2 public key are skipped.
///
/// The private key bytes are secret: ``privateKey`` is ``SecretBytes``. The DER buffer handed in
/// is the caller's to wipe.
struct PKCS8Key {
    var algorithm: ASN1ObjectIdentifier
    /// The contents of the privateKey OCTET STRING (for Ed25519 itself an OCTET STRING, RFC 8410
    /// section 7 `CurvePrivateKey`; for ML-DSA the seed CHOICE of RFC 9881).
    var privateKey: SecretBytes

    init(algorithm: ASN1ObjectIdentifier, privateKey: SecretBytes) {
        self.algorithm = algorithm
        self.privateKey = privateKey
    }

    init(derEncoded bytes: [UInt8]) throws {
        let root = try DER.parse(bytes)
        (algorithm, privateKey) = try DER.sequence(root, identifier: .sequence) { nodes in
            let version = try Int(derEncoded: &nodes)
            guard version == 0 || version == 1 else {
                throw ASN1Error.invalidASN1Object(reason: "PKCS#8 version \(version)")
            }
            let oid = try parseAlgorithmIdentifier(try nextNode(&nodes, "algorithm"))
            let octets = try ASN1OctetString(derEncoded: &nodes)
            while nodes.next() != nil {}  // [0] attributes, [1] publicKey
            return (oid, octets.withUnsafeBytes { SecretBytes(copying: $0) })
        }
    }

    /// The DER encoding (version 0). The result holds the secret: wipe it after use.
    func serialized() throws -> [UInt8] {
        var coder = DER.Serializer()
        try coder.appendConstructedNode(identifier: .sequence) { coder in
            try coder.serialize(0)
            try serializeAlgorithmIdentifier(algorithm, into: &coder)
            try privateKey.withUnsafeBytes { raw in
                try coder.serialize(ASN1OctetString(contentBytes: ArraySlice(raw)))
            }
        }
        return coder.serializedBytes
    }
}

/// Ed25519 keys in PKCS#8 (RFC 8410 section 7): privateKey = OCTET STRING(OCTET STRING(seed)).
enum Ed25519PKCS8 {
    /// The inner `CurvePrivateKey ::= OCTET STRING` around the 32-byte seed: 04 20 || seed.
    static func wrap(seed: SecretBytes) -> SecretBytes {
        SecretBytes(count: 2 + seed.count) { out in
            out[0] = 0x04
            out[1] = UInt8(seed.count)
            seed.withUnsafeBytes { (out.baseAddress! + 2).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
    }

    /// The seed inside `CurvePrivateKey`, or nil if the framing is wrong.
    static func unwrap(_ inner: SecretBytes) -> SecretBytes? {
        let ok = inner.withUnsafeBytes { $0.count == 34 && $0[0] == 0x04 && $0[1] == 32 }
        return ok ? inner.slice(2..<34) : nil
    }
}

/// ML-DSA-65 private keys in PKCS#8, seed form (RFC 9881 section 6):
/// privateKey = `[0] IMPLICIT OCTET STRING (SIZE (32))`, i.e. 80 20 || seed.
enum MLDSA65PKCS8 {
    static func wrap(seed: SecretBytes) -> SecretBytes {
        SecretBytes(count: 2 + seed.count) { out in
            out[0] = 0x80
            out[1] = UInt8(seed.count)
            seed.withUnsafeBytes { (out.baseAddress! + 2).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
    }

    static func unwrap(_ inner: SecretBytes) -> SecretBytes? {
        let ok = inner.withUnsafeBytes { $0.count == 34 && $0[0] == 0x80 && $0[1] == 32 }
        return ok ? inner.slice(2..<34) : nil
    }
}

/// The DER encoding of `element` (SwiftASN1's own `DER.Serializer.serialized` is internal).
func derEncoding(_ element: some DERSerializable) throws -> [UInt8] {
    var coder = DER.Serializer()
    try coder.serialize(element)
    return coder.serializedBytes
}
