public import QKDCrypto

/// The named limits of the handshake encodings (Spec/session.md section 3.1). A decoder checks
/// them before it allocates.
public enum HandshakeLimits {
    /// Bytes of `link_id`.
    public static let linkIDByteCount = 16
    /// Bytes of `nonce_a`, `nonce_b` and `session_id_material`.
    public static let nonceByteCount = 32
    /// Bytes of a PSK id.
    public static let pskIDByteCount = 16
    /// Largest encoded split policy (Spec/keypool.md): far above any real policy.
    public static let maxPolicyByteCount = 1024
    /// Bytes of an X25519 public share.
    public static let x25519ShareByteCount = 32
    /// Bytes of an ML-KEM-768 encapsulation key (FIPS 203).
    public static let mlkem768EncapsulationKeyByteCount = 1184
    /// Bytes of an ML-KEM-768 ciphertext (FIPS 203).
    public static let mlkem768CiphertextByteCount = 1088
    /// Bytes of an Ed25519 signature (RFC 8032).
    public static let ed25519SignatureByteCount = 64
    /// Bytes of an ML-DSA-65 signature (FIPS 204).
    public static let mldsa65SignatureByteCount = 3309
    /// Most certificates in a chain, leaf first.
    public static let maxCertificateChainLength = 8
    /// Largest DER certificate accepted.
    public static let maxCertificateByteCount = 16 * 1024
}

/// The handshake mode (Spec/session.md section 3, ClientHello `mode`).
public enum HandshakeMode: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// Pool mode: PSK-seeded pool or resume; information-theoretic from the first frame.
    case pool = 1
    /// A short PSK through HKDF: computational until the pool is refilled.
    case pskKDF = 2
    /// Certificates and an ephemeral key agreement: computational until the pool is refilled.
    case pki = 3

    /// "pool", "psk-kdf" or "pki".
    public var description: String {
        switch self {
        case .pool: "pool"
        case .pskKDF: "psk-kdf"
        case .pki: "pki"
        }
    }

    /// The epoch the handshake runs under: 1 (pool stream) in pool mode, 0 (bootstrap stream)
    /// otherwise (Spec/session.md section 2).
    public var handshakeEpoch: UInt32 { self == .pool ? 1 : 0 }

    static func decode(_ raw: UInt8, _ reader: ByteReader) throws -> HandshakeMode {
        guard let mode = HandshakeMode(rawValue: raw) else { throw reader.fail("unknown mode \(raw)") }
        return mode
    }
}

/// Authentication granularities (Spec/session.md section 3): bit 0 per-frame tags, bit 1
/// per-round transcript tags; the other bits are reserved and must be zero.
public struct Granularities: OptionSet, Sendable, Hashable {
    /// The bits.
    public let rawValue: UInt8
    /// Creates a set from its bits.
    /// - Parameter rawValue: the bits.
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// Every frame carries its own tag.
    public static let perFrame = Granularities(rawValue: 1)
    /// Rounds of frames are closed by one transcript tag per direction.
    public static let perRound = Granularities(rawValue: 2)
    /// Both.
    public static let all: Granularities = [.perFrame, .perRound]

    static func decode(_ raw: UInt8, _ reader: ByteReader) throws -> Granularities {
        guard raw & ~Granularities.all.rawValue == 0 else { throw reader.fail("reserved granularity bits set (0x\(String(raw, radix: 16)))") }
        guard raw != 0 else { throw reader.fail("no granularity") }
        return Granularities(rawValue: raw)
    }
}

/// Handshake message types (Spec/session.md section 3): the first byte of a handshake payload.
public enum HandshakeMessageType: UInt8, Sendable {
    /// Alice's first flight.
    case clientHello = 1
    /// Bob's answer.
    case serverHello = 2
    /// Closes the handshake transcript of one direction.
    case finished = 3
}

/// Alice's PKI offer (Spec/session.md section 3; the cryptography is Spec/handshake.md).
public struct PKIClientOffer: Sendable, Hashable {
    /// Key-agreement groups offered: 1 X25519, 2 X25519 + ML-KEM-768 (others ignored by Bob).
    public var kexGroups: [UInt8]
    /// Alice's X25519 public share (32 bytes).
    public var x25519Share: [UInt8]
    /// Alice's ML-KEM-768 encapsulation key: 1184 bytes if group 2 is offered, else empty.
    public var mlkem768EncapsulationKey: [UInt8]

