public import QKDCrypto

extension QKDError.Code {
    /// A detection file does not follow Spec/detections.md (the message names the line).
    public static let detectionsMalformed = QKDError.Code("sim.detections-malformed")
    /// A detection file declares a format version this build does not read.
    public static let detectionsUnsupportedVersion = QKDError.Code("sim.detections-unsupported-version")
}

/// A recorded round read from a detection file (Spec/detections.md).
public enum DetectionFile: Sendable, Equatable {
    /// Alice's side: her basis and bit for every slot.
    case alice(AliceRecord)
    /// Bob's side: slot, basis and bit of every detection.
    case bob(BobRecord)
}

/// Named limits of the detection file format (Spec/detections.md section 3).
public enum DetectionFileLimits {
    /// Most slots a file may declare: 2^32 (text files beyond that are impractical; split rounds).
    public static let maxSlots = 1 << 32
    /// Most detections in a Bob file: 2^27, the post-processing round limit.
    public static let maxDetections = 1 << 27
}

/// Writes detection files (Spec/detections.md). The serializer and the parser are separate
/// types (STYLE.md, "Codecs").
public enum DetectionFileWriter {
    /// Encodes Alice's record: one line per slot.
    /// - Parameter record: the record.
    /// - Returns: the file bytes.
    public static func encode(_ record: AliceRecord) -> [UInt8] {
        var out = Array("qkd-detections 1\nrole alice\nslots \(record.slotCount)\n".utf8)
        for s in 0..<record.slotCount {
            let basis = (record.bases[s >> 6] >> UInt64(s & 63)) & 1 == 1
            let bit = (record.bits[s >> 6] >> UInt64(s & 63)) & 1
            out.append(contentsOf: Array("\(s) ".utf8))
            out.append(basis ? UInt8(ascii: "X") : UInt8(ascii: "Z"))
            out.append(UInt8(ascii: " "))
            out.append(UInt8(ascii: "0") + UInt8(bit))
            out.append(UInt8(ascii: "\n"))
        }
        return out
    }

    /// Encodes Bob's record: one line per detection.
    /// - Parameter record: the record.
    /// - Returns: the file bytes.
    public static func encode(_ record: BobRecord) -> [UInt8] {
        var out = Array("qkd-detections 1\nrole bob\nslots \(record.slotCount)\n".utf8)
        for (i, s) in record.slots.enumerated() {
            let basis = (record.bases[i >> 6] >> UInt64(i & 63)) & 1 == 1
            let bit = (record.bits[i >> 6] >> UInt64(i & 63)) & 1
            out.append(contentsOf: Array("\(s) ".utf8))
            out.append(basis ? UInt8(ascii: "X") : UInt8(ascii: "Z"))
            out.append(UInt8(ascii: " "))
            out.append(UInt8(ascii: "0") + UInt8(bit))
            out.append(UInt8(ascii: "\n"))
        }
        return out
    }
}

/// Parses detection files (Spec/detections.md). Pure: the caller reads the file.
public enum DetectionFileParser {
    /// Parses a whole file.
    /// - Parameter bytes: the file contents.
    /// - Returns: Alice's or Bob's record.
    /// - Throws: ``QKDError/Code/detectionsMalformed`` naming the first bad line, or
    ///   ``QKDError/Code/detectionsUnsupportedVersion``.
    public static func parse(_ bytes: [UInt8]) throws -> DetectionFile {
        var lines = LineReader(bytes)
        guard let (n1, magic) = lines.next() else { throw bad(1, "the file is empty; it must start with 'qkd-detections 1'") }
        let m = magic.split(separator: " ")
        guard m.count == 2, m[0] == "qkd-detections" else { throw bad(n1, "the first line must be 'qkd-detections 1'") }
        guard m[1] == "1" else {
            throw QKDError(.detectionsUnsupportedVersion, "line \(n1): detection file version \(m[1]) is not supported; this build reads version 1")
        }
        guard let (n2, roleLine) = lines.next() else { throw bad(n1 + 1, "missing 'role alice' or 'role bob'") }
        let isAlice: Bool
        switch roleLine {
        case "role alice": isAlice = true
        case "role bob": isAlice = false
        default: throw bad(n2, "expected 'role alice' or 'role bob', found '\(roleLine.prefix(40))'")
        }
        guard let (n3, slotsLine) = lines.next() else { throw bad(n2 + 1, "missing 'slots N'") }
        let sp = slotsLine.split(separator: " ")
        guard sp.count == 2, sp[0] == "slots", let slotCount = Int(sp[1]), slotCount >= 0,
              slotCount <= DetectionFileLimits.maxSlots else {
            throw bad(n3, "expected 'slots N' with 0 <= N <= \(DetectionFileLimits.maxSlots)")
        }
        var slots: [UInt64] = []
        var bases: [UInt64] = []
        var bits: [UInt64] = []
        var count = 0
        var previous = -1
        while let (n, line) = lines.next() {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count == 3, let slot = Int(f[0]), slot >= 0 else {
                throw bad(n, "expected '<slot> <Z|X> <0|1>'")
            }
            guard slot < slotCount else { throw bad(n, "slot \(slot) is not below the declared slot count \(slotCount)") }
            guard slot > previous else { throw bad(n, "slot \(slot) does not increase (previous \(previous))") }
            if isAlice, slot != previous + 1 { throw bad(n, "Alice's file must list every slot; slot \(previous + 1) is missing") }
            let basis: UInt64
            switch f[1] { case "Z": basis = 0; case "X": basis = 1; default: throw bad(n, "basis must be Z or X") }
            let bit: UInt64
            switch f[2] { case "0": bit = 0; case "1": bit = 1; default: throw bad(n, "bit must be 0 or 1") }
            if !isAlice {
                guard count < DetectionFileLimits.maxDetections else { throw bad(n, "more than \(DetectionFileLimits.maxDetections) detections; split the round") }
                slots.append(UInt64(slot))
            }
            if count & 63 == 0 { bases.append(0); bits.append(0) }
            bases[count >> 6] |= basis << UInt64(count & 63)
            bits[count >> 6] |= bit << UInt64(count & 63)
            count += 1
            previous = slot
        }
        if isAlice {
            guard count == slotCount else { throw bad(lines.lineNumber, "Alice's file lists \(count) of \(slotCount) slots") }
            return .alice(AliceRecord(slotCount: slotCount, bits: bits, bases: bases))
        }
        return .bob(BobRecord(slotCount: slotCount, slots: slots, bases: bases, bits: bits))
    }

    private static func bad(_ line: Int, _ what: String) -> QKDError {
        QKDError(.detectionsMalformed, "detection file line \(line): \(what) (Spec/detections.md)")
    }
}

/// Splits bytes into lines, skipping blank lines and `#` comments, trimming a trailing `\r`.
struct LineReader {
    private let bytes: [UInt8]
    private var offset = 0
    private(set) var lineNumber = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func next() -> (Int, Substring)? {
        while offset < bytes.count {
            lineNumber += 1
            var end = offset
            while end < bytes.count, bytes[end] != UInt8(ascii: "\n") { end += 1 }
            var slice = bytes[offset..<end]
            offset = end + 1
            if slice.last == UInt8(ascii: "\r") { slice = slice.dropLast() }
            let text = Substring(String(decoding: slice, as: UTF8.self))
            if text.isEmpty || text.hasPrefix("#") { continue }
            return (lineNumber, text)
        }
        return nil
    }
}
