import CQKDKernels
import Testing
@testable import QKDCrypto
import QKDTestSupport

// Tests of the GF(2^128) kernels behind the gf128-otp suite (Sources/CQKDKernels): the PCLMULQDQ
// path, the portable constant-time path and the GCM specification's bit-serial Algorithm 1 must
// agree everywhere, and the whole UniversalHash construction must reproduce the GCM
// specification's GHASH(H, A, C) values (Spec/vectors/ghash-gcm-spec.json).

/// True when this CPU can run the PCLMULQDQ kernels.
private let cpuHasCLMUL = qkd_cpu_has_clmul() != 0
/// True when this CPU can run the 256-bit VPCLMULQDQ GHASH kernel.
private let cpuHasVPCLMUL = qkd_cpu_has_vpclmul() != 0
private let noCLMULNote: Comment =
    "this CPU lacks PCLMULQDQ/SSE4.1 (or the build is not x86_64): the clmul path is not tested here"

/// One of the multiplication implementations.
enum MulImplementation: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case reference, portable, clmul, dispatching

    var testDescription: String { rawValue }

    /// The implementations this machine can run.
    static var available: [MulImplementation] {
        allCases.filter { $0 != .clmul || cpuHasCLMUL }
    }

    func callAsFunction(_ out: UnsafeMutablePointer<UInt8>, _ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>) {
        switch self {
        case .reference: qkd_gf128_mul_reference(out, a, b)
        case .portable: qkd_gf128_mul_portable(out, a, b)
        case .clmul: qkd_gf128_mul_clmul(out, a, b)
        case .dispatching: qkd_gf128_mul(out, a, b)
        }
    }

    func callAsFunction(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] {
        precondition(a.count == 16 && b.count == 16)
        var out = [UInt8](repeating: 0, count: 16)
        out.withUnsafeMutableBufferPointer { o in
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in self(o.baseAddress!, pa.baseAddress!, pb.baseAddress!) }
            }
        }
        return out
    }
}

/// One of the GHASH block kernels.
enum GHashPath: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case portable, clmul, vpclmul, dispatching

    var testDescription: String { rawValue }

    /// The kernels this machine can run (the clmul and vpclmul paths are left out, not faked,
    /// on CPUs without the instructions; the dispatching path is always there).
    static var available: [GHashPath] {
        allCases.filter {
            switch $0 {
            case .portable, .dispatching: true
            case .clmul: cpuHasCLMUL
            case .vpclmul: cpuHasVPCLMUL
            }
        }
    }

    /// acc = (...((acc ^ B1) H ^ B2) H ...) H over the blocks of `data` (a multiple of 16 bytes).
    func run(acc: [UInt8], h: [UInt8], data: [UInt8]) -> [UInt8] {
        precondition(acc.count == 16 && h.count == 16 && data.count % 16 == 0)
        var key = qkd_ghash_key()
        defer { withUnsafeMutableBytes(of: &key) { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) } }
        h.withUnsafeBufferPointer { qkd_ghash_key_init(&key, $0.baseAddress!) }
        return run(acc: acc, key: &key, data: data[...])
    }

    func run(acc: [UInt8], key: UnsafePointer<qkd_ghash_key>, data: ArraySlice<UInt8>) -> [UInt8] {
        var out = acc
        out.withUnsafeMutableBufferPointer { o in
            data.withUnsafeBufferPointer { d in
                let n = d.count / 16
                switch self {
                case .portable: qkd_ghash_blocks_portable(o.baseAddress!, key, d.baseAddress, n)
                case .clmul: qkd_ghash_blocks_clmul(o.baseAddress!, key, d.baseAddress, n)
                case .vpclmul: qkd_ghash_blocks_vpclmul(o.baseAddress!, key, d.baseAddress, n)
                case .dispatching: qkd_ghash_blocks(o.baseAddress!, key, d.baseAddress, n)
                }
            }
        }
        return out
    }
}

private let referenceMul = MulImplementation.reference

