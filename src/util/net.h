/* Outbound TCP: resolve, connect with a deadline, keepalive on.
 *
 * Every address the name resolves to is tried in turn within the one deadline. Errors name
 * the host and port and say whether nothing listened (refused), nothing answered
 * (timeout) or the name did not resolve. */
#ifndef KB_NET_H
#define KB_NET_H

#include "err.h"

int kb_tcp_connect(const char *host, unsigned port, unsigned timeout_ms, int *fd, kb_err *err);

/* Milliseconds on a monotonic clock. */
long long kb_now_ms(void);

#endif