    /// Creates an offer.
    /// - Parameters:
    ///   - kexGroups: groups offered, non-empty, no duplicates.
    ///   - x25519Share: 32 bytes.
    ///   - mlkem768EncapsulationKey: 1184 bytes or empty.
    public init(kexGroups: [UInt8], x25519Share: [UInt8], mlkem768EncapsulationKey: [UInt8]) {
        self.kexGroups = kexGroups
        self.x25519Share = x25519Share
        self.mlkem768EncapsulationKey = mlkem768EncapsulationKey
    }

    func encode(into out: inout [UInt8]) {
        out.appendVector(lengthBytes: 1, kexGroups)
        out.appendVector(lengthBytes: 2, x25519Share)
        out.appendVector(lengthBytes: 2, mlkem768EncapsulationKey)
    }

    init(reading r: inout ByteReader) throws {
        kexGroups = try r.vector(lengthBytes: 1, limit: 255, "kex_groups")
        try checkList(kexGroups, "kex_groups", r)
        x25519Share = try r.vector(lengthBytes: 2, limit: HandshakeLimits.x25519ShareByteCount, "x25519_share")
        guard x25519Share.count == HandshakeLimits.x25519ShareByteCount else { throw r.fail("x25519_share must be 32 bytes") }
        mlkem768EncapsulationKey = try r.vector(lengthBytes: 2, limit: HandshakeLimits.mlkem768EncapsulationKeyByteCount, "mlkem768_encapsulation_key")
        let offersHybrid = kexGroups.contains(2)
        guard mlkem768EncapsulationKey.count == (offersHybrid ? HandshakeLimits.mlkem768EncapsulationKeyByteCount : 0) else {
            throw r.fail("mlkem768_encapsulation_key must be \(offersHybrid ? "1184 bytes when group 2 is offered" : "empty unless group 2 is offered")")
        }
    }
}

/// A certificate chain and transcript signatures (PKI mode; Spec/session.md section 3).
public struct PKIIdentityProof: Sendable, Hashable {
    /// DER certificates, leaf first, 1 to 8.
    public var certificateChain: [[UInt8]]
    /// The Ed25519 signature over the label and transcript hash (64 bytes).
    public var ed25519Signature: [UInt8]
    /// The ML-DSA-65 signature (3309 bytes), or empty.
    public var mldsa65Signature: [UInt8]

    /// Creates a proof.
    /// - Parameters:
    ///   - certificateChain: DER certificates, leaf first.
    ///   - ed25519Signature: 64 bytes.
    ///   - mldsa65Signature: 3309 bytes or empty.
    public init(certificateChain: [[UInt8]], ed25519Signature: [UInt8], mldsa65Signature: [UInt8]) {
        self.certificateChain = certificateChain
        self.ed25519Signature = ed25519Signature
        self.mldsa65Signature = mldsa65Signature
    }

    func encode(into out: inout [UInt8]) {
        out.appendInteger(UInt32(certificateChain.count))
        for certificate in certificateChain { out.appendVector(lengthBytes: 4, certificate) }
        out.appendVector(lengthBytes: 2, ed25519Signature)
        out.appendVector(lengthBytes: 2, mldsa65Signature)
    }

    init(reading r: inout ByteReader) throws {
        let count = try r.integer(UInt32.self, "certificate_chain")
        guard count >= 1, count <= HandshakeLimits.maxCertificateChainLength else {
            throw r.fail("a certificate chain holds 1 to \(HandshakeLimits.maxCertificateChainLength) certificates, got \(count)")
        }
        var chain: [[UInt8]] = []
        for _ in 0..<count {
            let certificate = try r.vector(lengthBytes: 4, limit: HandshakeLimits.maxCertificateByteCount, "certificate")
            guard !certificate.isEmpty else { throw r.fail("empty certificate") }
            chain.append(certificate)
        }
        certificateChain = chain
        ed25519Signature = try r.vector(lengthBytes: 2, limit: HandshakeLimits.ed25519SignatureByteCount, "ed25519_signature")
        guard ed25519Signature.count == HandshakeLimits.ed25519SignatureByteCount else { throw r.fail("ed25519_signature must be 64 bytes") }
        mldsa65Signature = try r.vector(lengthBytes: 2, limit: HandshakeLimits.mldsa65SignatureByteCount, "mldsa65_signature")
        guard mldsa65Signature.isEmpty || mldsa65Signature.count == HandshakeLimits.mldsa65SignatureByteCount else {
            throw r.fail("mldsa65_signature must be empty or 3309 bytes")
        }
    }
}

