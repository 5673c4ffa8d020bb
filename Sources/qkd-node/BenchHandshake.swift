import ArgumentParser
import Foundation
import QKDCrypto
import QKDKeyPool
import QKDSession
import QKDWire
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `qkd-node bench handshake`: complete handshakes per second between two in-memory
/// `QKDSession.Session`s (Spec/session.md), for pool mode (PSK-seeded pool or resume:
/// information-theoretic) and psk-kdf, against the raw cost of the cryptography those
/// handshakes perform, measured in the same run.
///
/// Ours, per handshake: two sessions, Alice's start, every frame carried across until both are
/// established (codecs, state machine, key store reservations, transcript MACs, key schedule).
/// Baseline, per handshake, the same cryptographic calls on the same byte counts with no
/// framing or state: pool mode 2 x BLAKE2b-256 (session id), 4 hash-key setups, 2 Wegman-Carter
/// tags and 2 verifications over the handshake transcript; psk-kdf adds, per side, BLAKE2b-256 of the
/// hellos, HKDF-Extract + 3 HKDF-Expand and four 16-byte ChaCha20 keystream reads.
/// Thread CPU time, best of five alternating runs (the machine is shared).
///
/// PKI rows (``X509Authenticator`` over a ``TestPKI`` CA and two node certificates; the driver
/// answers the session's `validatePeer` pause with `await request.run()` as a real one would):
/// `pki x25519` (Ed25519 signatures, X25519) and `pki hybrid` (Ed25519, X25519 + ML-KEM-768).
/// Their baseline is the raw cost of the signature and KEM operations the handshake performs:
/// 2 Ed25519 transcript signatures, 2 verifications of them, 2 verifications of the CA's
/// signature on the peer's certificate, and the key agreement (2 X25519 key pairs and shares,
/// plus ML-KEM-768 key generation, encapsulation and decapsulation for hybrid, with the HKDF
/// combiner). Process CPU time (the validation is `async` and may run on another thread).
///
/// `resume (PoolKeyStore)`: pool-mode handshakes over two durable pools (SQLite, reserve before
/// use), against the same bare cryptography as the in-memory pool row; thread CPU time, which
/// leaves out the time spent waiting for fsync, so a wall-clock row follows.
struct BenchHandshakeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "handshake",
        abstract: "Handshakes per second (pool mode, psk-kdf, PKI X25519 and hybrid, resume from a durable pool) on an in-memory pair, against the bare cryptography they perform."
    )

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(help: "Seconds to spend on each measurement (split over five interleaved runs; the best counts).")
    var seconds: Double = 1.0

    static let runs = 5
    static let linkID = [UInt8](repeating: 0x42, count: 16)

    typealias Result = BenchResult
    typealias Timer = BenchSupport.Timer
    static func cpuSeconds() -> Double { BenchSupport.cpuSeconds() }
    static func number(_ x: Double?) -> String { BenchSupport.number(x) }

    func validate() throws {
        guard seconds > 0, seconds <= 600 else { throw ValidationError("--seconds must be in (0, 600]") }
    }

    func run() async throws {
        let psk = PreSharedKey(id: [UInt8](repeating: 7, count: 16), secret: SecretBytes(copying: [UInt8](repeating: 9, count: 32)))
        // The transcript size the baseline hashes: the hellos and a Finished of a real run.
        let poolSizes = try Self.frameSizes(mode: .pool, psk: psk)
        let pskSizes = try Self.frameSizes(mode: .pskKDF, psk: psk)
        var results: [Result] = []
        for (mode, sizes) in [(HandshakeMode.pool, poolSizes), (.pskKDF, pskSizes)] {
            var ours = Timer(budget: seconds / Double(Self.runs))
            var base = Timer(budget: seconds / Double(Self.runs))
            for _ in 0..<Self.runs {
                try ours.runThrowing { n in try Self.handshakes(n, mode: mode, psk: psk) }
                try base.runThrowing { n in try Self.baseline(n, mode: mode, sizes: sizes, psk: psk) }
            }
            results.append(Result(metric: "\(mode) handshakes", value: 1 / ours.best, unit: "handshakes/s",
                                  baseline: 1 / base.best, ratio: base.best / ours.best,
                                  note: "ratio = share of the handshake's CPU time spent in its bare cryptography; baseline: "
                                      + (mode == .pool ? "2 BLAKE2b-256 + 4 hash-key setups + 2 Wegman-Carter tags + 2 verifications over a \(sizes.transcript)-byte transcript"
                                                       : "as pool mode plus per side BLAKE2b-256 of the hellos, HKDF extract + 3 expands, 4 ChaCha20 reads")))
            results.append(Result(metric: "\(mode) handshake time", value: ours.best * 1e6, unit: "us",
                                  baseline: base.best * 1e6, ratio: nil, note: "both sides, CPU time per handshake"))
        }
        try await appendPKIRows(&results)
        try appendPoolStoreRows(&results, sizes: poolSizes)
        print(json ? Self.renderJSON(results) : Self.renderTable(results))
    }

    // MARK: PKI

    /// A test CA with two node certificates, and the time they are valid at.
    struct PKISetup {
        let alice: NodeIdentity
        let bob: NodeIdentity
        let anchors: TrustAnchors
        let time: Date

        init() throws {
            var random = SystemRandomSource()
            let start = Date(timeIntervalSince1970: 1_790_000_000)
            let pki = try TestPKI.make(nodeNames: ["alice.example", "bob.example"], notBefore: start, validity: 86_400, using: &random)
            alice = try pki.nodes[0].identity()
            bob = try pki.nodes[1].identity()
            anchors = pki.anchors()
            time = start.addingTimeInterval(60)
        }
    }

    func appendPKIRows(_ results: inout [Result]) async throws {
        let setup = try PKISetup()
        for (name, groups) in [("pki x25519", [KeyAgreementSuite.x25519]), ("pki hybrid", [.x25519MLKEM768])] {
            var ours = Timer(budget: seconds / Double(Self.runs))
            var base = Timer(budget: seconds / Double(Self.runs))
            for _ in 0..<Self.runs {
                try await ours.run { n in try await Self.pkiHandshakes(n, setup: setup, groups: groups) }
                try await base.run { n in try Self.pkiBaseline(n, setup: setup, hybrid: groups == [.x25519MLKEM768]) }
            }
            let kem = groups == [.x25519MLKEM768] ? "X25519 + ML-KEM-768 (keygen, encaps, decaps, combiner)" : "X25519 (2 key pairs, 2 shares, combiner)"
            results.append(Result(metric: "\(name) handshakes", value: 1 / ours.best, unit: "handshakes/s",
                                  baseline: 1 / base.best, ratio: base.best / ours.best,
                                  note: "ratio = share of the handshake's CPU time spent in its signatures and KEM; baseline: 2 Ed25519 signs + 4 verifies + \(kem)"))
            results.append(Result(metric: "\(name) handshake time", value: ours.best * 1e6, unit: "us",
                                  baseline: base.best * 1e6, ratio: nil, note: "both sides, process CPU time per handshake, chain validation included"))
        }
    }

    static func pkiHandshakes(_ count: Int, setup: PKISetup, groups: [KeyAgreementSuite]) async throws -> Double {
        let random = SystemRandomSource()
        let store = InMemoryKeyStore.empty()
        let ca = SessionConfiguration(role: .alice, mode: .pki, linkID: linkID)
        let cb = SessionConfiguration(role: .bob, acceptedModes: [.pki], linkID: linkID)
        let start = BenchSupport.processCPUSeconds()
        for _ in 0..<count {
            var alice = Session(configuration: ca, keyStore: store, random: random,
                                pki: X509Authenticator(identity: setup.alice, anchors: setup.anchors, peerName: "bob.example",
                                                       validationTime: setup.time, kexGroups: groups))
            var bob = Session(configuration: cb, keyStore: store, random: random,
                              pki: X509Authenticator(identity: setup.bob, anchors: setup.anchors, peerName: "alice.example",
                                                     validationTime: setup.time, kexGroups: groups))
            try await asyncHandshake(&alice, &bob)
        }
        return BenchSupport.processCPUSeconds() - start
    }

    /// Runs a PKI handshake to completion, answering each `validatePeer` as a driver does.
    static func asyncHandshake(_ alice: inout Session, _ bob: inout Session) async throws {
        try alice.start(now: 0)
        var moved = true
        while moved {
            moved = false
            while let action = alice.nextAction() {
                moved = true
                switch action {
                case .transmit(let bytes): try bob.receive(bytes, now: 0)
                case .validatePeer(let request): try alice.peerValidated(await request.run(), now: 0)
                default: break
                }
            }
            while let action = bob.nextAction() {
                moved = true
                switch action {
                case .transmit(let bytes): try alice.receive(bytes, now: 0)
                case .validatePeer(let request): try bob.peerValidated(await request.run(), now: 0)
                default: break
                }
            }
        }
        guard alice.isEstablished && bob.isEstablished else {
            throw QKDError(.sessionInternalError, "the benchmark PKI handshake did not complete")
        }
    }

    static func pkiBaseline(_ count: Int, setup: PKISetup, hybrid: Bool) throws -> Double {
        var random = SystemRandomSource()
        let transcript = random.bytes(count: 50)  // label || 32-byte transcript hash
        let tbs = try setup.bob.chainDER()[0]      // the CA's signature covers about this many bytes
        let caSignature = random.bytes(count: 64)
        var sink: UInt8 = 0
        let start = BenchSupport.processCPUSeconds()
        for _ in 0..<count {
            for identity in [setup.alice, setup.bob] {
                let signature = identity.signingKey.signature(for: transcript)
                sink ^= identity.signingKey.publicKey.isValidSignature(signature, for: transcript) ? 1 : 0
                sink ^= identity.signingKey.publicKey.isValidSignature(caSignature, for: tbs) ? 1 : 0
            }
            let initiator = try KeyAgreementInitiator(offerHybrid: hybrid, using: &random)
            let response = try KeyAgreementResponder.respond(
                suite: hybrid ? .x25519MLKEM768 : .x25519, x25519Share: initiator.x25519Share,
                mlkemEncapsulationKey: initiator.mlkemEncapsulationKey, transcriptHash: transcript[0..<32], using: &random)
            let secret = try initiator.sharedSecret(suite: hybrid ? .x25519MLKEM768 : .x25519, responderX25519Share: response.x25519Share,
                                                    mlkemCiphertext: response.mlkemCiphertext, transcriptHash: transcript[0..<32])
            sink ^= secret.count == 32 ? 1 : 0
        }
        let elapsed = BenchSupport.processCPUSeconds() - start
        if sink == 0xff { print("") }  // keep the work observable
        return elapsed
    }

    // MARK: Resume from a durable pool

    func appendPoolStoreRows(_ results: inout [Result], sizes: Sizes) throws {
        let psk = PreSharedKey(id: [UInt8](repeating: 7, count: 16), secret: SecretBytes(copying: [UInt8](repeating: 9, count: 32)))
        var ours = Timer(budget: seconds / Double(Self.runs))
        var wall = Timer(budget: seconds / Double(Self.runs))
        var base = Timer(budget: seconds / Double(Self.runs))
        for _ in 0..<Self.runs {
            try ours.runThrowing { n in try Self.poolStoreHandshakes(n).cpu }
            try wall.runThrowing { n in try Self.poolStoreHandshakes(n).wall }
            try base.runThrowing { n in try Self.baseline(n, mode: .pool, sizes: sizes, psk: psk) }
        }
        results.append(Result(metric: "resume (PoolKeyStore) handshakes", value: 1 / ours.best, unit: "handshakes/s",
                              baseline: 1 / base.best, ratio: base.best / ours.best,
                              note: "pool-mode resume over two durable pools (SQLite WAL, chunked reserve-before-use); thread CPU time, fsync waits excluded; baseline as the pool row"))
        results.append(Result(metric: "resume (PoolKeyStore) wall time", value: wall.best * 1e6, unit: "us",
                              baseline: base.best * 1e6, ratio: nil, note: "both sides, wall-clock time per handshake including fsync waits"))
    }

    /// `count` resumed pool-mode handshakes over two fresh durable pools (made outside the timing).
    static func poolStoreHandshakes(_ count: Int) throws -> (cpu: Double, wall: Double) {
        let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("qkd-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var random = SystemRandomSource()
        let pskFile = try PSKFile.generate(byteCount: 2 * MACSuite.padByteCount * (2 * count + 1024), using: &random)
        let alicePool = try KeyPool.create(directory: (dir as NSString).appendingPathComponent("a"), role: .alice, linkID: pskFile.id)
        let bobPool = try KeyPool.create(directory: (dir as NSString).appendingPathComponent("b"), role: .bob, linkID: pskFile.id)
        defer { alicePool.close(); bobPool.close() }
        _ = try alicePool.importPSK(pskFile)
        _ = try bobPool.importPSK(pskFile)
        let a = PoolKeyStore(pool: alicePool), b = PoolKeyStore(pool: bobPool)
        let (ca, cb) = configurations(.pool, psk: PreSharedKey(id: [UInt8](repeating: 7, count: 16), secret: SecretBytes(copying: [UInt8](repeating: 9, count: 32))))
        let startWall = BenchSupport.wallSeconds()
        let start = cpuSeconds()
        for _ in 0..<count {
            var alice = Session(configuration: ca, keyStore: a, random: random)
            var bob = Session(configuration: cb, keyStore: b, random: random)
            try handshake(&alice, &bob)
        }
        return (cpuSeconds() - start, BenchSupport.wallSeconds() - startWall)
    }

    // MARK: Workloads. Each returns the CPU seconds for `count` handshakes.

    static func configurations(_ mode: HandshakeMode, psk: PreSharedKey) -> (SessionConfiguration, SessionConfiguration) {
        (SessionConfiguration(role: .alice, mode: mode, linkID: linkID, preSharedKeys: [psk]),
         SessionConfiguration(role: .bob, linkID: linkID, preSharedKeys: [psk]))
    }

    /// Runs one handshake to completion; returns the bytes of each frame sent, in order.
    @discardableResult
    static func handshake(_ alice: inout Session, _ bob: inout Session) throws -> [[UInt8]] {
        var frames: [[UInt8]] = []
        try alice.start(now: 0)
        var moved = true
        while moved {
            moved = false
            while let action = alice.nextAction() {
                if case .transmit(let bytes) = action { frames.append(bytes); try bob.receive(bytes, now: 0); moved = true }
            }
            while let action = bob.nextAction() {
                if case .transmit(let bytes) = action { frames.append(bytes); try alice.receive(bytes, now: 0); moved = true }
            }
        }
        guard alice.isEstablished && bob.isEstablished else {
            throw QKDError(.sessionInternalError, "the benchmark handshake did not complete")
        }
        return frames
    }

    static func handshakes(_ count: Int, mode: HandshakeMode, psk: PreSharedKey) throws -> Double {
        var random = SystemRandomSource()
        let (a, b) = InMemoryKeyStore.pair(slotsPerDirection: mode == .pool ? 2 * count + 2 : 0, reservationChunk: 64, random: &random)
        let (ca, cb) = configurations(mode, psk: psk)
        let start = cpuSeconds()
        for _ in 0..<count {
            // A new connection over the same stores: a resume from the stored pool.
            var alice = Session(configuration: ca, keyStore: a, random: random)
            var bob = Session(configuration: cb, keyStore: b, random: random)
            try handshake(&alice, &bob)
        }
        return cpuSeconds() - start
    }

    struct Sizes {
        var hellos: Int
        var transcript: Int
    }

    static func frameSizes(mode: HandshakeMode, psk: PreSharedKey) throws -> Sizes {
        var random = SystemRandomSource()
        let (a, b) = InMemoryKeyStore.pair(slotsPerDirection: 4, random: &random)
        let (ca, cb) = configurations(mode, psk: psk)
        var alice = Session(configuration: ca, keyStore: a, random: random)
        var bob = Session(configuration: cb, keyStore: b, random: random)
        let frames = try handshake(&alice, &bob)
        // MAC input: ClientHello, ServerHello, Finished (header and payload, no tag).
        let hellos = frames[0].count + frames[1].count
        return Sizes(hellos: hellos, transcript: hellos + frames[2].count - MACSuite.tagByteCount)
    }

    static func baseline(_ count: Int, mode: HandshakeMode, sizes: Sizes, psk: PreSharedKey) throws -> Double {
        var random = SystemRandomSource()
        let transcript = random.bytes(count: sizes.transcript)
        let hellos = Array(transcript[0..<sizes.hellos])
        let domain = random.bytes(count: 44)  // "QKDChannel/1 round" || suite || direction || session id || round
        let nonces = random.bytes(count: 96)
        let keyBytes = random.bytes(count: 16)
        var sink: UInt8 = 0
        let start = cpuSeconds()
        for _ in 0..<count {
            for _ in 0..<2 {  // each side
                sink ^= KeyDerivation.blake2b256(nonces)[0]
                if mode == .pskKDF {
                    let hash = KeyDerivation.blake2b256(hellos)
                    let secret = try KeyDerivation.hkdfSHA256(inputKeyMaterial: psk.secret, salt: nonces[0..<64], info: hash, outputByteCount: 32)
                    for d: UInt8 in 0...1 {
                        let stream = try ChaCha20KeyStream(key: KeyDerivation.expand(pseudoRandomKey: secret, info: [d], outputByteCount: 32))
                        sink ^= try stream.withBytes(at: 0, count: 16) { $0[0] }
                        sink ^= try stream.withBytes(at: 16, count: 16) { $0[0] }
                    }
                }
                // Each side sets up its own direction's hash key and the peer's (16 pool or stream bytes each).
                let key = try HashKey(suite: .poly1305OTP, rawRepresentation: keyBytes)
                _ = try HashKey(suite: .poly1305OTP, rawRepresentation: keyBytes)
                let tag = WegmanCarter.authenticationTag(for: transcript, domain: domain, hashKey: key, pad: OneTimePad.random(using: &random))
                let ok = WegmanCarter.isValidAuthenticationTag(tag, authenticating: transcript, domain: domain, hashKey: key,
                                                               pad: OneTimePad.random(using: &random))
                sink ^= ok ? 1 : 0
            }
        }
        let elapsed = cpuSeconds() - start
        if sink == 0xff { print("") }  // keep the work observable
        return elapsed
    }

    // MARK: Output.

    static func renderJSON(_ results: [Result]) -> String { BenchSupport.renderJSON(workload: "handshake", results) }

    static func renderTable(_ results: [Result]) -> String {
        var lines = ["metric                              value          unit           baseline       ratio"]
        for r in results {
            func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
            lines.append(pad(r.metric, 36) + pad(number(r.value), 15) + pad(r.unit, 15) + pad(number(r.baseline), 15) + number(r.ratio))
        }
        return lines.joined(separator: "\n")
    }
}
