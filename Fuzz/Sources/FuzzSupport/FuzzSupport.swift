public import QKDFuzzChecks

/// libFuzzer's driver entry point (from libclang_rt.fuzzer_no_main, linked by run.sh).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// Runs libFuzzer with `callback` as the per-input function. Call it from the target's
/// `@_cdecl("<Target>_main")` entry point (SwiftPM renames an executable's `main` to that when
/// built with `-parse-as-library`).
/// - Parameters:
///   - argc: the process's argc.
///   - argv: the process's argv.
///   - callback: called once per input; returns 0.
/// - Returns: libFuzzer's exit status.
public func runFuzzer(
    _ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32 {
    var argc = argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
    return LLVMFuzzerRunDriver(&argc, &argv, callback)
}

/// Runs `check` on one input; an invariant violation becomes a crash libFuzzer records.
/// - Parameters:
///   - check: the per-input logic (shared with the regression tests).
///   - data: the input.
///   - count: its length.
/// - Returns: 0.
public func runCheck(_ check: FuzzCheck, _ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? []
    do {
        _ = try check.run(bytes)
    } catch {
        fatalError("\(check.rawValue): invariant violated: \(error)")
    }
    return 0
}