/// GHASH written out in Swift from the reference multiply: the oracle for the block kernels.
private func referenceGHash(acc: [UInt8], h: [UInt8], data: [UInt8]) -> [UInt8] {
    var y = acc
    for start in stride(from: 0, to: data.count, by: 16) {
        for j in 0..<16 { y[j] ^= data[start + j] }
        y = referenceMul(y, h)
    }
    return y
}

private func xor(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] { zip(a, b).map { $0 ^ $1 } }

/// The field's multiplicative identity in GCM bit order: x_0 = 1 is the top bit of byte 0.
private let one: [UInt8] = [0x80] + [UInt8](repeating: 0, count: 15)
private let zero = [UInt8](repeating: 0, count: 16)

@Suite("GF(2^128) multiplication")
struct GF128MultiplyTests {
    /// 100,000 random pairs: the portable path equals the bit-serial reference.
    @Test func portableMatchesReference() {
        #expect(countMismatches(.portable, against: .reference, seed: 1) == 0)
    }

    /// 100,000 random pairs: the PCLMULQDQ path equals the bit-serial reference (and so the
    /// portable path, which the previous test ties to the same reference on the same inputs).
    @Test(.enabled(if: cpuHasCLMUL, noCLMULNote))
    func clmulMatchesReference() {
        #expect(countMismatches(.clmul, against: .reference, seed: 1) == 0)
    }

    /// Multiplies 100,000 seeded random pairs with both implementations and counts differences.
    private func countMismatches(_ candidate: MulImplementation, against oracle: MulImplementation, seed: UInt64) -> Int {
        let pairs = 100_000
        var random = DeterministicRandomSource(seed: seed)
        let input = random.bytes(count: pairs * 32)
        var mismatches = 0
        var expected = [UInt8](repeating: 0, count: 16)
        var got = [UInt8](repeating: 0, count: 16)
        input.withUnsafeBufferPointer { p in
            for i in 0..<pairs {
                let a = p.baseAddress! + 32 * i
                oracle(&expected, a, a + 16)
                candidate(&got, a, a + 16)
                if expected != got {
                    if mismatches < 3 {
                        Issue.record("\(candidate) != \(oracle) for a=\(Hex.encode(UnsafeBufferPointer(start: a, count: 16))) b=\(Hex.encode(UnsafeBufferPointer(start: a + 16, count: 16)))")
                    }
                    mismatches += 1
                }
            }
        }
        return mismatches
    }

    /// The output may alias an input (the header promises it).
    @Test(arguments: MulImplementation.available)
    func outputMayAliasInputs(_ mul: MulImplementation) {
        var random = DeterministicRandomSource(seed: 2)
        for _ in 0..<100 {
            let a = random.bytes(count: 16), b = random.bytes(count: 16)
            let expected = referenceMul(a, b)
            var x = a
            x.withUnsafeMutableBufferPointer { p in b.withUnsafeBufferPointer { mul(p.baseAddress!, p.baseAddress!, $0.baseAddress!) } }
            #expect(x == expected)
            var y = b
            y.withUnsafeMutableBufferPointer { p in a.withUnsafeBufferPointer { mul(p.baseAddress!, $0.baseAddress!, p.baseAddress!) } }
            #expect(y == expected)
        }
    }

    /// Field laws on random values: identity, zero, commutativity, associativity, distributivity.
    @Test(arguments: MulImplementation.available)
    func fieldLaws(_ mul: MulImplementation) {
        var random = DeterministicRandomSource(seed: 3)
        for _ in 0..<500 {
            let a = random.bytes(count: 16), b = random.bytes(count: 16), c = random.bytes(count: 16)
            #expect(mul(a, one) == a)
            #expect(mul(one, a) == a)
            #expect(mul(a, zero) == zero)
            #expect(mul(a, b) == mul(b, a))
            #expect(mul(mul(a, b), c) == mul(a, mul(b, c)))
            #expect(mul(a, xor(b, c)) == xor(mul(a, b), mul(a, c)))
        }
    }

