import FuzzSupport
import QKDFuzzChecks

@_cdecl("FuzzPulseFrame_main")
func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    runFuzzer(argc, argv) { data, count in runCheck(.pulseFrame, data, count) }
}
