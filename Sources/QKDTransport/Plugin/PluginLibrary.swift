#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CQKDTransportPlugin
import QKDCrypto

/// A loaded plugin library: the `dlopen` handle and the resolved functions of
/// qkd_transport_plugin.h (Spec/transport.md section 5).
struct PluginLibrary: @unchecked Sendable {
    // @unchecked: C function pointers and the dlopen handle are immutable after loading and
    // safe to share between threads; the plugin's own thread-safety is its ABI contract.
    let path: String
    let dl: UnsafeMutableRawPointer
    let abiVersion: UInt32
    let open: qkd_transport_plugin_open_fn
    let read: qkd_transport_plugin_read_fn
    let write: qkd_transport_plugin_write_fn
    let shutdown: qkd_transport_plugin_shutdown_fn
    let close: qkd_transport_plugin_close_fn
    let lastError: qkd_transport_plugin_last_error_fn

    /// The ABI version this build of the host speaks.
    static let hostABIVersion = UInt32(QKD_TRANSPORT_PLUGIN_ABI_VERSION)

    /// Loads `path` and resolves every symbol; checks the ABI version.
    static func load(path: String) throws -> PluginLibrary {
        // A path with a slash is a file: say "not found" plainly rather than via dlerror.
        if path.contains("/") && access(path, F_OK) != 0 {
            throw QKDError(.pluginNotFound, "plugin \(path) does not exist: check the path in the plugin: endpoint")
        }
        guard let dl = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
            throw QKDError(.pluginLoadFailed, "cannot load plugin \(path): \(reason)")
        }
        do {
            func symbol<T>(_ name: String, as type: T.Type) throws -> T {
                guard let pointer = dlsym(dl, name) else {
                    throw QKDError(.pluginMissingSymbol, "plugin \(path) does not export \(name): it is not a qkd_transport_plugin.h plugin, or was built against another version")
                }
                return unsafeBitCast(pointer, to: T.self)
            }
            let version = try symbol(QKD_TRANSPORT_PLUGIN_SYMBOL_ABI_VERSION, as: qkd_transport_plugin_abi_version_fn.self)()
            guard version == hostABIVersion else {
                throw QKDError(.pluginABIMismatch, "plugin \(path) implements ABI version \(version), this qkd-node speaks version \(hostABIVersion): rebuild the plugin against this qkd_transport_plugin.h")
            }
            return PluginLibrary(
                path: path, dl: dl, abiVersion: version,
                open: try symbol(QKD_TRANSPORT_PLUGIN_SYMBOL_OPEN, as: qkd_transport_plugin_open_fn.self),
                read: try symbol(QKD_TRANSPORT_PLUGIN_SYMBOL_READ, as: qkd_transport_plugin_read_fn.self),
                write: try symbol(QKD_TRANSPORT_PLUGIN_SYMBOL_WRITE, as: qkd_transport_plugin_write_fn.self),
                shutdown: try symbol(QKD_TRANSPORT_PLUGIN_SYMBOL_SHUTDOWN, as: qkd_transport_plugin_shutdown_fn.self),
                close: try symbol(QKD_TRANSPORT_PLUGIN_SYMBOL_CLOSE, as: qkd_transport_plugin_close_fn.self),
                lastError: try symbol(QKD_TRANSPORT_PLUGIN_SYMBOL_LAST_ERROR, as: qkd_transport_plugin_last_error_fn.self)
            )
        } catch {
            dlclose(dl)
            throw error
        }
    }

    /// The plugin's last_error text for `handle` (nil: the last failed open on this thread).
    func lastErrorText(_ handle: UnsafeMutableRawPointer?) -> String {
        guard let text = lastError(handle) else { return "no reason given" }
        let s = String(cString: text)
        return s.isEmpty ? "no reason given" : s
    }
}
