import Foundation
import QKDCrypto
import QKDTransport
import Testing

/// A deterministic generator for test data and chunk sizes (SplitMix64).
struct TestRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var i = 0
        while i < count {
            var word = next()
            for _ in 0..<8 where i < count {
                out[i] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                i += 1
            }
        }
        return out
    }
}

/// Writes `data` in chunks of random sizes (1 byte up to `maxChunk`).
func writeChunked(_ transport: any ByteTransport, _ data: [UInt8], seed: UInt64, maxChunk: Int = 70_000) async throws {
    var rng = TestRNG(seed: seed)
    var offset = 0
    while offset < data.count {
        // Mostly large chunks, sometimes tiny ones, so both paths are exercised.
        let limit = rng.next() % 8 == 0 ? 16 : maxChunk
        let n = min(data.count - offset, 1 + Int(rng.next() % UInt64(limit)))
        try await transport.write(Array(data[offset..<offset + n]))
        offset += n
    }
}

/// Reads until `count` bytes arrived (or the stream ended).
func readExactly(_ transport: any ByteTransport, _ count: Int) async throws -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(count)
    while out.count < count, let chunk = try await transport.read() {
        #expect(!chunk.isEmpty, "read() must return at least one byte or nil")
        out += chunk
    }
    return out
}

/// Reads until the end of the stream.
func readToEnd(_ transport: any ByteTransport) async throws -> [UInt8] {
    var out: [UInt8] = []
    while let chunk = try await transport.read() {
        #expect(!chunk.isEmpty, "read() must return at least one byte or nil")
        out += chunk
    }
    return out
}

/// Sends `size` random bytes a -> b and, concurrently, `size` other bytes b -> a, with random
/// chunking, and checks both arrive intact and in order.
func checkRoundTrip(_ a: any ByteTransport, _ b: any ByteTransport, size: Int = 1 << 20, seed: UInt64 = 1) async throws {
    var rng = TestRNG(seed: seed)
    let aToB = rng.bytes(size)
    let bToA = rng.bytes(size)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await writeChunked(a, aToB, seed: seed &+ 1) }
        group.addTask { try await writeChunked(b, bToA, seed: seed &+ 2) }
        group.addTask {
            let got = try await readExactly(b, size)
            #expect(got.count == size)
            #expect(got == aToB, "a -> b bytes differ")
        }
        group.addTask {
            let got = try await readExactly(a, size)
            #expect(got.count == size)
            #expect(got == bToA, "b -> a bytes differ")
        }
        try await group.waitForAll()
    }
}

/// Checks that `body` throws a QKDError with `code` (or, if `orNil`, that it may also end cleanly).
func expectTransportError(_ code: QKDError.Code, _ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async {
    do {
        try await body()
        Issue.record("expected \(code), nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as QKDError {
        #expect(error.code == code, "expected \(code), got \(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected \(code), got \(error)", sourceLocation: sourceLocation)
    }
}

/// A fresh private temporary directory (short path: Unix socket paths are limited to 107 bytes).
func makeTempDirectory() throws -> String {
    var template = Array("/tmp/qkdt-XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    guard made != nil else { throw QKDError(.connectFailed, "mkdtemp failed") }
    return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Removes a temporary directory tree.
func removeTree(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}
