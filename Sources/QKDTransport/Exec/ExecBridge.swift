#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOPosix
import QKDCrypto
import Synchronization

/// `exec:CMD ARGS`: a child process whose stdin and stdout carry the link (Spec/transport.md
/// section 3.3). Any vendor link with a command-line bridge works without code.
///
/// The pipes are driven by SwiftNIO's pipe channel. A dedicated thread waits for the child's
/// exit. End of the child's stdout is the end of the stream if the child exits with status 0,
/// and `transport.broken` otherwise (a bridge that dies reports a failed link). `close()`
/// closes the child's stdin, waits `execExitGrace` for it to exit, then sends SIGTERM, waits
/// again, then SIGKILL, and always reaps it.
final class ExecBridge: ByteTransport {
    let peerDescription: String
    private let pipes: NIOByteTransport
    private let child: ChildProcess
    private let grace: Duration
    private let closed = Mutex(false)

    private init(pipes: NIOByteTransport, child: ChildProcess, grace: Duration, description: String) {
        self.pipes = pipes
        self.child = child
        self.grace = grace
        self.peerDescription = description
    }

    static func start(arguments: [String], options: TransportOptions) async throws -> ExecBridge {
        let description = "exec " + arguments.map(CommandLineSplitter.quote).joined(separator: " ")
        let (child, input, output) = try ChildProcess.spawn(arguments)
        let pipes: NIOByteTransport
        do {
            // The handler is installed before registration, so a child that writes and exits
            // at once loses nothing.
            pipes = try await NIOPipeBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .takingOwnershipOfDescriptors(input: input, output: output) { channel in
                    channel.eventLoop.makeCompletedFuture { try NIOByteTransport.install(on: channel, peerDescription: description) }
                }
        } catch {
            // The fds are not closed here: NIO may have closed them already (see SerialLine.wrap).
            child.signal(SIGKILL)
            await child.terminate(grace: options.execExitGrace)
            throw QKDError(.execFailed, "cannot drive the pipes of \(description): \(error)")
        }
        return ExecBridge(pipes: pipes, child: child, grace: options.execExitGrace, description: description)
    }

    /// The child's process id (tests check it is reaped).
    var childPID: pid_t { child.pid }

    func write(_ bytes: [UInt8]) async throws {
        do {
            try await pipes.write(bytes)
        } catch let error as QKDError where error.code == .transportBroken || error.code == .transportClosed {
            if closed.withLock({ $0 }) { throw error }
            // The child probably died; say how, if it already did.
            if let status = child.exitStatusIfExited, !status.isSuccess {
                throw QKDError(.transportBroken, "the bridge \(peerDescription) \(status)")
            }
            throw error
        }
    }

    func read() async throws -> [UInt8]? {
        if let chunk = try await pipes.read() { return chunk }
        if closed.withLock({ $0 }) { return nil }
        // End of the child's stdout: its exit status tells a clean end from a failure.
        let status = await child.exitStatus()
        if status.isSuccess { return nil }
        throw QKDError(.transportBroken, "the bridge \(peerDescription) \(status)")
    }

    func close() async {
        closed.withLock { $0 = true }
        await pipes.close()
        await child.terminate(grace: grace)
    }
}

/// How a child process ended.
struct ExitStatus: Sendable, CustomStringConvertible {
    /// The exit code, if it exited.
    var code: Int32?
    /// The signal that killed it, if one did.
    var signal: Int32?

    init(waitStatus: Int32) {
        if waitStatus & 0x7F == 0 {
            code = (waitStatus >> 8) & 0xFF
        } else {
            signal = waitStatus & 0x7F
        }
    }

    var isSuccess: Bool { code == 0 }

    var description: String {
        if let code { return "exited with status \(code)" }
        return "was killed by signal \(signal ?? 0)"
    }
}

/// A spawned child, its reaper thread, and signalling that can never hit a recycled pid.
final class ChildProcess: Sendable {
    private struct State {
        var status: ExitStatus?
        var waiters: [CheckedContinuation<ExitStatus, Never>] = []
    }

    let pid: pid_t
    private let state = Mutex(State())
    private let reaper: NIOThreadPool

    private init(pid: pid_t) {
        self.pid = pid
        self.reaper = NIOThreadPool(numberOfThreads: 1)
    }

