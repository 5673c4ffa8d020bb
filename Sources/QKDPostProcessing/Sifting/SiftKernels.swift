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
        let (status, result) = withAliceOutputs(detections: d) { m, kw, keyCount, tw, testCount in
            positions.withUnsafeBufferPointer { pos in
                aliceBases.words.withUnsafeBufferPointer { bases in
                    aliceBits.words.withUnsafeBufferPointer { bits in
                        bobBases.words.withUnsafeBufferPointer { bob in
                            qkd_sift_alice(pos.baseAddress, d, UInt64(slotCount), bases.baseAddress, bits.baseAddress,
                                           bob.baseAddress, m, kw, keyCount, tw, testCount)
                        }
                    }
                }
            }
        }
        guard status == 0, let result else {
            throw QKDError(.ppInconsistent, "detection report: a position is not below the slot count \(slotCount)")
        }
        return result
    }

    /// Alice's sifting straight from the Rice stream of a detection report (C kernel
    /// `qkd_rice_decode_sift_alice`): each slot is decoded and gathered in one pass, without the
    /// array of positions. Accepts exactly the streams ``GolombRice/decode(_:count:parameter:slotCount:)``
    /// accepts (the same decoder, with the sifting as its sink).
    /// - Parameters:
    ///   - stream: the Rice stream (its arguments checked by ``GolombRice/checkArguments(streamBits:count:parameter:slotCount:)``).
    ///   - count: the detection count D.
    ///   - r: the Rice parameter.
    ///   - slotCount: the slots of the round; `aliceBases` and `aliceBits` hold that many bits.
    ///   - aliceBases: Alice's basis per slot (1 = X).
    ///   - aliceBits: Alice's bit per slot.
    ///   - bobBases: Bob's basis per detection, `count` bits.
    /// - Returns: what ``alice(positions:slotCount:aliceBases:aliceBits:bobBases:)`` returns for
    ///   the decoded positions, or nil if the stream does not decode (the caller then decodes it
    ///   the usual way, which says why).
    static func alice(stream: BitVector, count: Int, parameter r: Int, slotCount: Int, aliceBases: BitVector,
                      aliceBits: BitVector, bobBases: BitVector) -> (matches: [UInt64], key: BitVector, tests: BitVector)? {
        precondition(aliceBases.count == slotCount && aliceBits.count == slotCount && bobBases.count == count)
        precondition(r >= 0 && r <= 62 && slotCount <= 1 << 62)
        let (status, result) = withAliceOutputs(detections: count) { m, kw, keyCount, tw, testCount in
            // The stream's words hold exactly ceil(stream.count / 64) words with the bits past the
            // count zero (BitVector's invariant), which is what the decoder requires.
            stream.words.withUnsafeBufferPointer { w in
                aliceBases.words.withUnsafeBufferPointer { bases in
                    aliceBits.words.withUnsafeBufferPointer { bits in
                        bobBases.words.withUnsafeBufferPointer { bob in
                            var bad: UInt64 = 0
                            return qkd_rice_decode_sift_alice(w.baseAddress, UInt64(stream.count), count, UInt32(r), UInt64(slotCount),
                                                              bases.baseAddress, bits.baseAddress, bob.baseAddress, m, kw, keyCount,
                                                              tw, testCount, &bad)
                        }
                    }
                }
            }
        }
        return status == QKD_RICE_OK ? result : nil
    }

    /// Runs one of Alice's sifting kernels on fresh outputs for `d` detections: the match bitmap
    /// (ceil(d / 64) words), the key and test words (one more each, so never empty) and their
    /// bit counts.
    /// - Returns: the kernel's status, and the results if it is 0. The scratch words hold Alice's
    ///   key bits and are wiped either way (``BitVector/init(words:count:)`` copies them).
    private static func withAliceOutputs(
        detections d: Int,
        _ kernel: (UnsafeMutablePointer<UInt64>, UnsafeMutablePointer<UInt64>, UnsafeMutablePointer<Int>,
                   UnsafeMutablePointer<UInt64>, UnsafeMutablePointer<Int>) -> Int32
    ) -> (status: Int32, result: (matches: [UInt64], key: BitVector, tests: BitVector)?) {
        var matches = [UInt64](repeating: 0, count: max(1, (d + 63) >> 6))
        var keyWords = [UInt64](repeating: 0, count: (d + 63) >> 6 + 1)
        var testWords = [UInt64](repeating: 0, count: (d + 63) >> 6 + 1)
        var keyCount = 0, testCount = 0
        defer {
            keyWords.withUnsafeMutableBytes { secureZero($0) }
            testWords.withUnsafeMutableBytes { secureZero($0) }
        }
        let status = matches.withUnsafeMutableBufferPointer { m in
            keyWords.withUnsafeMutableBufferPointer { kw in
                testWords.withUnsafeMutableBufferPointer { tw in
                    kernel(m.baseAddress!, kw.baseAddress!, &keyCount, tw.baseAddress!, &testCount)
                }
            }
        }
        guard status == 0 else { return (status, nil) }
        matches.removeLast(matches.count - (d + 63) >> 6)
        return (status, (matches, BitVector(words: keyWords, count: keyCount), BitVector(words: testWords, count: testCount)))
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
