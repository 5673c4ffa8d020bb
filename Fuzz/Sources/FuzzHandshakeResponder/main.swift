import FuzzSupport
import QKDFuzzChecks

@_cdecl("FuzzHandshakeResponder_main")
func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    runFuzzer(argc, argv) { data, count in runCheck(.handshakeResponder, data, count) }
}
