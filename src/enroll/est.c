/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "est.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "src/enroll/http.h"
#include "src/util/hostport.h"
#include "src/util/log.h"
#include "src/util/net.h"
#include "src/util/proxy.h"

const char *kb_est_state_name(enum kb_est_state s)
{
    static const char *const names[] = {"ISSUED", "WAIT", "REJECTED", "UNREACHABLE",
                                        "UNDERCONFIGURED"};
    return names[s];
}

int kb_est_exit(const kb_est *e, enum kb_est_state s)
{
    static const int codes[] = {0, 4, 3, 5, 2};
    return s != KB_EST_ISSUED && (e->malformed || e->token_failed || e->not_est) ? 2 : codes[s];
}

/* The URL points at a web site, a path that is not EST, or no TLS server. */
static enum kb_est_state not_est(kb_est *e, const char *why, kb_err *err)
{
    const char *auth = e->url + strlen("https://");
    e->not_est = true;
    kb_err_set(err,
               "%s does not answer as an EST server (%s); is the base URL "
               "https://%.*s/.well-known/est?",
               e->url, why, (int)strcspn(auth, "/"), auth);
    return KB_EST_UNDERCONFIGURED;
}

/* The anchors must be usable before anything is sent: a bad file is the user's to fix. */
static int check_ca_file(const char *path, kb_err *err)
{
    gnutls_datum_t data = {NULL, 0};
    gnutls_x509_crt_t *certs = NULL;
    unsigned n = 0;
    int rc = gnutls_load_file(path, &data);
    if (rc < 0)
        return kb_err_set(err, "CA file %s cannot be read: %s", path, strerror(errno));
    rc = gnutls_x509_crt_list_import2(&certs, &n, &data, GNUTLS_X509_FMT_PEM, 0);
    gnutls_free(data.data);
    for (unsigned i = 0; rc >= 0 && i < n; i++)
        gnutls_x509_crt_deinit(certs[i]);
    gnutls_free(certs);
    if (rc < 0 || n == 0)
        return kb_err_set(err,
                          "CA file %s holds no PEM certificate; it must hold the anchors that "
                          "the EST server's certificate chains to",
                          path);
    return 0;
}

/* The URL as kb_est keeps it: host, port and server name for the TLS client, the path. */
static int set_url(kb_est *e, const char *url, kb_err *err)
{
    if (strlen(url) + 20 >= sizeof e->url)
        return kb_err_set(err, "EST URL '%.60s...' is longer than %zu bytes", url,
                          sizeof e->url - 20);
    if (strncasecmp(url, "https://", 8) != 0)
        return kb_err_set(err,
                          "EST URL '%s' must start with https:// (e.g. "
                          "https://ca.example.com/.well-known/est)",
                          url);
    const char *auth = url + 8;
    const char *path = strchr(auth, '/');
    size_t auth_len = path ? (size_t)(path - auth) : strlen(auth);
    if (memchr(auth, '@', auth_len) != NULL)
        return kb_err_set(err,
                          "EST URL '%s' holds credentials; give them with --secret-file FILE "
                          "instead",
                          url);
    if (path != NULL && strpbrk(path, "?# \t\r\n") != NULL)
        return kb_err_set(err, "EST URL '%s' may not have a query, a fragment or blanks", url);
    /* host[:port] as HOST:PORT, 443 when the URL names none. */
    char hostport[300];
    bool has_port = auth[0] == '[' ? memchr(auth, ']', auth_len) != NULL &&
                                         ((const char *)memchr(auth, ']', auth_len))[1] == ':'
                                   : memchr(auth, ':', auth_len) != NULL;
    if (auth_len == 0 || auth_len + 5 >= sizeof hostport)
        return kb_err_set(err, "EST URL '%s' has no host name", url);
    snprintf(hostport, sizeof hostport, "%.*s%s", (int)auth_len, auth, has_port ? "" : ":443");
    kb_err why;
    if (kb_hostport_parse(hostport, e->peer.host, sizeof e->peer.host, &e->peer.port, &why) != 0)
        return kb_err_set(err, "EST URL '%s': %s", url, why.msg);
    snprintf(e->peer.server_name, sizeof e->peer.server_name, "%s", e->peer.host);
    e->peer.min_tls = 12;
    /* RFC 7030: https://host[:port]/.well-known/est[/label]; a URL without a path gets
     * the well-known one, any other path is taken as the user wrote it. */
    if (path != NULL && strlen(path) >= sizeof e->path - 20)
        return kb_err_set(err, "EST URL '%.60s...' has a path longer than %zu bytes", url,
                          sizeof e->path - 20);
    if (path == NULL || strcmp(path, "/") == 0)
        snprintf(e->path, sizeof e->path, "/.well-known/est");
    else
        snprintf(e->path, sizeof e->path, "%s", path);
    size_t n = strlen(e->path);
    while (n > 1 && e->path[n - 1] == '/')
        e->path[--n] = '\0';
    snprintf(e->url, sizeof e->url, "https://%.*s%s", (int)auth_len, auth, e->path);
    return 0;
}

