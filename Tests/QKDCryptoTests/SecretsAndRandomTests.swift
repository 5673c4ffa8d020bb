import Synchronization
import Testing
@testable import QKDCrypto

/// Collects what the release observer sees for buffers of one unusual size, so SecretBytes
/// released concurrently by other tests do not interfere.
final class ReleaseLog: Sendable {
    let size: Int
    private let seen = Mutex<[[UInt8]]>([])
    init(size: Int) { self.size = size }
    func record(_ buffer: UnsafeRawBufferPointer) {
        guard buffer.count == size else { return }
        let copy = Array(buffer)
        seen.withLock { $0.append(copy) }
    }
    var buffers: [[UInt8]] { seen.withLock { $0 } }
}

@Suite(.serialized) struct SecretBytesTests {
    @Test func descriptionNeverShowsTheBytes() {
        let secret = SecretBytes(copying: [UInt8](repeating: 0xAB, count: 32))
        for text in [secret.description, secret.debugDescription, "\(secret)", String(reflecting: secret)] {
            #expect(!text.lowercased().contains("ab"), "\(text)")
            #expect(!text.contains("171"), "\(text)")
        }
        #expect(secret.description == "SecretBytes(32 bytes)")
    }

    @Test func equalityComparesContents() {
        let a = SecretBytes(copying: [1, 2, 3])
        #expect(a == SecretBytes(copying: [1, 2, 3]))
        #expect(a != SecretBytes(copying: [1, 2, 4]))
        #expect(a != SecretBytes(copying: [1, 2]))
        #expect(SecretBytes(copying: [UInt8]()) == SecretBytes(copying: [UInt8]()))
    }

    /// The release path really wipes: the observer sees the buffer after the wipe, before free.
    @Test func releaseWipesTheBuffer() {
        let log = ReleaseLog(size: 1237)
        SecretBytes.releaseObserver = { log.record($0) }
        defer { SecretBytes.releaseObserver = nil }
        do {
            let secret = SecretBytes(copying: [UInt8](repeating: 0x5A, count: 1237))
            #expect(secret.withUnsafeBytes { $0.allSatisfy { $0 == 0x5A } })
        }
        #expect(log.buffers.count == 1)
        #expect(log.buffers.first?.allSatisfy { $0 == 0 } == true)
    }

    @Test func failedInitializerWipesAndRethrows() {
        struct Boom: Error {}
        let log = ReleaseLog(size: 1231)
        SecretBytes.releaseObserver = { log.record($0) }
        defer { SecretBytes.releaseObserver = nil }
        #expect(throws: Boom.self) {
            _ = try SecretBytes(count: 1231) { buffer in
                buffer.initializeMemory(as: UInt8.self, repeating: 7)
                throw Boom()
            }
        }
        #expect(log.buffers.count == 1)
        #expect(log.buffers.first?.allSatisfy { $0 == 0 } == true)
    }

    @Test func sliceCopies() {
        let secret = SecretBytes(copying: Array(0..<32) as [UInt8])
        let part = secret.slice(8..<12)
        #expect(part.withUnsafeBytes { Array($0) } == [8, 9, 10, 11])
    }

    @Test func secureZeroWipes() {
        var bytes: [UInt8] = [1, 2, 3, 4]
        bytes.withUnsafeMutableBytes { secureZero($0) }
        #expect(bytes == [0, 0, 0, 0])
        secureZero(&bytes)
        #expect(bytes.isEmpty)
    }
}

@Suite struct RandomSourceTests {
    @Test func deterministicStreamIsReproducible() {
        var a = DeterministicRandomSource(seed: 42)
        var b = DeterministicRandomSource(seed: 42)
        #expect(a.bytes(count: 10_000) == b.bytes(count: 10_000))
        var c = DeterministicRandomSource(seed: 43)
        #expect(a.bytes(count: 64) != c.bytes(count: 64))
    }

    @Test func chunkingDoesNotChangeTheStream() {
        var whole = DeterministicRandomSource(seed: 9)
        let reference = whole.bytes(count: 9000)
        var pieces = DeterministicRandomSource(seed: 9)
        var sizes = DeterministicRandomSource(seed: 10)
        var collected: [UInt8] = []
        while collected.count < reference.count {
            let n = min(reference.count - collected.count, Int(sizes.next() % 700))
            collected += pieces.bytes(count: n)
        }
        #expect(collected == reference)
        // next() reads the same stream as fill().
        var words = DeterministicRandomSource(seed: 9)
        var fromWords: [UInt8] = []
        for _ in 0..<16 { withUnsafeBytes(of: words.next().littleEndian) { fromWords += $0 } }
        #expect(fromWords == Array(reference[0..<128]))
    }

    @Test func explicitSeedMustBe32Bytes() throws {
        #expect(throws: QKDError(.invalidKeyLength)) { try DeterministicRandomSource(seed: [UInt8](repeating: 0, count: 31)) }
        var a = try DeterministicRandomSource(seed: [UInt8](repeating: 1, count: 32))
        var b = try DeterministicRandomSource(seed: [UInt8](repeating: 1, count: 32))
        #expect(a.bytes(count: 100) == b.bytes(count: 100))
    }

    @Test func systemSourceIsNotConstant() {
        var system = SystemRandomSource()
        let x = system.bytes(count: 32), y = system.bytes(count: 32)
        #expect(x != y)
        #expect(x != [UInt8](repeating: 0, count: 32))
    }

    @Test func worksAsRandomNumberGenerator() {
        var a = DeterministicRandomSource(seed: 5)
        var b = DeterministicRandomSource(seed: 5)
        #expect(Array(0..<100).shuffled(using: &a) == Array(0..<100).shuffled(using: &b))
    }
}