/// Bob's PKI answer (Spec/session.md section 3).
public struct PKIServerResponse: Sendable, Hashable {
    /// The chosen group (1 or 2).
    public var kexGroup: UInt8
    /// Bob's X25519 public share (32 bytes).
    public var x25519Share: [UInt8]
    /// The ML-KEM-768 ciphertext: 1088 bytes for group 2, else empty.
    public var mlkem768Ciphertext: [UInt8]
    /// Bob's chain and signatures over the transcript so far.
    public var proof: PKIIdentityProof

    /// Creates a response.
    /// - Parameters:
    ///   - kexGroup: 1 or 2.
    ///   - x25519Share: 32 bytes.
    ///   - mlkem768Ciphertext: 1088 bytes for group 2, else empty.
    ///   - proof: chain and signatures.
    public init(kexGroup: UInt8, x25519Share: [UInt8], mlkem768Ciphertext: [UInt8], proof: PKIIdentityProof) {
        self.kexGroup = kexGroup
        self.x25519Share = x25519Share
        self.mlkem768Ciphertext = mlkem768Ciphertext
        self.proof = proof
    }

    func encode(into out: inout [UInt8]) {
        out.append(kexGroup)
        out.appendVector(lengthBytes: 2, x25519Share)
        out.appendVector(lengthBytes: 2, mlkem768Ciphertext)
        proof.encode(into: &out)
    }

    init(reading r: inout ByteReader) throws {
        kexGroup = try r.u8("kex_group")
        guard kexGroup == 1 || kexGroup == 2 else { throw r.fail("unknown kex_group \(kexGroup)") }
        x25519Share = try r.vector(lengthBytes: 2, limit: HandshakeLimits.x25519ShareByteCount, "x25519_share")
        guard x25519Share.count == HandshakeLimits.x25519ShareByteCount else { throw r.fail("x25519_share must be 32 bytes") }
        mlkem768Ciphertext = try r.vector(lengthBytes: 2, limit: HandshakeLimits.mlkem768CiphertextByteCount, "mlkem768_ciphertext")
        guard mlkem768Ciphertext.count == (kexGroup == 2 ? HandshakeLimits.mlkem768CiphertextByteCount : 0) else {
            throw r.fail("mlkem768_ciphertext must be 1088 bytes for group 2 and empty for group 1")
        }
        proof = try PKIIdentityProof(reading: &r)
    }
}

/// Rejects empty lists and duplicates (Spec/session.md section 3).
private func checkList(_ list: [UInt8], _ field: String, _ r: ByteReader) throws {
    guard !list.isEmpty else { throw r.fail("\(field) is empty") }
    guard Set(list).count == list.count else { throw r.fail("\(field) has duplicates") }
}

/// ClientHello (Spec/session.md section 3): Alice's offer.
public struct ClientHello: Sendable, Hashable {
    /// The mode-specific part.
    public enum Body: Sendable, Hashable {
        /// Alice's pool watermarks.
        case pool(PoolWatermarks)
        /// The id of the PSK to use.
        case pskKDF(pskID: [UInt8])
        /// The key-agreement offer.
        case pki(PKIClientOffer)

        var mode: HandshakeMode {
            switch self {
            case .pool: .pool
            case .pskKDF: .pskKDF
            case .pki: .pki
            }
        }
    }