/* "sha256:HEX", colons allowed between the digits, as 64 lower-case hex digits. */
static int set_fingerprint(char out[65], const char *what, const char *fingerprint, kb_err *err)
{
    const char *hex = strncasecmp(fingerprint, "sha256:", 7) == 0 ? fingerprint + 7 : NULL;
    size_t j = 0, digits = 0;
    for (const char *c = hex; c && *c; c++) {
        if (*c == ':')
            continue;
        if (j < 64)
            out[j++] = (char)(*c >= 'A' && *c <= 'F' ? *c + 32 : *c);
        digits++;
    }
    out[j] = '\0';
    if (hex == NULL || digits != 64 || strspn(out, "0123456789abcdef") != 64)
        return kb_err_set(err,
                          "%s '%s' is not sha256: followed by 64 hex digits (certtool "
                          "--fingerprint --hash sha256 shows it)",
                          what, fingerprint);
    return 0;
}

int kb_est_check_url(const char *url, kb_err *err)
{
    kb_est *e = calloc(1, sizeof *e);
    if (e == NULL)
        return kb_err_set(err, "out of memory");
    int rc = set_url(e, url, err);
    free(e);
    return rc;
}

int kb_est_check_fingerprint(const char *what, const char *fingerprint, kb_err *err)
{
    char hex[65];
    return set_fingerprint(hex, what, fingerprint, err);
}

int kb_est_init(kb_est *e, const char *url, const char *ca_file, const char *fingerprint,
                kb_secret *secret, kb_err *err)
{
    memset(e, 0, sizeof *e);
    e->secret = secret;
    e->timeout_s = 30;
    e->max_wait_s = 600;
    e->max_tries = 10;
    if (set_url(e, url, err) != 0)
        return -1;
    if ((ca_file == NULL) == (fingerprint == NULL))
        return kb_err_set(err, "say how to trust the EST server: --ca FILE or --ca-fingerprint "
                               "sha256:HEX (one of them)");
    if (ca_file != NULL) {
        if (strlen(ca_file) >= sizeof e->peer.ca_file)
            return kb_err_set(err, "CA file name %.40s... is too long", ca_file);
        if (check_ca_file(ca_file, err) != 0)
            return -1;
        snprintf(e->peer.ca_file, sizeof e->peer.ca_file, "%s", ca_file);
        return 0;
    }
    return set_fingerprint(e->fingerprint, "--ca-fingerprint", fingerprint, err);
}

int kb_est_set_proxy(kb_est *e, const char *proxy, kb_err *err)
{
    const char *from;
    const char *p = kb_proxy_for(e->peer.host, proxy, &from);
    e->proxy[0] = '\0';
    e->peer.proxy = NULL;
    if (p == NULL)
        return 0;
    char host[256];
    unsigned port;
    kb_err why;
    if (strlen(p) >= sizeof e->proxy || kb_proxy_parse_url(p, host, sizeof host, &port, &why) != 0)
        return kb_err_set(err, "%s '%.200s' is not a proxy keybound can use (http://HOST:PORT)",
                          from, p);
    snprintf(e->proxy, sizeof e->proxy, "%s", p);
    e->peer.proxy = e->proxy;
    return 0;
}

