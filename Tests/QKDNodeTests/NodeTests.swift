import Foundation
import Logging
import QKDCrypto
import QKDKeyPool
@testable import QKDNode
import QKDSession
import QKDWire
import Synchronization
import Testing

/// Two ``QKDLinkNode``s over in-memory links: rounds, keys, resume after a broken link,
/// the eavesdropper, logs without secrets, metrics.
@Suite struct NodeTests {
    /// Both sides' consumer keys, fetched through the nodes.
    static func fetchAll(_ alice: QKDLinkNode, _ bob: QKDLinkNode) async throws -> ([ConsumerKey], [ConsumerKey]) {
        (try await alice.fetchKeys(count: 1 << 20), try await bob.fetchKeys(count: 1 << 20))
    }

    static func checkPoolsAgree(_ a: KeyPool, _ b: KeyPool) throws {
        let sa = try a.status(), sb = try b.status()
        let la = a.streamLengths(), lb = b.streamLengths()
        #expect(la.outbound == lb.inbound && la.inbound == lb.outbound, "Alice's outbound stream is Bob's inbound stream, byte for byte")
        #expect(sa.roundsAbsorbed == sb.roundsAbsorbed)
        #expect(sa.ledger.reconciles && sb.ledger.reconciles)
        #expect(try PoolVerifier.verify(directory: a.directory).isEmpty)
        #expect(try PoolVerifier.verify(directory: b.directory).isEmpty)
    }

    @Test func twoNodesCompleteRoundsWithIdenticalKeys() async throws {
        let dir = TempDir()
        let (pa, pb, _) = try makePools(dir)
        defer { pa.close(); pb.close() }
        let classical = Switchboard("classical"), quantum = Switchboard("quantum")
        let alice = try QKDLinkNode(configuration: nodeConfiguration(.alice, rounds: 3), pool: pa, links: links(.alice, classical, quantum))
        let bob = try QKDLinkNode(configuration: nodeConfiguration(.bob, rounds: 3), pool: pb, links: links(.bob, classical, quantum))
        let (ea, eb) = try await runPair(alice: alice, bob: bob)
        let ra = ea.compactMap { $0.finishedReport }, rb = eb.compactMap { $0.finishedReport }
        #expect(ra.count == 3 && rb.count == 3)
        #expect(ra.map(\.roundID) == rb.map(\.roundID))
        #expect(ra.map(\.summary.finalBits) == rb.map(\.summary.finalBits))
        #expect(ra.allSatisfy { $0.securityLevel == .informationTheoretic && $0.deliverable && $0.consumerKeys > 0 })
        #expect(ra.allSatisfy { $0.padBitsUsed > 0 })
        let (ka, kb) = try await Self.fetchAll(alice, bob)
        #expect(!ka.isEmpty)
        #expect(ka.map(\.id) == kb.map(\.id))
        #expect(ka.map(hex) == kb.map(hex))
        try Self.checkPoolsAgree(pa, pb)
        if case .closed(nil)? = ea.last {} else { Issue.record("Alice should end with a graceful close, got \(String(describing: ea.last))") }
        if case .closed(nil)? = eb.last {} else { Issue.record("Bob should end with a graceful close, got \(String(describing: eb.last))") }
    }

