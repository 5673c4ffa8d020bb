import Foundation
import QKDCrypto
import QKDKeyPool
@testable import QKDNode
import QKDSession
import Testing

/// Two ``QKDLinkNode``s bootstrapped by PKI (X.509 certificates from a test CA) over in-memory
/// links: the computational start, the switch to information-theoretic once the pools hold QKD
/// key, and the refusals (wrong CA, wrong peer name, expired certificate).
@Suite struct NodePKITests {
    static let notBefore = Date(timeIntervalSince1970: 1_790_000_000)  // 2026-09

    /// A CA with certificates for alice.example and bob.example, valid for 30 days.
    static func testPKI(seed: UInt64 = 11, withMLDSA: Bool = false) throws -> TestPKI {
        var random = DeterministicRandomSource(seed: seed)
        return try TestPKI.make(nodeNames: ["alice.example", "bob.example"], notBefore: notBefore, validity: 30 * 86_400,
                                withMLDSA: withMLDSA, using: &random)
    }

    /// Empty pools (no pads: the PKI bootstrap fills them) with the PKI link id.
    static func emptyPools(_ dir: TempDir) throws -> (KeyPool, KeyPool) {
        let linkID = NodePKI.linkID(alice: "alice.example", bob: "bob.example")
        let config = KeyPool.Configuration(chunkPads: 16, lowWaterBytes: 0)
        return (try KeyPool.create(directory: dir.sub("alice"), role: .alice, linkID: linkID, configuration: config),
                try KeyPool.create(directory: dir.sub("bob"), role: .bob, linkID: linkID, configuration: config))
    }

    /// Node configurations with PKI; a small split policy so the first round's key puts pads in
    /// both streams (the split fills a2b before b2a, Spec/keypool.md section 4).
    static func configurations(_ pki: TestPKI, rounds: Int, kex: NodeKeyAgreement = .hybrid,
                               alicePeerName: String = "bob.example", aliceAnchors: TrustAnchors? = nil, bobAnchors: TrustAnchors? = nil,
                               aliceTime: Date = notBefore.addingTimeInterval(86_400)) throws -> (NodeConfiguration, NodeConfiguration) {
        var ca = nodeConfiguration(.alice, rounds: rounds), cb = nodeConfiguration(.bob, rounds: rounds)
        ca.pki = NodePKI(identity: try pki.nodes[0].identity(), anchors: aliceAnchors ?? pki.anchors(), peerName: alicePeerName,
                         keyAgreement: kex, validationTime: { aliceTime })
        cb.pki = NodePKI(identity: try pki.nodes[1].identity(), anchors: bobAnchors ?? pki.anchors(), peerName: "alice.example",
                         keyAgreement: kex, validationTime: { notBefore.addingTimeInterval(86_400) })
        let policy = RefillPolicy(padBytesPerRound: 64, roundsAhead: 2, reserveBytes: 256)
        ca.refillPolicy = policy
        cb.refillPolicy = policy
        ca.maxReconnectAttempts = 2
        cb.maxReconnectAttempts = 2
        return (ca, cb)
    }

    /// Runs both nodes to their end, whatever each run() does (a failure on one side must not
    /// cancel the other: both must stop on their own).
    static func runBoth(_ alice: QKDLinkNode, _ bob: QKDLinkNode) async
        -> (alice: [NodeEvent], bob: [NodeEvent], aliceError: (any Error)?, bobError: (any Error)?) {
        async let ea: [NodeEvent] = { var out: [NodeEvent] = []; for await e in alice.events { out.append(e) }; return out }()
        async let eb: [NodeEvent] = { var out: [NodeEvent] = []; for await e in bob.events { out.append(e) }; return out }()
        async let ra: (any Error)? = { do { try await alice.run(); return nil } catch { return error } }()
        async let rb: (any Error)? = { do { try await bob.run(); return nil } catch { return error } }()
        let (errorA, errorB) = await (ra, rb)
        return (await ea, await eb, errorA, errorB)
    }

