import QKDCrypto
import QKDWire
import Testing
@testable import QKDSession

/// The handshake, control and alert codecs (Spec/session.md sections 3, 6 and 7): decoding
/// what was encoded gives back the value, for random values; every truncation and every
/// trailing byte is a typed error; 10^4 random and mutated inputs per decoder never crash.
@Suite struct CodecTests {
    static func randomBytes(_ n: Int, _ r: inout DeterministicRandomSource) -> [UInt8] { r.bytes(count: n) }

    static func randomList(_ r: inout DeterministicRandomSource) -> [UInt8] {
        Array(Set((0..<Int.random(in: 1...6, using: &r)).map { _ in UInt8.random(in: 0...255, using: &r) }))
    }

    static func randomProof(_ r: inout DeterministicRandomSource) -> PKIIdentityProof {
        PKIIdentityProof(certificateChain: (0..<Int.random(in: 1...3, using: &r)).map { _ in randomBytes(Int.random(in: 1...300, using: &r), &r) },
                         ed25519Signature: randomBytes(64, &r),
                         mldsa65Signature: Bool.random(using: &r) ? [] : randomBytes(3309, &r))
    }

    static func randomWatermarks(_ r: inout DeterministicRandomSource) -> PoolWatermarks {
        PoolWatermarks(outboundNext: r.next(), inboundNext: r.next())
    }

    static func randomGranularities(_ r: inout DeterministicRandomSource) -> Granularities {
        Granularities(rawValue: UInt8.random(in: 1...3, using: &r))
    }

    static func randomClientHello(_ r: inout DeterministicRandomSource) -> ClientHello {
        let body: ClientHello.Body
        switch Int.random(in: 0..<3, using: &r) {
        case 0: body = .pool(randomWatermarks(&r))
        case 1: body = .pskKDF(pskID: randomBytes(16, &r))
        default:
            let hybrid = Bool.random(using: &r)
            body = .pki(PKIClientOffer(kexGroups: hybrid ? [2, 1] : [1], x25519Share: randomBytes(32, &r),
                                       mlkem768EncapsulationKey: hybrid ? randomBytes(1184, &r) : []))
        }
        return ClientHello(versions: randomList(&r), suites: randomList(&r), granularities: randomGranularities(&r),
                           linkID: randomBytes(16, &r), nonce: randomBytes(32, &r), policy: randomBytes(Int.random(in: 0...40, using: &r), &r), body: body)
    }

    static func randomServerHello(_ r: inout DeterministicRandomSource) -> ServerHello {
        let body: ServerHello.Body
        switch Int.random(in: 0..<3, using: &r) {
        case 0: body = .pool(randomWatermarks(&r))
        case 1: body = .pskKDF
        default:
            let hybrid = Bool.random(using: &r)
            body = .pki(PKIServerResponse(kexGroup: hybrid ? 2 : 1, x25519Share: randomBytes(32, &r),
                                          mlkem768Ciphertext: hybrid ? randomBytes(1088, &r) : [], proof: randomProof(&r)))
        }
        return ServerHello(version: UInt8.random(in: 0...255, using: &r), suite: MACSuite.allCases.randomElement(using: &r)!,
                           granularities: randomGranularities(&r), nonce: randomBytes(32, &r), sessionIDMaterial: randomBytes(32, &r), body: body)
    }

    static func randomControl(_ r: inout DeterministicRandomSource) -> ControlMessage {
        switch Int.random(in: 0..<6, using: &r) {
        case 0: .rotate(epoch: UInt32.random(in: 0...UInt32.max, using: &r), source: Bool.random(using: &r) ? .pool : .bootstrap, keySlot: r.next())
        case 1: .rotateRequest(epoch: UInt32.random(in: 0...UInt32.max, using: &r))
        case 2: .close
        case 3: .beginRound(r.next())
        case 4: .endRound(r.next())
        default: .roundVerified(r.next())
        }
    }

    static func randomMessages(_ r: inout DeterministicRandomSource) -> [HandshakeMessage] {
        [.clientHello(randomClientHello(&r)), .serverHello(randomServerHello(&r)),
         .finished(Finished(clientProof: Bool.random(using: &r) ? randomProof(&r) : nil))]
    }

