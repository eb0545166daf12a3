/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "http.h"

#include <http_parser.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "src/util/hostport.h"

enum { HDR_NONE, HDR_TYPE, HDR_RETRY, HDR_OTHER };

/* The parser's callbacks report problems through the reply; the message is made once
 * execute returns, where the kb_err is at hand. */
struct feed {
    struct kb_http_reply *r;
    const char *problem;
};

static struct feed *feed_of(http_parser *p)
{
    return p->data;
}

static int on_message_begin(http_parser *p)
{
    struct kb_http_reply *r = feed_of(p)->r;
    /* A 1xx interim reply came before this one: forget its headers. */
    r->content_type[0] = r->retry_after[0] = '\0';
    r->has_retry_after = false;
    r->len = 0;
    return 0;
}

static int count_head(struct feed *f, size_t len)
{
    f->r->head_bytes += len;
    if (f->r->head_bytes > KB_HTTP_HEAD_MAX) {
        f->problem = "its headers are larger than 64 KiB";
        return -1;
    }
    return 0;
}

static int on_status(http_parser *p, const char *at, size_t len)
{
    (void)at;
    return count_head(feed_of(p), len);
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct feed *f = feed_of(p);
    struct kb_http_reply *r = f->r;
    if (count_head(f, len) != 0)
        return -1;
    /* A field name arrives in pieces when it spans two reads: collect it. */
    if (r->in_header != HDR_NONE) {
        r->in_header = HDR_NONE;
        r->field[0] = '\0';
    }
    size_t have = strlen(r->field);
    if (have + len >= sizeof r->field) {
        r->field[0] = '\x01'; /* longer than any header we read: ignored */
        r->field[1] = '\0';
        return 0;
    }
    memcpy(r->field + have, at, len);
    r->field[have + len] = '\0';
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct feed *f = feed_of(p);
    struct kb_http_reply *r = f->r;
    if (count_head(f, len) != 0)
        return -1;
    if (r->in_header == HDR_NONE) {
        r->in_header = strcasecmp(r->field, "Content-Type") == 0  ? HDR_TYPE
                       : strcasecmp(r->field, "Retry-After") == 0 ? HDR_RETRY
                                                                  : HDR_OTHER;
        r->value_len = 0;
        if (r->in_header == HDR_TYPE)
            r->content_type[0] = '\0';
        if (r->in_header == HDR_RETRY) {
            r->retry_after[0] = '\0';
            r->has_retry_after = true;
        }
    }
    char *dst = r->in_header == HDR_TYPE    ? r->content_type
                : r->in_header == HDR_RETRY ? r->retry_after
                                            : NULL;
    size_t cap = r->in_header == HDR_TYPE ? sizeof r->content_type : sizeof r->retry_after;
    if (dst == NULL)
        return 0;
    if (r->value_len + len >= cap) {
        f->problem = r->in_header == HDR_TYPE ? "its Content-Type header is too long"
                                              : "its Retry-After header is too long";
        return -1;
    }
    memcpy(dst + r->value_len, at, len);
    r->value_len += len;
    dst[r->value_len] = '\0';
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct feed *f = feed_of(p);
    f->r->in_header = HDR_NONE;
    f->r->field[0] = '\0';
    f->r->status = (int)p->status_code;
    if (p->content_length != ULLONG_MAX && p->content_length > KB_HTTP_BODY_MAX &&
        p->status_code / 100 != 1) {
        f->problem = "it announces a body larger than 4 MiB";
        return -1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct feed *f = feed_of(p);
    struct kb_http_reply *r = f->r;
    if (len > KB_HTTP_BODY_MAX - r->len) {
        f->problem = "its body is larger than 4 MiB";
        return -1;
    }
    char *v = realloc(r->body, r->len + len + 1);
    if (v == NULL) {
        f->problem = "there is no memory for its body";
        return -1;
    }
    memcpy(v + r->len, at, len);
    r->len += len;
    v[r->len] = '\0';
    r->body = v;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct kb_http_reply *r = feed_of(p)->r;
    if (p->status_code / 100 == 1)
        return 0; /* interim (100 Continue): the real reply follows */
    r->complete = true;
    http_parser_pause(p, 1); /* nothing after the reply is read */
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

int kb_http_reply_init(struct kb_http_reply *r, kb_err *err)
{
    memset(r, 0, sizeof *r);
    http_parser *p = calloc(1, sizeof *p);
    if (p == NULL)
        return kb_err_set(err, "out of memory");
    http_parser_init(p, HTTP_RESPONSE);
    r->parser = p;
    return 0;
}

void kb_http_reply_free(struct kb_http_reply *r)
{
    free(r->body);
    free(r->parser);
    memset(r, 0, sizeof *r);
}

int kb_http_reply_feed(struct kb_http_reply *r, const char *what, const char *data, size_t len,
                       kb_err *err)
{
    if (r->complete)
        return 1;
    if (r->malformed)
        return -1;
    http_parser *p = r->parser;
    struct feed f = {r, NULL};
    p->data = &f;
    size_t used = http_parser_execute(p, &settings, len ? data : NULL, len);
    p->data = NULL;
    enum http_errno e = HTTP_PARSER_ERRNO(p);
    if (r->complete)
        return 1;
    if (f.problem == NULL && e == HPE_OK && p->upgrade)
        f.problem = "it switches protocols";
    if (f.problem == NULL && e == HPE_OK && len != 0 && used != len)
        f.problem = "it has bytes the parser did not take";
    if (f.problem != NULL || e != HPE_OK) {
        r->malformed = true;
        if (f.problem != NULL)
            kb_err_set(err, "the EST server's reply to %s is not usable: %s", what, f.problem);
        else
            kb_err_set(err, "the EST server's reply to %s is not valid HTTP/1.1 (%s)", what,
                       http_errno_description(e));
        return -1;
    }
    if (len == 0) {
        r->malformed = true;
        return kb_err_set(err,
                          "the EST server closed the connection before its reply to %s was "
                          "complete",
                          what);
    }
    return 0;
}

int kb_http_request_head(char *out, size_t len, const char *method, const char *path,
                         const char *host, unsigned port, const char *content_type, size_t body_len,
                         kb_err *err)
{
    if (strlen(host) > KB_HOST_MAX)
        return kb_err_set(err, "host name %s is too long", host);
    char hostport[KB_HOSTPORT_STRLEN];
    kb_hostport_str(host, port == 443 ? 0 : port, hostport, sizeof hostport);
    char body_headers[256] = "";
    if (content_type != NULL)
        snprintf(body_headers, sizeof body_headers,
                 "Content-Type: %s\r\nContent-Transfer-Encoding: base64\r\nContent-Length: %zu\r\n",
                 content_type, body_len);
    int w = snprintf(out, len,
                     "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: keybound/%s\r\nAccept: */*\r\n"
                     "Connection: close\r\n%s",
                     method, path, hostport, PACKAGE_VERSION, body_headers);
    if (w < 0 || (size_t)w >= len)
        return kb_err_set(err, "the request for %s is too long", path);
    return 0;
}
