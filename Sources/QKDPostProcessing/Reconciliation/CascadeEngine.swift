import QKDCrypto
internal import CQKDKernels

/// The Cascade state both sides run in lock step (Spec/postprocessing.md section 5).
///
/// Both sides hold the same schedule, the same permutations (from the shared seed) and the same
/// bookkeeping: which top-level blocks are known to hold an odd number of errors, and which
/// binary searches are in progress. Every step has a list of *queries* (bit ranges in one pass's
/// permuted order) that both sides derive from that shared state: the top-level blocks of a new
/// pass, or the left halves of every open binary search. Alice sends one parity bit per query;
/// Bob answers one bit per query (top level: "my parity differs"; bisection: "the error is in
/// the left half"). Both then apply the same answers, so no block descriptor is ever sent.
///
/// When a search ends on a single bit, Bob flips it and both sides toggle the error parity of
/// the block containing it in every pass already started (cascade back-tracking across
/// passes); a block that becomes odd starts a new search in the next step. A search whose
/// current range contains a flipped bit becomes even and is dropped.
struct CascadeEngine {
    enum Role { case alice, bob }
    enum Pending: Equatable { case newPass(Int), bisect, done }

    let role: Role
    let n: Int
    let schedule: CascadeSchedule
    /// This side's key in each started pass's order, for the passes in ``isBuilt``;
    /// `permuted[0]` is the key itself (pass 0
    /// is not shuffled, Brassard and Salvail 1993). Bob's copies follow his corrections: the C
    /// step flips them in place.
    private(set) var permuted: [BitVector] = []
    /// Per started pass: whether `permuted[p]` holds the pass's key. A pass of at most two
    /// blocks (the late passes of the improved schedule, blocks of n/2) gets its top-level
    /// parities from the pass's half mask with word operations, and its permuted key only when
    /// a search opens in it; most late passes find no odd block, so most never build one.
    private var isBuilt: [Bool] = []
    /// The round's one random permutation, drawn when pass 1 starts; pass `p >= 1` is this
    /// permutation after a cyclic rotation of the key by `rotations[p]` (Spec/postprocessing.md
    /// section 5.2). Drawing one permutation instead of one per pass took 40% of Cascade's time
    /// off. Kept by ``core``, whose C state borrows its forward map.
    private var permutation: PassPermutation? { core.permutation }
    /// The xoshiro256** stream that drew ``permutation``; it goes on to give the rotations.
    private var permutationStream: Xoshiro256StarStar?
    /// Per started pass: its rotation r (0 for pass 0).
    private var rotations: [Int] = []
    private var random: DeterministicRandomSource
    /// The public bookkeeping (open searches, odd blocks, the sub-block parity cache of
    /// Spec/postprocessing.md section 5.3, corrected positions) in the C kernel
    /// `qkd_cascade_engine`, which runs a whole step in one call. Shared between copies of
    /// the engine until one of them mutates (copy on write, ``uniqueCore()``).
    private var core: CascadeCore
    private(set) var pending: Pending = .newPass(0)
    /// Bits flipped (Bob) or mirrored as flipped (Alice): the error count found.
    var corrections: Int { qkd_cascade_engine_corrections(core.raw) }
    /// Queries answered so far: the parity bits Alice disclosed.
    private(set) var disclosedParities = 0
    /// Steps done.
    private(set) var steps = 0

    /// - Parameters:
    ///   - role: whose key this is.
    ///   - key: the sifted key bits (Alice's or Bob's).
    ///   - schedule: the shared schedule.
    ///   - seed: the 32-byte shared seed from the sift response.
    init(role: Role, key: BitVector, schedule: CascadeSchedule, seed: [UInt8]) throws {
        // Heap indices of a block of k bits stay below 2^(ceil(log2 k) + 1) <= 2^32 for
        // k < 2^31 (the C searches keep them in 32 bits); the round limits cap Cascade at 2^27.
        precondition(key.count < 1 << 31, "Cascade keys are below 2^31 bits")
        self.role = role
        self.n = key.count
        self.schedule = schedule
        self.random = try DeterministicRandomSource(seed: seed)
        core = CascadeCore(n: key.count, bob: role == .bob, blockSizes: schedule.blockSizes)
        permuted = [key]
        if n == 0 { pending = .done }
    }

    var passCount: Int { schedule.blockSizes.count }

    private func blockCount(_ pass: Int) -> Int {
        let k = schedule.blockSizes[pass]
        return (n + k - 1) / k
    }

