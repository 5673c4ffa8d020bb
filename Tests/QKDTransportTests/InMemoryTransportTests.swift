import QKDCrypto
@testable import QKDTransport
import Testing

@Suite struct InMemoryTransportTests {
    @Test func roundTripOneMiBBothDirections() async throws {
        let (a, b) = InMemoryTransport.pair()
        try await checkRoundTrip(a, b)
        await a.close()
        await b.close()
    }

    @Test func smallCapacityStillDeliversEverythingInOrder() async throws {
        // Capacity 1: every write waits for the reader, the back-pressure path on every chunk.
        let (a, b) = InMemoryTransport.pair(capacity: 1)
        try await checkRoundTrip(a, b, size: 50_000, seed: 7)
    }

    @Test func closeGivesCleanEndOfStreamAfterBufferedBytes() async throws {
        let (a, b) = InMemoryTransport.pair()
        try await a.write([1, 2, 3])
        try await a.write([4])
        await a.close()
        #expect(try await readToEnd(b) == [1, 2, 3, 4])
        #expect(try await b.read() == nil, "end of stream is sticky")
        // The closed end cannot write, and the peer cannot write to it.
        await expectTransportError(.transportClosed) { try await a.write([5]) }
        await expectTransportError(.transportClosed) { try await b.write([6]) }
        #expect(try await a.read() == nil)
        await a.close()  // idempotent
    }

    @Test func pendingReadEndsWhenPeerCloses() async throws {
        let (a, b) = InMemoryTransport.pair()
        async let got = b.read()
        await a.close()
        #expect(try await got == nil)
    }

    @Test func breakLinkFailsPendingAndLaterCallsOnBothEnds() async throws {
        let (a, b) = InMemoryTransport.pair()
        try await a.write([1, 2, 3])
        let pending = Task { try await a.read() }
        b.breakLink()
        await expectTransportError(.transportBroken) { _ = try await pending.value }
        await expectTransportError(.transportBroken) { _ = try await b.read() }
        await expectTransportError(.transportBroken) { try await a.write([1]) }
        await expectTransportError(.transportBroken) { try await b.write([1]) }
    }

    @Test func writerBlockedOnBackPressureFailsWhenLinkBreaks() async throws {
        let (a, b) = InMemoryTransport.pair(capacity: 4)
        try await a.write([1, 2, 3, 4])  // fills the buffer
        let blocked = Task { try await a.write([5]) }
        b.breakLink()
        await expectTransportError(.transportBroken) { try await blocked.value }
    }

    @Test func cancelledReadThrowsAndLeavesLinkUsable() async throws {
        let (a, b) = InMemoryTransport.pair()
        let reader = Task { try await b.read() }
        reader.cancel()
        await #expect(throws: CancellationError.self) { _ = try await reader.value }
        try await a.write([9, 9])
        #expect(try await b.read() == [9, 9])
    }

    @Test func cancelledBlockedWriteWritesNothing() async throws {
        let (a, b) = InMemoryTransport.pair(capacity: 2)
        try await a.write([1, 2])
        let writer = Task { try await a.write([3]) }
        writer.cancel()
        await #expect(throws: CancellationError.self) { try await writer.value }
        let reader = Task { try await readToEnd(b) }
        try await a.write([4])
        await a.close()
        // [1, 2] then [4]: the cancelled write's byte never arrives.
        #expect(try await reader.value == [1, 2, 4])
    }

    @Test func peerDescriptionNamesTheOtherEnd() {
        let (a, b) = InMemoryTransport.pair(names: ("alice", "bob"))
        #expect(a.peerDescription == "memory bob")
        #expect(b.peerDescription == "memory alice")
    }
}
