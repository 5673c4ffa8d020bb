import Foundation
import QKDCrypto
import Testing
@testable import QKDKeyPool

/// Spec/keypool.md, "Concurrency": tasks sharing a pool never get overlapping pads.
@Suite struct ConcurrencyTests {
    @Test func concurrentReservationsNeverOverlap() async throws {
        let dir = TempDir()
        let (alice, _) = try makePair(dir, pskBytes: 32 + 2 * 16 * 12_000, configuration: .init(chunkPads: 64))
        let pool = alice
        let perTask = 1500
        let ranges = try await withThrowingTaskGroup(of: [(UInt64, Int)].self) { group in
            for t in 0..<4 {
                group.addTask {
                    var mine: [(UInt64, Int)] = []
                    for i in 0..<perTask {
                        if (i + t) % 3 == 0 {
                            let r = try pool.reserveOnePad(direction: .outbound)
                            mine.append((r.offset, 1))
                        } else {
                            let n = 1 + (i + t) % 4
                            let r = try pool.reservePad(direction: .outbound, count: n)
                            mine.append((r.offset, n))
                        }
                    }
                    return mine
                }
            }
            var all: [(UInt64, Int)] = []
            for try await part in group { all += part }
            return all
        }
        #expect(ranges.count == 4 * perTask)
        let sorted = ranges.sorted { $0.0 < $1.0 }
        var next: UInt64 = 0
        for (offset, count) in sorted {
            #expect(offset == next, "gap or overlap at \(offset)")  // Tightly packed: no overlap, no loss.
            next = offset + UInt64(count * 16)
        }
        #expect(next <= alice.watermarks().outbound)
        #expect(try PoolVerifier.verify(directory: alice.directory).isEmpty)
    }
}
