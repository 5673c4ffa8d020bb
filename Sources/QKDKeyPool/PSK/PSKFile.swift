#if canImport(FoundationEssentials)
public import FoundationEssentials  // UUID
#else
public import Foundation
#endif
public import QKDCrypto

/// A pre-shared key file (Spec/keypool.md, "PSK file format"): true random bytes shared out of
/// band, which seed both pad streams and the first hash keys of a link.
///
/// Layout, all integers big-endian:
/// ```
/// offset  size  field
///  0       6    magic "QKDPSK"
///  6       1    version = 1
///  7       1    reserved = 0
///  8      16    id (UUID; also the default link id)
/// 24       8    key length L, minimumKeyByteCount...maximumKeyByteCount
/// 32       L    key bytes
/// 32+L    32    BLAKE2b-256 of bytes 0..<32+L (integrity, not authenticity)
/// ```
public struct PSKFile: Sendable, CustomStringConvertible {
    /// "QKDPSK".
    public static let magic: [UInt8] = Array("QKDPSK".utf8)
    /// The only format version this build reads and writes.
    public static let version: UInt8 = 1
    /// Bytes before the key: magic, version, reserved, id, length.
    public static let headerByteCount = 32
    /// Bytes of the trailing checksum.
    public static let checksumByteCount = 32
    /// The smallest key: two hash keys (32 bytes) and one pad per stream (32 bytes).
    /// Spec/keypool.md, "PSK file format".
    public static let minimumKeyByteCount = 64
    /// The largest key this build reads: 1 GiB, checked before any allocation.
    /// Spec/keypool.md, "PSK file format".
    public static let maximumKeyByteCount = 1 << 30

    /// The PSK's id.
    public let id: UUID
    /// The key bytes, in locked memory.
    public let key: SecretBytes
    /// The checksum stored in the file; the pool records it so the same PSK is never imported
    /// twice.
    public let checksum: [UInt8]

    /// Creates a PSK from key bytes.
    /// - Parameters:
    ///   - id: the PSK id.
    ///   - key: `minimumKeyByteCount...maximumKeyByteCount` random bytes.
    /// - Throws: ``QKDError/Code/pskTooSmall`` or ``QKDError/Code/pskTooLarge``.
    public init(id: UUID, key: SecretBytes) throws {
        try Self.checkLength(UInt64(key.count))
        self.id = id
        self.key = key
        var header: [UInt8] = []
        Self.writeHeader(id: id, length: UInt64(key.count), into: &header)
        var h = GenericHash(outputByteCount: Self.checksumByteCount)
        h.update(header)
        key.withUnsafeBytes { h.update($0) }
        checksum = h.finalize()
    }

    /// Generates a PSK from a random source.
    /// - Parameters:
    ///   - byteCount: key length.
    ///   - random: the source (the system source in production).
    /// - Returns: the PSK with a random id.
    /// - Throws: ``QKDError/Code/pskTooSmall`` or ``QKDError/Code/pskTooLarge``.
    public static func generate(byteCount: Int, using random: inout some RandomSource) throws -> PSKFile {
        try checkLength(UInt64(max(byteCount, 0)))
        var idBytes = random.bytes(count: 16)
        idBytes[6] = (idBytes[6] & 0x0f) | 0x40  // UUID version 4
        idBytes[8] = (idBytes[8] & 0x3f) | 0x80
        let id = UUID(uuid: (idBytes[0], idBytes[1], idBytes[2], idBytes[3], idBytes[4], idBytes[5], idBytes[6], idBytes[7],
                             idBytes[8], idBytes[9], idBytes[10], idBytes[11], idBytes[12], idBytes[13], idBytes[14], idBytes[15]))
        return try PSKFile(id: id, key: SecretBytes(randomCount: byteCount, using: &random))
    }