    /// Protocol versions offered (this version: [1]). Unknown values are allowed (a newer peer
    /// may offer more); empty lists and duplicates are not.
    public var versions: [UInt8]
    /// MAC suite ids in Alice's preference order. Unknown ids are allowed and ignored by Bob.
    public var suites: [UInt8]
    /// Granularities offered.
    public var granularities: Granularities
    /// Identifies the pair of pools (16 bytes).
    public var linkID: [UInt8]
    /// Fresh random (32 bytes).
    public var nonce: [UInt8]
    /// The encoded split policy (Spec/keypool.md).
    public var policy: [UInt8]
    /// The mode and its fields.
    public var body: Body

    /// The mode.
    public var mode: HandshakeMode { body.mode }

    /// Creates a hello.
    /// - Parameters:
    ///   - versions: versions offered.
    ///   - suites: suite ids in preference order.
    ///   - granularities: granularities offered.
    ///   - linkID: 16 bytes.
    ///   - nonce: 32 bytes.
    ///   - policy: the encoded split policy.
    ///   - body: the mode and its fields.
    public init(versions: [UInt8], suites: [UInt8], granularities: Granularities, linkID: [UInt8], nonce: [UInt8],
                policy: [UInt8], body: Body) {
        self.versions = versions
        self.suites = suites
        self.granularities = granularities
        self.linkID = linkID
        self.nonce = nonce
        self.policy = policy
        self.body = body
    }

    /// Appends the encoding (message type byte first).
    /// - Parameter out: the buffer.
    public func encode(into out: inout [UInt8]) {
        precondition(linkID.count == HandshakeLimits.linkIDByteCount && nonce.count == HandshakeLimits.nonceByteCount)
        out.append(HandshakeMessageType.clientHello.rawValue)
        out.appendVector(lengthBytes: 1, versions)
        out.appendVector(lengthBytes: 1, suites)
        out.append(granularities.rawValue)
        out.append(mode.rawValue)
        out.append(contentsOf: linkID)
        out.append(contentsOf: nonce)
        out.appendVector(lengthBytes: 2, policy)
        switch body {
        case .pool(let w):
            out.appendInteger(w.outboundNext)
            out.appendInteger(w.inboundNext)
        case .pskKDF(let id):
            precondition(id.count == HandshakeLimits.pskIDByteCount)
            out.append(contentsOf: id)
        case .pki(let offer):
            offer.encode(into: &out)
        }
    }

    /// Decodes a ClientHello payload.
    /// - Parameter bytes: the whole handshake payload, type byte included.
    /// - Throws: ``QKDError/Code/sessionMalformedHandshake`` for every malformed input.
    public init(decoding bytes: ArraySlice<UInt8>) throws {
        var r = ByteReader(bytes, code: .sessionMalformedHandshake, what: "ClientHello")
        guard try r.u8("type") == HandshakeMessageType.clientHello.rawValue else { throw r.fail("not a ClientHello") }
        versions = try r.vector(lengthBytes: 1, limit: 255, "protocol_versions")
        try checkList(versions, "protocol_versions", r)
        suites = try r.vector(lengthBytes: 1, limit: 255, "suites")
        try checkList(suites, "suites", r)
        granularities = try Granularities.decode(try r.u8("granularities"), r)
        let mode = try HandshakeMode.decode(try r.u8("mode"), r)
        linkID = try r.fixed(HandshakeLimits.linkIDByteCount, "link_id")
        nonce = try r.fixed(HandshakeLimits.nonceByteCount, "nonce_a")
        policy = try r.vector(lengthBytes: 2, limit: HandshakeLimits.maxPolicyByteCount, "policy")
        switch mode {
        case .pool:
            body = .pool(PoolWatermarks(outboundNext: try r.integer(UInt64.self, "outbound_next"),
                                        inboundNext: try r.integer(UInt64.self, "inbound_next")))
        case .pskKDF:
            body = .pskKDF(pskID: try r.fixed(HandshakeLimits.pskIDByteCount, "psk_id"))
        case .pki:
            body = .pki(try PKIClientOffer(reading: &r))
        }
        try r.finish()
    }

    /// Decodes a ClientHello payload.
    /// - Parameter bytes: the payload.
    /// - Throws: ``QKDError/Code/sessionMalformedHandshake``.
    public init(decoding bytes: [UInt8]) throws { try self.init(decoding: bytes[...]) }
}