void kb_est_free(kb_est *e)
{
    kb_tls_client_free(e->tls);
    e->tls = NULL;
    if (e->anchor)
        gnutls_x509_crt_deinit(e->anchor);
    e->anchor = NULL;
    kb_secret_free(e->secret);
    e->secret = NULL;
}

struct kb_est_response {
    long status;
    char content_type[256];
    char retry_after[128];
    bool has_retry_after;
    char *body;
    size_t len;
};

static void response_free(struct kb_est_response *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* Waits until the session can go on in the direction GnuTLS needs, or the deadline. */
static bool wait_io(gnutls_session_t s, int fd, long long deadline)
{
    (void)fd; /* the session's own */
    long long left = deadline - kb_now_ms();
    return left > 0 && kb_tls_wait(s, (int)left, -1) > 0;
}

static int send_all(gnutls_session_t s, int fd, const char *data, size_t len, long long deadline,
                    const char *what, kb_err *err)
{
    while (len > 0) {
        ssize_t n = gnutls_record_send(s, data, len);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
            if (!wait_io(s, fd, deadline))
                return kb_err_set(err, "sending %s to the EST server timed out", what);
            continue;
        }
        if (n < 0) {
            kb_tls_describe_error(s, (int)n, err);
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* "Authorization: Basic <base64(user:password)>\r\n", built in locked memory and sent as a
 * record of its own: no library sees the secret but GnuTLS's record layer, which encrypts
 * it in place. */
static int send_authorization(gnutls_session_t s, int fd, const kb_secret *secret,
                              long long deadline, kb_err *err)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char prefix[] = "Authorization: Basic ";
    kb_secret *line = kb_secret_new();
    if (line == NULL)
        return kb_err_set(err, "cannot allocate locked memory for the secret");
    size_t cap = kb_secret_capacity(), o = sizeof prefix - 1;
    if (o + (secret->len + 2) / 3 * 4 + 3 > cap) {
        kb_secret_free(line);
        return kb_err_set(err, "the enrolment secret is too long");
    }
    memcpy(line->buf, prefix, o);
    const unsigned char *in = (const unsigned char *)secret->buf;
    for (size_t i = 0; i < secret->len; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < secret->len)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < secret->len)
            v |= in[i + 2];
        line->buf[o++] = b64[(v >> 18) & 63];
        line->buf[o++] = b64[(v >> 12) & 63];
        line->buf[o++] = i + 1 < secret->len ? b64[(v >> 6) & 63] : '=';
        line->buf[o++] = i + 2 < secret->len ? b64[v & 63] : '=';
    }
    line->buf[o++] = '\r';
    line->buf[o++] = '\n';
    int rc = send_all(s, fd, line->buf, o, deadline, "the request", err);
    kb_secret_free(line);
    return rc;
}

static int read_reply(gnutls_session_t s, int fd, const char *what, long long deadline,
                      struct kb_http_reply *reply, kb_err *err)
{
    char buf[16384];
    for (;;) {
        ssize_t n = gnutls_record_recv(s, buf, sizeof buf);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
            if (!wait_io(s, fd, deadline))
                return kb_err_set(err, "the EST server did not answer %s within the timeout", what);
            continue;
        }
        /* A server that asks for the certificate only at a re-enrolment path: answered as
         * any TLS client would, and refused where this connection has no identity. */
        if (kb_tls_wants_reauth((int)n)) {
            if (kb_tls_reauth(s, (int)n, err) != 0)
                return -1;
            continue;
        }
        /* Only a reply framed by the close reads on to it (one framed by its length or its
         * chunks ends before): without close_notify it may have been cut by anyone on the
         * path. */
        if (n == GNUTLS_E_PREMATURE_TERMINATION) {
            reply->malformed = true;
            return kb_err_set(err,
                              "the EST server's reply to %s ends where the connection was cut "
                              "without a TLS close (close_notify), so it may be incomplete; "
                              "not using it",
                              what);
        }
        if (n < 0) {
            kb_tls_describe_error(s, (int)n, err);
            return -1;
        }
        int rc = kb_http_reply_feed(reply, what, buf, (size_t)n, err);
        if (rc != 0)
            return rc > 0 ? 0 : -1;
    }
}

/* One HTTP exchange on a new connection of client c. Credentials go only on a session
 * whose server passed verification. */
