#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOPosix
import QKDCrypto

/// A serial line: a tty in raw mode, configured with termios, driven by SwiftNIO's pipe channel
/// (non-blocking fd I/O on the event loop, no extra thread). Spec/transport.md section 3.2.
enum SerialLine {
    /// Opens and configures `device`, then wraps it.
    static func open(device: String, settings: SerialSettings) async throws -> any ByteTransport {
        // O_NONBLOCK: do not wait for carrier detect on open; O_NOCTTY: never become our
        // controlling terminal (a hang-up must not signal the node).
        let fd = openDevice(device, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw QKDError(.serialOpenFailed, "cannot open serial device \(device): \(TransportErrorMapping.errnoText(code))")
        }
        do {
            guard isatty(fd) == 1 else {
                throw QKDError(.serialOpenFailed, "\(device) is not a terminal device; give a tty such as /dev/ttyUSB0")
            }
            try configure(fd: fd, device: device, settings: settings)
        } catch {
            close(fd)
            throw error
        }
        return try await wrap(fd: fd, description: "serial \(device)")
    }

    /// Puts the tty in raw mode with the requested speed and framing.
    static func configure(fd: CInt, device: String, settings: SerialSettings) throws {
        var t = termios()
        guard tcgetattr(fd, &t) == 0 else {
            throw QKDError(.serialOpenFailed, "cannot read the settings of \(device): \(TransportErrorMapping.errnoText(errno))")
        }
        try apply(settings, to: &t, device: device)
        guard tcsetattr(fd, TCSANOW, &t) == 0 else {
            throw QKDError(.serialOpenFailed, "cannot configure \(device): \(TransportErrorMapping.errnoText(errno))")
        }
    }

    /// Raw mode plus the requested speed and framing, applied to a termios value (separate from
    /// the device so tests can check framing a pseudo-terminal would ignore: Linux ptys force
    /// CS8 and no parity).
    static func apply(_ settings: SerialSettings, to t: inout termios, device: String) throws {
        // Raw: no line editing, no echo, no signals, no CR/LF translation, 8-bit clean.
        cfmakeraw(&t)
        t.c_cflag |= tcflag_t(CLOCAL | CREAD)
        t.c_cflag &= ~tcflag_t(CSIZE)
        switch settings.dataBits {
        case 5: t.c_cflag |= tcflag_t(CS5)
        case 6: t.c_cflag |= tcflag_t(CS6)
        case 7: t.c_cflag |= tcflag_t(CS7)
        default: t.c_cflag |= tcflag_t(CS8)
        }
        switch settings.parity {
        case .none: t.c_cflag &= ~tcflag_t(PARENB | PARODD)
        case .even:
            t.c_cflag |= tcflag_t(PARENB)
            t.c_cflag &= ~tcflag_t(PARODD)
        case .odd: t.c_cflag |= tcflag_t(PARENB | PARODD)
        }
        if settings.stopBits == 2 {
            t.c_cflag |= tcflag_t(CSTOPB)
        } else {
            t.c_cflag &= ~tcflag_t(CSTOPB)
        }
        switch settings.flowControl {
        case .none: t.c_cflag &= ~tcflag_t(crtscts)
        case .rtscts: t.c_cflag |= tcflag_t(crtscts)
        }
        // A read returns as soon as one byte is there (VMIN 1, VTIME 0); the fd is
        // non-blocking anyway, so this only shapes what epoll reports.
        withUnsafeMutableBytes(of: &t.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        guard let speed = speedConstant(settings.baudRate) else {
            throw QKDError(.serialOpenFailed, "baud rate \(settings.baudRate) is not available on this platform")
        }
        guard cfsetispeed(&t, speed) == 0, cfsetospeed(&t, speed) == 0 else {
            throw QKDError(.serialOpenFailed, "\(device) does not accept \(settings.baudRate) baud")
        }
    }

    /// Wraps an open tty (or pty master) fd; NIO owns (and closes) it afterwards.
    ///
    /// On failure the fd is not closed here: NIO may already have closed it, and closing a
    /// number that another thread reused would be far worse than leaking one descriptor.
    static func wrap(fd: CInt, description: String) async throws -> NIOByteTransport {
        let bootstrap = NIOPipeBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        do {
            return try await bootstrap.takingOwnershipOfDescriptor(inputOutput: fd) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOByteTransport.install(on: channel, peerDescription: description, hangUpIsEndOfStream: true)
                }
            }
        } catch {
            throw QKDError(.serialOpenFailed, "cannot drive \(description): \(error)")
        }
    }

    #if os(Linux)
    static let crtscts: UInt32 = 0o20000000000  // CRTSCTS, <bits/termios-c_cflag.h>
    #else
    static let crtscts = UInt(CRTSCTS)
    #endif

    static func speedConstant(_ baud: Int) -> speed_t? {
        #if os(Linux)
        let table: [Int: UInt32] = [
            1200: UInt32(B1200), 2400: UInt32(B2400), 4800: UInt32(B4800), 9600: UInt32(B9600),
            19_200: UInt32(B19200), 38_400: UInt32(B38400), 57_600: UInt32(B57600), 115_200: UInt32(B115200),
            230_400: UInt32(B230400), 460_800: UInt32(B460800), 500_000: UInt32(B500000),
            576_000: UInt32(B576000), 921_600: UInt32(B921600), 1_000_000: UInt32(B1000000),
            1_152_000: UInt32(B1152000), 1_500_000: UInt32(B1500000), 2_000_000: UInt32(B2000000),
            2_500_000: UInt32(B2500000), 3_000_000: UInt32(B3000000), 3_500_000: UInt32(B3500000),
            4_000_000: UInt32(B4000000),
        ]
        return table[baud].map { speed_t($0) }
        #else
        // Darwin's cfsetspeed takes the numeric rate for any speed.
        return speed_t(baud)
        #endif
    }
}

#if canImport(Glibc)
private func openDevice(_ path: String, _ flags: CInt) -> CInt { Glibc.open(path, flags) }
#else
private func openDevice(_ path: String, _ flags: CInt) -> CInt { Darwin.open(path, flags) }
#endif
