import QKDCrypto

/// Big-endian writers for the message codecs (Spec/postprocessing.md section 2).
extension Array where Element == UInt8 {
    @inline(__always) mutating func appendBE(_ v: UInt8) { append(v) }
    @inline(__always) mutating func appendBE(_ v: UInt16) { append(UInt8(v >> 8)); append(UInt8(v & 0xff)) }
    @inline(__always) mutating func appendBE(_ v: UInt32) {
        for s in stride(from: 24, through: 0, by: -8) { append(UInt8((v >> UInt32(s)) & 0xff)) }
    }
    @inline(__always) mutating func appendBE(_ v: UInt64) {
        for s in stride(from: 56, through: 0, by: -8) { append(UInt8((v >> UInt64(s)) & 0xff)) }
    }
}

/// A bounds-checked big-endian reader. Every read checks the remaining length first and throws
/// ``QKDError/Code/ppMalformed`` instead of reading past the end; lengths are checked against
/// their named limit before anything is allocated (STYLE.md, "Codecs").
struct ByteReader {
    private let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0
    let context: String

    init(_ bytes: UnsafeRawBufferPointer, context: String) {
        self.bytes = bytes
        self.context = context
    }

    var remaining: Int { bytes.count - offset }

    private func need(_ n: Int, _ what: String) throws {
        guard n >= 0, remaining >= n else {
            throw QKDError(.ppMalformed, "\(context): truncated while reading \(what) (need \(n) bytes, \(remaining) left); the peer sent a short or corrupted message")
        }
    }

    mutating func u8(_ what: String) throws -> UInt8 {
        try need(1, what)
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func u32(_ what: String) throws -> UInt32 {
        try need(4, what)
        var v: UInt32 = 0
        for i in 0..<4 { v = (v << 8) | UInt32(bytes[offset + i]) }
        offset += 4
        return v
    }

    mutating func u64(_ what: String) throws -> UInt64 {
        try need(8, what)
        var v: UInt64 = 0
        for i in 0..<8 { v = (v << 8) | UInt64(bytes[offset + i]) }
        offset += 8
        return v
    }

    mutating func raw(_ n: Int, _ what: String) throws -> UnsafeRawBufferPointer {
        try need(n, what)
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)])
    }

    mutating func bytes(_ n: Int, _ what: String) throws -> [UInt8] {
        [UInt8](try raw(n, what))
    }

    /// A bitmap of `count` bits: `ceil(count / 8)` bytes, padding bits zero (canonical).
    mutating func bitmap(count: Int, _ what: String) throws -> BitVector {
        let raw = try raw((count + 7) >> 3, what)
        guard let v = BitVector(packedBytes: raw, count: count) else {
            throw QKDError(.ppMalformed, "\(context): \(what) has padding bits set past bit \(count); bitmaps must be canonical (Spec/postprocessing.md section 2.1)")
        }
        return v
    }

    /// A u32 count that must not exceed `limit`.
    mutating func count(_ what: String, limit: Int) throws -> Int {
        let v = Int(try u32(what))
        guard v <= limit else {
            throw QKDError(.ppMalformed, "\(context): \(what) is \(v), over the limit of \(limit) (Spec/postprocessing.md section 2.2)")
        }
        return v
    }

    func finish() throws {
        guard remaining == 0 else {
            throw QKDError(.ppMalformed, "\(context): \(remaining) trailing bytes after the message; the peer sent a corrupted or newer message")
        }
    }
}

extension BitVector {
    /// Appends the canonical bitmap encoding (no length) to `out`.
    func appendBitmap(to out: inout [UInt8]) { QKDPostProcessing.appendBitmap(words: words, count: count, to: &out) }
}

/// Appends the canonical bitmap of the first `count` bits of `words` (bits past `count` zero):
/// `ceil(count / 8)` bytes copied straight from the words, whose little-endian layout is the
/// LSB-first byte layout (Spec/postprocessing.md section 2.1), with no intermediate array.
func appendBitmap(words: [UInt64], count: Int, to out: inout [UInt8]) {
    words.withUnsafeBytes { raw in
        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[0..<((count + 7) >> 3)]))
    }
}
