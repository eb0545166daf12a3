/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP CONNECT through a proxy (RFC 9110, 9.3.6), for tunnels that must leave through one.
 *
 * kb_proxy_reply parses the proxy's answer without trusting it: a status line and headers
 * up to the blank line, within the bytes given. kb_proxy_connect sends CONNECT on a
 * connected socket and waits (bounded) for a 2xx; the bytes after the headers, if any, are
 * not ours to read, so the reply is read byte by byte up to its end. */
#ifndef KB_PROXY_H
#define KB_PROXY_H

#include <stddef.h>

#include "err.h"

/* 1: complete, *status and *header_len set; 0: more bytes needed; -1: malformed (err). */
int kb_proxy_reply(const char *buf, size_t len, int *status, size_t *header_len, kb_err *err);

/* "http://HOST:PORT" (or HOST:PORT) to host and port. */
int kb_proxy_parse_url(const char *url, char *host, size_t host_len, unsigned *port, kb_err *err);

/* The proxy for an HTTPS connection to host: given (an option) when not NULL, else
 * $https_proxy (or $HTTPS_PROXY) unless $no_proxy (or $NO_PROXY) names the host: "*", the
 * host itself, or a domain it is in ("example.com" and ".example.com" both cover
 * a.example.com), as libcurl reads them. NULL: connect directly. *from names where it came
 * from, for messages. */
const char *kb_proxy_for(const char *host, const char *given, const char **from);

/* The CONNECT exchange on fd, up to timeout_ms, given up at once when cancel_fd (-1: none)
 * becomes readable. */
int kb_proxy_connect(int fd, const char *proxy, const char *host, unsigned port,
                     unsigned timeout_ms, int cancel_fd, kb_err *err);

#endif