    /// Spawns `arguments` (argv[0] looked up in PATH) with its stdin and stdout on new pipes.
    /// - Returns: the child, and the parent's ends: `input` reads the child's stdout, `output`
    ///   writes its stdin.
    static func spawn(_ arguments: [String]) throws -> (ChildProcess, input: CInt, output: CInt) {
        let toChild = try makePipe()
        let fromChild: (read: CInt, write: CInt)
        do {
            fromChild = try makePipe()
        } catch {
            close(toChild.read)
            close(toChild.write)
            throw error
        }
        defer {
            // The child's ends belong to the child only.
            close(toChild.read)
            close(fromChild.write)
        }

        #if canImport(Darwin)
        var actions: posix_spawn_file_actions_t? = nil
        var attributes: posix_spawnattr_t? = nil
        #else
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        #endif
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild.read, 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild.write, 1)
        #if os(Linux)
        // Close every other descriptor in the child, not only the close-on-exec ones: a bridge
        // that inherited another link's pipe or socket (created by another thread before it
        // could be marked close-on-exec) would keep that link from ever seeing its end.
        if let addCloseFrom = Self.addCloseFrom { _ = addCloseFrom(&actions, 3) }
        #endif

        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // SwiftNIO ignores SIGPIPE in this process, and ignored signals stay ignored across
        // exec: restore the default so a bridge writing to a closed pipe ends as it expects.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        defer { for p in argv { free(p) } }

        var pid = pid_t()
        let rc = posix_spawnp(&pid, argv[0]!, &actions, &attributes, argv, environ)
        guard rc == 0 else {
            close(toChild.write)
            close(fromChild.read)
            throw QKDError(.execFailed, "cannot start '\(arguments[0])': \(TransportErrorMapping.errnoText(rc)); check the command and PATH")
        }
        let child = ChildProcess(pid: pid)
        child.startReaper()
        return (child, fromChild.read, toChild.write)
    }

    #if os(Linux)
    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, CInt) -> CInt
    /// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34+), looked up at run time because
    /// Swift's Glibc module does not export GNU extensions; nil on an older glibc.
    private static let addCloseFrom: AddCloseFrom? = {
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: AddCloseFrom.self)
    }()
    #endif

    private static func makePipe() throws -> (read: CInt, write: CInt) {
        var fds: [CInt] = [0, 0]
        // Close-on-exec: other children must not inherit them (our own children also get
        // every descriptor above 2 closed, see addCloseFrom).
        let rc = pipe(&fds)
        if rc == 0 {
            _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        }
        guard rc == 0 else {
            throw QKDError(.execFailed, "cannot create a pipe: \(TransportErrorMapping.errnoText(errno))")
        }
        return (fds[0], fds[1])
    }

    /// Waits (on a dedicated thread, blocking in `waitid`) for the exit, without reaping, so
    /// `signal` can check under the lock that the pid still belongs to our child; then reaps.
    private func startReaper() {
        reaper.start()
        let pid = self.pid
        reaper.submit { [self] _ in
            var info = siginfo_t()
            while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR {}
            let waiters = state.withLock { s -> [CheckedContinuation<ExitStatus, Never>] in
                var raw: Int32 = 0
                while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
                let status = ExitStatus(waitStatus: raw)
                s.status = status
                defer { s.waiters = [] }
                return s.waiters
            }
            let status = state.withLock { $0.status! }
            for w in waiters { w.resume(returning: status) }
            reaper.shutdownGracefully { _ in }
        }
    }

    /// The exit status, once the child has exited.
    var exitStatusIfExited: ExitStatus? { state.withLock { $0.status } }

    /// Waits for the exit.
    func exitStatus() async -> ExitStatus {
        await withCheckedContinuation { continuation in
            let status = state.withLock { s -> ExitStatus? in
                if let status = s.status { return status }
                s.waiters.append(continuation)
                return nil
            }
            if let status { continuation.resume(returning: status) }
        }
    }

    /// Sends `signal` unless the child was already reaped (its pid may be someone else's now).
    func signal(_ number: Int32) {
        state.withLock { s in
            if s.status == nil { kill(pid, number) }
        }
    }

    /// Lets the child exit by itself within `grace`, then SIGTERM, then SIGKILL; returns once
    /// it is reaped.
    func terminate(grace: Duration) async {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let term = loop.scheduleTask(in: grace.timeAmount) { self.signal(SIGTERM) }
        let killTask = loop.scheduleTask(in: (grace * 2).timeAmount) { self.signal(SIGKILL) }
        _ = await exitStatus()
        term.cancel()
        killTask.cancel()
    }
}