    /// X25519 with Ed25519 signatures; the hybrid key agreement with ML-DSA-65 signatures too
    /// (both certificates bind an ML-DSA-65 key, so both signatures are required).
    @Test(arguments: [(NodeKeyAgreement.x25519, false), (.hybrid, true)])
    func pkiBootstrapStartsComputationalAndSwitchesToInformationTheoretic(kex: NodeKeyAgreement, mlDSA: Bool) async throws {
        let dir = TempDir()
        let (pa, pb) = try Self.emptyPools(dir)
        defer { pa.close(); pb.close() }
        let (ca, cb) = try Self.configurations(try Self.testPKI(withMLDSA: mlDSA), rounds: 3, kex: kex)
        #expect((ca.pki?.identity.mlDSAKey != nil) == mlDSA)
        let classical = Switchboard("classical"), quantum = Switchboard("quantum")
        let alice = try QKDLinkNode(configuration: ca, pool: pa, links: links(.alice, classical, quantum))
        let bob = try QKDLinkNode(configuration: cb, pool: pb, links: links(.bob, classical, quantum))
        let (ea, eb, errorA, errorB) = await Self.runBoth(alice, bob)
        #expect(errorA == nil && errorB == nil, "alice: \(String(describing: errorA)), bob: \(String(describing: errorB))")
        for events in [ea, eb] {
            let established = events.compactMap { if case .established(let level) = $0 { level } else { nil } }
            #expect(established == [.computational], "the PKI bootstrap is computational")
            #expect(events.contains { if case .securityLevelChanged(.informationTheoretic) = $0 { true } else { false } })
        }
        let ra = ea.compactMap { $0.finishedReport }, rb = eb.compactMap { $0.finishedReport }
        #expect(ra.count == 3 && rb.count == 3)
        #expect(ra.first?.securityLevel == .computational && ra.first?.deliverable == false && ra.first?.consumerKeys == 0,
                "the computational round's keys are withheld")
        // Alice waits for both switches before the next round: every later round is deliverable.
        #expect(ra.dropFirst().allSatisfy { $0.securityLevel == .informationTheoretic && $0.deliverable })
        #expect(ra.map(\.deliverable) == rb.map(\.deliverable))
        let (ka, kb) = (try await alice.fetchKeys(count: 1 << 20), try await bob.fetchKeys(count: 1 << 20))
        #expect(!ka.isEmpty)
        #expect(ka.map(\.id) == kb.map(\.id) && ka.map(hex) == kb.map(hex))
        #expect(ka.allSatisfy { $0.roundID != ra.first?.roundID }, "no key of the computational round is delivered")
        try NodeTests.checkPoolsAgree(pa, pb)
    }

    /// What goes wrong, and the `pki.*` code the refusing side's error names.
    enum Refusal: String, CaseIterable, Sendable {
        case wrongCA = "pki.untrusted"
        case wrongPeerName = "pki.name-mismatch"
        case expired = "pki.expired"
    }

    @Test(arguments: Refusal.allCases)
    func aRefusedCertificateStopsBothNodesWithATypedErrorAndNoKeys(refusal: Refusal) async throws {
        let dir = TempDir()
        let (pa, pb) = try Self.emptyPools(dir)
        defer { pa.close(); pb.close() }
        let pki = try Self.testPKI()
        let (ca, cb): (NodeConfiguration, NodeConfiguration)
        switch refusal {
        case .wrongCA:  // Bob trusts another CA: he refuses Alice's chain.
            (ca, cb) = try Self.configurations(pki, rounds: 2, bobAnchors: try Self.testPKI(seed: 12).anchors())
        case .wrongPeerName:  // Alice expects carol.example: she refuses Bob's certificate.
            (ca, cb) = try Self.configurations(pki, rounds: 2, alicePeerName: "carol.example")
        case .expired:  // Alice's clock is past Bob's certificate's end.
            (ca, cb) = try Self.configurations(pki, rounds: 2, aliceTime: Self.notBefore.addingTimeInterval(40 * 86_400))
        }
        let classical = Switchboard("classical"), quantum = Switchboard("quantum")
        let alice = try QKDLinkNode(configuration: ca, pool: pa, links: links(.alice, classical, quantum))
        let bob = try QKDLinkNode(configuration: cb, pool: pb, links: links(.bob, classical, quantum))
        let (ea, eb, errorA, errorB) = await Self.runBoth(alice, bob)
        // Both stop with session.bad-certificate (the refusing side's own, the other's from the
        // alert) instead of reconnecting: a refused certificate stays refused.
        #expect((errorA as? QKDError) == QKDError(.sessionBadCertificate), "alice: \(String(describing: errorA))")
        #expect((errorB as? QKDError) == QKDError(.sessionBadCertificate), "bob: \(String(describing: errorB))")
        let refuser = refusal == .wrongCA ? eb : ea
        let reason = refuser.compactMap { if case .closed(let r?) = $0 { r } else { nil } }.first ?? ""
        #expect(reason.contains(refusal.rawValue), "the closing event names \(refusal.rawValue): \(reason)")
        #expect(classical.connectionCount == 1, "no reconnection after a refused certificate")
        for events in [ea, eb] {
            #expect(!events.contains { if case .established = $0 { true } else { false } })
            #expect(events.allSatisfy { $0.finishedReport == nil })
        }
        let (ka, kb) = (try await alice.fetchKeys(count: 100), try await bob.fetchKeys(count: 100))
        #expect(ka.isEmpty && kb.isEmpty)
        #expect(pa.streamLengths().outbound == 0 && pb.streamLengths().outbound == 0)
    }

    @Test func bothNamesGiveTheSameLinkIDOnBothSides() throws {
        let pki = try Self.testPKI()
        let a = NodePKI(identity: try pki.nodes[0].identity(), anchors: pki.anchors(), peerName: "bob.example")
        let b = NodePKI(identity: try pki.nodes[1].identity(), anchors: pki.anchors(), peerName: "Alice.Example.")
        #expect(a.localName == "alice.example" && b.localName == "bob.example")
        #expect(a.linkID(role: .alice) == b.linkID(role: .bob))
        #expect(a.linkID(role: .alice) != NodePKI.linkID(alice: "bob.example", bob: "alice.example"))
    }
}
