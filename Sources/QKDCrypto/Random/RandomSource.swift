#if canImport(FoundationEssentials)
public import FoundationEssentials  // ContiguousBytes
#else
public import Foundation
#endif
internal import CSodium

/// A source of random bytes, injected into every part of the core that needs randomness
/// (DESIGN.md, "Sans-IO core": no global randomness in the core).
///
/// ``SystemRandomSource`` draws from the OS (libsodium `randombytes_buf`);
/// ``DeterministicRandomSource`` gives a reproducible stream for tests and simulation.
/// Both also serve as a Swift `RandomNumberGenerator`.
public protocol RandomSource: RandomNumberGenerator {
    /// Fills `buffer` with random bytes.
    /// - Parameter buffer: the bytes to overwrite.
    mutating func fill(_ buffer: UnsafeMutableRawBufferPointer)
}

extension RandomSource {
    /// Returns `count` random bytes.
    /// - Parameter count: how many.
    /// - Returns: a new array.
    public mutating func bytes(count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { fill($0) }
        return out
    }

    /// Returns 64 uniformly random bits (the `RandomNumberGenerator` requirement).
    public mutating func next() -> UInt64 {
        var value: UInt64 = 0
        withUnsafeMutableBytes(of: &value) { fill($0) }
        return value
    }
}

/// Randomness from the operating system through libsodium's `randombytes_buf`
/// (getrandom(2) on Linux). Use it for every secret in production.
public struct SystemRandomSource: RandomSource, Sendable {
    /// Creates a handle on the system source. All handles share the OS generator.
    public init() { Sodium.ensureInitialized() }

    /// Fills `buffer` from the OS generator.
    /// - Parameter buffer: the bytes to overwrite.
    public mutating func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        randombytes_buf(base, buffer.count)
    }
}

/// A reproducible random stream for tests and simulation; never for secrets in production.
///
/// The stream is a sequence of 4 KiB blocks; block `i` is
/// `randombytes_buf_deterministic(4096, seed: BLAKE2b-256(key: seed, message: le64(i)))`.
/// The bytes returned do not depend on how the caller chunks its requests. Copying the value
/// copies the stream position: both copies then produce the same bytes.
public struct DeterministicRandomSource: RandomSource, Sendable {
    /// The seed length libsodium requires (`randombytes_SEEDBYTES`).
    public static let seedByteCount = 32
    private static let blockSize = 4096

    private let seed: [UInt8]
    private var blockIndex: UInt64 = 0
    private var block: [UInt8] = []
    private var position = 0

    /// Creates a stream from a 32-byte seed.
    /// - Parameter seed: exactly ``seedByteCount`` bytes.
    /// - Throws: ``QKDError/Code/invalidKeyLength`` for any other length.
    public init(seed: some ContiguousBytes) throws {
        let bytes = seed.withUnsafeBytes { [UInt8]($0) }
        guard bytes.count == Self.seedByteCount else {
            throw QKDError(.invalidKeyLength, "a deterministic random seed must be \(Self.seedByteCount) bytes, got \(bytes.count)")
        }
        Sodium.ensureInitialized()
        self.seed = bytes
    }

    /// Creates a stream from a small integer seed, expanded with BLAKE2b-256. Convenient for
    /// tests that loop over seeds.
    /// - Parameter seed: any integer.
    public init(seed: UInt64) {
        Sodium.ensureInitialized()
        var expanded = [UInt8](repeating: 0, count: Self.seedByteCount)
        var label = Array("QKDChannel deterministic seed".utf8)
        withUnsafeBytes(of: seed.littleEndian) { label.append(contentsOf: $0) }
        _ = crypto_generichash(&expanded, expanded.count, label, UInt64(label.count), nil, 0)
        self.seed = expanded
    }

    private mutating func refill() {
        var subseed = [UInt8](repeating: 0, count: Self.seedByteCount)
        var counter = blockIndex.littleEndian
        withUnsafeBytes(of: &counter) { message in
            _ = crypto_generichash(&subseed, subseed.count, message.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                   UInt64(message.count), seed, seed.count)
        }
        if block.count != Self.blockSize { block = [UInt8](repeating: 0, count: Self.blockSize) }
        block.withUnsafeMutableBytes { randombytes_buf_deterministic($0.baseAddress!, $0.count, subseed) }
        blockIndex &+= 1
        position = 0
    }

    /// Fills `buffer` with the next bytes of the stream.
    /// - Parameter buffer: the bytes to overwrite.
    public mutating func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        var written = 0
        while written < buffer.count {
            if block.isEmpty || position == block.count { refill() }
            let n = min(buffer.count - written, block.count - position)
            block.withUnsafeBytes { source in
                (buffer.baseAddress! + written).copyMemory(from: source.baseAddress! + position, byteCount: n)
            }
            written += n
            position += n
        }
    }

    /// Returns the next 64 bits of the stream (fast path for simulations).
    public mutating func next() -> UInt64 {
        if block.isEmpty || block.count - position < 8 {
            var value: UInt64 = 0
            withUnsafeMutableBytes(of: &value) { fill($0) }
            return value
        }
        let value = block.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: position, as: UInt64.self) }
        position += 8
        return UInt64(littleEndian: value)
    }
}
