import QKDCrypto
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reserved-but-unserved pad bytes in memory: one chunk, `[start, start + count)` of a stream.
///
/// Unlike ``SecretBytes`` (immutable by contract) this buffer is wiped piece by piece: every
/// pad is zeroed in the cache the moment it is served, so a served pad lives only in the
/// caller's copy. Locked with mlock(2) where the limit allows; wiped and unlocked on release.
/// Only ``KeyPool`` touches it, under its mutex: that is what the unchecked `Sendable` rests on.
final class PadCache: @unchecked Sendable {
    let start: UInt64
    let count: Int
    private let base: UnsafeMutableRawPointer
    private let locked: Bool

    init(start: UInt64, count: Int) {
        self.start = start
        self.count = count
        base = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 64)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: max(count, 1))
        locked = mlock(base, max(count, 1)) == 0
    }

    deinit {
        secureZero(UnsafeMutableRawBufferPointer(start: base, count: max(count, 1)))
        if locked { _ = munlock(base, max(count, 1)) }
        base.deallocate()
    }

    /// The whole buffer, for filling.
    var mutableBytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: base, count: count) }

    /// Stream offsets `[offset, offset + n)` as a buffer (must lie inside the cache).
    func bytes(at offset: UInt64, count n: Int) -> UnsafeRawBufferPointer {
        precondition(offset >= start && offset - start + UInt64(n) <= UInt64(count), "pad cache range")
        return UnsafeRawBufferPointer(start: base + Int(offset - start), count: n)
    }

    /// Zeroes stream offsets `[offset, offset + n)` once served.
    func wipe(at offset: UInt64, count n: Int) {
        secureZero(UnsafeMutableRawBufferPointer(mutating: bytes(at: offset, count: n)))
    }
}

/// One direction's reservation state (Spec/keypool.md, "Served offset and durable watermark").
///
/// Three offsets, always `served <= durable <= length`:
/// - `length`: bytes ever appended to the stream (durable);
/// - `durable`: the durable watermark; every pad below it is spent as far as any future
///   process is concerned (durable, written before any pad below it is returned);
/// - `served`: the next pad this process hands out (memory only). After a crash the new
///   process starts at `durable`: pads in `[served, durable)` of the dead process are wasted,
///   never reused.
/// Pads in `[served, durable)` are held in ``cache``; a request that fits is served from it
/// with no I/O. Otherwise the pool moves `durable` forward by at least a chunk in one
/// transaction, then serves. This struct is pure accounting; ``KeyPool`` does the I/O.
struct ReservationWindow {
    var length: UInt64
    var durable: UInt64
    var served: UInt64
    var cache: PadCache?

    enum Plan: Equatable {
        /// Serve from the cache: `[served, served + n)` lies below `durable`.
        case fromMemory
        /// First make `durable` = the value durable, loading `[durable, value)`.
        case extend(to: UInt64)
        /// Fewer than `n` bytes remain; nothing changes.
        case exhausted(remaining: UInt64)
    }

    init(length: UInt64, durable: UInt64) {
        self.length = length
        self.durable = durable
        self.served = durable
    }

    /// Unreserved-or-unserved bytes this process can still hand out.
    var remaining: UInt64 { length - served }

    func plan(byteCount n: UInt64, chunkBytes: UInt64) -> Plan {
        guard n <= remaining else { return .exhausted(remaining: remaining) }
        if served + n <= durable { return .fromMemory }
        return .extend(to: min(length, max(served + n, durable + chunkBytes)))
    }

    /// After `[durable, newDurable)` was made durable and loaded into `loaded`, merges it with
    /// the unserved rest of the old cache.
    mutating func install(newDurable: UInt64, loaded: PadCache) {
        precondition(loaded.start == durable && loaded.start + UInt64(loaded.count) == newDurable)
        let merged = PadCache(start: served, count: Int(newDurable - served))
        if served < durable, let old = cache {
            let n = Int(durable - served)
            merged.mutableBytes.baseAddress!.copyMemory(from: old.bytes(at: served, count: n).baseAddress!, byteCount: n)
            old.wipe(at: served, count: n)
        }
        if loaded.count > 0 {
            (merged.mutableBytes.baseAddress! + Int(durable - served))
                .copyMemory(from: loaded.bytes(at: loaded.start, count: loaded.count).baseAddress!, byteCount: loaded.count)
        }
        cache = merged
        durable = newDurable
    }

    /// Serves `n` bytes from the cache: copies them out through `body`, wipes them, moves `served`.
    mutating func serve<R>(byteCount n: Int, _ body: (UInt64, UnsafeRawBufferPointer) -> R) -> R {
        precondition(served + UInt64(n) <= durable, "serve beyond the durable watermark")
        let offset = served
        let cache = self.cache!
        let result = body(offset, cache.bytes(at: offset, count: n))
        cache.wipe(at: offset, count: n)
        served += UInt64(n)
        if served == durable { self.cache = nil }
        return result
    }

    /// A forward resynchronisation to `target` (>= served). Inside the reserved chunk the
    /// pads passed over are wiped and serving goes on from the cache; beyond it the cache is
    /// dropped and `durable` jumps to `target`.
    mutating func advance(to target: UInt64) {
        precondition(target >= served && target <= length)
        if target < durable, let cache {
            cache.wipe(at: served, count: Int(target - served))
            served = target
            return
        }
        if let cache, served < durable { cache.wipe(at: served, count: Int(durable - served)) }
        cache = nil
        durable = max(durable, target)
        served = target
    }
}
