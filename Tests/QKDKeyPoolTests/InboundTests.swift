import Foundation
import QKDCrypto
import Testing
@testable import QKDKeyPool

/// Spec/keypool.md, "Checking inbound tags": a failed verification consumes nothing; an accepted
/// one consumes through its pad, so a replay is refused.
@Suite struct InboundTests {
    @Test func forgeriesConsumeNothingAndReplaysAreRefused() throws {
        let dir = TempDir()
        let (alice, bob) = try makePair(dir, pskBytes: 4096, configuration: .init(chunkPads: 4))
        let key = try #require(try alice.currentHashKey(direction: .outbound)).key
        let bobKey = try #require(try bob.currentHashKey(direction: .inbound)).key
        let domain = Array("frame".utf8)
        func check(_ tag: AuthenticationTag, _ message: [UInt8], at offset: UInt64) throws -> Bool {
            let pad = try bob.inboundPad(at: offset)
            return message.withUnsafeBytes { m in domain.withUnsafeBytes { d in
                WegmanCarter.isValidAuthenticationTag(tag, authenticating: m, domain: d, hashKey: bobKey, pad: pad) } }
        }
        var frames: [(UInt64, [UInt8], AuthenticationTag)] = []
        for i in 0..<6 {
            let message = Array("frame \(i)".utf8)
            let r = try alice.reserveOnePad(direction: .outbound)
            let offset = r.offset
            frames.append((offset, message, WegmanCarter.authenticationTag(for: message, domain: domain, hashKey: key, pad: r.takePad())))
        }
        // A forged frame naming pad 0: rejected, and Bob's inbound stream does not move.
        #expect(try !check(frames[0].2, Array("forged".utf8), at: 0))
        #expect(try bob.status().streams.first { $0.direction == .inbound }!.servedOffset == 0)
        // The genuine frame 0 still verifies, then is accepted.
        #expect(try check(frames[0].2, frames[0].1, at: frames[0].0))
        try bob.acceptInbound(through: frames[0].0 + 16)
        // Frames 1 and 2 were lost; frame 3 verifies and is accepted, skipping 1 and 2.
        #expect(try check(frames[3].2, frames[3].1, at: frames[3].0))
        try bob.acceptInbound(through: frames[3].0 + 16)
        // Replays (and late frames) are refused with a typed error; nothing moves.
        #expect(throws: QKDError(.watermarkBackward)) { _ = try bob.inboundPad(at: frames[0].0) }
        #expect(throws: QKDError(.watermarkBackward)) { _ = try bob.inboundPad(at: frames[2].0) }
        #expect(throws: QKDError(.watermarkBackward)) { try bob.acceptInbound(through: 16) }
        // Pads beyond the durable chunk are read from storage without being reserved.
        #expect(try check(frames[5].2, frames[5].1, at: frames[5].0))
        #expect(throws: QKDError(.poolExhausted)) { _ = try bob.inboundPad(at: 1 << 30) }
        #expect(try bob.status().ledger.reconciles)
        #expect(try PoolVerifier.verify(directory: bob.directory).isEmpty)
    }
}