    /// Parses a PSK file. Every malformation has its own error code.
    /// - Parameter bytes: the whole file.
    /// - Throws: ``QKDError/Code/pskTruncated``, ``QKDError/Code/pskBadMagic``,
    ///   ``QKDError/Code/pskUnsupportedVersion``, ``QKDError/Code/pskReservedNonZero``,
    ///   ``QKDError/Code/pskTooSmall``, ``QKDError/Code/pskTooLarge``,
    ///   ``QKDError/Code/pskTrailingBytes`` or ``QKDError/Code/pskChecksumMismatch``.
    public init(decoding bytes: UnsafeRawBufferPointer) throws {
        let magicCount = Self.magic.count
        guard bytes.count >= magicCount else {
            if bytes.elementsEqual(Self.magic.prefix(bytes.count)) {
                throw QKDError(.pskTruncated, "the PSK file is \(bytes.count) bytes, shorter than its \(Self.headerByteCount)-byte header; copy it again from the original")
            }
            throw QKDError(.pskBadMagic, "the file does not start with 'QKDPSK': it is not a QKDChannel PSK file")
        }
        guard bytes.prefix(magicCount).elementsEqual(Self.magic) else {
            throw QKDError(.pskBadMagic, "the file does not start with 'QKDPSK': it is not a QKDChannel PSK file")
        }
        guard bytes.count >= Self.headerByteCount else {
            throw QKDError(.pskTruncated, "the PSK file is \(bytes.count) bytes, shorter than its \(Self.headerByteCount)-byte header; copy it again from the original")
        }
        guard bytes[6] == Self.version else {
            throw QKDError(.pskUnsupportedVersion, "the PSK file has format version \(bytes[6]); this build reads version \(Self.version) only")
        }
        guard bytes[7] == 0 else {
            throw QKDError(.pskReservedNonZero, "the PSK file's reserved header byte is \(bytes[7]), not 0: the file is corrupt or from a newer format")
        }
        var length: UInt64 = 0
        for i in 24..<32 { length = length << 8 | UInt64(bytes[i]) }
        try Self.checkLength(length)  // Before any allocation or arithmetic that could overflow.
        let keyCount = Int(length)
        let total = Self.headerByteCount + keyCount + Self.checksumByteCount
        guard bytes.count >= total else {
            throw QKDError(.pskTruncated, "the PSK file declares \(keyCount) key bytes and needs \(total) bytes in all, but has \(bytes.count); copy it again from the original")
        }
        guard bytes.count == total else {
            throw QKDError(.pskTrailingBytes, "the PSK file has \(bytes.count - total) bytes after its checksum; it is corrupt or was concatenated with something else")
        }
        var h = GenericHash(outputByteCount: Self.checksumByteCount)
        h.update(UnsafeRawBufferPointer(rebasing: bytes[0..<(Self.headerByteCount + keyCount)]))
        let expected = h.finalize()
        let stored = Array(bytes[(total - Self.checksumByteCount)..<total])
        let matches = expected.withUnsafeBytes { a in stored.withUnsafeBytes { b in constantTimeEqual(a, b) } }
        guard matches else {
            throw QKDError(.pskChecksumMismatch, "the PSK file's BLAKE2b checksum does not match its content: the file is corrupt; copy it again from the original")
        }
        let idSlice = Array(bytes[8..<24])
        id = UUID(uuid: (idSlice[0], idSlice[1], idSlice[2], idSlice[3], idSlice[4], idSlice[5], idSlice[6], idSlice[7],
                         idSlice[8], idSlice[9], idSlice[10], idSlice[11], idSlice[12], idSlice[13], idSlice[14], idSlice[15]))
        key = SecretBytes(copying: UnsafeRawBufferPointer(rebasing: bytes[Self.headerByteCount..<(Self.headerByteCount + keyCount)]))
        checksum = stored
    }

    /// Parses a PSK file.
    /// - Parameter bytes: the whole file.
    /// - Throws: see ``init(decoding:)-(UnsafeRawBufferPointer)``.
    public init(decoding bytes: some ContiguousBytes) throws {
        self = try bytes.withUnsafeBytes { try PSKFile(decoding: $0) }
    }

    /// Appends the file's bytes to `buffer`. The buffer then holds the key: wipe it
    /// (``secureZero(_:)``) once written.
    /// - Parameter buffer: where to append.
    public func encode(into buffer: inout [UInt8]) {
        Self.writeHeader(id: id, length: UInt64(key.count), into: &buffer)
        key.withUnsafeBytes { buffer.append(contentsOf: $0) }
        buffer.append(contentsOf: checksum)
    }

    /// "PSK(<id>, N bytes)": never the key.
    public var description: String { "PSK(\(id.uuidString.lowercased()), \(key.count) bytes)" }

    private static func checkLength(_ length: UInt64) throws {
        guard length >= UInt64(minimumKeyByteCount) else {
            throw QKDError(.pskTooSmall, "a PSK needs at least \(minimumKeyByteCount) key bytes (two hash keys and one pad per direction), got \(length)")
        }
        guard length <= UInt64(maximumKeyByteCount) else {
            throw QKDError(.pskTooLarge, "a PSK holds at most \(maximumKeyByteCount) key bytes, the file declares \(length)")
        }
    }

    private static func writeHeader(id: UUID, length: UInt64, into buffer: inout [UInt8]) {
        buffer.append(contentsOf: magic)
        buffer.append(version)
        buffer.append(0)
        withUnsafeBytes(of: id.uuid) { buffer.append(contentsOf: $0) }
        withUnsafeBytes(of: length.bigEndian) { buffer.append(contentsOf: $0) }
    }
}

/// How an imported PSK is split between the link streams (Spec/keypool.md, "PSK import"):
/// bytes 0..<16 the a2b hash key, 16..<32 the b2a hash key; the rest `R` halves into
/// `h = floor16(R / 2)` bytes for a2b, then `h` for b2a; a remainder of less than 32 bytes is
/// discarded. Defined on link streams, so Alice's outbound seed equals Bob's inbound seed.
public struct PSKSplit: Sendable, Equatable {
    /// The a2b hash key, then the b2a hash key.
    public let hashKeys: Range<Int>
    /// Seed bytes for each link stream.
    public let streams: [LinkStream: Range<Int>]
    /// The discarded remainder.
    public let discarded: Range<Int>

    /// Computes the split of a key of `byteCount` bytes (>= ``PSKFile/minimumKeyByteCount``).
    /// - Parameter byteCount: the key length.
    public init(byteCount: Int) {
        precondition(byteCount >= PSKFile.minimumKeyByteCount)
        let keys = 2 * MACSuite.hashKeyByteCount
        hashKeys = 0..<keys
        var half = (byteCount - keys) / 2
        half -= half % MACSuite.padByteCount
        streams = [.aliceToBob: keys..<(keys + half), .bobToAlice: (keys + half)..<(keys + 2 * half)]
        discarded = (keys + 2 * half)..<byteCount
    }
}