static int exchange(kb_est *e, kb_tls_client *c, bool credentials, const char *op,
                    const gnutls_datum_t *csr, struct kb_est_response *out, kb_err *err)
{
    memset(out, 0, sizeof *out);
    char path[1100], what[64], head[2048];
    snprintf(path, sizeof path, "%s/%s", e->path, op);
    snprintf(what, sizeof what, "/%s", op);
    gnutls_datum_t body = {NULL, 0};
    if (csr != NULL && gnutls_base64_encode2(csr, &body) < 0)
        return kb_err_set(err, "the request cannot be encoded");
    int ret = -1;
    gnutls_session_t s = NULL;
    int fd = -1;
    struct kb_tls_result res;
    struct kb_http_reply reply;
    bool have_reply = false;
    kb_err inner;
    if (kb_http_request_head(head, sizeof head, csr ? "POST" : "GET", path, e->peer.host,
                             e->peer.port, csr ? "application/pkcs10" : NULL, body.size, err) != 0)
        goto out;
    if (kb_http_reply_init(&reply, err) != 0)
        goto out;
    have_reply = true;
    if (kb_tls_connect(c, &s, &fd, &res, &inner) != 0) {
        /* The token, not the network: exit 2 (kb_est_exit), as UNDERCONFIGURED. */
        e->token_failed = e->token_failed || res.token_failed;
        if (res.plain_http)
            not_est(e, "it answers in plain HTTP, not TLS", err);
        else
            kb_err_set(err, "EST %s: %s", what, inner.msg);
        goto out;
    }
    if (credentials && !kb_tls_session_verified(s)) {
        kb_err_set(err, "EST %s: the server was not verified; nothing was sent to it", what);
        goto out;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    long long deadline = kb_now_ms() + (long long)e->timeout_s * 1000;
    if (send_all(s, fd, head, strlen(head), deadline, "the request", &inner) != 0 ||
        (credentials && e->secret != NULL &&
         send_authorization(s, fd, e->secret, deadline, &inner) != 0) ||
        send_all(s, fd, "\r\n", 2, deadline, "the request", &inner) != 0 ||
        (body.size > 0 && send_all(s, fd, (const char *)body.data, body.size, deadline,
                                   "the request", &inner) != 0)) {
        kb_err_set(err, "EST %s: %s", what, inner.msg);
        goto out;
    }
    if (read_reply(s, fd, what, deadline, &reply, &inner) != 0) {
        e->malformed = reply.malformed;
        if (reply.malformed)
            *err = inner;
        else
            kb_err_set(err, "EST %s: %s", what, inner.msg);
        goto out;
    }
    out->status = reply.status;
    snprintf(out->content_type, sizeof out->content_type, "%s", reply.content_type);
    snprintf(out->retry_after, sizeof out->retry_after, "%s", reply.retry_after);
    out->has_retry_after = reply.has_retry_after;
    out->body = reply.body;
    out->len = reply.len;
    reply.body = NULL;
    ret = 0;
out:
    if (have_reply)
        kb_http_reply_free(&reply);
    if (s != NULL || fd >= 0)
        kb_tls_close(s, fd, ret == 0 ? KB_TLS_ORDERLY : KB_TLS_ABORT);
    gnutls_free(body.data);
    return ret;
}

/* One request to op on a verified connection, with the credentials (secret or client
 * certificate). Returns 0 when the server answered (any status), -1 when it could not be
 * reached or verified or its reply was not HTTP (err; e->malformed for the latter). */
static int request(kb_est *e, const char *op, const gnutls_datum_t *csr, struct kb_est_response *r,
                   kb_err *err)
{
    memset(r, 0, sizeof *r);
    if (e->tls == NULL) {
        e->peer.connect_timeout_ms = e->timeout_s * 1000;
        e->peer.handshake_timeout_ms = e->timeout_s * 1000;
        if (kb_tls_client_new(&e->peer, e->id, &e->tls, err) != 0)
            return -1;
    }
    return exchange(e, e->tls, true, op, csr, r, err);
}

/* The server's own words for a refusal, cut to one line. */
static void server_text(const struct kb_est_response *r, char *out, size_t len)
{
    snprintf(out, len, "%.*s", (int)(r->len < 300 ? r->len : 300), r->body ? r->body : "");
    for (char *c = out; *c; c++)
        if (*c == '\r' || *c == '\n' || (unsigned char)*c < 0x20)
            *c = ' ';
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == ' ')
        out[--n] = '\0';
    if (n == 0)
        snprintf(out, len, "(no text)");
}

