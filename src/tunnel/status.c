/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "src/tunnel/shared.h"

#include <microhttpd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "src/util/log.h"

const char *const kb_tun_fail_names[KB_FAIL_N] = {"not_admitted", "queue_full", "backend",
                                                  "token",        "rejected",   "reauth"};

/* One tunnel's counters for the process's life, state_lock held. */
struct tun_counts {
    unsigned open;
    unsigned long accepted, failed, failed_by[KB_FAIL_N];
    struct kb_tun_totals done;
    long long not_after; /* 0: no certificate in use */
    bool admitted;
};

static void counts(const struct tunnel *t, struct tun_counts *c)
{
    memset(c, 0, sizeof *c);
    c->open = t->active;
    c->accepted = t->total;
    c->failed = t->failed;
    memcpy(c->failed_by, t->failed_by, sizeof c->failed_by);
    kb_tun_totals(t, &c->done);
    c->admitted = t->gen != NULL;
    c->not_after = t->gen != NULL ? t->gen->id->not_after : 0;
}

static char *status_body(struct ctx *x, size_t *len)
{
    json_object *root = json_object_new_object(), *tuns = json_object_new_array();
    json_object_object_add(root, "schema", json_object_new_int(1));
    pthread_mutex_lock(&x->state_lock);
    json_object_object_add(root, "ready", json_object_new_boolean(x->ready));
    json_object_object_add(root, "reloads", json_object_new_int64((int64_t)x->reloads));
    for (size_t i = 0; i < x->n; i++) {
        const struct tunnel *t = &x->tunnels[i];
        struct tun_counts c;
        counts(t, &c);
        json_object *o = json_object_new_object(), *conns = json_object_new_object(),
                    *by = json_object_new_object(), *hs = json_object_new_object();
        /* A reload rewrites t->conf on the control loop: only the copies are read here. */
        json_object_object_add(o, "name", json_object_new_string(t->name));
        json_object_object_add(o, "listen", json_object_new_string(t->listen));
        json_object_object_add(o, "connect", json_object_new_string(t->connect_now));
        json_object_object_add(o, "admission", json_object_get(t->admission_json));
        json_object_object_add(o, "certificate", json_object_get(t->cert_json));
        json_object_object_add(conns, "open", json_object_new_int64(c.open));
        json_object_object_add(conns, "accepted", json_object_new_int64((int64_t)c.accepted));
        json_object_object_add(conns, "failed", json_object_new_int64((int64_t)c.failed));
        for (int r = 0; r < KB_FAIL_N; r++)
            json_object_object_add(by, kb_tun_fail_names[r],
                                   json_object_new_int64((int64_t)c.failed_by[r]));
        json_object_object_add(conns, "failed_by_reason", by);
        json_object_object_add(o, "connections", conns);
        json_object_object_add(hs, "full", json_object_new_int64((int64_t)c.done.tls.full));
        json_object_object_add(hs, "resumed", json_object_new_int64((int64_t)c.done.tls.resumed));
        json_object_object_add(hs, "redone", json_object_new_int64((int64_t)c.done.tls.redone));
        json_object_object_add(o, "handshakes", hs);
        json_object_object_add(o, "token_signatures", json_object_new_int64((int64_t)c.done.sigs));
        json_object_array_add(tuns, o);
    }
    pthread_mutex_unlock(&x->state_lock);
    json_object_object_add(root, "tunnels", tuns);
    const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY);
    char *out = NULL;
    if (text != NULL && (out = malloc(strlen(text) + 2)) != NULL) {
        *len = (size_t)snprintf(out, strlen(text) + 2, "%s\n", text);
    }
    json_object_put(root);
    return out;
}

/* A growing text buffer for /metrics. */
struct text {
    char *buf;
    size_t len, cap;
    bool failed;
};

static void add(struct text *b, const char *fmt, ...) KB_PRINTF(2, 3);
static void add(struct text *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *p = realloc(b->buf, cap);
        if (p == NULL) {
            b->failed = true;
            return;
        }
        b->buf = p;
        b->cap = cap;
    }
}

