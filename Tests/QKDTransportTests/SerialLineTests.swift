import Foundation
import QKDCrypto
@testable import QKDTransport
import Testing

/// A pseudo-terminal behaves like a hardware serial link: the slave is a tty (termios applies),
/// the master is the "other end of the cable".
@Suite struct SerialLineTests {
    struct PTY {
        var master: CInt
        var slave: CInt
        var path: String
    }

    static func openPTY() throws -> PTY {
        var master: CInt = -1
        var slave: CInt = -1
        guard openpty(&master, &slave, nil, nil, nil) == 0 else {
            throw QKDError(.serialOpenFailed, "openpty failed: errno \(errno)")
        }
        // ttyname_r, not ttyname: ttyname returns a static buffer, and the parameterised
        // cases run in parallel, so one case could get (and configure, and read) another
        // case's device. That was a flaky failure and a hang in the full suite.
        var buffer = [CChar](repeating: 0, count: 256)
        guard ttyname_r(slave, &buffer, buffer.count) == 0 else {
            close(master)
            close(slave)
            throw QKDError(.serialOpenFailed, "ttyname_r failed")
        }
        return PTY(master: master, slave: slave, path: String(cString: buffer))
    }

    /// The serial transport on the slave device path, and the master wrapped as the peer.
    static func pair(query: String = "baud=115200&bits=8&parity=none&stop=1") async throws -> (serial: any ByteTransport, peer: NIOByteTransport) {
        let pty = try openPTY()
        let serial = try await TransportEndpoint(parsing: "serial:\(pty.path)?\(query)").connect()
        // Only the transport keeps the slave open now, so its close is seen by the master.
        close(pty.slave)
        let peer = try await SerialLine.wrap(fd: pty.master, description: "pty master")
        return (serial, peer)
    }

    @Test func roundTripOneMiBBothDirections() async throws {
        let (serial, peer) = try await Self.pair()
        #expect(serial.peerDescription.hasPrefix("serial /dev/pts/"))
        try await checkRoundTrip(serial, peer, seed: 21)
        await serial.close()
        await peer.close()
    }

    @Test func rawModeIsEightBitCleanWithoutTranslation() async throws {
        // Cooked mode would turn CR into NL, eat ^C/^D/^Z/^S/^Q and erase with DEL.
        let (serial, peer) = try await Self.pair()
        let all = (0...255).map { UInt8($0) }
        try await peer.write(all)
        #expect(try await readExactly(serial, 256) == all)
        try await serial.write(all)
        #expect(try await readExactly(peer, 256) == all)
        await serial.close()
        await peer.close()
    }

    @Test func closeIsDetectedByThePeer() async throws {
        let (serial, peer) = try await Self.pair()
        try await serial.write([1, 2, 3])
        #expect(try await readExactly(peer, 3) == [1, 2, 3])
        await serial.close()
        // A hang-up of the tty: the master sees the end of the stream.
        #expect(try await readToEnd(peer) == [])
        await peer.close()
    }

    @Test func peerHangUpIsEndOfStream() async throws {
        let (serial, peer) = try await Self.pair()
        try await peer.write([9])
        #expect(try await readExactly(serial, 1) == [9])
        await peer.close()
        #expect(try await readToEnd(serial) == [])
        await serial.close()
    }

    static let framings = ["baud=9600&bits=7&parity=even&stop=2", "baud=4000000&bits=5&parity=odd", "bits=6&flow=rtscts", "baud=1200"]

    /// The termios value built for each framing (a pty ignores data bits and parity, so they
    /// are checked on the value, not on the device).
    @Test(arguments: framings)
    func termiosCarriesTheFraming(_ query: String) throws {
        let endpoint = try TransportEndpoint(parsing: "serial:/dev/ttyX?\(query)")
        guard case .serial(_, let settings) = endpoint.kind else { Issue.record("not serial"); return }
        var t = termios()
        t.c_lflag = tcflag_t(ICANON | ECHO | ISIG)  // cooked, as a fresh tty would be
        t.c_iflag = tcflag_t(ICRNL | IXON)
        try SerialLine.apply(settings, to: &t, device: "test")
        let sizes: [Int: tcflag_t] = [5: tcflag_t(CS5), 6: tcflag_t(CS6), 7: tcflag_t(CS7), 8: tcflag_t(CS8)]
        #expect(t.c_cflag & tcflag_t(CSIZE) == sizes[settings.dataBits])
        #expect((t.c_cflag & tcflag_t(PARENB) != 0) == (settings.parity != .none))
        #expect((t.c_cflag & tcflag_t(PARODD) != 0) == (settings.parity == .odd))
        #expect((t.c_cflag & tcflag_t(CSTOPB) != 0) == (settings.stopBits == 2))
        #expect((t.c_cflag & tcflag_t(SerialLine.crtscts) != 0) == (settings.flowControl == .rtscts))
        #expect(t.c_cflag & tcflag_t(CREAD | CLOCAL) == tcflag_t(CREAD | CLOCAL))
        #expect(t.c_lflag & tcflag_t(ICANON | ECHO | ISIG) == 0, "raw mode: no line editing, echo or signals")
        #expect(t.c_iflag & tcflag_t(ICRNL | IXON) == 0, "raw mode: no CR/NL translation, no XON/XOFF")
        #expect(cfgetospeed(&t) == SerialLine.speedConstant(settings.baudRate))
        #expect(cfgetispeed(&t) == SerialLine.speedConstant(settings.baudRate))
    }

    /// On the device: raw mode, speed and stop bits are set (what a pty keeps).
    @Test(arguments: framings)
    func deviceIsConfigured(_ query: String) async throws {
        let pty = try Self.openPTY()
        defer {
            close(pty.slave)
            close(pty.master)
        }
        let endpoint = try TransportEndpoint(parsing: "serial:\(pty.path)?\(query)")
        guard case .serial(_, let settings) = endpoint.kind else { Issue.record("not serial"); return }
        let serial = try await endpoint.connect()
        var t = termios()
        #expect(tcgetattr(pty.slave, &t) == 0)
        #expect((t.c_cflag & tcflag_t(CSTOPB) != 0) == (settings.stopBits == 2))
        #expect(t.c_lflag & tcflag_t(ICANON | ECHO | ISIG) == 0, "raw mode")
        #expect(cfgetospeed(&t) == SerialLine.speedConstant(settings.baudRate))
        await serial.close()
    }

    @Test func missingDeviceAndNonTTYAreTyped() async throws {
        await expectTransportError(.serialOpenFailed) {
            _ = try await TransportEndpoint(parsing: "serial:/dev/qkd-no-such-tty").connect()
        }
        await expectTransportError(.serialOpenFailed) {
            _ = try await TransportEndpoint(parsing: "serial:/dev/null").connect()
        }
    }

    @Test func listenYieldsTheLineOnce() async throws {
        let pty = try Self.openPTY()
        defer { close(pty.slave) }
        let listener = try await TransportEndpoint(parsing: "serial:\(pty.path)").listen()
        let serial = try await listener.accept()
        await expectTransportError(.transportClosed) { _ = try await listener.accept() }
        let peer = try await SerialLine.wrap(fd: pty.master, description: "pty master")
        try await peer.write([5])
        #expect(try await serial.read() == [5])
        await serial.close()
        await peer.close()
        await listener.close()
    }
}
