#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOPosix
import QKDCrypto

/// Turns SwiftNIO and POSIX errors into ``QKDError``s with a sentence a user can act on.
enum TransportErrorMapping {
    /// An error on an established link.
    static func linkError(_ error: any Error, peer: String) -> QKDError {
        if let error = error as? QKDError { return error }
        if let io = error as? IOError {
            return QKDError(.transportBroken, "the link to \(peer) failed: \(errnoText(io.errnoCode))")
        }
        if let channelError = error as? ChannelError {
            switch channelError {
            case .ioOnClosedChannel, .alreadyClosed, .outputClosed, .eof:
                return QKDError(.transportClosed, "the connection to \(peer) is closed")
            default:
                break
            }
        }
        return QKDError(.transportBroken, "the link to \(peer) failed: \(error)")
    }

    /// An error while connecting.
    static func connectError(_ error: any Error, peer: String) -> QKDError {
        if let error = error as? QKDError { return error }
        if let error = error as? NIOConnectionError {
            if let first = error.connectionErrors.first {
                return connectError(first.error, peer: peer)
            }
            if let dns = error.dnsAError ?? error.dnsAAAAError {
                return QKDError(.hostUnreachable, "cannot resolve \(peer): \(dns); check the host name")
            }
            return QKDError(.hostUnreachable, "cannot resolve \(peer): no address found; check the host name")
        }
        if let error = error as? ChannelError, case .connectTimeout(let amount) = error {
            return QKDError(.connectTimedOut, "connecting to \(peer) timed out after \(amount.nanoseconds / 1_000_000) ms; is the peer reachable?")
        }
        if error is NIOConnectionError { return QKDError(.hostUnreachable, "cannot reach \(peer)") }
        if let io = error as? IOError {
            switch io.errnoCode {
            case ECONNREFUSED:
                return QKDError(.connectionRefused, "\(peer) refused the connection: is the peer node running and listening there?")
            case ENOENT:
                return QKDError(.connectionRefused, "nothing listens at \(peer) (no such socket file): is the peer node running?")
            case EHOSTUNREACH, ENETUNREACH, EHOSTDOWN, ENETDOWN:
                return QKDError(.hostUnreachable, "\(peer) is unreachable: \(errnoText(io.errnoCode))")
            case ETIMEDOUT:
                return QKDError(.connectTimedOut, "connecting to \(peer) timed out: is the peer reachable?")
            default:
                return QKDError(.connectFailed, "cannot connect to \(peer): \(errnoText(io.errnoCode))")
            }
        }
        if error is SocketAddressError {
            return QKDError(.hostUnreachable, "cannot resolve \(peer): \(error); check the host name")
        }
        return QKDError(.connectFailed, "cannot connect to \(peer): \(error)")
    }

    /// An error while binding a listener.
    static func bindError(_ error: any Error, address: String) -> QKDError {
        if let error = error as? QKDError { return error }
        if let io = error as? IOError {
            switch io.errnoCode {
            case EADDRINUSE:
                return QKDError(.addressInUse, "\(address) is already in use: another process listens there; stop it or choose another port")
            case EACCES, EPERM:
                return QKDError(.connectFailed, "not allowed to listen on \(address): \(errnoText(io.errnoCode)); ports below 1024 need privileges")
            case EADDRNOTAVAIL:
                return QKDError(.connectFailed, "cannot listen on \(address): the address does not belong to this machine")
            default:
                return QKDError(.connectFailed, "cannot listen on \(address): \(errnoText(io.errnoCode))")
            }
        }
        if error is SocketAddressError {
            return QKDError(.hostUnreachable, "cannot resolve \(address): \(error)")
        }
        return QKDError(.connectFailed, "cannot listen on \(address): \(error)")
    }

    /// `strerror` text for an errno value.
    static func errnoText(_ code: CInt) -> String {
        guard let text = strerror(code) else { return "errno \(code)" }
        return String(cString: text) + " (errno \(code))"
    }
}
