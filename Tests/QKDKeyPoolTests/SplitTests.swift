import Foundation
import QKDCrypto
import Testing
@testable import QKDKeyPool

/// DESIGN.md invariant 2 / Spec/keypool.md "Split function": both sides derive the same split.
@Suite struct SplitTests {
    let policy = RefillPolicy(padBytesPerRound: 512, roundsAhead: 2, reserveBytes: 1024, newHashKeys: true, consumerKeyBytes: 32)

    @Test func bothSidesGetIdenticalCrossDirectionStreamsAndConsumerKeys() throws {
        let dir = TempDir()
        let (alice, bob) = try makePair(dir, pskBytes: 1024)
        for round in UInt64(1)...3 {
            let key = testSecret(4000 + Int(round) * 37, seed: 100 + round)
            let a = try alice.absorbDistilledKey(roundID: round, bytes: key, policy: policy)
            let b = try bob.absorbDistilledKey(roundID: round, bytes: key, policy: policy)
            #expect(a.outboundTopUp == b.inboundTopUp)
            #expect(a.inboundTopUp == b.outboundTopUp)
            #expect(a.consumerKeyIDs == b.consumerKeyIDs)
            #expect(a.newEpoch == b.newEpoch)
            #expect(a.discarded == b.discarded)
        }
        let sa = try alice.status(), sb = try bob.status()
        let aOut = sa.streams.first { $0.direction == .outbound }!, bIn = sb.streams.first { $0.direction == .inbound }!
        #expect(aOut.length == bIn.length && aOut.length > 0)
        let pads = Int(aOut.length) / 16
        #expect(try drain(alice, .outbound, pads: pads) == drain(bob, .inbound, pads: pads))
        let aIn = sa.streams.first { $0.direction == .inbound }!
        #expect(try drain(alice, .inbound, pads: Int(aIn.length) / 16) == drain(bob, .outbound, pads: Int(aIn.length) / 16))

        // Hash keys: a tag Alice makes with her outbound key and pad verifies with Bob's inbound
        // key and pad, in both directions, after a resynchronisation and a further absorb refill
        // the drained streams (the split tops up to the agreed level: Spec/keypool.md).
        let (wa, wb) = (alice.watermarks(), bob.watermarks())
        try alice.advance(to: wa.merged(withPeer: wb))
        try bob.advance(to: wb.merged(withPeer: wa))
        try alice.absorbDistilledKey(roundID: 99, bytes: testSecret(8000, seed: 99), policy: policy)
        try bob.absorbDistilledKey(roundID: 99, bytes: testSecret(8000, seed: 99), policy: policy)
        for (sender, receiver) in [(alice, bob), (bob, alice)] {
            let hs = try #require(try sender.currentHashKey(direction: .outbound))
            let hr = try #require(try receiver.currentHashKey(direction: .inbound))
            #expect(hs.epoch == hr.epoch)
            let message = Array("round 99 closing message".utf8), domain = Array("test".utf8)
            let sent = try sender.reserveOnePad(direction: .outbound)
            let sentOffset = sent.offset
            let tag = WegmanCarter.authenticationTag(for: message, domain: domain, hashKey: hs.key, pad: sent.takePad())
            let check = try receiver.reservePad(direction: .inbound, count: 1)
            #expect(check.offset == sentOffset)
            let pad = check.pad(0)
            #expect(message.withUnsafeBytes { m in domain.withUnsafeBytes { d in
                WegmanCarter.isValidAuthenticationTag(tag, authenticating: m, domain: d, hashKey: hr.key, pad: pad) } })
        }

        // Consumer keys: Alice takes by count, Bob by id (the peer side): same ids, same bytes.
        let fromAlice = try alice.deliverConsumerKeys(count: 1000)
        #expect(fromAlice.count > 100)
        let fromBob = try bob.deliverConsumerKeys(ids: fromAlice.map(\.id).reversed())
        #expect(fromBob.map(\.id) == fromAlice.map(\.id).reversed())
        for (x, y) in zip(fromAlice, fromBob.reversed()) { #expect(x.bytes == y.bytes && x.roundID == y.roundID && x.index == y.index) }
        #expect(Set(fromAlice.map(\.id)).count == fromAlice.count)
        #expect(try PoolVerifier.verify(directory: alice.directory).isEmpty)
        #expect(try PoolVerifier.verify(directory: bob.directory).isEmpty)
    }

    /// The split reads only the agreed watermark, so different local watermarks (reserve-ahead,
    /// a node that tagged more) do not change it; after a resynchronisation both continue at
    /// the same offset with the same pads.
    @Test func splitIgnoresLocalWatermarksAndResyncLinesUpTheStreams() throws {
        let dir = TempDir()
        let (alice, bob) = try makePair(dir, pskBytes: 4096, configuration: .init(chunkPads: 8))
        _ = try drain(alice, .outbound, pads: 20)  // Alice tagged 20 frames ...
        _ = try drain(bob, .inbound, pads: 5)       // ... Bob has checked 5 so far.
        let key = testSecret(5000, seed: 7)
        let a = try alice.absorbDistilledKey(roundID: 1, bytes: key, policy: policy)
        let b = try bob.absorbDistilledKey(roundID: 1, bytes: key, policy: policy)
        #expect(a.outboundTopUp == b.inboundTopUp && a.consumerKeyIDs == b.consumerKeyIDs)

        // Reconnect: exchange durable watermarks, merge, advance.
        let wa = alice.watermarks(), wb = bob.watermarks()
        #expect(wa.outbound == 24 * 16 && wb.inbound == 8 * 16)  // Chunks of 8 pads.
        try alice.advance(to: wa.merged(withPeer: wb))
        try bob.advance(to: wb.merged(withPeer: wa))
        #expect(alice.watermarks().outbound == bob.watermarks().inbound)
        #expect(alice.watermarks().inbound == bob.watermarks().outbound)
        let pa = try alice.reservePad(direction: .outbound, count: 3)
        let pb = try bob.reservePad(direction: .inbound, count: 3)
        #expect(pa.offset == pb.offset && pa.bytes == pb.bytes)

        // After the resync both agreed levels are equal again, and so is the next split.
        let key2 = testSecret(9000, seed: 8)
        let a2 = try alice.absorbDistilledKey(roundID: 2, bytes: key2, policy: policy)
        let b2 = try bob.absorbDistilledKey(roundID: 2, bytes: key2, policy: policy)
        #expect(a2.outboundTopUp == b2.inboundTopUp && a2.inboundTopUp == b2.outboundTopUp)
        #expect(a2.consumerKeyIDs == b2.consumerKeyIDs)
    }

    @Test func splitPartitionsTheKeyInNormativeOrder() {
        var random = DeterministicRandomSource(seed: 42)
        for _ in 0..<500 {
            let length = Int.random(in: 0...20_000, using: &random)
            let p = RefillPolicy(padBytesPerRound: 16 * Int.random(in: 0...64, using: &random),
                                 roundsAhead: Int.random(in: 0...8, using: &random),
                                 reserveBytes: 16 * Int.random(in: 0...64, using: &random),
                                 newHashKeys: Bool.random(using: &random),
                                 consumerKeyBytes: Int.random(in: 1...100, using: &random))
            let levels: [LinkStream: UInt64] = [.aliceToBob: 16 * UInt64.random(in: 0...600, using: &random),
                                                .bobToAlice: 16 * UInt64.random(in: 0...600, using: &random)]
            let s = KeySplit(byteCount: length, policy: p, agreedLevels: levels)
            var ranges = [s.topUp[.aliceToBob]!, s.topUp[.bobToAlice]!]
            if let h = s.hashKeys { ranges.append(h) }
            ranges += s.consumerKeys
            ranges.append(s.discarded)
            var cursor = 0
            for r in ranges { #expect(r.lowerBound == cursor); cursor = r.upperBound }
            #expect(cursor == length)
            for stream in LinkStream.allCases {
                let t = s.topUp[stream]!.count
                #expect(t % 16 == 0)
                #expect(UInt64(t) + levels[stream]! <= max(UInt64(p.targetLevel), levels[stream]!))
            }
            #expect(s.discarded.count < p.consumerKeyBytes)
            #expect(s.consumerKeys.allSatisfy { $0.count == p.consumerKeyBytes })
        }
    }

    @Test func consumerKeyIDsAreDeterministicAndDistinct() throws {
        let link = UUID(uuidString: "8a3c0c5e-6f0e-4b8e-9d1e-000000000001")!
        let a = KeySplit.consumerKeyID(linkID: link, roundID: 5, index: 0)
        #expect(a == KeySplit.consumerKeyID(linkID: link, roundID: 5, index: 0))
        #expect(a != KeySplit.consumerKeyID(linkID: link, roundID: 5, index: 1))
        #expect(a != KeySplit.consumerKeyID(linkID: link, roundID: 6, index: 0))
        #expect(a != KeySplit.consumerKeyID(linkID: UUID(), roundID: 5, index: 0))
        #expect(a.uuidString.lowercased().dropFirst(14).first == "8")  // RFC 9562 version 8.
        // Ids decode back to (round, index) for their own link only.
        var random = DeterministicRandomSource(seed: 11)
        let tag = KeySplit.linkTag(link)
        for _ in 0..<1000 {
            let round = UInt64.random(in: 0...UInt64.max, using: &random)
            let index = Int.random(in: 0...KeySplit.maximumConsumerKeyIndex, using: &random)
            let id = KeySplit.consumerKeyID(linkID: link, roundID: round, index: index)
            let decoded = try #require(KeySplit.decodeConsumerKeyID(id, linkTag: tag))
            #expect(decoded.roundID == round && decoded.index == index)
            #expect(KeySplit.decodeConsumerKeyID(id, linkTag: tag ^ 1) == nil)
            #expect(id.uuidString.lowercased().dropFirst(19).first.map { "89ab".contains($0) } == true)  // Variant 10.
        }
    }
}
