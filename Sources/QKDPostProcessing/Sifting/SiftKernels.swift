import QKDCrypto
internal import CQKDKernels

/// The word-level sifting loops of both roles (Spec/postprocessing.md section 3), as C kernels
/// (Sources/CQKDKernels/sift.c): PEXT compresses a word of key or test bits where BMI2 is present
/// and fast, a portable loop elsewhere (chosen once at run time).
enum SiftKernels {
    /// Alice's sifting: her basis and bit at every reported slot, the match bitmap, and her key
    /// (matched Z) and test (matched X) bits in detection order.
    /// - Parameters:
    ///   - positions: Bob's detected slots.
    ///   - slotCount: the slots of the round; `aliceBases` and `aliceBits` hold that many bits.
    ///   - aliceBases: Alice's basis per slot (1 = X).
    ///   - aliceBits: Alice's bit per slot.
    ///   - bobBases: Bob's basis per detection, `positions.count` bits.
    /// - Returns: the match bitmap words, key bits and test bits.
    /// - Throws: ``QKDError/Code/ppInconsistent`` if a position is not below `slotCount` (a report
    ///   built in memory rather than decoded, which checks it).
    static func alice(positions: [UInt64], slotCount: Int, aliceBases: BitVector, aliceBits: BitVector,
                      bobBases: BitVector) throws -> (matches: [UInt64], key: BitVector, tests: BitVector) {
        let d = positions.count
        precondition(aliceBases.count == slotCount && aliceBits.count == slotCount && bobBases.count == d)
        var matches = [UInt64](repeating: 0, count: (d + 63) >> 6)
        // At most d key and d test bits, plus one spare word (never empty, so an address exists).
        var keyWords = [UInt64](repeating: 0, count: (d + 63) >> 6 + 1)
        var testWords = [UInt64](repeating: 0, count: (d + 63) >> 6 + 1)
        var keyCount = 0, testCount = 0
        let status = positions.withUnsafeBufferPointer { pos in
            aliceBases.words.withUnsafeBufferPointer { bases in
                aliceBits.words.withUnsafeBufferPointer { bits in
                    bobBases.words.withUnsafeBufferPointer { bob in
                        matches.withUnsafeMutableBufferPointer { m in
                            keyWords.withUnsafeMutableBufferPointer { kw in
                                testWords.withUnsafeMutableBufferPointer { tw in
                                    qkd_sift_alice(pos.baseAddress, d, UInt64(slotCount), bases.baseAddress, bits.baseAddress,
                                                   bob.baseAddress, m.baseAddress, kw.baseAddress, &keyCount,
                                                   tw.baseAddress, &testCount)
                                }
                            }
                        }
                    }
                }
            }
        }
        // BitVector(words:count:) copies: wipe the scratch words, they hold Alice's key bits.
        defer {
            keyWords.withUnsafeMutableBytes { secureZero($0) }
            testWords.withUnsafeMutableBytes { secureZero($0) }
        }
        guard status == 0 else {
            throw QKDError(.ppInconsistent, "detection report: a position is not below the slot count \(slotCount)")
        }
        return (matches, BitVector(words: keyWords, count: keyCount), BitVector(words: testWords, count: testCount))
    }

    /// Bob's sifting: his key bits (matched Z) and test bits (matched X), in detection order.
    /// - Parameters:
    ///   - matches: Alice's match bitmap, one bit per detection.
    ///   - bases: Bob's bases (1 = X), as many bits.
    ///   - bits: Bob's bits, as many bits.
    /// - Returns: the key and test bits.
    static func bob(matches: BitVector, bases: BitVector, bits: BitVector) -> (key: BitVector, tests: BitVector) {
        precondition(matches.count == bases.count && bases.count == bits.count, "one match, basis and bit per detection")
        let words = (bits.count + 63) >> 6
        var keyWords = [UInt64](repeating: 0, count: words + 1)
        var testWords = [UInt64](repeating: 0, count: words + 1)
        var keyCount = 0, testCount = 0
        matches.words.withUnsafeBufferPointer { m in
            bases.words.withUnsafeBufferPointer { b in
                bits.words.withUnsafeBufferPointer { x in
                    keyWords.withUnsafeMutableBufferPointer { kw in
                        testWords.withUnsafeMutableBufferPointer { tw in
                            qkd_sift_bob(m.baseAddress, b.baseAddress, x.baseAddress, words, kw.baseAddress, &keyCount,
                                         tw.baseAddress, &testCount)
                        }
                    }
                }
            }
        }
        // BitVector(words:count:) copies: wipe the scratch words, they hold Bob's key bits.
        defer {
            keyWords.withUnsafeMutableBytes { secureZero($0) }
            testWords.withUnsafeMutableBytes { secureZero($0) }
        }
        return (BitVector(words: keyWords, count: keyCount), BitVector(words: testWords, count: testCount))
    }

    /// Whether the sifting loops use PEXT on this CPU (false when forced portable).
    static var usesPEXT: Bool { qkd_sift_uses_pext() != 0 }

    /// Forces the portable loops (true) or returns to run-time detection (false); for tests.
    static func forcePortable(_ on: Bool) { qkd_sift_force_portable(on ? 1 : 0) }

    /// The dispatched compress (PEXT) of `value` under `mask`; for tests.
    static func compress(_ value: UInt64, _ mask: UInt64) -> UInt64 { qkd_sift_compress(value, mask) }
}