    @Test func brokenLinkMidRoundResumesWithoutPadReuse() async throws {
        let dir = TempDir()
        let (pa, pb, _) = try makePools(dir)
        defer { pa.close(); pb.close() }
        let classical = Switchboard("classical"), quantum = Switchboard("quantum")
        let alice = try QKDLinkNode(configuration: nodeConfiguration(.alice, rounds: 3), pool: pa, links: links(.alice, classical, quantum))
        let bob = try QKDLinkNode(configuration: nodeConfiguration(.bob, rounds: 3), pool: pb, links: links(.bob, classical, quantum))
        // Break the first connection in the middle of round 2, from inside the writes (a
        // watcher task polling the write counts missed the round when the cooperative pool was
        // busy with the rest of the suite). Alice writes one pulse frame per round on the
        // quantum link; when she writes round 2's, Bob's classical write count is the base
        // (his `absorbed` for round 1 came before: Alice waits for it). Bob's next writes are
        // round 2's detection report, then a Cascade reply: the link breaks as he writes that
        // reply, so both machines of round 2 are running.
        let base = Mutex<Int?>(nil)
        let broken = Mutex(false)
        quantum.onWrite.withLock {
            $0 = { isAlice, connection, count in
                guard isAlice, connection == 0, count == 2 else { return }
                let bobCount = classical.writes(alice: false)[0].count
                base.withLock { $0 = bobCount }
            }
        }
        classical.onWrite.withLock {
            $0 = { isAlice, connection, count in
                guard !isAlice, connection == 0, let b = base.withLock({ $0 }), count >= b + 2 else { return }
                if broken.withLock({ done in defer { done = true }; return !done }) { classical.breakCurrent() }
            }
        }
        let (ea, eb) = try await runPair(alice: alice, bob: bob)
        #expect(broken.withLock { $0 })
        #expect(classical.connectionCount >= 2, "the nodes reconnected")
        let ra = ea.compactMap { $0.finishedReport }, rb = eb.compactMap { $0.finishedReport }
        #expect(ra.count == 3 && rb.count == 3, "three rounds finished after the resume")
        #expect(ra.map(\.roundID) == rb.map(\.roundID))
        #expect(ea.contains { $0.abortReason?.contains("link failed") == true }, "Alice discarded the broken round")
        #expect(eb.contains { $0.abortReason?.contains("link failed") == true }, "Bob discarded the broken round")
        let (ka, kb) = try await Self.fetchAll(alice, bob)
        #expect(!ka.isEmpty && ka.map(hex) == kb.map(hex))
        try Self.checkPoolsAgree(pa, pb)
        // No pad slot was used twice, across both connections, in either direction.
        for side in [true, false] {
            var slots: [UInt64] = []
            for connection in classical.writes(alice: side) {
                var decoder = FrameDecoder()
                decoder.append(connection.flatMap { $0 })
                while let frame = try? decoder.nextFrame() {
                    if let slot = frame.header.keyReference.slot { slots.append(slot) }
                }
            }
            #expect(!slots.isEmpty)
            #expect(Set(slots).count == slots.count, "a pad slot was used twice")
        }
    }

    /// A small pool: the pads the rounds use are brought back into the agreed levels by the
    /// between-round sync, so later rounds top the streams up, identically on both sides.
    @Test func usedPadsAreRefilledAfterAWatermarkSync() async throws {
        let dir = TempDir()
        let (pa, pb, psk) = try makePools(dir, pskBytes: 4096, chunkPads: 4)
        defer { pa.close(); pb.close() }
        let initial = pa.streamLengths()
        let classical = Switchboard("classical"), quantum = Switchboard("quantum")
        let policy = RefillPolicy(padBytesPerRound: 128, roundsAhead: 4, reserveBytes: 512)
        var ca = nodeConfiguration(.alice, rounds: 12), cb = nodeConfiguration(.bob, rounds: 12)
        ca.refillPolicy = policy
        cb.refillPolicy = policy
        let alice = try QKDLinkNode(configuration: ca, pool: pa, links: links(.alice, classical, quantum))
        let bob = try QKDLinkNode(configuration: cb, pool: pb, links: links(.bob, classical, quantum))
        let (ea, eb) = try await runPair(alice: alice, bob: bob)
        let fa = ea.compactMap { $0.finishedReport }.map(\.roundID), fb = eb.compactMap { $0.finishedReport }.map(\.roundID)
        #expect(fa == fb && fa.count >= 10, "finished \(fa) / \(fb); aborted: \(ea.compactMap { $0.abortReason }) / \(eb.compactMap { $0.abortReason })")
        let sa = try pa.status(), sb = try pb.status()
        let syncedA = Dictionary(uniqueKeysWithValues: sa.streams.map { ($0.linkStream, $0.syncedWatermark) })
        let syncedB = Dictionary(uniqueKeysWithValues: sb.streams.map { ($0.linkStream, $0.syncedWatermark) })
        #expect(syncedA == syncedB, "both sides agree on the synced watermarks")
        #expect(syncedA.values.allSatisfy { $0 > 0 }, "at least one sync happened")
        let now = pa.streamLengths()
        #expect(now.outbound > initial.outbound && now.inbound > initial.inbound, "later rounds topped both streams up (PSK \(psk.key.count) bytes)")
        try Self.checkPoolsAgree(pa, pb)
        let (ka, kb) = try await Self.fetchAll(alice, bob)
        #expect(!ka.isEmpty && ka.map(hex) == kb.map(hex))
    }

