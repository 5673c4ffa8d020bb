public import Logging
public import Metrics
import QKDCrypto
public import QKDKeyPool
public import QKDPostProcessing
public import QKDSession
public import QKDSimulation
public import QKDTransport

/// Which consumer keys a node hands out (DESIGN.md, "Bootstrap handshake": a policy can refuse
/// to deliver keys until the session is information-theoretic).
public enum DeliveryPolicy: Sendable, Hashable {
    /// Only keys of rounds that began while both directions of the session ran on pool epochs;
    /// the consumer keys of rounds authenticated under a computational bootstrap are discarded
    /// (their pad top-ups still refill the pool, which is what makes the switch possible).
    case informationTheoreticOnly
    /// Every round's keys.
    case any
}

/// How a node authenticates the frames of a post-processing round (DESIGN.md, "The wire";
/// Spec/session.md section 6; Spec/quantum-link.md section 5.5). Both nodes must use the same:
/// the choice is bound into the handshake transcript, so a mismatch fails the handshake.
public enum AuthenticationGranularity: String, Sendable, Hashable, CaseIterable {
    /// Every round frame carries its own pad-encrypted tag; a per-frame `roundClosed` closes
    /// each direction of the round. Costs one pad per frame.
    case perFrame = "frame"
    /// The frames of a round feed one running universal hash per direction, closed by one
    /// pad-encrypted tag and confirmed by one per-frame `roundVerified`: two pads per direction
    /// per round, whatever the number of frames.
    case perRound = "round"
}

/// How a node obtains its links, once per connection attempt. Alice's closures connect (with
/// the transport's retry and backoff); Bob's accept the next connection of a listener.
public struct NodeLinks: Sendable {
    /// The classical channel (session frames).
    public var classical: @Sendable () async throws -> any ByteTransport
    /// The simulated quantum channel (Spec/quantum-link.md): pulse data from Alice's channel
    /// model to Bob's detector.
    public var quantum: @Sendable () async throws -> any ByteTransport

    /// Creates the link factories.
    /// - Parameters:
    ///   - classical: opens the classical channel.
    ///   - quantum: opens the quantum channel.
    public init(classical: @escaping @Sendable () async throws -> any ByteTransport,
                quantum: @escaping @Sendable () async throws -> any ByteTransport) {
        self.classical = classical
        self.quantum = quantum
    }
}

/// Everything a ``QKDLinkNode`` needs besides its pool and links.
public struct NodeConfiguration: Sendable {
    /// Alice drives rounds; Bob answers.
    public var role: SessionRole
    /// PSKs for a `psk-kdf` bootstrap when the pool holds no pads yet (Alice uses the first).
    /// A pool seeded from a PSK file runs in pool mode and needs none.
    public var preSharedKeys: [PreSharedKey]
    /// A PKI bootstrap (certificates) for the first contact when the pool holds no pads yet;
    /// nil for none. Alice prefers it to a `psk-kdf` PSK; Bob accepts both. Like `psk-kdf` it
    /// is computational until the pool absorbed distilled key (Spec/session.md section 5.2).
    public var pki: NodePKI?
    /// How distilled keys are split; both nodes must use the same (the session compares the
    /// encodings).
    public var refillPolicy: RefillPolicy
    /// Post-processing parameters; both nodes must use the same.
    public var postProcessing: PostProcessingConfiguration
    /// The simulated link. Alice's process uses the source and channel parts (pulses, basis
    /// bias, loss, eavesdropper); Bob's the detector parts (efficiency, dark counts,
    /// misalignment).
    public var simulation: LinkParameters
    /// Seed of the simulated devices and of the node's randomness; nil draws from the system.
    public var seed: UInt64?
    /// Alice: stop (closing the session gracefully) after this many rounds settled; nil runs
    /// until cancelled. Bob ends when Alice closes.
    public var rounds: Int?
    /// Which keys may be delivered.
    public var deliveryPolicy: DeliveryPolicy
    /// How round frames are authenticated (default per round); both nodes must agree.
    public var granularity: AuthenticationGranularity
    /// Consecutive failed connection attempts before ``QKDLinkNode/run()`` gives up.
    public var maxReconnectAttempts: Int
    /// Wait between reconnection attempts.
    public var reconnectDelay: Duration
    /// No progress on a connection for this long (no byte received while a reply is due)
    /// counts as a broken link.
    public var stallTimeout: Duration
    /// How long a connection's handshake may take before the session gives up on it
    /// (`session.timeout`) and the node reconnects (default 10 s; a slow link, or the hybrid PKI
    /// handshake of a debug build on a loaded host, may need more).
    public var handshakeTimeout: Duration
    /// Where logs go (never secrets).
    public var logger: Logger
    /// Where metrics go; nil uses the process-wide `MetricsSystem`.
    public var metricsFactory: (any MetricsFactory)?

    /// Creates a configuration with the defaults of the demo.
    /// - Parameters:
    ///   - role: Alice or Bob.
    ///   - simulation: the simulated link (defaults: 100 000 pulses, balanced bases, 2% misalignment).
    ///   - logger: the logger (default label `qkd.node`).
    public init(role: SessionRole, simulation: LinkParameters = LinkParameters(pulsesPerRound: 100_000, probabilityZ: 0.5, misalignment: 0.02),
                logger: Logger = Logger(label: "qkd.node")) {
        self.role = role
        self.preSharedKeys = []
        self.pki = nil
        self.refillPolicy = RefillPolicy()
        self.postProcessing = PostProcessingConfiguration()
        self.simulation = simulation
        self.seed = nil
        self.rounds = nil
        self.deliveryPolicy = .informationTheoreticOnly
        self.granularity = .perRound
        self.maxReconnectAttempts = 20
        self.reconnectDelay = .milliseconds(200)
        self.stallTimeout = .seconds(30)
        self.handshakeTimeout = .seconds(10)
        self.logger = logger
        self.metricsFactory = nil
    }
}
