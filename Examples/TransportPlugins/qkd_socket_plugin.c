/*
 * Example QKDChannel transport plugin (qkd_transport_plugin.h, ABI 1): carries the link over a
 * TCP or Unix-domain stream socket. It stands in for a vendor's hardware link and shows the
 * whole contract: configuration parsing, blocking read/write, shutdown waking a blocked read,
 * and last_error.
 *
 * Build:  cc -shared -fPIC -I Sources/CQKDTransportPlugin/include \
 *            -o libqkd_socket_plugin.so Examples/TransportPlugins/qkd_socket_plugin.c
 * Use:    plugin:/path/libqkd_socket_plugin.so?host=127.0.0.1&port=7000
 *         plugin:/path/libqkd_socket_plugin.so?path=/run/qkd/link.sock
 *
 * Errors are kept per thread: the host asks last_error on the thread where the call failed,
 * right after it (Spec/transport.md section 5), and read and write run on different threads.
 */
#define _GNU_SOURCE
#define QKD_TRANSPORT_PLUGIN_IMPLEMENTATION
#include "qkd_transport_plugin.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct link {
    int fd;
};

static __thread char last_error[512];

static void set_error(const char *what, int err) {
    if (err) {
        snprintf(last_error, sizeof last_error, "%s: %s", what, strerror(err));
    } else {
        snprintf(last_error, sizeof last_error, "%s", what);
    }
}

uint32_t qkd_transport_plugin_abi_version(void) { return QKD_TRANSPORT_PLUGIN_ABI_VERSION; }

/* Copies the value of `key` from "k=v&k2=v2" into out; returns 1 if present. */
static int config_value(const char *config, const char *key, char *out, size_t out_len) {
    size_t key_len = strlen(key);
    const char *p = config;
    while (p && *p) {
        const char *end = strchr(p, '&');
        size_t item_len = end ? (size_t)(end - p) : strlen(p);
        if (item_len > key_len && strncmp(p, key, key_len) == 0 && p[key_len] == '=') {
            size_t value_len = item_len - key_len - 1;
            if (value_len >= out_len) value_len = out_len - 1;
            memcpy(out, p + key_len + 1, value_len);
            out[value_len] = '\0';
            return 1;
        }
        p = end ? end + 1 : NULL;
    }
    return 0;
}

/* Rejects keys this plugin does not know: a typo must not be silently ignored. */
static int check_keys(const char *config) {
    const char *p = config;
    while (p && *p) {
        const char *eq = strchr(p, '=');
        const char *end = strchr(p, '&');
        size_t key_len = eq ? (size_t)(eq - p) : strlen(p);
        if (!((key_len == 4 && strncmp(p, "host", 4) == 0) || (key_len == 4 && strncmp(p, "port", 4) == 0) ||
              (key_len == 4 && strncmp(p, "path", 4) == 0))) {
            snprintf(last_error, sizeof last_error, "unknown configuration key '%.*s' (use host and port, or path)",
                     (int)key_len, p);
            return 0;
        }
        p = end ? end + 1 : NULL;
    }
    return 1;
}

static int connect_unix(const char *path) {
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) {
        set_error("socket path too long", 0);
        return -1;
    }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        set_error("socket", errno);
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        char what[300];
        snprintf(what, sizeof what, "connect to unix %s", path);
        set_error(what, errno);
        close(fd);
        return -1;
    }
    return fd;
}

static int connect_tcp(const char *host, const char *port) {
    struct addrinfo hints, *list = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &list);
    if (rc != 0) {
        snprintf(last_error, sizeof last_error, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = list; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(list);
    if (fd < 0) {
        char what[300];
        snprintf(what, sizeof what, "connect to %s:%s", host, port);
        set_error(what, err);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int qkd_transport_plugin_open(const char *config_kv, void **handle) {
    char host[256], port[16], path[256];
    last_error[0] = '\0';
    if (!check_keys(config_kv)) return -1;
    int fd;
    if (config_value(config_kv, "path", path, sizeof path)) {
        fd = connect_unix(path);
    } else if (config_value(config_kv, "port", port, sizeof port)) {
        if (!config_value(config_kv, "host", host, sizeof host)) strcpy(host, "127.0.0.1");
        fd = connect_tcp(host, port);
    } else {
        set_error("no link configured: give ?host=H&port=P or ?path=/socket", 0);
        return -1;
    }
    if (fd < 0) return -1;
    struct link *link = malloc(sizeof *link);
    if (!link) {
        close(fd);
        set_error("out of memory", 0);
        return -1;
    }
    link->fd = fd;
    *handle = link;
    return 0;
}

ssize_t qkd_transport_plugin_read(void *handle, uint8_t *buf, size_t len) {
    struct link *link = handle;
    for (;;) {
        ssize_t n = recv(link->fd, buf, len, 0);
        if (n >= 0) return n; /* 0: the peer closed, or shutdown() */
        if (errno == EINTR) continue;
        set_error("recv", errno);
        return -1;
    }
}

ssize_t qkd_transport_plugin_write(void *handle, const uint8_t *buf, size_t len) {
    struct link *link = handle;
    for (;;) {
        ssize_t n = send(link->fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        set_error("send", errno);
        return -1;
    }
}

void qkd_transport_plugin_shutdown(void *handle) {
    struct link *link = handle;
    shutdown(link->fd, SHUT_RDWR); /* wakes a blocked recv (returns 0) and send (EPIPE) */
}

void qkd_transport_plugin_close(void *handle) {
    struct link *link = handle;
    close(link->fd);
    free(link);
}

const char *qkd_transport_plugin_last_error(void *handle) {
    (void)handle;
    return last_error;
}