    /// A short PSK through HKDF (psk-kdf, computational): the first round's consumer keys are
    /// withheld by the default policy, its pad top-ups seed the pools, both sides switch to pool
    /// epochs (`poolReady`), and later rounds deliver identical keys.
    @Test func pskKDFBootstrapSwitchesToInformationTheoreticAndWithholdsEarlyKeys() async throws {
        let dir = TempDir()
        let linkID = UUID()
        let config = KeyPool.Configuration(chunkPads: 16, lowWaterBytes: 0)
        let pa = try KeyPool.create(directory: dir.sub("alice"), role: .alice, linkID: linkID, configuration: config)
        let pb = try KeyPool.create(directory: dir.sub("bob"), role: .bob, linkID: linkID, configuration: config)
        defer { pa.close(); pb.close() }
        var random = DeterministicRandomSource(seed: 5)
        let psk = PreSharedKey(id: random.bytes(count: 16), secret: SecretBytes(randomCount: 32, using: &random))
        let classical = Switchboard("classical"), quantum = Switchboard("quantum")
        var ca = nodeConfiguration(.alice, rounds: 3), cb = nodeConfiguration(.bob, rounds: 3)
        ca.preSharedKeys = [psk]
        cb.preSharedKeys = [psk]
        // A small target level, so the first round's key tops up both streams (the split fills
        // a2b before b2a, Spec/keypool.md section 4).
        let policy = RefillPolicy(padBytesPerRound: 64, roundsAhead: 2, reserveBytes: 256)
        ca.refillPolicy = policy
        cb.refillPolicy = policy
        let alice = try QKDLinkNode(configuration: ca, pool: pa, links: links(.alice, classical, quantum))
        let bob = try QKDLinkNode(configuration: cb, pool: pb, links: links(.bob, classical, quantum))
        let (ea, eb) = try await runPair(alice: alice, bob: bob)
        if case .established(.computational)? = ea.first(where: { if case .established = $0 { true } else { false } }) {} else {
            Issue.record("the psk-kdf session starts computational")
        }
        #expect(ea.contains { if case .securityLevelChanged(.informationTheoretic) = $0 { true } else { false } })
        #expect(eb.contains { if case .securityLevelChanged(.informationTheoretic) = $0 { true } else { false } })
        let ra = ea.compactMap { $0.finishedReport }, rb = eb.compactMap { $0.finishedReport }
        #expect(ra.count == 3 && rb.count == 3)
        #expect(ra.first?.deliverable == false && ra.first?.consumerKeys == 0, "the computational round's keys are withheld")
        // Round 2 may start before Bob's Rotate reached Alice (then it is withheld too); once
        // Alice's session is information-theoretic, rounds deliver.
        #expect(ra.last?.deliverable == true && (ra.last?.consumerKeys ?? 0) > 0)
        #expect(ra.allSatisfy { $0.deliverable == ($0.securityLevel == .informationTheoretic) || $0.deliverable == false })
        let withheld = Set(ra.filter { !$0.deliverable }.map(\.roundID))
        #expect(ra.map(\.deliverable) == rb.map(\.deliverable))
        let (ka, kb) = try await Self.fetchAll(alice, bob)
        #expect(!ka.isEmpty && ka.map(hex) == kb.map(hex))
        #expect(ka.allSatisfy { !withheld.contains($0.roundID) }, "no key of a computational round is delivered")
        try Self.checkPoolsAgree(pa, pb)
    }

    @Test func anEavesdropperMakesEveryRoundAbort() async throws {
        let dir = TempDir()
        let (pa, pb, _) = try makePools(dir)
        defer { pa.close(); pb.close() }
        let classical = Switchboard("classical"), quantum = Switchboard("quantum")
        let alice = try QKDLinkNode(configuration: nodeConfiguration(.alice, rounds: 2, eve: 1), pool: pa, links: links(.alice, classical, quantum))
        let bob = try QKDLinkNode(configuration: nodeConfiguration(.bob, rounds: 2, eve: 1), pool: pb, links: links(.bob, classical, quantum))
        let (ea, eb) = try await runPair(alice: alice, bob: bob)
        #expect(ea.compactMap { $0.finishedReport }.isEmpty && eb.compactMap { $0.finishedReport }.isEmpty)
        #expect(ea.compactMap { $0.abortReason }.count == 2)
        #expect(eb.compactMap { $0.abortReason }.allSatisfy { $0.contains("QBER") })
        let (ka, kb) = try await Self.fetchAll(alice, bob)
        #expect(ka.isEmpty && kb.isEmpty)
        #expect(try pa.status().roundsAbsorbed == 0)
        try Self.checkPoolsAgree(pa, pb)
    }

