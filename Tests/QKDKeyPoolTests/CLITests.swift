import Foundation
import QKDTestSupport
import QKDCrypto
import Testing
@testable import QKDKeyPool

/// The CLI over a real pool: `keys export` delivers what the peer's pool delivers by id, and
/// `pool status --json` reports levels without key bytes.
@Suite struct CLITests {
    struct Exported: Decodable { let id: String; let key: String }

    @Test func keysExportMatchesThePeerAndMarksDelivered() async throws {
        try await offThePool {
            let binary = try #require(QKDNodeBinary.locate())
            let dir = TempDir()
            let (alice, bob) = try makePair(dir)
            for round in UInt64(1)...2 {
                // 20_000 + round bytes: keys of 33 bytes exercise base64 padding.
                let key = testSecret(20_000 + Int(round), seed: round)
                let policy = RefillPolicy(consumerKeyBytes: 32 + Int(round))
                try alice.absorbDistilledKey(roundID: round, bytes: key, policy: policy)
                try bob.absorbDistilledKey(roundID: round, bytes: key, policy: policy)
            }
            alice.close()
            let r = try await QKDNodeBinary.run(binary, ["keys", "export", "--state", alice.directory, "--json"])
            try #require(r.status == 0, "\(r.stderr)")
            let exported = try JSONDecoder().decode([Exported].self, from: Data(r.stdout.utf8))
            #expect(exported.count > 100)
            let ids = exported.compactMap { UUID(uuidString: $0.id) }
            let fromBob = try bob.deliverConsumerKeys(ids: ids)
            #expect(fromBob.count == exported.count)
            for (e, k) in zip(exported, fromBob) {
                #expect(e.key == k.bytes.withUnsafeBytes { Data($0).base64EncodedString() })
            }
            let again = try await QKDNodeBinary.run(binary, ["keys", "export", "--state", alice.directory, "--json"])
            #expect(again.status == 0 && again.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[]")
            let status = try await QKDNodeBinary.run(binary, ["pool", "status", "--state", alice.directory, "--json"])
            #expect(status.status == 0)
            let decoded = try JSONDecoder().decode(PoolStatus.self, from: Data(status.stdout.utf8))
            #expect(decoded.consumerKeys["delivered"] == exported.count && decoded.ledger.reconciles)
            let noJSON = try await QKDNodeBinary.run(binary, ["keys", "export", "--state", alice.directory])
            #expect(noJSON.status != 0 && noJSON.stderr.contains("--json"))
            #expect(try await QKDNodeBinary.run(binary, ["pool", "verify", "--state", alice.directory]).status == 0)
        }
    }
}