/* HELP and TYPE of a metric; the names and what they mean are in keybound.conf(5). */
static void head(struct text *b, const char *name, const char *type, const char *help)
{
    add(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static char *metrics_body(struct ctx *x, size_t *len)
{
    struct text b = {malloc(8192), 0, 8192, false};
    if (b.buf == NULL)
        return NULL;
    pthread_mutex_lock(&x->state_lock);
    size_t n = x->n;
    bool ready = x->ready;
    unsigned long reloads = x->reloads;
    struct tun_counts *c = calloc(n ? n : 1, sizeof *c);
    const char **names = calloc(n ? n : 1, sizeof *names);
    for (size_t i = 0; c != NULL && names != NULL && i < n; i++) {
        counts(&x->tunnels[i], &c[i]);
        names[i] = x->tunnels[i].name;
    }
    pthread_mutex_unlock(&x->state_lock);
    if (c == NULL || names == NULL) {
        free(c);
        free(names);
        free(b.buf);
        return NULL;
    }
    long long now = (long long)time(NULL);
    head(&b, "keybound_ready", "gauge",
         "1 once every tunnel listens and the handshake threads run");
    add(&b, "keybound_ready %d\n", ready ? 1 : 0);
    head(&b, "keybound_reloads_total", "counter", "Reloads (SIGHUP) since the start");
    add(&b, "keybound_reloads_total %lu\n", reloads);
    head(&b, "keybound_tunnel_admitted", "gauge",
         "1 while the policy admits the tunnel's device for its endpoint");
    for (size_t i = 0; i < n; i++)
        add(&b, "keybound_tunnel_admitted{tunnel=\"%s\"} %d\n", names[i], c[i].admitted ? 1 : 0);
    head(&b, "keybound_connections_open", "gauge", "Connections open now");
    for (size_t i = 0; i < n; i++)
        add(&b, "keybound_connections_open{tunnel=\"%s\"} %u\n", names[i], c[i].open);
    head(&b, "keybound_connections_accepted_total", "counter", "Local clients accepted");
    for (size_t i = 0; i < n; i++)
        add(&b, "keybound_connections_accepted_total{tunnel=\"%s\"} %lu\n", names[i],
            c[i].accepted);
    head(&b, "keybound_connections_failed_total", "counter", "Connections that failed, by reason");
    for (size_t i = 0; i < n; i++)
        for (int r = 0; r < KB_FAIL_N; r++)
            add(&b, "keybound_connections_failed_total{tunnel=\"%s\",reason=\"%s\"} %lu\n",
                names[i], kb_tun_fail_names[r], c[i].failed_by[r]);
    head(&b, "keybound_handshakes_total", "counter", "TLS handshakes with the server, by kind");
    for (size_t i = 0; i < n; i++)
        add(&b,
            "keybound_handshakes_total{tunnel=\"%s\",kind=\"full\"} %lu\n"
            "keybound_handshakes_total{tunnel=\"%s\",kind=\"resumed\"} %lu\n",
            names[i], c[i].done.tls.full, names[i], c[i].done.tls.resumed);
    head(&b, "keybound_handshakes_redone_total", "counter",
         "Resumptions begun on a pumping loop, refused or failed, done again on a worker");
    for (size_t i = 0; i < n; i++)
        add(&b, "keybound_handshakes_redone_total{tunnel=\"%s\"} %lu\n", names[i],
            c[i].done.tls.redone);
    head(&b, "keybound_token_signatures_total", "counter", "Signatures the token made");
    for (size_t i = 0; i < n; i++)
        add(&b, "keybound_token_signatures_total{tunnel=\"%s\"} %lu\n", names[i], c[i].done.sigs);
    head(&b, "keybound_token_signature_seconds", "histogram",
         "How long the token took for each signature");
    for (size_t i = 0; i < n; i++) {
        unsigned long cum = 0;
        for (unsigned k = 0; k < KB_SIGN_BUCKETS; k++) {
            cum += c[i].done.latency.count[k];
            if (k < KB_SIGN_BUCKETS - 1)
                add(&b, "keybound_token_signature_seconds_bucket{tunnel=\"%s\",le=\"%g\"} %lu\n",
                    names[i], kb_sign_bucket_le[k], cum);
            else
                add(&b, "keybound_token_signature_seconds_bucket{tunnel=\"%s\",le=\"+Inf\"} %lu\n",
                    names[i], cum);
        }
        add(&b, "keybound_token_signature_seconds_sum{tunnel=\"%s\"} %.6f\n", names[i],
            c[i].done.latency.sum_s);
        add(&b, "keybound_token_signature_seconds_count{tunnel=\"%s\"} %lu\n", names[i], cum);
    }
    head(&b, "keybound_certificate_expiry_seconds", "gauge",
         "Seconds until the notAfter of the certificate in use (admitted tunnels only)");
    for (size_t i = 0; i < n; i++)
        if (c[i].admitted && c[i].not_after != 0)
            add(&b, "keybound_certificate_expiry_seconds{tunnel=\"%s\"} %lld\n", names[i],
                c[i].not_after - now);
    free(c);
    free(names);
    if (b.failed) {
        free(b.buf);
        return NULL;
    }
    *len = b.len;
    return b.buf;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, const char *type,
                             char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ok = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_len, void **state)
{
    (void)version;
    (void)upload;
    struct ctx *x = cls;
    /* The first call only announces the request; a body is never read. */
    if (*state == NULL) {
        *state = x;
        return MHD_YES;
    }
    if (*upload_len != 0) {
        *upload_len = 0;
        return MHD_YES;
    }
    char *body = NULL;
    size_t len = 0;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        body = strdup("only GET\n");
        return body ? reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", body, strlen(body))
                    : MHD_NO;
    }
    if (strcmp(url, "/status") == 0 && (body = status_body(x, &len)) != NULL)
        return reply(conn, MHD_HTTP_OK, "application/json", body, len);
    if (strcmp(url, "/metrics") == 0 && (body = metrics_body(x, &len)) != NULL)
        return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4", body, len);
    if (strcmp(url, "/status") == 0 || strcmp(url, "/metrics") == 0)
        return MHD_NO; /* out of memory */
    body = strdup("not found: keybound serves /status and /metrics\n");
    return body ? reply(conn, MHD_HTTP_NOT_FOUND, "text/plain", body, strlen(body)) : MHD_NO;
}

int kb_tun_status_start(struct ctx *x, kb_err *err)
{
    x->status_fd = -1;
    const char *addr = x->env->status_addr;
    if (addr == NULL)
        return 0;
    struct kb_listen *l = &x->status_where;
    if (kb_tunnel_status_addr("status", addr, err) != 0 || kb_listen_parse(addr, l, err) != 0)
        return -1;
    if (kb_tun_socket_open(l, "status", addr, &x->status_fd, &x->status_ino, err) != 0)
        return -1;
    /* Its thread must leave every signal to the control loop. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    x->status = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL, NULL,
                                 answer, x, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)x->status_fd,
                                 MHD_OPTION_CONNECTION_LIMIT, 32u, MHD_OPTION_CONNECTION_TIMEOUT,
                                 10u, MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (x->status == NULL) {
        kb_tun_status_stop(x);
        return kb_err_set(err, "status '%s': libmicrohttpd cannot serve it", addr);
    }
    kb_log(KB_LOG_INFO, "status and metrics on %s (/status, /metrics)", addr);
    return 0;
}

void kb_tun_status_stop(struct ctx *x)
{
    if (x->status != NULL) {
        MHD_stop_daemon(x->status); /* it closes the listening socket it was given */
        x->status_fd = -2;
    }
    x->status = NULL;
    if (x->status_fd != -1) {
        if (x->status_fd >= 0)
            close(x->status_fd);
        struct stat st;
        if (x->status_where.is_unix && stat(x->status_where.path, &st) == 0 &&
            st.st_ino == x->status_ino)
            unlink(x->status_where.path);
    }
    x->status_fd = -1;
}
