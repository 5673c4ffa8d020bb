/// A Wegman-Carter authentication suite: a universal hash whose output is encrypted with a fresh
/// one-time pad (Wegman and Carter 1981). Raw values are the suite identifiers on the wire
/// (Spec/crypto.md, "Suites").
public enum MACSuite: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// Poly1305 (libsodium `crypto_onetimeauth_poly1305`) with key `r || s`: `r` is the
    /// recycled hash key, `s` the fresh 16-byte pad. The default.
    /// Forgery probability per attempt <= 8 * ceil(L/16) / 2^106 for L hashed bytes (Bernstein 2005).
    case poly1305OTP = 1
    /// Polynomial evaluation hash over GF(2^128) in the GHASH convention, XOR a fresh 16-byte pad.
    /// Forgery probability per attempt <= (ceil(L/16) + 1) / 2^128 (McGrew and Viega 2005).
    case gf128OTP = 2

    /// The suite's name in configuration and Spec/: `poly1305-otp` or `gf128-otp`.
    public var description: String {
        switch self {
        case .poly1305OTP: "poly1305-otp"
        case .gf128OTP: "gf128-otp"
        }
    }

    /// Looks a suite up by its name (`poly1305-otp`, `gf128-otp`).
    /// - Parameter name: the suite's name.
    public init?(name: String) {
        guard let suite = MACSuite.allCases.first(where: { $0.description == name }) else { return nil }
        self = suite
    }

    /// Decodes a wire identifier.
    /// - Parameter wireValue: the identifier byte.
    /// - Throws: ``QKDError/Code/unknownSuite`` for an identifier this version does not know.
    public init(wireValue: UInt8) throws {
        guard let suite = MACSuite(rawValue: wireValue) else {
            throw QKDError(.unknownSuite, "MAC suite identifier \(wireValue) is not known to this version; known suites: poly1305-otp (1), gf128-otp (2)")
        }
        self = suite
    }

    /// Bytes of hash key (`r` or `H`). Both suites use 16.
    public static let hashKeyByteCount = 16
    /// Bytes of one-time pad per tag (`s`). Both suites use 16.
    public static let padByteCount = 16
    /// Bytes of a tag. Both suites use 16.
    public static let tagByteCount = 16

    /// Upper bound on the probability that one forged message of `byteCount` hashed bytes
    /// (domain, message, padding and length block together, as ``UniversalHash`` hashes them)
    /// is accepted. Spec/crypto.md, "Security bounds".
    /// - Parameter byteCount: bytes of domain plus message.
    /// - Returns: the bound, as a Double.
    public func forgeryBound(hashedBytes byteCount: Int) -> Double {
        // Both suites hash pad16(D) || pad16(M) || a 16-byte length block.
        let blocks = Double((byteCount + 15) / 16 + 1)
        switch self {
        case .poly1305OTP: return 8 * blocks / 0x1p106
        case .gf128OTP: return blocks / 0x1p128
        }
    }
}
