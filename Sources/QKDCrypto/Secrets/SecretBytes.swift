#if canImport(FoundationEssentials)
public import FoundationEssentials  // ContiguousBytes
#else
public import Foundation
#endif
internal import CSodium
#if DEBUG
import Synchronization
#endif

/// Key material in memory: a fixed-size byte buffer that is locked into RAM where the OS allows
/// (`sodium_mlock`, which also excludes it from core dumps) and wiped with `sodium_memzero` when
/// the last reference goes away.
///
/// - The bytes are written once, at creation, and are immutable afterwards; that is what makes
///   the type `Sendable`.
/// - ``description`` and ``debugDescription`` never show the bytes, so a `SecretBytes` can be
///   interpolated into a log message without leaking it.
/// - `==` is constant-time in the contents (`sodium_memcmp`); lengths are not secret.
public final class SecretBytes: @unchecked Sendable, Equatable, CustomStringConvertible,
    CustomDebugStringConvertible
{
    private let base: UnsafeMutableRawPointer
    /// The number of bytes held.
    public let count: Int
    /// Whether `mlock` succeeded. False where RLIMIT_MEMLOCK is exhausted; the bytes are still
    /// wiped on release, but could be swapped out meanwhile.
    public let isLocked: Bool

    /// Creates a buffer of `count` bytes and lets `initializer` write them.
    /// - Parameters:
    ///   - count: the number of bytes, >= 0.
    ///   - initializer: writes all `count` bytes. If it throws, the buffer is wiped and released.
    /// - Throws: whatever `initializer` throws.
    public init(count: Int, initializingWith initializer: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        precondition(count >= 0, "SecretBytes count must not be negative")
        Sodium.ensureInitialized()
        let allocation = max(count, 1)
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: allocation, alignment: 64)
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: allocation)
        let locked = sodium_mlock(pointer, allocation) == 0
        do {
            try initializer(UnsafeMutableRawBufferPointer(start: pointer, count: count))
        } catch {
            SecretBytes.release(pointer, allocation, locked)
            throw error
        }
        self.base = pointer
        self.count = count
        self.isLocked = locked
    }

    /// Creates a buffer holding a copy of `bytes`. The caller remains responsible for wiping the
    /// source, if it was secret.
    /// - Parameter bytes: the bytes to copy.
    public convenience init(copying bytes: some ContiguousBytes) {
        self.init(copyingRaw: bytes)
    }

    private convenience init(copyingRaw bytes: some ContiguousBytes) {
        let n = bytes.withUnsafeBytes { $0.count }
        self.init(count: n) { destination in
            bytes.withUnsafeBytes { source in
                if n > 0 { destination.copyMemory(from: source) }
            }
        }
    }

    /// Creates `count` bytes drawn from `random`.
    /// - Parameters:
    ///   - count: the number of bytes.
    ///   - random: the source to draw from.
    public convenience init(randomCount count: Int, using random: inout some RandomSource) {
        self.init(count: count) { random.fill($0) }
    }

    deinit {
        SecretBytes.release(base, max(count, 1), isLocked)
    }

    private static func release(_ pointer: UnsafeMutableRawPointer, _ allocation: Int, _ locked: Bool) {
        sodium_memzero(pointer, allocation)
        if locked { _ = sodium_munlock(pointer, allocation) }  // munlock also zeroes.
        #if DEBUG
        if let observer = releaseObserverLock.withLock({ $0 }) {
            observer(UnsafeRawBufferPointer(start: pointer, count: allocation))
        }
        #endif
        pointer.deallocate()
    }

    #if DEBUG
    /// Test hook: sees each buffer after it was wiped and before it is freed, so a test can prove
    /// the wipe happened on the real release path. Debug builds only.
    static var releaseObserver: (@Sendable (UnsafeRawBufferPointer) -> Void)? {
        get { releaseObserverLock.withLock { $0 } }
        set { releaseObserverLock.withLock { $0 = newValue } }
    }
    private static let releaseObserverLock = Mutex<(@Sendable (UnsafeRawBufferPointer) -> Void)?>(nil)
    #endif

    /// Calls `body` with the bytes. The pointer must not escape `body`.
    /// - Parameter body: reads the bytes.
    /// - Returns: what `body` returns.
    /// - Throws: what `body` throws.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// Copies the bytes in `range` into a new `SecretBytes`.
    /// - Parameter range: a range within `0..<count`.
    /// - Returns: the copy.
    public func slice(_ range: Range<Int>) -> SecretBytes {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "SecretBytes slice out of range")
        return SecretBytes(count: range.count) { destination in
            if range.count > 0 {
                destination.copyMemory(from: UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count))
            }
        }
    }

    /// Constant-time comparison of the contents (`sodium_memcmp`). Different lengths compare
    /// unequal; the length itself is not secret.
    public static func == (lhs: SecretBytes, rhs: SecretBytes) -> Bool {
        guard lhs.count == rhs.count else { return false }
        if lhs.count == 0 { return true }
        return sodium_memcmp(lhs.base, rhs.base, lhs.count) == 0
    }

    /// "SecretBytes(32 bytes)": never the contents.
    public var description: String { "SecretBytes(\(count) bytes)" }
    /// The same as ``description``: never the contents.
    public var debugDescription: String { description }
}

/// Constant-time equality of two byte strings of the same length (`sodium_memcmp`).
/// - Parameters:
///   - a: the first string.
///   - b: the second string.
/// - Returns: true if the lengths match and every byte matches; the time taken depends only on
///   the length.
public func constantTimeEqual(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    guard a.count == b.count else { return false }
    guard a.count > 0 else { return true }
    Sodium.ensureInitialized()
    return sodium_memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0
}

/// Overwrites `buffer` with zeros in a way the compiler may not remove (`sodium_memzero`).
/// - Parameter buffer: the bytes to wipe.
public func secureZero(_ buffer: UnsafeMutableRawBufferPointer) {
    guard let base = buffer.baseAddress, buffer.count > 0 else { return }
    sodium_memzero(base, buffer.count)
}

/// Wipes the contents of `array` (`sodium_memzero`) and empties it.
/// - Parameter array: a buffer that held secret bytes.
public func secureZero(_ array: inout [UInt8]) {
    array.withUnsafeMutableBytes { secureZero($0) }
    array.removeAll()
}
