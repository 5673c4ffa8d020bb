import QKDCrypto
@testable import QKDPostProcessing

// The Swift Cascade engine as it stood before its step moved to C (commit c837bd1), without
// its prefetch hints: the reference the C kernel `qkd_cascade_engine` must match bit for bit
// (CascadeEngineTests compares every exchanged bitmap over many random cases). Test code only.

struct ReferenceCascadeEngine {
    enum Role { case alice, bob }
    enum Pending: Equatable { case newPass(Int), bisect, done }

    /// An open binary search. Stored in 32-bit fields (24 bytes instead of 40): every step
    /// walks the whole list several times, and tens of thousands of searches then stay in L2.
    /// Positions and heap indices fit, as blocks are below 2^31 bits (``init(role:key:schedule:seed:)``).
    struct Search {
        var pass: Int32
        var block: Int32
        private var lower32: UInt32
        private var upper32: UInt32
        private var node32: UInt32 = 1
        var live = true

        init(pass: Int32, block: Int32, lower: Int, upper: Int) {
            self.pass = pass
            self.block = block
            lower32 = UInt32(truncatingIfNeeded: lower)
            upper32 = UInt32(truncatingIfNeeded: upper)
        }

        var lower: Int {
            get { Int(lower32) }
            set { lower32 = UInt32(truncatingIfNeeded: newValue) }
        }
        var upper: Int {
            get { Int(upper32) }
            set { upper32 = UInt32(truncatingIfNeeded: newValue) }
        }
        /// Heap index of the current range in its block's bisection tree (root 1, children
        /// 2i and 2i + 1): the key of the sub-block parity cache.
        var node: Int {
            get { Int(node32) }
            set { node32 = UInt32(truncatingIfNeeded: newValue) }
        }

        /// Moves to the half that holds the odd error parity: the left one (`[lower, mid)`,
        /// node 2i) if `leftOdd`, else the right one (node 2i + 1).
        @inline(__always)
        mutating func descend(leftOdd: Bool) {
            let mid = lower + (upper - lower) / 2
            if leftOdd {
                upper = mid
                node = 2 * node
            } else {
                lower = mid
                node = 2 * node + 1
            }
        }
    }