    /// Multiplying by the element a (x_1 = 1) is one step of the specification's loop: a shift
    /// towards higher degree, with a^128 = a^7 + a^2 + a + 1 folding back as 0xE1 in byte 0.
    @Test(arguments: MulImplementation.available)
    func multiplyByGenerator(_ mul: MulImplementation) {
        let a: [UInt8] = [0x40] + [UInt8](repeating: 0, count: 15)
        let a127: [UInt8] = [UInt8](repeating: 0, count: 15) + [0x01]
        #expect(mul(one, a) == a)
        #expect(mul(a127, a) == [0xE1] + [UInt8](repeating: 0, count: 15))
    }
}

@Suite("GHASH block kernels")
struct GHashBlockTests {
    /// Every length 0...70 blocks (the 8-block clmul loop and the 16-block vpclmul loop, and
    /// every tail after them), random keys and starting accumulators: all paths equal the Swift
    /// loop of reference multiplies.
    @Test func randomLengthsAgreeWithReference() {
        var random = DeterministicRandomSource(seed: 4)
        for blocks in 0...70 {
            for _ in 0..<3 {
                let h = random.bytes(count: 16), acc = random.bytes(count: 16)
                let data = random.bytes(count: 16 * blocks)
                let expected = referenceGHash(acc: acc, h: h, data: data)
                for path in GHashPath.available {
                    #expect(path.run(acc: acc, h: h, data: data) == expected, "\(path), \(blocks) blocks")
                }
            }
        }
    }

    /// Long inputs, including lengths that leave every tail, against the reference.
    @Test(arguments: [4097, 4103, 1000])
    func longInputsAgreeWithReference(_ blocks: Int) {
        var random = DeterministicRandomSource(seed: UInt64(blocks))
        let h = random.bytes(count: 16), acc = random.bytes(count: 16)
        let data = random.bytes(count: 16 * blocks)
        let expected = referenceGHash(acc: acc, h: h, data: data)
        for path in GHashPath.available {
            #expect(path.run(acc: acc, h: h, data: data) == expected, "\(path), \(blocks) blocks")
        }
    }

    /// Splitting the blocks across calls at any point gives the same result (the accumulator is
    /// fully reduced between calls, whatever the aggregation inside one call).
    @Test(arguments: GHashPath.available)
    func splitCallsEqualOneCall(_ path: GHashPath) {
        var random = DeterministicRandomSource(seed: 5)
        let h = random.bytes(count: 16), acc = random.bytes(count: 16)
        let data = random.bytes(count: 16 * 40)
        var key = qkd_ghash_key()
        defer { withUnsafeMutableBytes(of: &key) { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) } }
        h.withUnsafeBufferPointer { qkd_ghash_key_init(&key, $0.baseAddress!) }
        let whole = path.run(acc: acc, key: &key, data: data[...])
        for cut in 0...40 {
            let first = path.run(acc: acc, key: &key, data: data[0..<(16 * cut)])
            #expect(path.run(acc: first, key: &key, data: data[(16 * cut)...]) == whole, "cut at block \(cut)")
        }
    }

    /// Key setup stores H^1..H^16; a key whose powers were wrong would still pass single-block
    /// tests, so check the aggregation on structured inputs too: one non-zero block at each
    /// position of a 32-block input picks out each stored power in each loop.
    @Test(arguments: GHashPath.available)
    func eachPowerIsUsedCorrectly(_ path: GHashPath) {
        var random = DeterministicRandomSource(seed: 6)
        let h = random.bytes(count: 16)
        for position in 0..<32 {
            var data = [UInt8](repeating: 0, count: 16 * 32)
            data[16 * position] = 0x80  // the block "1"
            #expect(path.run(acc: zero, h: h, data: data) == referenceGHash(acc: zero, h: h, data: data), "position \(position)")
        }
    }
}

/// A case of Spec/vectors/ghash-gcm-spec.json.
struct GHashVector: Decodable, Sendable {
    let name: String
    let h: HexBytes
    let a: HexBytes
    let c: HexBytes
    let ghash: HexBytes
}

