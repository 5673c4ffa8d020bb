import Testing
import QKDCrypto
@testable import QKDPostProcessing
import QKDSimulation

@Suite struct DetectionFileTests {
    @Test func roundTripAndReplayGivesAKey() throws {
        let (a, b) = simulate(qber: 0.02, pulses: 30_000, seed: 77, probabilityZ: 0.75, lossDB: 1, dark: 1e-4)
        let aliceFile = DetectionFileWriter.encode(a)
        let bobFile = DetectionFileWriter.encode(b)
        #expect(try DetectionFileParser.parse(aliceFile) == .alice(a))
        #expect(try DetectionFileParser.parse(bobFile) == .bob(b))
        guard case .alice(let ra) = try DetectionFileParser.parse(aliceFile),
              case .bob(let rb) = try DetectionFileParser.parse(bobFile) else { Issue.record("roles"); return }
        var pair = Pair(alice: ra, bob: rb, seed: 1)
        pair.run()
        if case .key(let x) = pair.aliceOutcome, case .key(let y) = pair.bobOutcome { #expect(x.key == y.key) }
        else if case .aborted = pair.aliceOutcome {} else { Issue.record("replay did not end cleanly") }
    }

    @Test(arguments: [
        "",
        "qkd-detections 2\nrole bob\nslots 4\n",
        "qkd-detections 1\nrole carol\nslots 4\n",
        "qkd-detections 1\nrole bob\nslots -1\n",
        "qkd-detections 1\nrole bob\nslots 4\n5 Z 0\n",
        "qkd-detections 1\nrole bob\nslots 4\n2 Z 0\n1 X 1\n",
        "qkd-detections 1\nrole bob\nslots 4\n2 Y 0\n",
        "qkd-detections 1\nrole bob\nslots 4\n2 Z 2\n",
        "qkd-detections 1\nrole bob\nslots 4\n2 Z\n",
        "qkd-detections 1\nrole alice\nslots 3\n0 Z 0\n2 X 1\n",
        "qkd-detections 1\nrole alice\nslots 3\n0 Z 0\n1 X 1\n",
    ])
    func malformedFilesThrowTypedErrors(text: String) {
        do {
            _ = try DetectionFileParser.parse(Array(text.utf8))
            Issue.record("accepted: \(text)")
        } catch let e as QKDError {
            #expect(e.code == .detectionsMalformed || e.code == .detectionsUnsupportedVersion)
        } catch {
            Issue.record("untyped error")
        }
    }

    @Test func commentsAndCRLFAreAccepted() throws {
        let text = "# recorded 2026-01-01\r\nqkd-detections 1\r\nrole bob\r\nslots 10\r\n\r\n3 Z 1\r\n# gap\r\n7 X 0\r\n"
        guard case .bob(let b) = try DetectionFileParser.parse(Array(text.utf8)) else { Issue.record("role"); return }
        #expect(b.slots == [3, 7])
        #expect(b.bases == [0b10])
        #expect(b.bits == [0b01])
    }
}
