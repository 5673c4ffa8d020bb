import Foundation
import Synchronization

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

    /// Runs the binary to completion. Standard error is read on its own thread so that neither
    /// pipe can fill up and stall the child.
    /// - Parameters:
    ///   - binary: the path from ``locate()``.
    ///   - arguments: the command line.
    /// - Returns: exit status, standard output and standard error.
    /// - Throws: if the process cannot be started.
    public static func run(_ binary: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let errData = Mutex<Data?>(nil)
        let reader = Thread { let d = err.fileHandleForReading.readDataToEndOfFile(); errData.withLock { $0 = d } }
        reader.start()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        while errData.withLock({ $0 == nil }) { usleep(1000) }
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: errData.withLock { $0! }, as: UTF8.self))
    }
}
