import Foundation

/// A task executor with one thread of its own, for the tests that drive child processes.
///
/// Why: Swift Testing runs tests on the cooperative pool, one thread per core (two here). The
/// process tests no longer block a thread while they wait (``ChildProcess``), but every await
/// would still have to be resumed by a pool thread, and the CPU-bound tests of a full run keep
/// both busy for most of it: a child's exit or a line it printed would be noticed only when a
/// thread frees up. Under ``offThePool(_:)`` the test's own code runs on this thread instead;
/// it only waits and parses a little output, so one thread serves all of them. (Swift Testing
/// still needs the pool to start a test.)
public final class ProcessTestExecutor: TaskExecutor, @unchecked Sendable {
    /// The one instance.
    public static let shared = ProcessTestExecutor()

    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []

    private init() {
        let thread = Thread { [self] in self.loop() }
        thread.name = "qkd-test-processes"
        thread.start()
    }

    private func loop() {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }

    /// Queues a job for the executor's thread.
    /// - Parameter job: the job.
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }
}

/// Runs `body` with ``ProcessTestExecutor`` as the task's executor preference: its
/// nonisolated code (and that of its child tasks) runs on that thread, not on the cooperative
/// pool.
/// - Parameter body: the test's code.
/// - Returns: what `body` returns.
/// - Throws: what `body` throws.
public func offThePool<T>(_ body: () async throws -> T) async throws -> T {
    try await withTaskExecutorPreference(ProcessTestExecutor.shared, operation: body)
}