/// ServerHello (Spec/session.md section 3): Bob's choices.
public struct ServerHello: Sendable, Hashable {
    /// The mode-specific part.
    public enum Body: Sendable, Hashable {
        /// Bob's pool watermarks.
        case pool(PoolWatermarks)
        /// Nothing.
        case pskKDF
        /// Key agreement and Bob's proof of identity.
        case pki(PKIServerResponse)

        var mode: HandshakeMode {
            switch self {
            case .pool: .pool
            case .pskKDF: .pskKDF
            case .pki: .pki
            }
        }
    }

    /// The chosen version.
    public var version: UInt8
    /// The chosen suite.
    public var suite: MACSuite
    /// The chosen granularities (non-empty).
    public var granularities: Granularities
    /// Fresh random (32 bytes).
    public var nonce: [UInt8]
    /// Random input to the session id (32 bytes).
    public var sessionIDMaterial: [UInt8]
    /// The mode (an echo of Alice's) and its fields.
    public var body: Body

    /// The mode.
    public var mode: HandshakeMode { body.mode }

    /// Creates a hello.
    /// - Parameters:
    ///   - version: chosen version.
    ///   - suite: chosen suite.
    ///   - granularities: chosen granularities.
    ///   - nonce: 32 bytes.
    ///   - sessionIDMaterial: 32 bytes.
    ///   - body: mode and fields.
    public init(version: UInt8, suite: MACSuite, granularities: Granularities, nonce: [UInt8], sessionIDMaterial: [UInt8], body: Body) {
        self.version = version
        self.suite = suite
        self.granularities = granularities
        self.nonce = nonce
        self.sessionIDMaterial = sessionIDMaterial
        self.body = body
    }

    /// Appends the encoding (message type byte first).
    /// - Parameter out: the buffer.
    public func encode(into out: inout [UInt8]) {
        precondition(nonce.count == HandshakeLimits.nonceByteCount && sessionIDMaterial.count == HandshakeLimits.nonceByteCount)
        out.append(HandshakeMessageType.serverHello.rawValue)
        out.append(version)
        out.append(suite.rawValue)
        out.append(granularities.rawValue)
        out.append(mode.rawValue)
        out.append(contentsOf: nonce)
        out.append(contentsOf: sessionIDMaterial)
        switch body {
        case .pool(let w):
            out.appendInteger(w.outboundNext)
            out.appendInteger(w.inboundNext)
        case .pskKDF:
            break
        case .pki(let response):
            response.encode(into: &out)
        }
    }

    /// The bytes Bob's PKI signatures cover after the ClientHello frame: the encoding up to,
    /// not including, `certificate_chain` (Spec/session.md section 5.2). Encodings are
    /// canonical, so Alice recomputes the same bytes from the decoded message.
    var signedPrefix: [UInt8] {
        var out: [UInt8] = []
        encode(into: &out)
        if case .pki(let response) = body {
            var proof: [UInt8] = []
            response.proof.encode(into: &proof)
            out.removeLast(proof.count)
        }
        return out
    }

    /// Decodes a ServerHello payload.
    /// - Parameter bytes: the whole handshake payload, type byte included.
    /// - Throws: ``QKDError/Code/sessionMalformedHandshake`` for every malformed input.
    public init(decoding bytes: ArraySlice<UInt8>) throws {
        var r = ByteReader(bytes, code: .sessionMalformedHandshake, what: "ServerHello")
        guard try r.u8("type") == HandshakeMessageType.serverHello.rawValue else { throw r.fail("not a ServerHello") }
        version = try r.u8("version")
        let suiteByte = try r.u8("suite")
        guard let suite = MACSuite(rawValue: suiteByte) else { throw r.fail("unknown suite \(suiteByte)") }
        self.suite = suite
        granularities = try Granularities.decode(try r.u8("granularities"), r)
        let mode = try HandshakeMode.decode(try r.u8("mode"), r)
        nonce = try r.fixed(HandshakeLimits.nonceByteCount, "nonce_b")
        sessionIDMaterial = try r.fixed(HandshakeLimits.nonceByteCount, "session_id_material")
        switch mode {
        case .pool:
            body = .pool(PoolWatermarks(outboundNext: try r.integer(UInt64.self, "outbound_next"),
                                        inboundNext: try r.integer(UInt64.self, "inbound_next")))
        case .pskKDF:
            body = .pskKDF
        case .pki:
            body = .pki(try PKIServerResponse(reading: &r))
        }
        try r.finish()
    }

