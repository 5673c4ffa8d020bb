import QKDCrypto
public import QKDPostProcessing

/// The node's payloads inside session frames (Spec/quantum-link.md section 5): what the two
/// nodes say to each other besides post-processing messages. Every one travels in an
/// authenticated session frame: per-frame tagged, or inside a round whose closing tag covers it.
public enum NodeMessage: Sendable, Equatable {
    /// Round frame, Alice's first: round `id` starts with `slotCount` pulses (sent on the
    /// quantum link); `deliverable` says whether its consumer keys may be delivered (Alice's
    /// session was information-theoretic when the round began); `schedule` is the Cascade
    /// schedule both sides reconcile the round with (Alice's choice; Spec/quantum-link.md
    /// section 5.1).
    case roundStart(id: UInt64, slotCount: UInt32, deliverable: Bool, schedule: ReconciliationSchedule)
    /// Round frame: one encoded post-processing message (Spec/postprocessing.md).
    case postProcessing([UInt8])
    /// Round frame: the sender's post-processing failed locally (a malformed or inconsistent
    /// message); the receiver ends the round without a key.
    case abandon(id: UInt64)
    /// Per-frame granularity only (Spec/quantum-link.md section 5.5): the sender's
    /// post-processing of round `id` is done (key or abort) and it sent its last round frame;
    /// the per-frame counterpart of the session's closing tag.
    case roundClosed(id: UInt64)
    /// Per-frame, once per session after the handshake: the last round this node absorbed
    /// into its pool (0 for none), so both sides settle a round that was interrupted between
    /// the two authentications.
    case hello(lastAbsorbed: UInt64)
    /// Per-frame: this node's session failed the round (a closing tag did not verify); the
    /// peer discards it too.
    case roundRejected(id: UInt64)
    /// Per-frame: this node absorbed the round's key into its pool, with the split it computed
    /// (bytes to the a2b and b2a pad streams, consumer keys): the peer checks it got the same.
    case absorbed(id: UInt64, a2bTopUp: UInt32, b2aTopUp: UInt32, consumerKeys: UInt32)
    /// Per-frame, Alice only, between rounds: both sides move their pool watermarks to these
    /// byte offsets of the a2b and b2a streams (`KeyPool.advance(to:)`), so the agreed levels
    /// the split reads are the same on both sides and close to what is really left
    /// (Spec/quantum-link.md section 5.4).
    case sync(a2b: UInt64, b2a: UInt64)

    private enum Kind: UInt8 {
        case roundStart = 1, postProcessing = 2, abandon = 3, roundClosed = 4, hello = 16, roundRejected = 17, absorbed = 18, sync = 19
    }

    /// Appends the encoding: `u8 kind` then the fields, big-endian.
    /// - Parameter out: the buffer.
    public func encode(into out: inout [UInt8]) {
        switch self {
        case .roundStart(let id, let slots, let deliverable, let schedule):
            out.append(Kind.roundStart.rawValue); appendBE(id, &out); appendBE(slots, &out); out.append(deliverable ? 1 : 0)
            out.append(Self.scheduleCode(schedule))
        case .postProcessing(let bytes):
            out.append(Kind.postProcessing.rawValue); out.append(contentsOf: bytes)
        case .abandon(let id):
            out.append(Kind.abandon.rawValue); appendBE(id, &out)
        case .roundClosed(let id):
            out.append(Kind.roundClosed.rawValue); appendBE(id, &out)
        case .hello(let last):
            out.append(Kind.hello.rawValue); appendBE(last, &out)
        case .roundRejected(let id):
            out.append(Kind.roundRejected.rawValue); appendBE(id, &out)
        case .absorbed(let id, let a2b, let b2a, let keys):
            out.append(Kind.absorbed.rawValue); appendBE(id, &out); appendBE(a2b, &out); appendBE(b2a, &out); appendBE(keys, &out)
        case .sync(let a2b, let b2a):
            out.append(Kind.sync.rawValue); appendBE(a2b, &out); appendBE(b2a, &out)
        }
    }

    /// The wire code of a Cascade schedule in `roundStart` (Spec/quantum-link.md section 5.1).
    static func scheduleCode(_ schedule: ReconciliationSchedule) -> UInt8 {
        switch schedule {
        case .improved: 0
        case .leastLeakage: 1
        case .original: 2
        }
    }

    /// The schedule of a wire code, or nil for an unknown one.
    static func schedule(code: UInt8) -> ReconciliationSchedule? {
        switch code {
        case 0: .improved
        case 1: .leastLeakage
        case 2: .original
        default: nil
        }
    }

    /// The encoded bytes.
    public var encoded: [UInt8] {
        var out: [UInt8] = []
        encode(into: &out)
        return out
    }

    /// Decodes a message.
    /// - Parameter bytes: one session payload.
    /// - Throws: ``QKDError/Code/nodeMalformed`` for an unknown kind, a short message, a flag
    ///   other than 0 or 1, an unknown Cascade schedule code, or trailing bytes.
    public init(decoding bytes: [UInt8]) throws {
        var r = Reader(bytes[...])
        let raw = try r.u8()
        guard let kind = Kind(rawValue: raw) else { throw QKDError(.nodeMalformed, "unknown node message kind \(raw)") }
        switch kind {
        case .roundStart:
            let id = try r.u64(), slots = try r.u32(), flag = try r.u8(), code = try r.u8()
            guard flag <= 1 else { throw QKDError(.nodeMalformed, "roundStart's deliverable flag is \(flag), not 0 or 1") }
            guard let schedule = Self.schedule(code: code) else {
                throw QKDError(.nodeMalformed, "roundStart names Cascade schedule \(code); known: 0 improved, 1 leastLeakage, 2 original")
            }
            self = .roundStart(id: id, slotCount: slots, deliverable: flag == 1, schedule: schedule)
        case .postProcessing:
            self = .postProcessing(Array(try r.bytes(r.remaining)))
        case .abandon: self = .abandon(id: try r.u64())
        case .roundClosed: self = .roundClosed(id: try r.u64())
        case .hello: self = .hello(lastAbsorbed: try r.u64())
        case .roundRejected: self = .roundRejected(id: try r.u64())
        case .absorbed: self = .absorbed(id: try r.u64(), a2bTopUp: try r.u32(), b2aTopUp: try r.u32(), consumerKeys: try r.u32())
        case .sync: self = .sync(a2b: try r.u64(), b2a: try r.u64())
        }
        try r.finish()
    }
}