/// Tests that flip the process-wide qkd_kernels_force_portable switch: serialized, and the
/// switch is restored after each. (Tests elsewhere that use the dispatching functions stay
/// correct either way: both paths compute the same function.)
@Suite("GHASH vectors and dispatch", .serialized)
struct GHashDispatchTests {
    static func vectors() throws -> [GHashVector] {
        try VectorFile<GHashVector>.load("ghash-gcm-spec.json").cases
    }

    /// GHASH(H, A = domain, C = message) through the real UniversalHash API, which for gf128-otp
    /// is exactly GCM's GHASH including its length block.
    private func digest(_ vector: GHashVector, chunk: Int? = nil) throws -> [UInt8] {
        var hash = UniversalHash(key: try HashKey(suite: .gf128OTP, rawRepresentation: vector.h.bytes),
                                 domain: vector.a.bytes)
        if let chunk {
            var start = 0
            while start < vector.c.bytes.count {
                let end = min(start + chunk, vector.c.bytes.count)
                hash.update(Array(vector.c.bytes[start..<end]))
                start = end
            }
        } else {
            hash.update(vector.c.bytes)
        }
        let d = hash.finalize()
        var words = (d.word0, d.word1)
        return withUnsafeBytes(of: &words) { [UInt8]($0) }
    }

    @Test func vectorFileHasAllEighteenCases() throws {
        let vectors = try Self.vectors()
        #expect(vectors.map(\.name) == (1...18).map { "Test Case \($0)" })
    }

    @Test(.enabled(if: cpuHasCLMUL, noCLMULNote))
    func gcmVectorsWithDispatchOnCLMUL() throws {
        qkd_kernels_force_portable(0)
        #expect(qkd_kernels_using_clmul() == 1)
        for v in try Self.vectors() {
            #expect(try digest(v) == v.ghash.bytes, "\(v.name)")
            for chunk in [1, 7, 16, 33] {
                #expect(try digest(v, chunk: chunk) == v.ghash.bytes, "\(v.name), chunks of \(chunk)")
            }
        }
    }

    @Test func gcmVectorsWithForcedPortable() throws {
        qkd_kernels_force_portable(1)
        defer { qkd_kernels_force_portable(0) }
        #expect(qkd_kernels_using_clmul() == 0)
        for v in try Self.vectors() {
            #expect(try digest(v) == v.ghash.bytes, "\(v.name)")
            for chunk in [1, 7, 16, 33] {
                #expect(try digest(v, chunk: chunk) == v.ghash.bytes, "\(v.name), chunks of \(chunk)")
            }
        }
    }

    /// The vectors straight through each block kernel (A and C zero-padded, then the GCM length
    /// block), independent of the Swift stream glue.
    @Test(arguments: GHashPath.available)
    func gcmVectorsThroughBlockKernels(_ path: GHashPath) throws {
        for v in try Self.vectors() {
            func pad(_ b: [UInt8]) -> [UInt8] { b + [UInt8](repeating: 0, count: (16 - b.count % 16) % 16) }
            var lengths = [UInt8]()
            for bits in [UInt64(v.a.bytes.count * 8), UInt64(v.c.bytes.count * 8)] {
                lengths += (0..<8).map { UInt8(truncatingIfNeeded: bits >> (56 - 8 * $0)) }
            }
            let data = pad(v.a.bytes) + pad(v.c.bytes) + lengths
            #expect(path.run(acc: zero, h: v.h.bytes, data: data) == v.ghash.bytes, "\(v.name) via \(path)")
            #expect(referenceGHash(acc: zero, h: v.h.bytes, data: data) == v.ghash.bytes, "\(v.name) via reference")
        }
    }

    /// The switch really changes the path, and restoring it brings the fast path back.
    @Test func forcePortableSwitchesAndRestores() {
        qkd_kernels_force_portable(1)
        #expect(qkd_kernels_using_clmul() == 0)
        qkd_kernels_force_portable(0)
        #expect(qkd_kernels_using_clmul() == qkd_cpu_has_clmul())
    }
}
