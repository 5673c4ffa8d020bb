#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Counts, per thread, the ``BitVector/wipe()`` calls that zeroed a fresh copy instead of the
/// buffer the bits lived in. A `BitVector` is a value: when another copy still shares its
/// storage, the write of a wipe first copies the words (copy on write) and zeroes the copy, so
/// the key bits stay in the shared buffer until it is freed unwiped. Key material is wiped when
/// released (DESIGN.md), so the round machines hand buffers on (``CascadeEngine/takeKey()``,
/// payloads taken out of the state) rather than wipe a shared copy; tests run a round and check
/// that this count did not move. Per thread, so parallel tests do not see each other's counts.
enum WipeAudit {
    private static let missKey = makeKey()
    private static let wipeKey = makeKey()

    private static func makeKey() -> pthread_key_t {
        var k = pthread_key_t()
        precondition(pthread_key_create(&k, nil) == 0, "pthread_key_create failed")
        return k
    }

    private static func increment(_ key: pthread_key_t) {
        let count = Int(bitPattern: pthread_getspecific(key))
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: count + 1))
    }

    /// Records one wipe of a non-empty vector; `reachedCopy` if it zeroed a fresh copy.
    static func record(reachedCopy: Bool) {
        increment(reachedCopy ? missKey : wipeKey)
    }

    /// The wipes on this thread so far that reached a copy.
    static var missesOnThisThread: Int { Int(bitPattern: pthread_getspecific(missKey)) }

    /// The wipes of non-empty vectors on this thread so far that zeroed the vector's own buffer.
    static var wipesOnThisThread: Int { Int(bitPattern: pthread_getspecific(wipeKey)) }
}
