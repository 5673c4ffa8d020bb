public import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A one-shot event that async code awaits without holding a thread.
///
/// Why: Swift Testing runs every test, synchronous or async, on the cooperative pool, which has
/// one thread per core (two on the CI machine). A test that blocks in `usleep`,
/// `waitUntilExit` or a blocking pipe read holds one of those threads for as long as its child
/// runs; two such tests at once starve every async test of the run (a 16-minute hang of the
/// full suite). Waiting on a `Latch` suspends the task instead.
public final class Latch: Sendable {
    private struct State {
        var fired = false
        var nextID = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }
    private let state = Mutex(State())

    /// A latch that has not fired.
    public init() {}

    /// Whether ``fire()`` was called.
    public var isFired: Bool { state.withLock { $0.fired } }

    /// Fires the latch: every current and later ``wait()`` returns. Idempotent.
    public func fire() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            guard !s.fired else { return [] }
            s.fired = true
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for w in waiters { w.resume() }
    }

    /// Suspends until the latch fires or the task is cancelled.
    public func wait() async {
        let id = state.withLock { s -> Int in s.nextID += 1; return s.nextID }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if s.fired || Task.isCancelled { return true }
                    s.waiters[id] = c
                    return false
                }
                if resumeNow { c.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }

    /// Suspends until the latch fires or `timeout` passes.
    /// - Parameter timeout: the longest wait.
    /// - Returns: true if the latch fired.
    @discardableResult
    public func wait(timeout: Duration) async -> Bool {
        if isFired { return true }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask { await self.wait(); return self.isFired }
            group.addTask { try? await Task.sleep(for: timeout); return false }
            let first = await group.next() ?? false
            group.cancelAll()
            return first || isFired
        }
    }
}

/// A child process that tests await without blocking the cooperative pool and without
/// depending on Dispatch: it is spawned with `posix_spawn` (standard input `/dev/null`, default
/// signal actions, no descriptor above 2 inherited) and reaped by a dedicated thread blocked in
/// `waitid`, which fires a ``Latch``; its pipes are read by dedicated threads (plain blocking
/// `read(2)`), which collect standard output as lines and standard error as bytes. (Foundation's
/// `Process` delivers its exit notification through Dispatch's global queues on Linux, and
/// signals sent by pid could reach a recycled pid; here `kill` and the reap share a lock.)
public final class ChildProcess: @unchecked Sendable {
    /// Where a stream of the child goes.
    public enum Output {
        /// Collected by a reader thread (``lines``, ``stdoutText``, ``stderrText``).
        case capture
        /// `/dev/null`.
        case discard
        /// Written straight to this file.
        case file(FileHandle)
    }

    /// A label for messages.
    public let name: String
    /// The child's process id.
    public let pid: Int32
    /// What the reaper and reader threads share with the object. They hold only this, so a
    /// test that drops a running child (a failed `#require`) still kills it in `deinit`.
    private final class Shared: Sendable {
        let exited = Latch()
        let stdoutDone = Latch()
        let stderrDone = Latch()
        /// The raw wait status once reaped; the lock also orders `kill` before the reap, so a
        /// signal never reaches a recycled pid.
        let waitStatus = Mutex<Int32?>(nil)
        let collected = Mutex<(lines: [String], times: [Duration], partial: [UInt8], stderr: [UInt8])>(([], [], [], []))
        let started = ContinuousClock.now
    }
    private let shared = Shared()