    let role: Role
    let n: Int
    let schedule: CascadeSchedule
    /// Per pass: log2 of the block size if it is a power of two (the improved schedule), else
    /// -1. A flip finds its block in every started pass; a shift there instead of a 64-bit
    /// division (tens of cycles) matters at tens of thousands of flips times ten passes.
    private let blockShifts: [Int]
    /// This side's key in each started pass's order, for the passes in ``isBuilt``;
    /// `permuted[0]` is the key itself (pass 0
    /// is not shuffled, Brassard and Salvail 1993). Bob's copies follow his corrections.
    private(set) var permuted: [BitVector] = []
    /// Per started pass: whether `permuted[p]` holds the pass's key. A pass of at most two
    /// blocks (the late passes of the improved schedule, blocks of n/2) gets its top-level
    /// parities from ``halfMasks`` with word operations, and its permuted key only when a
    /// search opens in it; most late passes find no odd block, so most never build one.
    private var isBuilt: [Bool] = []
    /// Per block size k (of passes of at most two blocks): the bitmap of the rotated-key
    /// positions `backward[j]`, `j < k`, i.e. of block 0 before the rotation. Public data (a
    /// function of the shared permutation).
    private var halfMasks: [Int: [UInt64]] = [:]
    /// The round's one random permutation, drawn when pass 1 starts; pass `p >= 1` is this
    /// permutation after a cyclic rotation of the key by `rotations[p]` (Spec/postprocessing.md
    /// section 5.2). Drawing one permutation instead of one per pass took 40% of Cascade's time
    /// off.
    private var permutation: PassPermutation?
    /// The permutation's backward map, inverted from its forward map here (the C engine
    /// computes its entries with the inverse network instead: the two are checked against each
    /// other).
    private var backwardMap: [UInt32] = []
    /// The xoshiro256** stream that drew ``permutation``; it goes on to give the rotations.
    private var permutationStream: Xoshiro256StarStar?
    /// Per started pass: its rotation r (0 for pass 0).
    private var rotations: [Int] = []
    /// Per started pass and block: 1 if the block is known to hold an odd number of errors.
    private var blockOdd: [UInt8] = []
    /// Per started pass and block: index into `searches`, or -1.
    private var searchOf: [Int32] = []
    /// Per started pass: the index of its block 0 in ``blockOdd`` and ``searchOf`` (flat
    /// arrays: a nested array paid a uniqueness check per level on every write).
    private var passOffsets: [Int] = []
    private var searches: [Search] = []
    /// Per started pass: the error parity (Alice's XOR Bob's) of every sub-block whose parity
    /// has been disclosed or follows from a disclosed one (Spec/postprocessing.md section 5.3).
    /// Kept current under flips; a search whose next left half is known moves on without a query.
    private var known = SubBlockParityCache()
    /// Per started pass: whether any sub-block parity of it is cached.
    private var knownInPass: [Bool] = []
    private var random: DeterministicRandomSource
    /// Bits corrected so far (a bit is never corrected twice in an honest run).
    private var corrected: BitVector
    private(set) var pending: Pending = .newPass(0)
    /// Bits flipped (Bob) or mirrored as flipped (Alice): the error count found.
    private(set) var corrections = 0
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
        // k < 2^31 (``Search`` keeps them in 32 bits); the round limits cap Cascade at 2^27.
        precondition(key.count < 1 << 31, "Cascade keys are below 2^31 bits")
        self.role = role
        self.n = key.count
        self.schedule = schedule
        blockShifts = schedule.blockSizes.map { $0.nonzeroBitCount == 1 ? $0.trailingZeroBitCount : -1 }
        self.random = try DeterministicRandomSource(seed: seed)
        permuted = [key]
        corrected = BitVector(count: key.count)
        if n == 0 { pending = .done }
    }

    var passCount: Int { schedule.blockSizes.count }

    private func blockCount(_ pass: Int) -> Int {
        let k = schedule.blockSizes[pass]
        return (n + k - 1) / k
    }

    /// The key bit at `position` of started pass `p`.
    @inline(__always)
    private func keyBit(pass p: Int, position: Int) -> Int {
        guard p > 0, permutation != nil else { return position }
        let i = Int(backwardMap[position]) + rotations[p]
        return i >= n ? i - n : i
    }

    /// The position of key bit `bit` in started pass `p`.
    @inline(__always)
    private func passPosition(_ p: Int, keyBit bit: Int) -> Int {
        guard p > 0, let perm = permutation else { return bit }
        let r = rotations[p]
        return perm.forward(bit >= r ? bit - r : bit - r + n)
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
                permutation = perm
                permutationStream = stream
                backwardMap = [UInt32](repeating: 0, count: n)
                for i in 0..<n { backwardMap[perm.forward(i)] = UInt32(i) }
            }
            // r uniform in 0..<n: floor(u n / 2^64), as the Fisher-Yates draws.
            let r = Int(permutationStream!.next().multipliedFullWidth(by: UInt64(n)).high)
            rotations.append(r)
            permuted.append(BitVector(count: 0))
            isBuilt.append(false)
            if blockCount(pass) > 2 { buildPass(pass) }
        }
        passOffsets.append(blockOdd.count)
        blockOdd.append(contentsOf: repeatElement(0, count: blockCount(pass)))
        known.addPass(blockSize: schedule.blockSizes[pass], blockCount: blockCount(pass))
        knownInPass.append(false)
        searchOf.append(contentsOf: repeatElement(-1, count: blockCount(pass)))
    }

    /// Arranges this side's current key in started pass `pass`'s order (Bob's current key:
    /// building late gives the same bits as building at the start and flipping since).
    private mutating func buildPass(_ pass: Int) {
        if isBuilt[pass] { return }
        let r = rotations[pass]
        // Position j holds rotated[backward[j]], rotated[x] = key[(x + r) mod n]: bit by bit
        // (the C engine scatters through the forward map instead).
        var rotated = BitVector(words: cyclicRotation(permuted[0].words, count: n, by: r), count: n)
        var words = BitVector(count: n)
        for j in 0..<n where rotated[Int(backwardMap[j])] { words[j] = true }
        rotated.wipe()  // A copy of the key.
        permuted[pass] = words
        isBuilt[pass] = true
    }

    /// The top-level parities of started pass `pass` of at most two blocks, without its
    /// permuted key: block 0 holds the rotated-key bits at the positions of the mask, so its
    /// parity is that of (rotated key AND mask); block 1's is the key parity minus block 0's.
    private mutating func halfPassParities(_ pass: Int) -> UInt64 {
        let k = schedule.blockSizes[pass]
        if halfMasks[k] == nil {
            var mask = [UInt64](repeating: 0, count: (n + 63) >> 6)
            for j in 0..<min(k, n) { mask[Int(backwardMap[j]) >> 6] |= UInt64(1) << UInt64(backwardMap[j] & 63) }
            halfMasks[k] = mask
        }
        var rotated = cyclicRotation(permuted[0].words, count: n, by: rotations[pass])
        defer { rotated.withUnsafeMutableBytes { secureZero($0) } }  // A copy of the key.
        var first: UInt64 = 0, all: UInt64 = 0
        halfMasks[k]!.withUnsafeBufferPointer { m in
            for i in rotated.indices {
                first ^= rotated[i] & m[i]
                all ^= rotated[i]
            }
        }
        let p0 = UInt64(first.nonzeroBitCount & 1)
        return blockCount(pass) == 1 ? UInt64(all.nonzeroBitCount & 1) : p0 | ((p0 ^ UInt64(all.nonzeroBitCount & 1)) << 1)
    }

    /// The number of bits the current step's messages carry.
    mutating func queryCount() -> Int {
        switch pending {
        case .done: return 0
        case .newPass(let p):
            if passOffsets.count == p { startPass(p) }
            return blockCount(p)
        case .bisect: return searches.count
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
            words[0] = halfPassParities(p)
        case .newPass(let p):
            let k = schedule.blockSizes[p]
            permuted[p].words.withUnsafeBufferPointer { kw in
                words.withUnsafeMutableBufferPointer { out in
                    for b in 0..<count {
                        out[b >> 6] |= rangeParity(kw, b * k, min(n, (b + 1) * k)) << UInt64(b & 63)
                    }
                }
            }
        case .bisect:
            for s in searches where !isBuilt[Int(s.pass)] { buildPass(Int(s.pass)) }
            withPassWords { keys in
                searches.withUnsafeBufferPointer { sp in
                    words.withUnsafeMutableBufferPointer { out in
                        for i in 0..<sp.count {
                            let s = sp[i]
                            let mid = s.lower + (s.upper - s.lower) / 2
                            let parity = s.lower < mid ? rangeParity(keys[Int(s.pass)], s.lower, mid) : 0
                            out[i >> 6] |= parity << UInt64(i & 63)
                        }
                    }
                }
            }
        }
        return BitVector(words: words, count: count)
    }

    /// Calls `body` with the words of every started pass's permuted key (empty for a pass not
    /// built): one buffer access per pass, not a retain and release per search.
    private func withPassWords<R>(_ body: ([UnsafeBufferPointer<UInt64>]) -> R) -> R {
        var buffers: [UnsafeBufferPointer<UInt64>] = []
        buffers.reserveCapacity(permuted.count)
        func nest(_ p: Int) -> R {
            if p == permuted.count { return body(buffers) }
            return permuted[p].words.withUnsafeBufferPointer { b in
                buffers.append(b)
                return nest(p + 1)
            }
        }
        return nest(0)
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

    /// Applies the replies of the current step (both sides) and moves to the next step.
    /// - Throws: ``QKDError/Code/ppInconsistent`` if the count is not the expected one.
    mutating func apply(_ replies: BitVector) throws {
        let expected = queryCount()
        guard replies.count == expected else {
            throw QKDError(.ppInconsistent, "Cascade step \(steps): \(replies.count) replies, expected \(expected)")
        }
        disclosedParities += expected
        steps += 1
        known.prepareForWrites()  // Every cache write of this step happens below.
        switch pending {
        case .done:
            return
        case .newPass(let p):
            let k = schedule.blockSizes[p]
            for b in 0..<expected where replies.bit(b) == 1 {
                blockOdd[passOffsets[p] + b] = 1
                openSearch(pass: p, block: b, lower: b * k, upper: min(n, (b + 1) * k))
            }
            // The next pass starts only when this one's searches are done.
            startedPassCount = p + 1
        case .bisect:
            // The list is taken out of self for the loop: writes through a buffer pointer skip
            // a uniqueness check per field.
            var list = searches
            searches = []
            list.withUnsafeMutableBufferPointer { sp in
                var lastPass = -1
                for i in 0..<expected {
                    var s = sp[i]
                    let p = Int(s.pass)
                    // The search's range holds an odd number of errors, so the right half's
                    // error parity is the complement of the left half's: both are now known.
                    let left = known.base(pass: p, block: Int(s.block)) + 2 * s.node
                    let leftOdd = replies.bit(i) == 1
                    known.set(pass: p, left, leftOdd)
                    known.set(pass: p, left + 1, !leftOdd)
                    if p != lastPass { knownInPass[p] = true; lastPass = p }
                    s.descend(leftOdd: leftOdd)
                    sp[i] = s
                }
            }
            searches = list
        }
        try settle()
        compactSearches()
        if !searches.isEmpty {
            pending = .bisect
        } else if startedPassCount < passCount {
            pending = .newPass(startedPassCount)
        } else {
            pending = .done
        }
    }

    private var startedPassCount = 0

    /// Drops ended searches, keeping the order, and points ``searchOf`` at the new indices. A
    /// live search's entry already holds its index (set when it opened or last moved; only its
    /// own end clears it), so only moved searches are written.
    private mutating func compactSearches() {
        let offsets = passOffsets
        var list = searches, index = searchOf
        searches = []
        searchOf = []
        var kept = 0
        list.withUnsafeMutableBufferPointer { sp in
            index.withUnsafeMutableBufferPointer { so in
                for i in 0..<sp.count where sp[i].live {
                    let flat = offsets[Int(sp[i].pass)] + Int(sp[i].block)
                    assert(so[flat] == Int32(i), "searchOf out of step with the search list")
                    if kept != i {
                        sp[kept] = sp[i]
                        so[flat] = Int32(kept)
                    }
                    kept += 1
                }
            }
        }
        list.removeLast(list.count - kept)
        searches = list
        searchOf = index
    }


    private mutating func openSearch(pass: Int, block: Int, lower: Int, upper: Int) {
        searchOf[passOffsets[pass] + block] = Int32(searches.count)
        searches.append(Search(pass: Int32(pass), block: Int32(block), lower: lower, upper: upper))
    }

    /// Resolves every search that has narrowed to one bit, flips that bit, and opens searches on
    /// blocks that became odd, until nothing changes.
    /// - Throws: ``QKDError/Code/ppInconsistent`` if a bit would be corrected twice.
    private mutating func settle() throws {
        var index = 0
        var touched: [(Int, Int)] = []
        while true {
            while index < searches.count {
                if searches[index].live { advanceFromCache(index) }
                let s = searches[index]
                if s.live && s.upper - s.lower == 1 {
                    searches[index].live = false
                    searchOf[passOffsets[Int(s.pass)] + Int(s.block)] = -1
                    let p = Int(s.pass)
                    let bit = keyBit(pass: p, position: s.lower)
                    // Honest replies make every correction fix a real error, so no bit is flipped
                    // twice; a second flip means the peer's parities contradict each other, and
                    // wrong cached parities could otherwise cycle here without a round trip.
                    guard !corrected[bit] else {
                        throw QKDError(.ppInconsistent, "Cascade would correct bit \(bit) a second time; the peer's parities contradict each other (Spec/postprocessing.md section 5.3)")
                    }
                    corrected[bit] = true
                    flip(bit, touched: &touched)
                }
                index += 1
            }
            // Searches before `index` need no second look: cache entries are only added in
            // apply(_:), and a flip toggles only nodes containing the flipped bit, which ends
            // every search whose range holds it. So only the searches opened now can move.
            let firstNew = searches.count
            var opened = false
            for (p, b) in touched where blockOdd[passOffsets[p] + b] == 1 && searchOf[passOffsets[p] + b] < 0 {
                let k = schedule.blockSizes[p]
                openSearch(pass: p, block: b, lower: b * k, upper: min(n, (b + 1) * k))
                opened = true
            }
            touched.removeAll(keepingCapacity: true)
            if !opened { break }
            index = firstNew
        }
    }

    /// Moves search `i` down its block's tree while the left half's error parity is known.
    private mutating func advanceFromCache(_ i: Int) {
        var s = searches[i]
        let p = Int(s.pass)
        guard knownInPass[p] else { return }
        let base = known.base(pass: p, block: Int(s.block))
        while s.upper - s.lower > 1, let leftOdd = known.get(pass: p, base + 2 * s.node) {
            s.descend(leftOdd: leftOdd)
        }
        searches[i] = s
    }

    /// Toggles the known error parity of every cached sub-block of `block` in `pass` that
    /// contains `position`. Cached sub-blocks form paths from the block's root, so the walk stops
    /// at the first one not in the cache.
    private mutating func toggleKnown(pass p: Int, block b: Int, position: Int) {
        guard knownInPass[p] else { return }
        let k = schedule.blockSizes[p]
        var lower = b * k, upper = min(n, (b + 1) * k), node = 1
        let base = known.base(pass: p, block: b)
        while upper - lower > 1 {
            let mid = lower + (upper - lower) / 2
            if position < mid { upper = mid; node = 2 * node } else { lower = mid; node = 2 * node + 1 }
            guard known.toggle(pass: p, base + node) else { return }
        }
    }

    /// Flips key bit `bit` (Bob's copies; Alice only mirrors the bookkeeping) and toggles the
    /// error parity of its block in every started pass.
    private mutating func flip(_ bit: Int, touched: inout [(Int, Int)]) {
        corrections += 1
        for p in 0..<startedPassCount {
            let position = passPosition(p, keyBit: bit)
            if role == .bob && isBuilt[p] { permuted[p].flip(position) }
            let shift = blockShifts[p]
            let b = shift >= 0 ? position >> shift : position / schedule.blockSizes[p]
            let flat = passOffsets[p] + b
            blockOdd[flat] ^= 1
            toggleKnown(pass: p, block: b, position: position)
            let si = searchOf[flat]
            if si >= 0, searches[Int(si)].live,
               position >= searches[Int(si)].lower, position < searches[Int(si)].upper {
                searches[Int(si)].live = false  // Its range now holds an even number of errors.
                searchOf[flat] = -1
            }
            touched.append((p, b))
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


