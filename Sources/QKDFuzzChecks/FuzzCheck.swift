public import QKDCrypto

/// The per-input logic of every libFuzzer target in `Fuzz/`, kept in the main package so that
/// the regression tests replay pinned inputs (`Fuzz/FailCases/<Target>/`) and the seed corpus
/// through exactly the code the fuzzer ran, without sanitizers (STYLE.md, "Fuzzing").
///
/// A check returns normally when the input was handled correctly: accepted, or rejected with a
/// typed ``QKDError``. It throws ``FuzzInvariantViolation`` when an invariant broke (the fuzz
/// target turns that into a crash); a real crash is a crash in both settings.
public enum FuzzCheck: String, CaseIterable, Sendable {
    /// The Wegman-Carter suites: tag/verify/stream consistency and bit-flip rejection.
    case mac = "FuzzMAC"
    /// The frame decoder: arbitrary streams, arbitrary chunking, limits (Spec/wire.md 5).
    case frameDecoder = "FuzzFrameDecoder"
    /// Every post-processing message decoder (Spec/postprocessing.md section 2).
    case postProcessingMessages = "FuzzPostProcessingMessages"
    /// The PSK file parser (Spec/keypool.md, "PSK file format").
    case pskFile = "FuzzPSKFile"
    /// PEM/DER certificate and private key parsing of the PKI bootstrap (Spec/handshake.md 4).
    case certificateChain = "FuzzCertificateChain"
    /// A fresh Bob fed arbitrary bytes as the first flight (Spec/session.md sections 3 to 5).
    case handshakeResponder = "FuzzHandshakeResponder"
    /// An Alice that sent her ClientHello, fed an arbitrary reply (Spec/session.md sections 3 to 5).
    case handshakeInitiator = "FuzzHandshakeInitiator"
    /// Two honest sessions with an input-driven adversary and workload between them.
    case sessionPair = "FuzzSessionPair"
    /// A whole post-processing round (Alice and Bob) with a misbehaving wire between them
    /// (Spec/postprocessing.md section 3): the state machines and the Cascade engine.
    case postProcessingRound = "FuzzPostProcessingRound"
    case pulseFrame = "FuzzPulseFrame"

    /// How one input ended.
    public enum Outcome: Sendable, Equatable {
        /// The input was valid and processed.
        case accepted
        /// The input was refused with a typed error (the expected ending for malformed input).
        case rejected(QKDError)
    }

    /// Runs the check on one input.
    /// - Parameter input: the fuzzer's bytes.
    /// - Returns: how the input ended.
    /// - Throws: ``FuzzInvariantViolation`` if an invariant broke.
    public func run(_ input: [UInt8]) throws(FuzzInvariantViolation) -> Outcome {
        switch self {
        case .mac: return try MACCheck.run(input)
        case .frameDecoder: return try FrameDecoderCheck.run(input)
        case .postProcessingMessages: return try PostProcessingMessagesCheck.run(input)
        case .pskFile: return try PSKFileCheck.run(input)
        case .certificateChain: return try CertificateChainCheck.run(input)
        case .handshakeResponder: return try HandshakeCheck.run(input, role: .responder)
        case .handshakeInitiator: return try HandshakeCheck.run(input, role: .initiator)
        case .sessionPair: return try SessionPairCheck.run(input)
        case .postProcessingRound: return try PostProcessingRoundCheck.run(input)
        case .pulseFrame: return try PulseFrameCheck.run(input)
        }
    }

    /// Valid inputs made with the real encoders, for the committed seed corpus
    /// (`Fuzz/Corpus/<Target>/`); nil for targets whose seeds are written by hand or from
    /// vector files. The regression tests check each one is accepted.
    /// - Returns: named seeds, or nil.
    /// - Throws: if an encoder fails (not expected).
    public func generatedSeeds() throws -> [(name: String, bytes: [UInt8])]? {
        switch self {
        case .mac, .frameDecoder: return nil
        case .postProcessingMessages: return PostProcessingMessagesCheck.seeds()
        case .pskFile: return try PSKFileCheck.seeds()
        case .certificateChain: return try CertificateChainCheck.seeds()
        case .handshakeResponder: return HandshakeCheck.seeds(role: .responder)
        case .handshakeInitiator: return HandshakeCheck.seeds(role: .initiator)
        case .sessionPair: return SessionPairCheck.seeds()
        case .postProcessingRound: return PostProcessingRoundCheck.seeds()
        case .pulseFrame: return PulseFrameCheck.seeds()
        }
    }
}

/// An invariant that a fuzz input broke: always a bug.
public struct FuzzInvariantViolation: Error, CustomStringConvertible {
    /// What broke.
    public let description: String
    /// Creates a violation.
    /// - Parameter description: what broke.
    public init(_ description: String) { self.description = description }
}

/// A cursor over the fuzzer's input, to derive structured choices from raw bytes.
struct FuzzInput {
    let bytes: [UInt8]
    var position = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    /// The next byte, or 0 past the end.
    mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }
    /// Up to `n` next bytes.
    mutating func take(_ n: Int) -> [UInt8] {
        let end = min(bytes.count, position + max(0, n))
        defer { position = end }
        return Array(bytes[position..<end])
    }
    /// Everything left.
    mutating func rest() -> [UInt8] { take(bytes.count - position) }
}

/// The piece sizes in which a check feeds a byte stream, chosen by one input byte: 0 the whole
/// stream at once, 1 a byte at a time, any other value pseudo-random sizes 1...37 (a linear
/// congruential sequence seeded with the byte). Checks compare the whole and the chunked runs.
struct FuzzChunks {
    private let seed: UInt8
    private var state: UInt32

    init(seed: UInt8) {
        self.seed = seed
        state = UInt32(seed) | 1
    }

    /// The next piece's size, at least 1 and at most `remaining` (which is at least 1).
    mutating func next(remaining: Int) -> Int {
        if seed == 0 { return remaining }
        if seed == 1 { return min(1, remaining) }
        state = state &* 1_103_515_245 &+ 12345
        return min(remaining, Int((state >> 16) % 37) + 1)
    }
}
