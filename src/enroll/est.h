/* SPDX-License-Identifier: Apache-2.0 */
/* The EST client (RFC 7030), over keybound's own TLS client (src/tls).
 *
 * Every request is one HTTP/1.1 exchange on a connection made by kb_tls_client, which
 * verifies the server inside the handshake (anchors, name, serverAuth) before the
 * device's certificate or a token signature can leave; the enrolment secret is written
 * into the stream only after that, from locked memory. Trust is a CA file, or a pinned
 * SHA-256 fingerprint: the bootstrap fetches /cacerts on a connection that carries no
 * identity and no secret, and only the certificate with the pinned fingerprint becomes
 * the anchor of every later request. There is no implicit trust anchor. Submissions
 * follow 202 + Retry-After with bounded retries and a cap on the total wait. */
#ifndef KB_EST_H
#define KB_EST_H

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdbool.h>

#include "src/enroll/reply.h"
#include "src/tls/client.h"
#include "src/util/secret.h"

/* certmonger-style outcomes; the exit code of enroll and renew is kb_est_exit(). */
enum kb_est_state {
    KB_EST_ISSUED,
    KB_EST_WAIT,
    KB_EST_REJECTED,
    KB_EST_UNREACHABLE,
    KB_EST_UNDERCONFIGURED,
};

typedef struct kb_est {
    char url[1200];           /* https://host[:port]/.well-known/est[/label], for messages */
    char path[1024];          /* /.well-known/est[/label] */
    kb_tls_peer peer;         /* host, port, name and anchors of the EST server */
    char fingerprint[65];     /* pinned CA SHA-256 (hex) for the bootstrap, or "" */
    kb_secret *secret;        /* "user:password", or NULL */
    kb_identity *id;          /* the client certificate on a token, or NULL; not owned */
    kb_tls_client *tls;       /* made at the first verified request */
    gnutls_x509_crt_t anchor; /* the bootstrapped CA */
    char proxy[300];          /* http://HOST:PORT for CONNECT, or "" */
    unsigned timeout_s;       /* connect, handshake and each read */
    unsigned max_wait_s;      /* 202: total wait cap */
    unsigned max_tries;       /* 202: how many submissions */
    bool malformed;           /* the last failure was a reply keybound could not use */
    bool token_failed;        /* a handshake failed because the token did not sign */
    bool not_est;             /* the URL answers, but not as an EST server: a setting to fix */
    long long retry_after_s;  /* the last 202's Retry-After in seconds; -1: none came */
} kb_est;

const char *kb_est_state_name(enum kb_est_state s);

/* 0 ISSUED, 4 WAIT, 3 REJECTED, 5 UNREACHABLE, 2 UNDERCONFIGURED, and 2 for a malformed
 * reply (bad input, whatever the state). */
int kb_est_exit(const kb_est *e, enum kb_est_state s);

/* Checks the URL (https only, no user:password in it) and the trust; secret is taken over
 * (freed by kb_est_free, or here on failure). */
int kb_est_init(kb_est *e, const char *url, const char *ca_file, const char *fingerprint,
                kb_secret *secret, kb_err *err);

/* The checks kb_est_init makes of a URL and of a fingerprint (what: "--ca-fingerprint",
 * "ca-fingerprint"), for the option parsers: a mistake is refused with the line it is on. */
int kb_est_check_url(const char *url, kb_err *err);
int kb_est_check_fingerprint(const char *what, const char *fingerprint, kb_err *err);

/* Leaves through an HTTP CONNECT proxy: proxy (--proxy), else https_proxy unless no_proxy
 * names the server (kb_proxy_for). The proxy sees the server's name and port only: TLS,
 * and the server's verification, run end to end through it. */
int kb_est_set_proxy(kb_est *e, const char *proxy, kb_err *err);
void kb_est_free(kb_est *e);

/* /cacerts, verified (bootstrapping first when a fingerprint is pinned). */
enum kb_est_state kb_est_cacerts(kb_est *e, gnutls_x509_crt_t **certs, unsigned *n, kb_err *err);

/* /csrattrs: 0 with a filled, or with nothing asked when the server has none (204/404). */
enum kb_est_state kb_est_get_csrattrs(kb_est *e, struct kb_csrattrs *a, kb_err *err);

/* POSTs the request to op (simpleenroll or simplereenroll), waiting out 202s. */
enum kb_est_state kb_est_submit(kb_est *e, const char *op, const gnutls_datum_t *csr,
                                gnutls_x509_crt_t **certs, unsigned *n, kb_err *err);

#endif