    /// Decodes a ServerHello payload.
    /// - Parameter bytes: the payload.
    /// - Throws: ``QKDError/Code/sessionMalformedHandshake``.
    public init(decoding bytes: [UInt8]) throws { try self.init(decoding: bytes[...]) }
}

/// Finished (Spec/session.md section 3): the frame's tag is the MAC over the handshake
/// transcript; in PKI mode Alice's Finished also carries her chain and signatures.
public struct Finished: Sendable, Hashable {
    /// Alice's identity proof in PKI mode; nil otherwise (and always nil for Bob's).
    public var clientProof: PKIIdentityProof?

    /// Creates a Finished.
    /// - Parameter clientProof: Alice's PKI proof, or nil.
    public init(clientProof: PKIIdentityProof? = nil) { self.clientProof = clientProof }

    /// Appends the encoding: the type byte, then the proof if there is one.
    /// - Parameter out: the buffer.
    public func encode(into out: inout [UInt8]) {
        out.append(HandshakeMessageType.finished.rawValue)
        clientProof?.encode(into: &out)
    }

    /// Decodes a Finished payload: no bytes after the type means no proof.
    /// - Parameter bytes: the whole payload.
    /// - Throws: ``QKDError/Code/sessionMalformedHandshake``.
    public init(decoding bytes: ArraySlice<UInt8>) throws {
        var r = ByteReader(bytes, code: .sessionMalformedHandshake, what: "Finished")
        guard try r.u8("type") == HandshakeMessageType.finished.rawValue else { throw r.fail("not a Finished") }
        clientProof = r.remaining == 0 ? nil : try PKIIdentityProof(reading: &r)
        try r.finish()
    }

    /// Decodes a Finished payload.
    /// - Parameter bytes: the payload.
    /// - Throws: ``QKDError/Code/sessionMalformedHandshake``.
    public init(decoding bytes: [UInt8]) throws { try self.init(decoding: bytes[...]) }
}

/// Any handshake message, decoded by its type byte.
public enum HandshakeMessage: Sendable, Hashable {
    /// ClientHello.
    case clientHello(ClientHello)
    /// ServerHello.
    case serverHello(ServerHello)
    /// Finished.
    case finished(Finished)

    /// Appends the encoding.
    /// - Parameter out: the buffer.
    public func encode(into out: inout [UInt8]) {
        switch self {
        case .clientHello(let m): m.encode(into: &out)
        case .serverHello(let m): m.encode(into: &out)
        case .finished(let m): m.encode(into: &out)
        }
    }

    /// Decodes a handshake payload.
    /// - Parameter bytes: the payload.
    /// - Throws: ``QKDError/Code/sessionMalformedHandshake`` for an empty payload, an unknown
    ///   type, or a malformed message.
    public init(decoding bytes: ArraySlice<UInt8>) throws {
        guard let first = bytes.first else {
            throw QKDError(.sessionMalformedHandshake, "empty handshake payload")
        }
        switch HandshakeMessageType(rawValue: first) {
        case .clientHello: self = .clientHello(try ClientHello(decoding: bytes))
        case .serverHello: self = .serverHello(try ServerHello(decoding: bytes))
        case .finished: self = .finished(try Finished(decoding: bytes))
        case nil: throw QKDError(.sessionMalformedHandshake, "unknown handshake message type \(first)")
        }
    }

    /// Decodes a handshake payload.
    /// - Parameter bytes: the payload.
    /// - Throws: ``QKDError/Code/sessionMalformedHandshake``.
    public init(decoding bytes: [UInt8]) throws { try self.init(decoding: bytes[...]) }

    /// The encoding as a new array.
    public var encoded: [UInt8] {
        var out: [UInt8] = []
        encode(into: &out)
        return out
    }
}
