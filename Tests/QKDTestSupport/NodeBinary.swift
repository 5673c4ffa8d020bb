import Foundation

/// The `qkd-node` binary that `swift build` / `swift test` put next to the test bundle, for the
/// tests that drive the CLI as a separate process (crash tests, CLI tests, the demo).
///
/// Order: `$QKD_NODE_BINARY`; then the directories above the running test executable
/// (`/proc/self/exe` on Linux, `Bundle.main` elsewhere), which covers the default `.build`
/// and any `--scratch-path`; then `<package>/.build/debug`.
public enum QKDNodeBinary {
    /// The binary's path, or nil if it was not built.
    /// - Returns: an executable path.
    public static func locate() -> String? {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["QKD_NODE_BINARY"], fm.isExecutableFile(atPath: env) { return env }
        var starts: [URL] = []
        if let exe = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe") { starts.append(URL(fileURLWithPath: exe)) }
        if let exe = Bundle.main.executableURL { starts.append(exe) }
        starts.append(Bundle.main.bundleURL)
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") { starts.append(bundle.bundleURL) }
        for start in starts {
            var dir = start.deletingLastPathComponent()
            for _ in 0..<5 {
                let candidate = dir.appendingPathComponent("qkd-node").path
                if fm.isExecutableFile(atPath: candidate) { return candidate }
                dir.deleteLastPathComponent()
            }
        }
        let fallback = PackagePaths.root.appendingPathComponent(".build/debug/qkd-node").path
        return fm.isExecutableFile(atPath: fallback) ? fallback : nil
    }

    /// Runs the binary to completion without blocking a thread of the cooperative pool (see
    /// ``ChildProcess``).
    /// - Parameters:
    ///   - binary: the path from ``locate()``.
    ///   - arguments: the command line.
    ///   - timeout: after this the child is killed with SIGKILL (a hung child fails its test
    ///     instead of stalling the run).
    /// - Returns: exit status, standard output and standard error.
    /// - Throws: if the process cannot be started.
    public static func run(_ binary: String, _ arguments: [String], timeout: Duration = .seconds(300)) async throws
        -> (status: Int32, stdout: String, stderr: String) {
        try await ChildProcess.run(binary, arguments, timeout: timeout)
    }
}
