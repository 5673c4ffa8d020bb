#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization
import QKDCrypto
import QKDPostProcessing
import QKDSimulation

// `qkd-node bench pipeline`, two-thread form: a node pair as it runs on a 2-core machine, Alice's
// and Bob's round state machines each on their own thread, the encoded messages through a
// thread-safe in-memory queue per direction. Optionally several rounds in flight: each role
// thread serves every open round in the order its messages arrive, so one side's work on round
// k+1 overlaps the other side's work on round k.

/// A FIFO of (round index, encoded message) between the two role threads; index -1 is the
/// sentinel a failing thread sends so that its peer stops waiting. `pop` polls for a short while
/// before it blocks: a peer's Cascade step takes well under a millisecond, and a blocked thread
/// on a busy machine waits for a time slice after its wake-up (a dedicated node would poll its
/// link the same way).
final class PipelineQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [(Int, [UInt8])] = []
    private var head = 0
    private let available = Atomic<Int>(0)

    func push(_ round: Int, _ bytes: [UInt8]) {
        condition.lock()
        items.append((round, bytes))
        available.add(1, ordering: .releasing)
        condition.signal()
        condition.unlock()
    }

    func pop() -> (Int, [UInt8]) {
        var spins = 0
        while available.load(ordering: .acquiring) == 0 && spins < 20_000 { spins += 1 }
        condition.lock()
        defer { condition.unlock() }
        while head == items.count { condition.wait() }
        let item = items[head]
        items[head] = (0, [])
        head += 1
        available.subtract(1, ordering: .relaxed)
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        }
        return item
    }
}

/// What one two-thread run measured.
struct ThreadedPipelineResult {
    /// Alice's summary of every round that finished with a key, in round order.
    var summaries: [RoundSummary]
    /// Wall-clock seconds from starting both threads until both finished.
    var wallSeconds: Double
    /// Each role thread's CPU seconds in its round machines and message coding (receive, actions,
    /// encode), not in waiting or polling the queue.
    var aliceCPUSeconds: Double
    var bobCPUSeconds: Double
    /// Sifted (key and test) bits of the finished rounds.
    var siftedBits: Int { summaries.reduce(0) { $0 + $1.siftedKeyBits + $1.testBits } }
}

/// A result slot written by one thread and read after it is joined.
private final class ThreadOutcome<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Result<T, any Error>?
    func set(_ v: Result<T, any Error>) { lock.withLock { value = v } }
    func get() -> Result<T, any Error>? { lock.withLock { value } }
}

/// Runs `records.count` rounds with Alice and Bob on two threads, at most `inFlight` rounds open
/// at a time (Bob opens round k + inFlight when his round k ends). Round `k` has id and seed
/// `seedBase + k`, as ``runPipeline(_:_:config:seed:)`` uses them.
/// - Throws: the first error either role raised.
func runThreadedPipeline(_ records: [(AliceRecord, BobRecord)], config: PostProcessingConfiguration, inFlight: Int,
                         seedBase: UInt64) throws -> ThreadedPipelineResult {
    let n = records.count
    let toAlice = PipelineQueue(), toBob = PipelineQueue()
    let aliceOut = ThreadOutcome<([RoundSummary?], Double)>(), bobOut = ThreadOutcome<Double>()
    let done = DispatchSemaphore(value: 0)

    let aliceThread = Thread {
        var work = 0.0
        var rounds = [AliceRound?](repeating: nil, count: n)
        var summaries = [RoundSummary?](repeating: nil, count: n)
        var ended = 0
        do {
            while ended < n {
                let (k, bytes) = toAlice.pop()
                guard k >= 0 else { throw QKDError(.ppInconsistent, "Bob's thread failed") }
                let start = BenchSupport.cpuSeconds()
                defer { work += BenchSupport.cpuSeconds() - start }
                if rounds[k] == nil {
                    let a = records[k].0
                    rounds[k] = AliceRound(roundID: seedBase + UInt64(k), configuration: config,
                                           bits: BitVector(words: a.bits, count: a.slotCount),
                                           bases: BitVector(words: a.bases, count: a.slotCount),
                                           random: DeterministicRandomSource(seed: seedBase + UInt64(k)))
                }
                try rounds[k]!.receive(bytes: bytes)
                var roundEnded = false
                while let action = rounds[k]!.nextAction() {
                    switch action {
                    case .send(let m): toBob.push(k, m.encoded(roundID: seedBase + UInt64(k)))
                    case .finished(let r):
                        summaries[k] = r.summary
                        roundEnded = true
                    case .aborted:
                        roundEnded = true
                    }
                }
                if roundEnded {
                    ended += 1
                    rounds[k] = nil
                }
            }
            aliceOut.set(.success((summaries, work)))
        } catch {
            toBob.push(-1, [])
            aliceOut.set(.failure(error))
        }
        done.signal()
    }
    let bobThread = Thread {
        var work = 0.0
        var rounds = [BobRound?](repeating: nil, count: n)
        var opened = 0, ended = 0
        func open() {
            let k = opened
            opened += 1
            let b = records[k].1
            rounds[k] = BobRound(roundID: seedBase + UInt64(k), configuration: config, slotCount: UInt64(b.slotCount),
                                 positions: b.slots, bases: BitVector(words: b.bases, count: b.detectionCount),
                                 bits: BitVector(words: b.bits, count: b.detectionCount))
            drain(k)
        }
        func drain(_ k: Int) {
            while let action = rounds[k]!.nextAction() {
                switch action {
                case .send(let m): toAlice.push(k, m.encoded(roundID: seedBase + UInt64(k)))
                case .finished, .aborted:
                    ended += 1
                    rounds[k] = nil
                    if opened < n { open() }
                    return
                }
            }
        }
        do {
            let start = BenchSupport.cpuSeconds()
            while opened < min(inFlight, n) { open() }
            work += BenchSupport.cpuSeconds() - start
            while ended < n {
                let (k, bytes) = toBob.pop()
                guard k >= 0 else { throw QKDError(.ppInconsistent, "Alice's thread failed") }
                let start = BenchSupport.cpuSeconds()
                defer { work += BenchSupport.cpuSeconds() - start }
                try rounds[k]!.receive(bytes: bytes)
                drain(k)
            }
            bobOut.set(.success(work))
        } catch {
            toAlice.push(-1, [])
            bobOut.set(.failure(error))
        }
        done.signal()
    }
    let wall0 = BenchSupport.wallSeconds()
    aliceThread.start()
    bobThread.start()
    done.wait()
    done.wait()
    let wall = BenchSupport.wallSeconds() - wall0
    let (summaries, aliceCPU) = try aliceOut.get()!.get()
    let bobCPU = try bobOut.get()!.get()
    return ThreadedPipelineResult(summaries: summaries.compactMap { $0 }, wallSeconds: wall,
                                  aliceCPUSeconds: aliceCPU, bobCPUSeconds: bobCPU)
}