    /// The C state, cloned first if another copy of the engine shares it (value semantics).
    private mutating func uniqueCore() -> OpaquePointer {
        if !isKnownUniquelyReferenced(&core) { core = core.clone() }
        return core.raw
    }

    /// Starts pass `pass`: for pass 1, draws the round's permutation from the shared stream;
    /// for every pass >= 1, draws its rotation and, for a pass of more than two blocks, arranges
    /// this side's current key in the pass's order (Spec/postprocessing.md section 5.2); a pass
    /// of one or two blocks builds its order only when a search opens in it (``buildPass(_:)``).
    private mutating func startPass(_ pass: Int) {
        if pass == 0 {
            rotations.append(0)
            isBuilt.append(true)
        } else {
            if permutation == nil {
                var stream = Xoshiro256StarStar(seedingFrom: &random)
                let perm = PassPermutation(size: n, random: &stream)
                permutationStream = stream
                let raw = uniqueCore()
                core.permutation = perm  // The C engine borrows the forward map: keep it alive with it.
                perm.withForwardAndNetwork { qkd_cascade_engine_set_permutation(raw, $0, $1) }
            }
            // r uniform in 0..<n: floor(u n / 2^64), as the Fisher-Yates draws.
            let r = Int(permutationStream!.next().multipliedFullWidth(by: UInt64(n)).high)
            rotations.append(r)
            permuted.append(BitVector(count: 0))
            isBuilt.append(false)
        }
        let status = qkd_cascade_engine_start_pass(uniqueCore(), pass, rotations[pass])
        precondition(status == 0, "Cascade could not start pass \(pass) (status \(status): out of memory)")
        if pass > 0 && blockCount(pass) > 2 { buildPass(pass) }
    }

    /// Arranges this side's current key in started pass `pass`'s order (Bob's current key:
    /// building late gives the same bits as building at the start and flipping since).
    private mutating func buildPass(_ pass: Int) {
        if isBuilt[pass] { return }
        let perm = permutation!
        let r = rotations[pass]
        // Rotate with word operations first, so that the scatter is a plain table lookup:
        // rotated[x] = key[(x + r) mod n] goes to position forward[x].
        var rotated = cyclicRotation(permuted[0].words, count: n, by: r)
        let words = perm.withForward { scatterBits(rotated, to: $0, count: n) }
        rotated.withUnsafeMutableBytes { secureZero($0) }  // A copy of the key.
        permuted[pass] = BitVector(words: words, count: n)
        isBuilt[pass] = true
        qkd_cascade_engine_mark_built(uniqueCore(), pass)
    }

    /// The number of bits the current step's messages carry.
    mutating func queryCount() -> Int {
        switch pending {
        case .done: return 0
        case .newPass(let p):
            if rotations.count == p { startPass(p) }
            return blockCount(p)
        case .bisect: return qkd_cascade_engine_search_count(core.raw)
        }
    }

    /// This side's parities of the current queries (Alice sends these), in the order their bits
    /// travel (Spec/postprocessing.md section 5.2): the top-level blocks of a new pass in block
    /// order, or the left half of every open search in list order.
    mutating func parities() -> BitVector {
        let count = queryCount()
        var words = [UInt64](repeating: 0, count: (count + 63) >> 6)
        switch pending {
        case .done:
            break
        case .newPass(let p) where !isBuilt[p]:
            // Block 0 holds the rotated-key bits at the positions of the half mask
            // (Spec/postprocessing.md section 5.2, implementation note); no key copy is made.
            words[0] = permuted[0].words.withUnsafeBufferPointer { qkd_cascade_engine_half_parities(core.raw, p, $0.baseAddress) }
        case .newPass(let p):
            permuted[p].words.withUnsafeBufferPointer { kw in
                words.withUnsafeMutableBufferPointer { out in
                    qkd_cascade_engine_top_parities(core.raw, p, kw.baseAddress, out.baseAddress)
                }
            }
        case .bisect:
            for p in isBuilt.indices where !isBuilt[p] && qkd_cascade_engine_needs_build(core.raw, p) != 0 { buildPass(p) }
            let status = withPassPointers { keys in
                words.withUnsafeMutableBufferPointer { out in
                    qkd_cascade_engine_bisect_parities(core.raw, keys, out.baseAddress)
                }
            }
            precondition(status == 0, "Cascade bisection parities out of step with the built passes")
        }
        return BitVector(words: words, count: count)
    }