    @Test func handshakeMessagesRoundTrip() throws {
        var r = DeterministicRandomSource(seed: 11)
        for _ in 0..<300 {
            for message in Self.randomMessages(&r) {
                let bytes = message.encoded
                #expect(try HandshakeMessage(decoding: bytes) == message)
                switch message {
                case .clientHello(let m): #expect(try ClientHello(decoding: bytes) == m)
                case .serverHello(let m): #expect(try ServerHello(decoding: bytes) == m)
                case .finished(let m): #expect(try Finished(decoding: bytes) == m)
                }
            }
        }
    }

    @Test func controlAndAlertRoundTrip() throws {
        var r = DeterministicRandomSource(seed: 12)
        for _ in 0..<1000 {
            let control = Self.randomControl(&r)
            #expect(try ControlMessage(decoding: control.encoded) == control)
            let alert = Alert(code: AlertCode.allCases.randomElement(using: &r)!, message: String(repeating: "é", count: Int.random(in: 0...40, using: &r)))
            #expect(try Alert(decoding: alert.encoded) == alert)
        }
        // A long message is cut at a character boundary and still decodes.
        let long = Alert(code: .internalError, message: String(repeating: "é", count: 2000))
        #expect(try Alert(decoding: long.encoded).message == String(repeating: "é", count: 512))
    }

    /// Every proper prefix of a valid encoding, and every encoding with a byte appended, is a
    /// typed error (truncation; trailing bytes). Finished without a proof is the one message for
    /// which a prefix ([3]) is itself valid, and is left out of the prefix check.
    @Test func truncationsAndTrailingBytesAreTypedErrors() throws {
        var r = DeterministicRandomSource(seed: 13)
        for _ in 0..<20 {
            for message in Self.randomMessages(&r) {
                let bytes = message.encoded
                if case .finished(let f) = message, f.clientProof == nil { } else {
                    // [3] alone is a valid Finished without a proof, so a Finished with a proof cut
                    // after its type byte decodes (as the other message); every other cut throws.
                    // Every cut of a short message; 200 random cuts of a long (PKI) one.
                    let cuts = bytes.count <= 300 ? Array(0..<bytes.count) : (0..<200).map { _ in Int.random(in: 0..<bytes.count, using: &r) }
                    for cut in cuts where !(cut == 1 && bytes[0] == HandshakeMessageType.finished.rawValue) {
                        #expect(throws: QKDError(.sessionMalformedHandshake)) { try HandshakeMessage(decoding: Array(bytes[0..<cut])) }
                    }
                }
                if case .finished(let f) = message, f.clientProof == nil { continue }  // an extra byte starts a (bad) proof: also an error
                #expect(throws: QKDError(.sessionMalformedHandshake)) { try HandshakeMessage(decoding: bytes + [0]) }
            }
            let control = Self.randomControl(&r).encoded
            for cut in 0..<control.count where !(cut == 1 && control == [3]) {
                #expect(throws: QKDError(.sessionMalformedControl)) { try ControlMessage(decoding: Array(control[0..<cut])) }
            }
            #expect(throws: QKDError(.sessionMalformedControl)) { try ControlMessage(decoding: control + [0]) }
            let alert = Alert(code: .timeout, message: "late").encoded
            for cut in 0..<alert.count {
                #expect(throws: QKDError(.sessionMalformedControl)) { try Alert(decoding: Array(alert[0..<cut])) }
            }
            #expect(throws: QKDError(.sessionMalformedControl)) { try Alert(decoding: alert + [0]) }
        }
        #expect(throws: QKDError(.sessionMalformedHandshake)) { try Finished(decoding: [3, 0]) }
    }