/// What one run of whole rounds on parallel workers measured.
struct ParallelRoundsResult {
    /// Alice's summary of every round that finished with a key, in round order.
    var summaries: [RoundSummary]
    /// Wall-clock seconds from starting the workers until the last one finished.
    var wallSeconds: Double
    /// The workers' thread CPU seconds in all.
    var cpuSeconds: Double
    /// Sifted (key and test) bits of the finished rounds.
    var siftedBits: Int { summaries.reduce(0) { $0 + $1.siftedKeyBits + $1.testBits } }
}

/// Runs `records.count` rounds on `workers` threads, each worker taking the next unstarted round
/// and running both of its roles to the end over ``runPipeline(_:_:config:seed:)``'s in-memory
/// pipe: the rounds run side by side, and no message ever waits for another thread. This is how a
/// machine that carries both roles uses every core; round `k` has id and seed `seedBase + k`.
/// - Throws: the first error a round raised.
func runParallelRounds(_ records: [(AliceRecord, BobRecord)], config: PostProcessingConfiguration, workers: Int,
                       seedBase: UInt64) throws -> ParallelRoundsResult {
    let n = records.count
    let next = Atomic<Int>(0)
    let outcomes = (0..<max(1, workers)).map { _ in ThreadOutcome<([(Int, RoundSummary?)], Double)>() }
    let done = DispatchSemaphore(value: 0)
    let threads = outcomes.map { outcome in
        Thread {
            let start = BenchSupport.cpuSeconds()
            var mine: [(Int, RoundSummary?)] = []
            do {
                while true {
                    let k = next.add(1, ordering: .relaxed).oldValue
                    guard k < n else { break }
                    mine.append((k, try runPipeline(records[k].0, records[k].1, config: config, seed: seedBase + UInt64(k))))
                }
                outcome.set(.success((mine, BenchSupport.cpuSeconds() - start)))
            } catch {
                next.store(n, ordering: .relaxed)  // The other workers start no further round.
                outcome.set(.failure(error))
            }
            done.signal()
        }
    }
    let wall0 = BenchSupport.wallSeconds()
    for t in threads { t.start() }
    for _ in threads { done.wait() }
    let wall = BenchSupport.wallSeconds() - wall0
    var summaries = [RoundSummary?](repeating: nil, count: n)
    var cpu = 0.0
    for outcome in outcomes {
        let (mine, seconds) = try outcome.get()!.get()
        for (k, s) in mine { summaries[k] = s }
        cpu += seconds
    }
    return ParallelRoundsResult(summaries: summaries.compactMap { $0 }, wallSeconds: wall, cpuSeconds: cpu)
}
