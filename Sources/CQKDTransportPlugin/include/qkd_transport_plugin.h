/*
 * qkd_transport_plugin.h: the C ABI of QKDChannel hardware transport plugins.
 *
 * A plugin is a shared library that carries the classical channel's bytes over a link the
 * package does not know (a vendor's board, a proprietary bus). The node loads it with dlopen
 * from an endpoint `plugin:/path/libx.so?key=value&k2=v2` and calls the functions below.
 * The normative description is Spec/transport.md section 5; this header is its C form.
 *
 * Exported symbols (all required, C linkage, default visibility):
 *
 *   uint32_t    qkd_transport_plugin_abi_version(void);
 *   int         qkd_transport_plugin_open(const char *config_kv, void **handle);
 *   ssize_t     qkd_transport_plugin_read(void *handle, uint8_t *buf, size_t len);
 *   ssize_t     qkd_transport_plugin_write(void *handle, const uint8_t *buf, size_t len);
 *   void        qkd_transport_plugin_shutdown(void *handle);
 *   void        qkd_transport_plugin_close(void *handle);
 *   const char *qkd_transport_plugin_last_error(void *handle);
 *
 * Threading: the host calls `read` from one dedicated thread and `write` from another, so a
 * read and a write may run at the same time on one handle; never two reads or two writes at
 * once. `read` and `write` may block. `shutdown` may be called from any thread at any time
 * between `open` and `close`, also while `read` or `write` block: it must make them return
 * promptly (read 0 or -1, write -1), and later calls too. `close` is called exactly once, after
 * every other call on the handle has returned. A plugin never needs its own threads.
 */
#ifndef QKD_TRANSPORT_PLUGIN_H
#define QKD_TRANSPORT_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes. A plugin returns it from qkd_transport_plugin_abi_version();
 * the host refuses a plugin that returns anything else. Incremented on any incompatible
 * change of the functions or their contracts. */
#define QKD_TRANSPORT_PLUGIN_ABI_VERSION 1u

/* Returns QKD_TRANSPORT_PLUGIN_ABI_VERSION as the plugin was compiled. Called first. */
typedef uint32_t (*qkd_transport_plugin_abi_version_fn)(void);

/* Opens the link. `config_kv` is the endpoint's query string verbatim: `key=value` pairs joined
 * by `&` (keys non-empty and distinct, no percent-decoding), or "" when there is none.
 * On success stores an opaque handle in *handle and returns 0. On failure returns non-zero;
 * then qkd_transport_plugin_last_error(NULL), called next on the same thread, says why. */
typedef int (*qkd_transport_plugin_open_fn)(const char *config_kv, void **handle);

/* Reads up to `len` (> 0) bytes, blocking until at least one is available.
 * Returns the count read (>= 1), 0 at the clean end of the stream (the peer closed, or after
 * shutdown), or -1 on error (then last_error(handle) says why). */
typedef ssize_t (*qkd_transport_plugin_read_fn)(void *handle, uint8_t *buf, size_t len);

/* Writes up to `len` (> 0) bytes, blocking while the link applies back-pressure.
 * Returns the count written (>= 1; the host calls again for the rest) or -1 on error (then
 * last_error(handle) says why). */
typedef ssize_t (*qkd_transport_plugin_write_fn)(void *handle, const uint8_t *buf, size_t len);

/* Wakes blocked read/write calls and makes later ones fail or return end of stream. Must be
 * thread-safe and idempotent; must not free the handle. */
typedef void (*qkd_transport_plugin_shutdown_fn)(void *handle);

/* Releases the link and the handle. Called once, after every other call returned. */
typedef void (*qkd_transport_plugin_close_fn)(void *handle);

/* A NUL-terminated, human-readable description of the last failure: of the last failed call on
 * `handle`, or with handle == NULL of the last failed open on the calling thread. Never NULL
 * (return "" if there is nothing to say); valid until the next call on the same handle (or,
 * for NULL, the next open on the thread). The host calls it on the thread where the call
 * failed, right after the failure, so a plugin may keep its errors per thread. Must never
 * contain key material. */
typedef const char *(*qkd_transport_plugin_last_error_fn)(void *handle);

/* The exported symbol names, for dlsym. */
#define QKD_TRANSPORT_PLUGIN_SYMBOL_ABI_VERSION "qkd_transport_plugin_abi_version"
#define QKD_TRANSPORT_PLUGIN_SYMBOL_OPEN "qkd_transport_plugin_open"
#define QKD_TRANSPORT_PLUGIN_SYMBOL_READ "qkd_transport_plugin_read"
#define QKD_TRANSPORT_PLUGIN_SYMBOL_WRITE "qkd_transport_plugin_write"
#define QKD_TRANSPORT_PLUGIN_SYMBOL_SHUTDOWN "qkd_transport_plugin_shutdown"
#define QKD_TRANSPORT_PLUGIN_SYMBOL_CLOSE "qkd_transport_plugin_close"
#define QKD_TRANSPORT_PLUGIN_SYMBOL_LAST_ERROR "qkd_transport_plugin_last_error"

/* Prototypes for plugin authors: define QKD_TRANSPORT_PLUGIN_IMPLEMENTATION before including
 * this header to have the compiler check your definitions against the ABI. */
#ifdef QKD_TRANSPORT_PLUGIN_IMPLEMENTATION
#define QKD_TRANSPORT_PLUGIN_EXPORT __attribute__((visibility("default")))
QKD_TRANSPORT_PLUGIN_EXPORT uint32_t qkd_transport_plugin_abi_version(void);
QKD_TRANSPORT_PLUGIN_EXPORT int qkd_transport_plugin_open(const char *config_kv, void **handle);
QKD_TRANSPORT_PLUGIN_EXPORT ssize_t qkd_transport_plugin_read(void *handle, uint8_t *buf, size_t len);
QKD_TRANSPORT_PLUGIN_EXPORT ssize_t qkd_transport_plugin_write(void *handle, const uint8_t *buf, size_t len);
QKD_TRANSPORT_PLUGIN_EXPORT void qkd_transport_plugin_shutdown(void *handle);
QKD_TRANSPORT_PLUGIN_EXPORT void qkd_transport_plugin_close(void *handle);
QKD_TRANSPORT_PLUGIN_EXPORT const char *qkd_transport_plugin_last_error(void *handle);
#endif

#ifdef __cplusplus
}
#endif

#endif /* QKD_TRANSPORT_PLUGIN_H */
