/* The mTLS client: one configuration per endpoint and identity, many sessions.
 *
 * The server is always authenticated: its chain against the endpoint's CA file, its name
 * (SNI and the certificate's names), and its key against the SPKI pins when there are
 * some. Verification runs when the server's certificate arrives, so a server that fails
 * aborts the handshake before the client's certificate is sent. TLS 1.2 is the minimum,
 * 1.3 preferred; an RSA key without PSS on its token stays at TLS 1.2. TLS 1.3 tickets
 * are kept in memory per client for resumption, which needs no token signature. */
#ifndef KB_CLIENT_H
#define KB_CLIENT_H

#include <gnutls/gnutls.h>
#include <stdbool.h>

#include "src/tls/identity.h"

#define KB_ALPN_MAX 8

typedef struct kb_tls_peer {
    char host[256];
    unsigned port;
    char server_name[256]; /* checked in the certificate, sent as SNI unless an address */
    char ca_file[4096];
    char **pins; /* base64 SHA-256 of SubjectPublicKeyInfo */
    size_t n_pins;
    int min_tls;          /* 12 or 13 */
    const char *priority; /* NULL: GnuTLS's NORMAL */
    const char *alpn[KB_ALPN_MAX];
    size_t n_alpn;
    unsigned connect_timeout_ms;
    unsigned handshake_timeout_ms;
    const char *proxy; /* http://HOST:PORT for CONNECT, or NULL */
    /* Anchors held in memory (the EST bootstrap's pinned CA) instead of ca_file, which then
     * only names them in messages. */
    const gnutls_x509_crt_t *anchors;
    unsigned n_anchors;
    /* The EST bootstrap only: the server is not verified, so the client is made without an
     * identity (kb_tls_client_new refuses one) and nothing secret may be sent. */
    bool unverified;
} kb_tls_peer;

typedef struct kb_tls_client kb_tls_client;

struct kb_endpoint_rule;

/* Fills the peer's CA file, server name, pins, priority and minimum version from the
 * policy's rule for its endpoint (NULL: none) and what the user gave (ca, server_name:
 * NULL when not given); the rule wins, the server name defaults to the host. pins and
 * priority then point into the rule. Fails when no CA is known. */
int kb_tls_peer_apply(kb_tls_peer *peer, const struct kb_endpoint_rule *rule, const char *ca,
                      const char *server_name, kb_err *err);

struct kb_tls_result {
    char protocol[16];
    char cipher[160];
    char alpn[64];
    char server_subject[512];
    char server_issuer[512];
    bool resumed;
    bool cert_requested; /* the server asked for our certificate */
    bool cert_sent;
    long long handshake_ms;
};

/* Checks the CA file and the priority string now, so that a bad one is reported before
 * any connection. The peer and identity must outlive the client. id may be NULL: no
 * client certificate is offered (EST with a secret, the bootstrap). */
int kb_tls_client_new(const kb_tls_peer *peer, kb_identity *id, kb_tls_client **out, kb_err *err);
void kb_tls_client_free(kb_tls_client *c);

/* TCP connect (through the proxy when there is one) and handshake. While the first full
 * handshake to the endpoint is under way, others wait (bounded) for its ticket and resume
 * from it instead of asking the token for a signature each.  On success *session and *fd belong to
 * the caller (kb_tls_close). */
int kb_tls_connect(kb_tls_client *c, gnutls_session_t *session, int *fd, struct kb_tls_result *r,
                   kb_err *err);

/* Reads until a TLS 1.3 ticket arrived or wait_ms passed, discarding data: for handshake
 * tests, which then close. Returns -1 with err set when the server closed with an alert
 * (in TLS 1.3 a rejection of our certificate arrives after the handshake). */
int kb_tls_settle(gnutls_session_t session, unsigned wait_ms, kb_err *err);

/* Describes a failure of gnutls_record_* after the handshake (alerts by name). */
void kb_tls_describe_error(gnutls_session_t session, int rc, kb_err *err);

void kb_tls_close(gnutls_session_t session, int fd);

/* The TCP connect and handshake done by the caller on an already connected socket (the
 * tunnel connects itself). */
int kb_tls_handshake_fd(kb_tls_client *c, int fd, gnutls_session_t *session,
                        struct kb_tls_result *r, kb_err *err);

/* Whether the session's server passed verification: in this handshake, or in the one whose
 * ticket it resumed (tickets are only kept from verified sessions). Always false for an
 * unverified peer. What goes to the server beyond the ClientHello is checked against this. */
bool kb_tls_session_verified(gnutls_session_t session);

/* Full handshakes and resumed ones since the client was made. */
void kb_tls_counts(kb_tls_client *c, unsigned long *full, unsigned long *resumed);

#endif