    /// Spec/session.md section 3: unknown enumeration values, empty and duplicate lists,
    /// reserved bits are each rejected with a typed error.
    @Test func invalidFieldsAreTypedErrors() throws {
        var r = DeterministicRandomSource(seed: 14)
        var hello = Self.randomClientHello(&r)
        hello.body = .pool(PoolWatermarks(outboundNext: 1, inboundNext: 2))
        hello.versions = [1]
        hello.suites = [1, 2]
        let good = HandshakeMessage.clientHello(hello).encoded
        // Layout: [0] type, [1...2] vec8 versions, [3...5] vec8 suites, [6] granularities, [7] mode, ...
        func mutated(_ index: Int, _ value: UInt8) -> [UInt8] { var b = good; b[index] = value; return b }
        let cases: [(String, [UInt8])] = [
            ("unknown message type", mutated(0, 9)),
            ("empty version list", [1, 0] + good[2...]),
            ("duplicate suites", mutated(5, 1)),
            ("reserved granularity bit", mutated(6, 0x04 | 1)),
            ("no granularity", mutated(6, 0)),
            ("unknown mode", mutated(7, 7)),
        ]
        for (name, bytes) in cases {
            #expect(throws: QKDError(.sessionMalformedHandshake), "\(name)") { try HandshakeMessage(decoding: bytes) }
        }
        var server = ServerHello(version: 1, suite: .poly1305OTP, granularities: .all, nonce: Self.randomBytes(32, &r),
                                 sessionIDMaterial: Self.randomBytes(32, &r), body: .pskKDF).encodedBytes
        server[2] = 77  // unknown suite
        #expect(throws: QKDError(.sessionMalformedHandshake)) { try ServerHello(decoding: server) }
        #expect(throws: QKDError(.sessionMalformedControl)) { try ControlMessage(decoding: [9]) }
        #expect(throws: QKDError(.sessionMalformedControl)) { try ControlMessage(decoding: [1, 0, 0, 0, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0]) }
        #expect(throws: QKDError(.sessionMalformedControl)) { try Alert(decoding: [99, 0, 0]) }
        #expect(throws: QKDError(.sessionMalformedControl)) { try Alert(decoding: [1, 0, 1, 0xff]) }  // not UTF-8
        #expect(throws: QKDError(.sessionMalformedControl)) { try Alert(decoding: [1, 0x04, 0x01] + [UInt8](repeating: 65, count: 1025)) }
    }

    /// 10^4 random inputs per decoder, half pure noise, half a valid encoding with random bytes
    /// changed, inserted or removed: each either decodes or throws a typed error.
    @Test func decodersNeverCrashOnRandomInput() throws {
        var r = DeterministicRandomSource(seed: 15)
        let handshakeCode = QKDError.Code.sessionMalformedHandshake, controlCode = QKDError.Code.sessionMalformedControl
        func noise(_ seedBytes: [UInt8]) -> [UInt8] {
            if Bool.random(using: &r) {
                return r.bytes(count: Int.random(in: 0...200, using: &r))
            }
            var b = seedBytes
            for _ in 0..<Int.random(in: 1...4, using: &r) {
                switch Int.random(in: 0..<3, using: &r) {
                case 0 where !b.isEmpty: b[Int.random(in: 0..<b.count, using: &r)] = UInt8.random(in: 0...255, using: &r)
                case 1: b.insert(UInt8.random(in: 0...255, using: &r), at: Int.random(in: 0...b.count, using: &r))
                default: if !b.isEmpty { b.remove(at: Int.random(in: 0..<b.count, using: &r)) }
                }
            }
            return b
        }
        var decoded = 0
        let corpus = (0..<64).map { _ in Self.randomMessages(&r) }
        for i in 0..<10_000 {
            let messages = corpus[i % corpus.count]
            let inputs: [(QKDError.Code, [UInt8], ([UInt8]) throws -> Void)] = [
                (handshakeCode, noise(messages[0].encoded), { _ = try ClientHello(decoding: $0) }),
                (handshakeCode, noise(messages[1].encoded), { _ = try ServerHello(decoding: $0) }),
                (handshakeCode, noise(messages[2].encoded), { _ = try Finished(decoding: $0) }),
                (handshakeCode, noise(messages[i % 3].encoded), { _ = try HandshakeMessage(decoding: $0) }),
                (controlCode, noise(Self.randomControl(&r).encoded), { _ = try ControlMessage(decoding: $0) }),
                (controlCode, noise(Alert(code: .timeout, message: "x").encoded), { _ = try Alert(decoding: $0) }),
            ]
            for (code, bytes, decode) in inputs {
                do {
                    try decode(bytes)
                    decoded += 1
                } catch let error as QKDError {
                    #expect(error.code == code)
                }
            }
        }
        #expect(decoded > 0)  // the mutations sometimes leave a valid message
    }
}

extension ServerHello {
    var encodedBytes: [UInt8] {
        var out: [UInt8] = []
        encode(into: &out)
        return out
    }
}