    /// Calls `body` with the words of every pass's permuted key (nil for a pass not built), for
    /// reading: one buffer access per pass per step, not per search.
    private func withPassPointers<R>(_ body: (UnsafePointer<UnsafePointer<UInt64>?>) -> R) -> R {
        var pointers = [UnsafePointer<UInt64>?](repeating: nil, count: passCount)
        func nest(_ p: Int) -> R {
            if p == permuted.count { return pointers.withUnsafeBufferPointer { body($0.baseAddress!) } }
            guard isBuilt[p] else { return nest(p + 1) }
            return permuted[p].words.withUnsafeBufferPointer { b in
                pointers[p] = b.baseAddress
                return nest(p + 1)
            }
        }
        return nest(0)
    }

    /// Calls `body` with writable words of every pass's permuted key (nil for a pass not
    /// built), for Bob's in-place flips. Each vector is made unique first (copy on write), so
    /// the flips never reach a buffer another copy shares.
    private mutating func withMutablePassPointers<R>(_ body: (UnsafePointer<UnsafeMutablePointer<UInt64>?>) -> R) -> R {
        var pointers = [UnsafeMutablePointer<UInt64>?](repeating: nil, count: passCount)
        let built = isBuilt
        // Taken out of self for the nested accesses (a buffer pointer's elements are not
        // checked for overlapping access, unlike `self.permuted[p]`).
        var vectors = permuted
        permuted = []
        defer { permuted = vectors }
        return vectors.withUnsafeMutableBufferPointer { v in
            func nest(_ p: Int) -> R {
                if p == v.count { return pointers.withUnsafeBufferPointer { body($0.baseAddress!) } }
                guard built[p] else { return nest(p + 1) }
                return v[p].withUnsafeMutableWords { b in
                    pointers[p] = b.baseAddress
                    return nest(p + 1)
                }
            }
            return nest(0)
        }
    }

    /// Bob's replies to Alice's parities: his parity XOR hers, one bit per query.
    /// - Throws: ``QKDError/Code/ppInconsistent`` if the count is not the expected one.
    mutating func replies(to alice: BitVector) throws -> BitVector {
        let mine = parities()
        guard alice.count == mine.count else {
            throw QKDError(.ppInconsistent, "Cascade step \(steps): Alice sent \(alice.count) parities, Bob expected \(mine.count); the two sides disagree on the shared state")
        }
        var words = mine.words
        for i in words.indices { words[i] ^= alice.words[i] }
        return BitVector(words: words, count: mine.count)
    }

    /// Applies the replies of the current step (both sides) and moves to the next step: one C
    /// call applies them (top level: odd blocks open searches; bisection: both halves' error
    /// parities go to the cache and every search descends), then resolves searches that reach
    /// one bit, flips those bits across all started passes, opens searches on blocks that
    /// became odd, and drops ended searches (Spec/postprocessing.md section 5.3).
    /// - Throws: ``QKDError/Code/ppInconsistent`` if the count is not the expected one, or if a
    ///   bit would be corrected a second time (the peer's parities contradict each other).
    mutating func apply(_ replies: BitVector) throws {
        let expected = queryCount()
        guard replies.count == expected else {
            throw QKDError(.ppInconsistent, "Cascade step \(steps): \(replies.count) replies, expected \(expected)")
        }
        disclosedParities += expected
        steps += 1
        let newPass: Int
        switch pending {
        case .done: return
        case .newPass(let p): newPass = p
        case .bisect: newPass = -1
        }
        let raw = uniqueCore()
        var badBit = 0
        let status = replies.words.withUnsafeBufferPointer { r in
            switch role {
            case .bob:
                return withMutablePassPointers { keys in
                    qkd_cascade_engine_apply(raw, newPass, r.baseAddress, expected, keys, &badBit)
                }
            case .alice:  // Alice's keys are not touched: no pointers, no copy on write.
                return qkd_cascade_engine_apply(raw, newPass, r.baseAddress, expected, nil, &badBit)
            }
        }
        switch status {
        case 0:
            break
        case QKD_CASCADE_CORRECTED_TWICE:
            // Honest replies make every correction fix a real error, so no bit is flipped twice;
            // a second flip means the peer's parities contradict each other, and wrong cached
            // parities could otherwise cycle here without a round trip.
            throw QKDError(.ppInconsistent, "Cascade would correct bit \(badBit) a second time; the peer's parities contradict each other (Spec/postprocessing.md section 5.3)")
        case QKD_CASCADE_WRONG_COUNT:
            throw QKDError(.ppInconsistent, "Cascade step \(steps): \(expected) replies do not match the open queries")
        case -1:
            fatalError("out of memory in the Cascade step")
        default:
            preconditionFailure("Cascade step called out of order (status \(status))")
        }
        let started = qkd_cascade_engine_started(core.raw)
        if qkd_cascade_engine_search_count(core.raw) > 0 {
            pending = .bisect
        } else if started < passCount {
            pending = .newPass(started)
        } else {
            pending = .done
        }
    }

