/* SPDX-License-Identifier: Apache-2.0 */
/* Outbound TCP: resolve, connect with a deadline, keepalive on.
 *
 * Every address the name resolves to is tried in turn within the one deadline. Errors name
 * the host and port and say whether nothing listened (refused), nothing answered
 * (timeout) or the name did not resolve. A caller that connects often resolves once
 * (kb_resolve) and connects to the addresses it keeps (kb_tcp_connect_to), or starts a
 * connect on an event loop (kb_tcp_connect_start, then kb_tcp_connect_end). */
#ifndef KB_NET_H
#define KB_NET_H

#include <sys/socket.h>

#include "err.h"

#define KB_ADDRS_MAX 8
/* What a name resolved to, in the resolver's order (the first KB_ADDRS_MAX). */
struct kb_addrs {
    unsigned n;
    struct {
        struct sockaddr_storage sa;
        socklen_t len;
    } a[KB_ADDRS_MAX];
};

int kb_resolve(const char *host, unsigned port, struct kb_addrs *out, kb_err *err);
/* kb_tcp_connect to addresses resolved before; host and port name them in errors; *used
 * (may be NULL) gets the index of the address connected to. */
int kb_tcp_connect_to(const struct kb_addrs *addrs, const char *host, unsigned port,
                      unsigned timeout_ms, int cancel_fd, int *fd, unsigned *used, kb_err *err);
/* A non-blocking connect to one address, keepalive on: 0 (connected, or EINPROGRESS: wait
 * until *fd is writable, then kb_tcp_connect_end; or send, which fails with the connect's
 * error), else an errno. *fd stays non-blocking. */
int kb_tcp_connect_start(const struct sockaddr *sa, socklen_t len, int *fd);
/* The outcome of that connect once *fd is writable: 0, or an errno. */
int kb_tcp_connect_end(int fd);

/* cancel_fd: -1, or a descriptor that becomes readable to abandon the connect at once
 * (the tunnel stopping); the error then says so. */
int kb_tcp_connect(const char *host, unsigned port, unsigned timeout_ms, int cancel_fd, int *fd,
                   kb_err *err);

/* Waits (poll) for fd's events, up to ms, unless cancel_fd (-1: none) becomes readable
 * first. Returns >0 ready, 0 timed out, -2 cancelled, -1 error (errno). */
int kb_wait_fd(int fd, short events, int ms, int cancel_fd);

/* Milliseconds on a monotonic clock. */
long long kb_now_ms(void);

#endif
