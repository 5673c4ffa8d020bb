public import X509
import SwiftASN1
public import QKDCrypto

/// The certificate extension that binds a node's ML-DSA-65 public key to its X.509 identity
/// (Spec/handshake.md 4.4).
///
/// `extnID` = ``PKIObjectIdentifiers/mlDSA65BindingExtension``, non-critical, and
/// `extnValue` = the DER of a SubjectPublicKeyInfo with algorithm id-ml-dsa-65 (RFC 9881,
/// parameters absent) and the 1952-byte public key. Because the extension is inside the
/// TBSCertificate, the CA's signature covers it.
public enum MLDSA65Binding {
    /// Makes the extension for `key`.
    /// - Parameter key: the node's ML-DSA-65 public key.
    /// - Returns: the extension, ready for `Certificate.Extensions`.
    /// - Throws: if DER serialisation fails (not expected).
    public static func certificateExtension(for key: MLDSA65Signing.PublicKey) throws -> Certificate.Extension {
        let spki = SubjectPublicKeyInfoFields(algorithm: PKIObjectIdentifiers.mlDSA65, key: key.rawRepresentation)
        return Certificate.Extension(oid: PKIObjectIdentifiers.mlDSA65BindingExtension, critical: false, value: try spki.serialized()[...])
    }

    /// Reads the bound ML-DSA-65 public key from a certificate.
    /// - Parameters:
    ///   - certificate: the (leaf) certificate.
    ///   - source: a name for messages.
    /// - Returns: the key, or nil if the certificate has no binding extension.
    /// - Throws: ``QKDError/Code/pkiBadMLDSABinding`` if the extension is present but is not a
    ///   well-formed ML-DSA-65 SubjectPublicKeyInfo.
    public static func publicKey(in certificate: Certificate, source: String) throws -> MLDSA65Signing.PublicKey? {
        guard let ext = certificate.extensions[oid: PKIObjectIdentifiers.mlDSA65BindingExtension] else { return nil }
        do {
            let spki = try SubjectPublicKeyInfoFields(derEncoded: ext.value)
            guard spki.algorithm == PKIObjectIdentifiers.mlDSA65 else {
                throw QKDError(.pkiBadMLDSABinding, "\(source): the ML-DSA-65 binding extension names the algorithm \(PKIObjectIdentifiers.keyAlgorithmName(spki.algorithm))")
            }
            return try MLDSA65Signing.PublicKey(rawRepresentation: spki.key)
        } catch let error as QKDError {
            throw QKDError(.pkiBadMLDSABinding, "\(source): the ML-DSA-65 binding extension is malformed: \(error.detail.isEmpty ? error.code.identifier : error.detail)")
        } catch {
            throw QKDError(.pkiBadMLDSABinding, "\(source): the ML-DSA-65 binding extension is not valid DER: \(error)")
        }
    }
}