    /// The reconciled key (Bob: corrected; Alice: unchanged).
    var key: BitVector { permuted[0] }

    /// Wipes every copy of the key.
    mutating func wipe() {
        for i in permuted.indices { permuted[i].wipe() }
    }

    /// Hands the reconciled key on (its buffer, not a copy) and wipes the pass copies: wiping
    /// `permuted[0]` while the caller holds `key` would only zero a copy (``WipeAudit``).
    mutating func takeKey() -> BitVector {
        let key = permuted[0]
        permuted[0] = BitVector(count: 0)
        for i in permuted.indices.dropFirst() { permuted[i].wipe() }
        return key
    }
}

/// The C engine state (`qkd_cascade_engine`, public data only) behind a class handle, so that
/// ``CascadeEngine`` stays a value: it clones the state before mutating a shared handle.
private final class CascadeCore {
    let raw: OpaquePointer
    /// The permutation whose forward map the C engine borrows.
    var permutation: PassPermutation?

    init(n: Int, bob: Bool, blockSizes: [Int]) {
        guard let raw = qkd_cascade_engine_create(n, bob ? 1 : 0, blockSizes, blockSizes.count) else {
            fatalError("out of memory for the Cascade engine (\(n) bits, \(blockSizes.count) passes)")
        }
        self.raw = raw
    }

    private init(raw: OpaquePointer, permutation: PassPermutation?) {
        self.raw = raw
        self.permutation = permutation
    }

    /// A deep copy of the state (the forward map stays shared: it is read only).
    func clone() -> CascadeCore {
        guard let copy = qkd_cascade_engine_clone(raw) else { fatalError("out of memory copying the Cascade engine") }
        return CascadeCore(raw: copy, permutation: permutation)
    }

    deinit { qkd_cascade_engine_free(raw) }
}

/// The round's permutation of 0..<n for Cascade (Spec/postprocessing.md section 5.2): an 8-round
/// Feistel network on about `ceil(log2 n)`-bit words keyed by eight words of the shared xoshiro256**
/// stream, restricted to 0..<n by cycle walking. Each map entry is computed from its own index,
/// so the C kernel `qkd_cascade_permutation` writes the forward map in order, 8 lanes at a
/// time; the Rao-Sandelius shuffle it replaced was a quarter of Cascade's time at 2^20 bits.
/// The backward map is not stored: the few entries the engine needs come from the inverse
/// network (`qkd_cascade_backward`). The maps are public: they only decide which parities are
/// asked.
struct PassPermutation {
    private let map: ForwardMap
    /// The network's keys and shape (public), for the backward entries.
    private let network: qkd_cascade_network

    init(size n: Int, random: inout Xoshiro256StarStar) {
        precondition(n < 1 << 32, "Cascade blocks are below 2^32 bits")
        let map = ForwardMap(count: n)
        let (s0, s1, s2, s3) = random.state
        var state = [s0, s1, s2, s3]
        var network = qkd_cascade_network()
        let status = state.withUnsafeMutableBufferPointer { s in
            qkd_cascade_permutation(map.forward, n, s.baseAddress, &network)
        }
        precondition(status == 0, "out of memory drawing the Cascade permutation (\(n) indices)")
        self.map = map
        self.network = network
        random.state = (state[0], state[1], state[2], state[3])
    }

    /// The number of indices.
    var count: Int { map.count }

    /// The key bit at position `j` of this pass (the inverse network, walked; tens of
    /// nanoseconds).
    func backward(_ j: Int) -> Int {
        precondition(j >= 0 && j < map.count, "permutation index out of range")
        return withUnsafePointer(to: network) { Int(qkd_cascade_backward($0, UInt32(j))) }
    }

    /// The position of key bit `i` in this pass.
    @inline(__always)
    func forward(_ i: Int) -> Int {
        precondition(i >= 0 && i < map.count, "permutation index out of range")
        return Int(map.forward[i])
    }

    /// Calls `body` with the forward map (key bit -> position).
    func withForward<R>(_ body: (UnsafeBufferPointer<UInt32>) throws -> R) rethrows -> R {
        try withExtendedLifetime(map) { try body(UnsafeBufferPointer(start: map.forward, count: map.count)) }
    }

