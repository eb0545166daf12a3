/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP/1.1 framing of EST, on a TLS session that src/tls made and verified.
 *
 * One request per connection (Connection: close). The request head is written by
 * keybound; an Authorization line is written from the caller's locked memory in a record
 * of its own, so no copy of the secret is left in a library's heap. The reply is read with
 * http-parser (Content-Length, chunked, or up to the close) into bounded buffers: a
 * header or body over its limit is a malformed reply, never cut short. The reply parser
 * is pure (bytes in, fields out) so that the fuzz harness drives it without a server. */
#ifndef KB_HTTP_H
#define KB_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "src/util/err.h"

#define KB_HTTP_BODY_MAX (4u * 1024 * 1024) /* an EST reply is a few KB */
#define KB_HTTP_HEAD_MAX (64u * 1024)

struct kb_http_reply {
    int status;
    char content_type[256];
    char retry_after[128];
    bool has_retry_after;
    char *body; /* NUL-terminated, malloc'd */
    size_t len;
    bool complete;
    bool malformed; /* set with err: the bytes are not an HTTP reply keybound accepts */
    /* parser state */
    void *parser;
    char field[64];
    int in_header; /* which header's value is being read: 0 none, 1 type, 2 retry */
    size_t head_bytes;
    size_t value_len;
    bool value_too_long;
};

/* Starts a reply. Fails only when memory is short. */
int kb_http_reply_init(struct kb_http_reply *r, kb_err *err);
/* Feeds bytes as they arrive; len 0 says the server closed the connection. Returns 1 when
 * the reply is complete, 0 when more is needed, -1 (err set, r->malformed) when the bytes
 * are not an acceptable reply. `what` names the request in messages ("/cacerts"). */
int kb_http_reply_feed(struct kb_http_reply *r, const char *what, const char *data, size_t len,
                       kb_err *err);
void kb_http_reply_free(struct kb_http_reply *r);

/* The request head without the Authorization line and without the blank line that ends the
 * head: method, path, Host, User-Agent, Accept, Connection: close, and for a body its
 * Content-Type, Content-Transfer-Encoding (base64) and Content-Length. */
int kb_http_request_head(char *out, size_t len, const char *method, const char *path,
                         const char *host, unsigned port, const char *content_type, size_t body_len,
                         kb_err *err);

#endif