static enum kb_est_state status_state(const char *op, const struct kb_est_response *r, kb_err *err)
{
    char text[320];
    server_text(r, text, sizeof text);
    if (r->status == 401 || r->status == 403) {
        kb_err_set(err, "the EST server refused /%s (HTTP %ld): %s", op, r->status, text);
        return KB_EST_REJECTED;
    }
    if (r->status >= 400 && r->status < 500) {
        kb_err_set(err, "the EST server rejected /%s (HTTP %ld): %s", op, r->status, text);
        return KB_EST_REJECTED;
    }
    kb_err_set(err, "the EST server failed /%s (HTTP %ld): %s", op, r->status, text);
    return KB_EST_UNREACHABLE;
}

static bool fingerprint_matches(gnutls_x509_crt_t crt, const char *hex)
{
    unsigned char fp[32];
    size_t size = sizeof fp;
    char text[65];
    if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fp, &size) < 0 || size != 32)
        return false;
    for (int i = 0; i < 32; i++)
        snprintf(text + 2 * i, 3, "%02x", fp[i]);
    return strcmp(text, hex) == 0;
}

/* Pinned-fingerprint bootstrap (RFC 7030 4.1.1): /cacerts from a server not verified yet,
 * on a client that has no identity and is given no secret. Of what it sends only the
 * certificate with the pinned fingerprint is kept, as the anchor of every later request. */
static enum kb_est_state bootstrap(kb_est *e, kb_err *err)
{
    kb_tls_peer unverified = e->peer;
    unverified.unverified = true;
    unverified.connect_timeout_ms = unverified.handshake_timeout_ms = e->timeout_s * 1000;
    kb_tls_client *c = NULL;
    if (kb_tls_client_new(&unverified, NULL, &c, err) != 0)
        return KB_EST_UNDERCONFIGURED;
    struct kb_est_response r;
    int rc = exchange(e, c, false, "cacerts", NULL, &r, err);
    kb_tls_client_free(c);
    if (rc != 0)
        return KB_EST_UNREACHABLE;
    if (r.status != 200) {
        enum kb_est_state s = status_state("cacerts", &r, err);
        response_free(&r);
        return s;
    }
    gnutls_x509_crt_t *certs;
    unsigned n;
    rc = kb_est_certs("/cacerts", r.content_type, r.body, r.len, &certs, &n, err);
    response_free(&r);
    if (rc != 0) {
        e->malformed = true;
        return KB_EST_UNREACHABLE;
    }
    enum kb_est_state st = KB_EST_UNDERCONFIGURED;
    for (unsigned i = 0; i < n; i++) {
        if (e->anchor == NULL && fingerprint_matches(certs[i], e->fingerprint)) {
            e->anchor = certs[i];
            certs[i] = NULL;
            continue;
        }
        gnutls_x509_crt_deinit(certs[i]);
    }
    gnutls_free(certs);
    if (e->anchor == NULL) {
        kb_err_set(err,
                   "none of the %u CA certificates the EST server sent has the pinned "
                   "fingerprint sha256:%s; not trusting it",
                   n, e->fingerprint);
        return st;
    }
    e->peer.anchors = &e->anchor;
    e->peer.n_anchors = 1;
    snprintf(e->peer.ca_file, sizeof e->peer.ca_file, "the CA with fingerprint sha256:%.16s...",
             e->fingerprint);
    return KB_EST_ISSUED;
}

/* A request that got no reply: the network's fault, or the token's when it did not sign. */
static enum kb_est_state request_failed(const kb_est *e)
{
    return e->token_failed || e->not_est ? KB_EST_UNDERCONFIGURED : KB_EST_UNREACHABLE;
}