    /// Calls `body` with the forward map (n entries) and the network, for the C engine, which
    /// borrows the map while something keeps this permutation alive and copies the network.
    func withForwardAndNetwork<R>(_ body: (UnsafePointer<UInt32>, UnsafePointer<qkd_cascade_network>) throws -> R) rethrows -> R {
        try withExtendedLifetime(map) {
            try withUnsafePointer(to: network) { try body(map.forward, $0) }
        }
    }

    /// The backward map as an array, entry by entry from the inverse network (tests).
    var backwardArray: [UInt32] { (0..<count).map { UInt32(backward($0)) } }
}

/// The forward map of a ``PassPermutation`` (4n bytes, public data), from `qkd_cascade_alloc`:
/// huge pages where the kernel grants them, recycled between rounds, because faulting in a
/// fresh 4 MB array page by page cost as much as drawing the permutation.
private final class ForwardMap: @unchecked Sendable {  // Immutable after init.
    let count: Int
    let forward: UnsafeMutablePointer<UInt32>

    init(count n: Int) {
        count = n
        let bytes = max(1, n) * MemoryLayout<UInt32>.stride
        guard let f = qkd_cascade_alloc(bytes) else {
            fatalError("out of memory for the Cascade permutation (\(n) indices)")
        }
        forward = f.bindMemory(to: UInt32.self, capacity: max(1, n))
    }

    deinit {
        qkd_cascade_free(forward, max(1, count) * MemoryLayout<UInt32>.stride)
    }
}

/// Bit `forward[i]` of the result is bit `i` of `bits`, for `i < n` (the C kernel
/// `qkd_cascade_scatter`; addresses depend on the public permutation only).
/// - Parameters:
///   - bits: the packed source bits.
///   - forward: n distinct target indices below n.
///   - n: the bit count.
/// - Returns: `ceil(n / 64)` words, bits past `n` zero.
func scatterBits(_ bits: [UInt64], to forward: UnsafeBufferPointer<UInt32>, count n: Int) -> [UInt64] {
    precondition(forward.count >= n && bits.count >= (n + 63) >> 6)
    return [UInt64](unsafeUninitializedCapacity: (n + 63) >> 6) { out, count in
        bits.withUnsafeBufferPointer { kw in
            qkd_cascade_scatter(out.baseAddress, kw.baseAddress, forward.baseAddress, n)
        }
        count = (n + 63) >> 6
    }
}

/// The cyclic rotation of an `n`-bit vector towards bit 0: bit x of the result is bit
/// `(x + r) mod n` of `bits` (packed as in ``BitVector``; bits past `n` are zero in both).
/// - Parameters:
///   - bits: at least `ceil(n / 64)` words, bits past `n` zero.
///   - n: the bit count.
///   - r: the rotation, `0 <= r < n` (any value when `n == 0`).
/// - Returns: `ceil(n / 64)` words.
func cyclicRotation(_ bits: [UInt64], count n: Int, by r: Int) -> [UInt64] {
    var out = [UInt64](repeating: 0, count: (n + 63) >> 6)
    guard n > 0 else { return out }
    precondition(r >= 0 && r < n && bits.count >= out.count, "rotation out of range")
    bits.withUnsafeBufferPointer { src in
        out.withUnsafeMutableBufferPointer { dst in
            orBits(dst, at: 0, from: src, at: r, count: n - r)
            orBits(dst, at: n - r, from: src, at: 0, count: r)
        }
    }
    return out
}

/// ORs `count` bits of `src` starting at bit `sOff` into `dst` starting at bit `dOff`, 64 at a
/// time (funnel shifts); both ranges must lie inside the buffers.
@inline(__always)
private func orBits(_ dst: UnsafeMutableBufferPointer<UInt64>, at dOff: Int,
                    from src: UnsafeBufferPointer<UInt64>, at sOff: Int, count: Int) {
    var t = 0
    while t < count {
        let len = min(64, count - t)
        let o = sOff + t
        var v = src[o >> 6] >> UInt64(o & 63)
        if o & 63 != 0, (o >> 6) + 1 < src.count { v |= src[(o >> 6) + 1] << UInt64(64 - (o & 63)) }
        if len < 64 { v &= (UInt64(1) << UInt64(len)) &- 1 }
        let d = dOff + t
        dst[d >> 6] |= v << UInt64(d & 63)
        if d & 63 != 0, (d & 63) + len > 64 { dst[(d >> 6) + 1] |= v >> UInt64(64 - (d & 63)) }
        t += len
    }
}
