import Foundation
import QKDCrypto
@testable import QKDNode
import Testing

/// `NodeConfiguration.handshakeTimeout` reaches the session: a peer that never answers ends the
/// handshake with the configured limit, long before the stall timeout.
@Suite struct HandshakeTimeoutTests {
    @Test(.timeLimit(.minutes(5))) func aSilentPeerEndsTheHandshakeAtTheConfiguredLimit() async throws {
        let dir = TempDir()
        let (pa, pb, _) = try makePools(dir)
        defer { pa.close(); pb.close() }
        // Bob never accepts: Alice's hello goes into a connection nobody reads.
        let classical = Switchboard("classical"), quantum = Switchboard("quantum")
        var ca = nodeConfiguration(.alice, rounds: 1)
        ca.handshakeTimeout = .milliseconds(300)
        // Only the handshake limit may end this connection. With the tests' 20 s stall limit, a
        // full suite starving the node's tasks for 20 s (CI beside a release build) let the
        // stall check, which the same tick makes after the session's, name the failure instead.
        ca.stallTimeout = .seconds(3_600)
        ca.maxReconnectAttempts = 1
        let alice = try QKDLinkNode(configuration: ca, pool: pa, links: links(.alice, classical, quantum))
        async let events: [NodeEvent] = { var out: [NodeEvent] = []; for await e in alice.events { out.append(e) }; return out }()
        await #expect(throws: QKDError(.nodeLinkLost)) { try await alice.run() }
        let reasons = await events.compactMap { e -> String? in
            if case .disconnected(let reason) = e { return reason }
            return nil
        }
        #expect(reasons.count == 1)
        // The session's own message names the limit it was given (Spec/session.md, handshake).
        #expect(reasons.first?.contains("within 300 ms") == true, "\(reasons)")
    }
}
