import Foundation
import QKDCrypto
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The state directory of one link's pool and its permission rules (Spec/keypool.md,
/// "State directory"; DESIGN.md invariant 5: key material at rest is readable by its owner only).
///
/// The directory is mode 0700 and every file in it 0600, owned by the effective user. The
/// database file is created with mode 0600 *before* SQLite opens it; SQLite's unix VFS gives the
/// `-wal` and `-shm` files the database file's mode, so no file ever exists with wider
/// permissions, whatever the umask.
enum StateDirectory {
    /// The database file's name inside the state directory.
    static let databaseName = "pool.sqlite"
    /// Files that hold key material (the WAL holds recent page images).
    static let databaseFiles = ["pool.sqlite", "pool.sqlite-wal", "pool.sqlite-shm"]

    static func databasePath(_ directory: String) -> String {
        (directory as NSString).appendingPathComponent(databaseName)
    }

    /// Creates the directory (0700) and an empty database file (0600).
    static func create(_ directory: String) throws {
        var st = stat()
        if stat(directory, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR else {
                throw QKDError(.storageFailure, "'\(directory)' exists and is not a directory; choose another --state path")
            }
            try checkSecure(directory, isDirectory: true)
        } else {
            guard mkdir(directory, 0o700) == 0 else {
                throw QKDError(.storageFailure, "cannot create state directory '\(directory)': \(String(cString: strerror(errno))); create its parent first")
            }
            _ = chmod(directory, 0o700)  // mkdir is subject to the umask; make it exact.
        }
        let path = databasePath(directory)
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            if errno == EEXIST {
                throw QKDError(.poolExists, "a key pool already exists in '\(directory)'; use it, or choose an empty state directory")
            }
            throw QKDError(.storageFailure, "cannot create '\(path)': \(String(cString: strerror(errno)))")
        }
        _ = fchmod(fd, 0o600)
        _ = fsync(fd)
        close(fd)
        let dirFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD >= 0 { _ = fsync(dirFD); close(dirFD) }
    }

    /// Checks the directory and every database file that exists.
    /// - Throws: ``QKDError/Code/poolNotFound`` or ``QKDError/Code/insecurePermissions``.
    static func checkExisting(_ directory: String) throws {
        var st = stat()
        guard stat(directory, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw QKDError(.poolNotFound, "state directory '\(directory)' does not exist; create a pool with 'qkd-node pool init'")
        }
        try checkSecure(directory, isDirectory: true)
        guard stat(databasePath(directory), &st) == 0 else {
            throw QKDError(.poolNotFound, "no key pool in '\(directory)' (\(databaseName) is missing); create one with 'qkd-node pool init'")
        }
        for name in databaseFiles {
            let path = (directory as NSString).appendingPathComponent(name)
            if stat(path, &st) == 0 { try checkSecure(path, isDirectory: false) }
        }
    }

    /// Refuses a path that group or others can access, or that another user owns.
    static func checkSecure(_ path: String, isDirectory: Bool) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            throw QKDError(.storageFailure, "cannot stat '\(path)': \(String(cString: strerror(errno)))")
        }
        let mode = st.st_mode & 0o777
        let wanted: mode_t = isDirectory ? 0o700 : 0o600
        if (st.st_mode & S_IFMT) == S_IFLNK {
            throw QKDError(.insecurePermissions, "'\(path)' is a symbolic link; key pool files must be regular files in the state directory")
        }
        guard mode & 0o077 == 0 else {
            throw QKDError(.insecurePermissions, "'\(path)' has mode \(String(mode, radix: 8)), readable or writable by group or others; run 'chmod \(String(wanted, radix: 8)) \(path)' and check nobody copied the key material")
        }
        guard st.st_uid == geteuid() else {
            throw QKDError(.insecurePermissions, "'\(path)' is owned by uid \(st.st_uid), not by this user (uid \(geteuid())); key material must be owned by the user that runs the node")
        }
    }
}
