import QKDCrypto

/// Reads the encodings of Spec/session.md section 3 ("Encodings") from a message payload, with
/// a typed error for every malformed input. Every length is checked against the bytes that
/// remain before anything is allocated for it, so a hostile length cannot make it allocate.
struct ByteReader {
    private let bytes: ArraySlice<UInt8>
    private var index: Int
    /// The error code every failure throws (the message family's "malformed" code).
    let code: QKDError.Code
    /// What is being decoded, for messages ("ClientHello").
    let what: String

    init(_ bytes: ArraySlice<UInt8>, code: QKDError.Code, what: String) {
        self.bytes = bytes
        self.index = bytes.startIndex
        self.code = code
        self.what = what
    }

    var remaining: Int { bytes.endIndex - index }

    func fail(_ detail: String) -> QKDError {
        QKDError(code, "malformed \(what): \(detail); the peer's implementation is broken or the bytes were altered")
    }

    mutating func fixed(_ count: Int, _ field: String) throws -> [UInt8] {
        guard remaining >= count else { throw fail("\(field) needs \(count) bytes, \(remaining) remain") }
        defer { index += count }
        return Array(bytes[index..<index + count])
    }

    mutating func u8(_ field: String) throws -> UInt8 { try fixed(1, field)[0] }

    mutating func integer<T: FixedWidthInteger & UnsignedInteger>(_ type: T.Type, _ field: String) throws -> T {
        let raw = try fixed(MemoryLayout<T>.size, field)
        return raw.reduce(T(0)) { ($0 << 8) | T($1) }
    }

    /// `vecN` of bytes with an `N`-byte length prefix, at most `limit` bytes.
    mutating func vector(lengthBytes: Int, limit: Int, _ field: String) throws -> [UInt8] {
        let length: Int
        switch lengthBytes {
        case 1: length = Int(try u8(field))
        case 2: length = Int(try integer(UInt16.self, field))
        default: length = Int(try integer(UInt32.self, field))
        }
        guard length <= limit else { throw fail("\(field) is \(length) bytes, over the limit of \(limit)") }
        return try fixed(length, field)
    }

    /// Fails if bytes remain (Spec/session.md section 3: decoders reject trailing bytes).
    func finish() throws {
        guard remaining == 0 else { throw fail("\(remaining) trailing bytes") }
    }
}

/// Writes the encodings of Spec/session.md section 3. Lengths beyond a prefix's range are API
/// misuse (the encoder's callers check the limits first): a precondition.
extension Array where Element == UInt8 {
    mutating func appendInteger<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }

    mutating func appendVector(lengthBytes: Int, _ value: [UInt8]) {
        switch lengthBytes {
        case 1:
            precondition(value.count <= Int(UInt8.max), "vec8 longer than 255 bytes")
            append(UInt8(value.count))
        case 2:
            precondition(value.count <= Int(UInt16.max), "vec16 longer than 65535 bytes")
            appendInteger(UInt16(value.count))
        default:
            precondition(UInt64(value.count) <= UInt64(UInt32.max), "vec32 too long")
            appendInteger(UInt32(value.count))
        }
        append(contentsOf: value)
    }
}
