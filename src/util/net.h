/* Outbound TCP: resolve, connect with a deadline, keepalive on.
 *
 * Every address the name resolves to is tried in turn within the one deadline. Errors name
 * the host and port and say whether nothing listened (refused), nothing answered
 * (timeout) or the name did not resolve. */
#ifndef KB_NET_H
#define KB_NET_H

#include "err.h"

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
