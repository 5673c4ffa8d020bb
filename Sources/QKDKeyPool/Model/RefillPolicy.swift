public import QKDCrypto

/// How a distilled key is split (Spec/keypool.md, "Split function"). Plain data: the handshake
/// negotiates it, so both sides apply the same policy to the same bytes.
public struct RefillPolicy: Sendable, Codable, Equatable, Hashable {
    /// Pad bytes one round is expected to spend in each direction (per-frame tags plus the
    /// closing tag), in bytes. A multiple of 16.
    public var padBytesPerRound: Int
    /// How many future rounds each stream should be able to pay for (N).
    public var roundsAhead: Int
    /// Extra pad bytes kept beyond `roundsAhead` rounds (resynchronisation, retries).
    public var reserveBytes: Int
    /// Whether this round also yields a fresh hash key per link stream (a new epoch).
    public var newHashKeys: Bool
    /// The suite the hash keys are for.
    public var suite: String
    /// The size of one consumer key in bytes (16 ... 1 MiB). A remainder shorter than this is discarded.
    public var consumerKeyBytes: Int

    /// Creates a policy.
    /// - Parameters:
    ///   - padBytesPerRound: pad bytes one round spends per direction (multiple of 16).
    ///   - roundsAhead: rounds each stream should cover.
    ///   - reserveBytes: extra pad bytes per stream (multiple of 16).
    ///   - newHashKeys: whether to start a new hash-key epoch with this round.
    ///   - suite: the suite name, `poly1305-otp` or `gf128-otp`.
    ///   - consumerKeyBytes: size of each consumer key (>= 16).
    public init(padBytesPerRound: Int = 1024, roundsAhead: Int = 4, reserveBytes: Int = 4096,
                newHashKeys: Bool = false, suite: MACSuite = .poly1305OTP, consumerKeyBytes: Int = 32) {
        self.padBytesPerRound = padBytesPerRound
        self.roundsAhead = roundsAhead
        self.reserveBytes = reserveBytes
        self.newHashKeys = newHashKeys
        self.suite = suite.description
        self.consumerKeyBytes = consumerKeyBytes
    }

    /// The smallest consumer key: 16 bytes (128 bits). It also bounds the number of keys per
    /// round, which consumer key ids encode in 26 bits (Spec/keypool.md, "Consumer key ids").
    public static let minimumConsumerKeyBytes = 16

    /// The level (unreserved pad bytes) the split tops each stream up to:
    /// `roundsAhead * padBytesPerRound + reserveBytes`.
    public var targetLevel: Int { roundsAhead * padBytesPerRound + reserveBytes }

    /// Checks the policy.
    /// - Throws: ``QKDError/Code/invalidPolicy`` with the offending field.
    public func validate() throws {
        guard padBytesPerRound >= 0, padBytesPerRound % MACSuite.padByteCount == 0 else {
            throw QKDError(.invalidPolicy, "padBytesPerRound must be a non-negative multiple of 16, got \(padBytesPerRound)")
        }
        guard reserveBytes >= 0, reserveBytes % MACSuite.padByteCount == 0 else {
            throw QKDError(.invalidPolicy, "reserveBytes must be a non-negative multiple of 16, got \(reserveBytes)")
        }
        guard roundsAhead >= 0, roundsAhead <= 1 << 20 else {
            throw QKDError(.invalidPolicy, "roundsAhead must be in 0...1048576, got \(roundsAhead)")
        }
        guard consumerKeyBytes >= Self.minimumConsumerKeyBytes, consumerKeyBytes <= 1 << 20 else {
            throw QKDError(.invalidPolicy, "consumerKeyBytes must be in 16...1048576, got \(consumerKeyBytes)")
        }
        guard MACSuite(name: suite) != nil else {
            throw QKDError(.invalidPolicy, "unknown suite '\(suite)'; use poly1305-otp or gf128-otp")
        }
    }
}