    /// Starts `executable` with `arguments`; standard input is `/dev/null`, every signal has
    /// its default action, and no descriptor above 2 is inherited.
    /// - Parameters:
    ///   - executable: the program's path.
    ///   - arguments: its arguments.
    ///   - name: a label for messages.
    ///   - stdout: where standard output goes.
    ///   - stderr: where standard error goes.
    /// - Throws: `POSIXError` if the pipes cannot be made or the process cannot be started.
    public init(_ executable: String, _ arguments: [String], name: String = "", stdout: Output = .capture, stderr: Output = .capture) throws {
        self.name = name.isEmpty ? (executable as NSString).lastPathComponent : name
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        var parentEnds: [Int32] = [], childEnds: [Int32] = []
        defer { for fd in childEnds { close(fd) } }
        for (output, target) in [(stdout, Int32(1)), (stderr, Int32(2))] {
            switch output {
            case .capture:
                var fds: [Int32] = [0, 0]
                // Close-on-exec at once (pipe2 is a GNU extension Glibc does not export):
                // another test's child spawned meanwhile must not inherit these ends.
                guard pipe(&fds) == 0, fcntl(fds[0], F_SETFD, FD_CLOEXEC) == 0, fcntl(fds[1], F_SETFD, FD_CLOEXEC) == 0 else {
                    for fd in parentEnds { close(fd) }
                    throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
                }
                parentEnds.append(fds[0])
                childEnds.append(fds[1])
                posix_spawn_file_actions_adddup2(&actions, fds[1], target)
            case .discard:
                parentEnds.append(-1)
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", O_WRONLY, 0)
            case .file(let handle):
                parentEnds.append(-1)
                posix_spawn_file_actions_adddup2(&actions, handle.fileDescriptor, target)
            }
        }
        // Another test's pipe inherited by a long-lived child would keep that pipe open.
        if let addCloseFrom = Self.addCloseFrom { _ = addCloseFrom(&actions, 3) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var all = sigset_t(), none = sigset_t()
        sigfillset(&all)
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) }
        argv.append(nil)
        defer { for p in argv { free(p) } }
        var pid: Int32 = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard rc == 0 else {
            for fd in parentEnds where fd >= 0 { close(fd) }
            throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EIO)
        }
        self.pid = pid
        startReaper()
        if parentEnds[0] >= 0 { startReader(parentEnds[0], done: shared.stdoutDone, stdout: true) } else { shared.stdoutDone.fire() }
        if parentEnds[1] >= 0 { startReader(parentEnds[1], done: shared.stderrDone, stdout: false) } else { shared.stderrDone.fire() }
    }

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, CInt) -> CInt
    /// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34+), looked up at run time: Swift's
    /// Glibc module does not export GNU extensions (as in QKDTransport's exec bridge).
    private static let addCloseFrom: AddCloseFrom? = {
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: AddCloseFrom.self)
    }()

    /// A dedicated thread blocks in `waitid` without reaping, then reaps under the lock that
    /// ``send(_:)`` takes.
    private func startReaper() {
        let (pid, shared) = (self.pid, self.shared)
        let thread = Thread {
            var info = siginfo_t()
            while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR {}
            shared.waitStatus.withLock { status in
                var raw: Int32 = 0
                while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
                status = raw
            }
            shared.exited.fire()
        }
        thread.name = "\(name) reaper"
        thread.start()
    }

    /// A dedicated thread per pipe: blocking reads never touch the cooperative pool.
    private func startReader(_ fd: Int32, done: Latch, stdout: Bool) {
        let shared = self.shared
        let thread = Thread {
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                let chunk = buffer[0..<n]
                shared.collected.withLock { c in
                    guard stdout else { c.stderr.append(contentsOf: chunk); return }
                    c.partial.append(contentsOf: chunk)
                    while let nl = c.partial.firstIndex(of: UInt8(ascii: "\n")) {
                        c.lines.append(String(decoding: c.partial[..<nl], as: UTF8.self))
                        c.times.append(ContinuousClock.now - shared.started)
                        c.partial.removeSubrange(...nl)
                    }
                }
            }
            close(fd)
            done.fire()
        }
        thread.name = "\(name) \(stdout ? "stdout" : "stderr")"
        thread.start()
    }

    /// Whether the child has not been reaped yet.
    public var isRunning: Bool { !shared.exited.isFired }
    /// The exit status, or the signal number when ``killedBySignal``; meaningful after exit.
    public var status: Int32 {
        guard let raw = shared.waitStatus.withLock({ $0 }) else { return -1 }
        return raw & 0x7f == 0 ? (raw >> 8) & 0xff : raw & 0x7f
    }
    /// Whether the child ended on a signal rather than an exit call.
    public var killedBySignal: Bool {
        guard let raw = shared.waitStatus.withLock({ $0 }) else { return false }
        return raw & 0x7f != 0 && raw & 0x7f != 0x7f
    }

    /// Every complete line written to standard output so far.
    public var lines: [String] { shared.collected.withLock { $0.lines } }
    /// When each of ``lines`` arrived, from the start of the process (for timelines in
    /// failure messages).
    public var lineTimes: [Duration] { shared.collected.withLock { $0.times } }
    /// Standard output so far (complete lines).
    public var stdoutText: String { lines.map { $0 + "\n" }.joined() }
    /// Standard error so far.
    public var stderrText: String { shared.collected.withLock { String(decoding: $0.stderr, as: UTF8.self) } }

    /// Sends `signal` to the child if it is still running.
    /// - Parameter signal: e.g. `SIGTERM`.
    public func send(_ signal: Int32) {
        shared.waitStatus.withLock { status in
            if status == nil { kill(pid, signal) }
        }
    }

    /// Suspends until the child exits; after `timeout` it is killed with SIGKILL. Then waits
    /// (at most two seconds: a grandchild may hold a pipe) for the readers to drain the pipes.
    /// - Parameter timeout: how long the child may run on.
    /// - Returns: the exit status (the signal number if it died on one).
    @discardableResult
    public func exit(timeout: Duration = .seconds(120)) async -> Int32 {
        if !(await shared.exited.wait(timeout: timeout)) {
            send(SIGKILL)
            await shared.exited.wait()
        }
        await shared.stdoutDone.wait(timeout: .seconds(2))
        await shared.stderrDone.wait(timeout: .seconds(2))
        return status
    }

    /// SIGKILL, then waits for the exit.
    public func kill9() async {
        send(SIGKILL)
        await shared.exited.wait()
    }

    /// Polls (with `Task.sleep`, never blocking a thread) until `condition` holds, the child
    /// exited and its output is drained, or `timeout` passes.
    /// - Parameters:
    ///   - timeout: the longest wait.
    ///   - condition: checked every 10 ms.
    /// - Returns: whether the condition held.
    public func waitUntil(timeout: Duration, _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            if !isRunning && shared.stdoutDone.isFired { return condition() }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    /// Runs `executable` to completion.
    /// - Parameters:
    ///   - executable: the program's path.
    ///   - arguments: its arguments.
    ///   - timeout: after this the child is killed (and the status is the signal number).
    /// - Returns: exit status, standard output and standard error.
    /// - Throws: if the process cannot be started.
    public static func run(_ executable: String, _ arguments: [String], timeout: Duration = .seconds(300)) async throws
        -> (status: Int32, stdout: String, stderr: String) {
        let child = try ChildProcess(executable, arguments)
        let status = await child.exit(timeout: timeout)
        let rest = child.shared.collected.withLock { String(decoding: $0.partial, as: UTF8.self) }
        return (status, child.stdoutText + rest, child.stderrText)
    }

    deinit { send(SIGKILL) }
}