enum kb_est_state kb_est_cacerts(kb_est *e, gnutls_x509_crt_t **certs, unsigned *n, kb_err *err)
{
    *certs = NULL;
    *n = 0;
    if (e->fingerprint[0] && e->anchor == NULL) {
        enum kb_est_state s = bootstrap(e, err);
        if (s != KB_EST_ISSUED)
            return s;
    }
    struct kb_est_response r;
    if (request(e, "cacerts", NULL, &r, err) != 0)
        return request_failed(e);
    enum kb_est_state s = KB_EST_ISSUED;
    /* The first request: what answers it may be no EST server at all. */
    char why[200];
    if (r.status == 404 || r.status == 405) {
        snprintf(why, sizeof why, "HTTP %ld for /cacerts", r.status);
        s = not_est(e, why, err);
    } else if (r.status == 200 && strncasecmp(r.content_type, "text/html", 9) == 0) {
        s = not_est(e, "/cacerts is a text/html page", err);
    } else if (r.status != 200) {
        s = status_state("cacerts", &r, err);
    } else if (kb_est_certs("/cacerts", r.content_type, r.body, r.len, certs, n, err) != 0) {
        s = KB_EST_UNREACHABLE, e->malformed = true;
    }
    response_free(&r);
    return s;
}

enum kb_est_state kb_est_get_csrattrs(kb_est *e, struct kb_csrattrs *a, kb_err *err)
{
    memset(a, 0, sizeof *a);
    struct kb_est_response r;
    if (request(e, "csrattrs", NULL, &r, err) != 0)
        return request_failed(e);
    enum kb_est_state s = KB_EST_ISSUED;
    if (r.status == 200) {
        if (kb_est_csrattrs(r.content_type, r.body, r.len, a, err) != 0)
            s = KB_EST_UNREACHABLE, e->malformed = true;
    } else if (r.status != 204 && r.status != 404) {
        s = status_state("csrattrs", &r, err);
    }
    response_free(&r);
    return s;
}

enum kb_est_state kb_est_submit(kb_est *e, const char *op, const gnutls_datum_t *csr,
                                gnutls_x509_crt_t **certs, unsigned *n, kb_err *err)
{
    *certs = NULL;
    *n = 0;
    unsigned waited = 0;
    char what[64];
    snprintf(what, sizeof what, "/%s", op);
    e->retry_after_s = -1;
    for (unsigned attempt = 1;; attempt++) {
        struct kb_est_response r;
        if (request(e, op, csr, &r, err) != 0)
            return request_failed(e);
        if (r.status == 200) {
            int rc = kb_est_certs(what, r.content_type, r.body, r.len, certs, n, err);
            response_free(&r);
            e->malformed = rc != 0;
            return rc == 0 ? KB_EST_ISSUED : KB_EST_UNREACHABLE;
        }
        if (r.status != 202) {
            enum kb_est_state s = status_state(op, &r, err);
            response_free(&r);
            return s;
        }
        bool has = r.has_retry_after;
        long long wait = has ? kb_est_retry_after(r.retry_after, (long long)time(NULL)) : -1;
        e->retry_after_s = wait;
        char value[64];
        snprintf(value, sizeof value, "%.60s", r.retry_after);
        response_free(&r);
        if (!has) {
            kb_err_set(err,
                       "the EST server accepted /%s for later (202) without saying when "
                       "(no Retry-After); try again later",
                       op);
            return KB_EST_WAIT;
        }
        if (wait < 0) {
            /* The server said when, in a form that is not one: its reply is bad input. */
            for (char *c = value; *c; c++)
                if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
                    *c = '?';
            kb_err_set(err,
                       "the EST server's 202 reply to /%s has a malformed Retry-After '%s' "
                       "(neither seconds nor an HTTP date)",
                       op, value);
            e->malformed = true;
            return KB_EST_UNREACHABLE;
        }
        if (attempt >= e->max_tries || waited + wait > e->max_wait_s) {
            kb_err_set(err,
                       "the EST server has not issued the certificate after %u tries and "
                       "%u s (it asks to wait %lld s more); try again later",
                       attempt, waited, wait);
            return KB_EST_WAIT;
        }
        kb_log(KB_LOG_INFO, "the EST server will answer /%s later: waiting %lld s (try %u of %u)",
               op, wait, attempt + 1, e->max_tries);
        sleep((unsigned)wait);
        waited += (unsigned)wait;
    }
}
