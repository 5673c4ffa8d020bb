#if canImport(FoundationEssentials)
import FoundationEssentials  // UUID
#else
import Foundation
#endif
import QKDCrypto
import QKDKeyPool

/// FuzzPSKFile. Input: one mode byte, then the file.
/// - mode bit 0 set: before parsing, the harness writes the correct BLAKE2b-256 checksum over
///   the last 32 bytes of the file as its declared length places them, so the fuzzer gets past
///   the checksum and exercises the accepting path;
/// - otherwise the file is parsed as given.
///
/// Invariants (Spec/keypool.md, "PSK file format"):
/// - parsing never crashes; every error is a typed ``QKDError`` with a `psk.` code;
/// - a parsed file re-serialises (``PSKFile/encode(into:)``) to exactly its input bytes (the
///   format is canonical), and the re-serialisation parses to the same id, key and checksum.
enum PSKFileCheck {
    static func run(_ bytes: [UInt8]) throws(FuzzInvariantViolation) -> FuzzCheck.Outcome {
        var input = FuzzInput(bytes)
        let mode = input.byte()
        var file = input.rest()
        if mode & 1 == 1 { fixChecksum(&file) }
        let psk: PSKFile
        do {
            psk = try PSKFile(decoding: file)
        } catch let error as QKDError {
            guard error.code.identifier.hasPrefix("psk.") else {
                throw FuzzInvariantViolation("parsing failed with a non-PSK error \(error)")
            }
            return .rejected(error)
        } catch {
            throw FuzzInvariantViolation("parsing threw an untyped error \(error)")
        }
        var written: [UInt8] = []
        defer { secureZero(&written) }
        psk.encode(into: &written)
        guard written == file else {
            throw FuzzInvariantViolation("a parsed PSK file re-serialises to different bytes (\(written.count) vs \(file.count))")
        }
        let again: PSKFile
        do {
            again = try PSKFile(decoding: written)
        } catch {
            throw FuzzInvariantViolation("a re-serialised PSK file does not parse: \(error)")
        }
        let sameKey = psk.key.withUnsafeBytes { a in again.key.withUnsafeBytes { b in a.count == b.count && constantTimeEqual(a, b) } }
        guard again.id == psk.id, again.checksum == psk.checksum, sameKey else {
            throw FuzzInvariantViolation("a re-serialised PSK file parses to a different PSK")
        }
        return .accepted
    }

    /// Overwrites the checksum field where the declared length puts it, if the file is long
    /// enough to hold it.
    static func fixChecksum(_ file: inout [UInt8]) {
        guard file.count >= PSKFile.headerByteCount else { return }
        var length: UInt64 = 0
        for i in 24..<32 { length = length << 8 | UInt64(file[i]) }
        guard length <= UInt64(PSKFile.maximumKeyByteCount) else { return }
        let body = PSKFile.headerByteCount + Int(length)
        guard file.count >= body + PSKFile.checksumByteCount else { return }
        var h = GenericHash(outputByteCount: PSKFile.checksumByteCount)
        h.update(Array(file[0..<body]))
        file.replaceSubrange(body..<(body + PSKFile.checksumByteCount), with: h.finalize())
    }

    /// Valid PSK files made with the real writer from a deterministic source (mode 0: parsed as
    /// given). They hold no real key: the bytes are a fixed test stream.
    static func seeds() throws -> [(name: String, bytes: [UInt8])] {
        var random = try DeterministicRandomSource(seed: [UInt8](repeating: 0x5e, count: 32))
        return try [("minimum-64", 64), ("key-100", 100), ("key-256", 256)].map { name, count in
            var bytes: [UInt8] = [0]
            try PSKFile.generate(byteCount: count, using: &random).encode(into: &bytes)
            return (name, bytes)
        }
    }
}