    @Test func logsCarryNoSecrets() async throws {
        let dir = TempDir()
        let (pa, pb, psk) = try makePools(dir)
        defer { pa.close(); pb.close() }
        let capture = LogCapture()
        let logger = Logger(label: "qkd.node.test", factory: capture.handler)
        let classical = Switchboard("classical"), quantum = Switchboard("quantum")
        let alice = try QKDLinkNode(configuration: nodeConfiguration(.alice, rounds: 2, logger: logger), pool: pa, links: links(.alice, classical, quantum))
        let bob = try QKDLinkNode(configuration: nodeConfiguration(.bob, rounds: 2, logger: logger), pool: pb, links: links(.bob, classical, quantum))
        _ = try await runPair(alice: alice, bob: bob)
        let (ka, _) = try await Self.fetchAll(alice, bob)
        let text = capture.text.lowercased()
        #expect(text.contains("round finished"), "the capture saw the node's logs")
        // Every 16-byte window of the PSK (hash keys and pads), and every consumer key, in hex
        // and base64: none may appear.
        var secrets: [[UInt8]] = []
        psk.key.withUnsafeBytes { bytes in
            for start in stride(from: 0, to: bytes.count - 16, by: 16) { secrets.append(Array(bytes[start..<(start + 16)])) }
        }
        for key in ka { secrets.append(key.bytes.withUnsafeBytes { Array($0) }) }
        #expect(secrets.count > 100)
        let raw = capture.text
        for secret in secrets {
            let h = Hex.encode(secret.prefix(8))
            #expect(!text.contains(h))
            let b64 = Data(secret.prefix(12)).base64EncodedString()
            #expect(!raw.contains(b64))
        }
    }

    @Test func metricsCountFramesPadsAndKeys() async throws {
        let dir = TempDir()
        let (pa, pb, _) = try makePools(dir)
        defer { pa.close(); pb.close() }
        let metrics = TestMetrics()
        let classical = Switchboard("classical"), quantum = Switchboard("quantum")
        let alice = try QKDLinkNode(configuration: nodeConfiguration(.alice, rounds: 2, metrics: metrics), pool: pa, links: links(.alice, classical, quantum))
        let bob = try QKDLinkNode(configuration: nodeConfiguration(.bob, rounds: 2, metrics: metrics), pool: pb, links: links(.bob, classical, quantum))
        let (ea, _) = try await runPair(alice: alice, bob: bob)
        let reports = ea.compactMap { $0.finishedReport }
        #expect(reports.count == 2)
        #expect(metrics.counter("qkd_node_rounds_finished", role: "alice") == 2)
        #expect(metrics.counter("qkd_node_rounds_finished", role: "bob") == 2)
        #expect(metrics.counter("qkd_node_key_bits_produced", role: "alice") == Double(reports.reduce(0) { $0 + $1.summary.finalBits }))
        #expect(metrics.counter("qkd_node_pad_bits_used", role: "alice") >= Double(reports.reduce(0) { $0 + $1.padBitsUsed }))
        #expect(metrics.counter("qkd_node_frames_sent", role: "alice") > 0)
        #expect(metrics.counter("qkd_node_authentication_failures", role: "alice") == 0)
        let qber = try #require(metrics.gauge("qkd_node_qber", role: "bob"))
        #expect(abs(qber - reports.last!.summary.qberEstimate) < 1e-12)
        let keys = try await alice.fetchKeys(count: 3)
        #expect(metrics.counter("qkd_node_key_bits_delivered", role: "alice") == Double(keys.reduce(0) { $0 + 8 * $1.bytes.count }))
    }

    @Test func cancellationStopsCleanly() async throws {
        let dir = TempDir()
        let (pa, pb, _) = try makePools(dir)
        defer { pa.close(); pb.close() }
        let classical = Switchboard("classical"), quantum = Switchboard("quantum")
        let alice = try QKDLinkNode(configuration: nodeConfiguration(.alice, rounds: 1000), pool: pa, links: links(.alice, classical, quantum))
        let bob = try QKDLinkNode(configuration: nodeConfiguration(.bob, rounds: 1000), pool: pb, links: links(.bob, classical, quantum))
        let bobTask = Task { try await bob.run() }
        let aliceTask = Task { try await alice.run() }
        var sawRound = false
        for await event in alice.events {
            if event.finishedReport != nil, !sawRound {
                sawRound = true
                aliceTask.cancel()
            }
        }
        try await aliceTask.value
        try await bobTask.value  // Bob sees Alice's graceful close.
        #expect(sawRound)
        #expect(try PoolVerifier.verify(directory: pa.directory).isEmpty)
        #expect(try PoolVerifier.verify(directory: pb.directory).isEmpty)
    }
}
