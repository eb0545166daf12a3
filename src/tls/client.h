/* SPDX-License-Identifier: Apache-2.0 */
/* The mTLS client: one configuration per endpoint and identity, many sessions.
 *
 * The server is always authenticated: its chain against the endpoint's CA file, its name
 * (SNI and the certificate's names), and its key against the SPKI pins when there are
 * some. Verification runs when the server's certificate arrives, so a server that fails
 * aborts the handshake before the client's certificate is sent. TLS 1.2 is the minimum,
 * 1.3 preferred; an RSA key without PSS on its token stays at TLS 1.2. Resumption needs no
 * token signature: TLS 1.3 tickets, TLS 1.2 tickets or session IDs, kept in memory per
 * client.
 *
 * A server may ask for the certificate after the handshake: TLS 1.3 post-handshake
 * authentication (offered when there is an identity) or a TLS 1.2 renegotiation (RFC 5746
 * secure renegotiation only, the server verified again). kb_tls_reauth answers; it never
 * happens inside gnutls_record_recv, so the caller chooses the thread that signs. */
#ifndef KB_CLIENT_H
#define KB_CLIENT_H

#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "src/tls/identity.h"

#define KB_ALPN_MAX 8
#define KB_ALPN_LEN 255 /* bytes in a protocol name (RFC 7301) */

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
    /* NULL, or a descriptor that becomes readable to abandon connects and handshakes at
     * once (the tunnel stopping): then they fail with "stopping". */
    const int *cancel_fd;
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

/* What the server's last CertificateRequest asked for, and what we did about it. */
struct kb_tls_request {
    bool asked;
    unsigned n_ca; /* CA names the server listed (n_ca_total may be more) */
    unsigned n_ca_total;
    char ca[4][256];   /* as RFC 4514 strings */
    char sigalgs[512]; /* the signature algorithms it accepts, comma-separated */
    char pk[128];      /* the key types that follows from them */
    bool sent;         /* our certificate was handed to GnuTLS */
    char why_not[640]; /* when not: why, in one clause */
    char ca_hint[768]; /* when the listed CAs do not name ours (sent anyway) */
};

struct kb_tls_result {
    char protocol[16];
    char alpn[KB_ALPN_LEN + 1];
    /* Filled by kb_tls_describe_session only: parsing the server's certificate for each
     * connection would cost a tunnel a tenth of its CPU for what it never shows. */
    char cipher[160];
    char server_subject[512];
    char server_issuer[512];
    bool resumed;
    bool cert_requested; /* the server asked for our certificate */
    bool cert_sent;
    bool token_failed; /* the handshake failed because the token did not sign */
    bool plain_http;   /* it failed because the server answered in plain HTTP */
    long long handshake_ms;
};

/* Asked before answering a post-handshake request or a renegotiation: whether the device
 * is still admitted (0), or -1 with err saying why not. Without one, only the certificate's
 * expiry is checked. */
typedef int (*kb_tls_admit_fn)(void *arg, kb_err *err);

/* Checks the CA file and the priority string now, so that a bad one is reported before
 * any connection. The peer and identity must outlive the client. id may be NULL: no
 * client certificate is offered (EST with a secret, the bootstrap). */
int kb_tls_client_new(const kb_tls_peer *peer, kb_identity *id, kb_tls_client **out, kb_err *err);
void kb_tls_client_free(kb_tls_client *c);
void kb_tls_client_set_admission(kb_tls_client *c, kb_tls_admit_fn fn, void *arg);

/* TCP connect (through the proxy when there is one) and handshake. While the first full
 * handshake to the endpoint is under way, others wait (bounded) for its ticket and resume
 * from it instead of asking the token for a signature each.  On success *session and *fd belong to
 * the caller (kb_tls_close). */
int kb_tls_connect(kb_tls_client *c, gnutls_session_t *session, int *fd, struct kb_tls_result *r,
                   kb_err *err);

/* The cipher description and the server's subject and issuer, into r. */
void kb_tls_describe_session(gnutls_session_t session, struct kb_tls_result *r);

/* Reads until a TLS 1.3 ticket arrived or wait_ms passed, discarding data: for handshake
 * tests, which then close. Returns -1 with err set when the server closed with an alert
 * (in TLS 1.3 a rejection of our certificate arrives after the handshake). A server that
 * gave no ticket within wait_ms once is not waited for again by this client. Requests for
 * the certificate that come meanwhile are answered. */
int kb_tls_settle(gnutls_session_t session, unsigned wait_ms, kb_err *err);

/* Whether rc, from gnutls_record_recv or _send, is the server asking for our certificate
 * again (GNUTLS_E_REAUTH_REQUEST, GNUTLS_E_REHANDSHAKE). */
bool kb_tls_wants_reauth(int rc);

/* Answers that request: asserts the server was verified, asks the admission check, then
 * runs the TLS 1.3 post-handshake exchange or the TLS 1.2 renegotiation (refused without
 * secure renegotiation; the server must pass verification again). One token signature.
 * The socket may be non-blocking: this waits on it as GnuTLS needs, up to the handshake
 * timeout. Returns 0, or -1 with err set; the session is then unusable. */
int kb_tls_reauth(gnutls_session_t session, int rc, kb_err *err);

/* A gnutls_record_send that returned GNUTLS_E_AGAIN left its record in GnuTLS's buffer, and
 * kb_tls_reauth's messages would flush it: the caller's retry would then encrypt the same
 * bytes again. So before kb_tls_reauth, a caller with such a send pending finishes it here
 * (waiting on the socket, up to the handshake timeout); *sent is what it wrote. */
int kb_tls_finish_send(gnutls_session_t session, size_t *sent, kb_err *err);

/* Bytes received and not yet returned by gnutls_record_recv (GnuTLS's and those read
 * ahead): the socket will not become readable for them. Use it where
 * gnutls_record_check_pending would be. */
size_t kb_tls_pending(gnutls_session_t session);
/* Holding: what the session sends waits (up to 16 KiB) until kb_tls_flush or its next read,
 * so that records written one after the other go out as one segment. kb_tls_flush sends it
 * and ends holding: 0 sent, 1 the socket is full (wait until it is writable, then flush
 * again), -1 failed (errno). */
void kb_tls_hold(gnutls_session_t session);
int kb_tls_flush(gnutls_session_t session);
/* Whether any byte of the session reached its socket. */
bool kb_tls_sent_any(gnutls_session_t session);
/* The session's socket. */
int kb_tls_fd(gnutls_session_t session);
/* After GNUTLS_E_AGAIN: waits up to ms for the socket in the direction GnuTLS needs, unless
 * bytes read ahead are there to read (then at once). Returns as kb_wait_fd does: >0 ready,
 * 0 timed out, -2 cancelled (cancel_fd readable; -1: none), -1 error. */
int kb_tls_wait(gnutls_session_t session, int ms, int cancel_fd);

/* The session's last CertificateRequest (from the handshake or after it). */
const struct kb_tls_request *kb_tls_request_of(gnutls_session_t session);

/* Whether rc (a failure after the handshake) is the server refusing our certificate: in
 * TLS 1.3 the refusal comes after the client's side of the handshake ended. */
bool kb_tls_rejected(gnutls_session_t session, int rc);

/* Describes a failure of gnutls_record_* after the handshake (alerts by name). */
void kb_tls_describe_error(gnutls_session_t session, int rc, kb_err *err);

/* Ends a session and closes fd (-1: none). Orderly: our close_notify first. Abort: no
 * close_notify, and fd is closed with a TCP reset, so the server cannot take the stream
 * for a complete one. Bye sent: orderly, our close_notify having gone out before. */
enum kb_tls_close_mode { KB_TLS_ORDERLY, KB_TLS_ABORT, KB_TLS_BYE_SENT };
void kb_tls_close(gnutls_session_t session, int fd, enum kb_tls_close_mode mode);

/* The TCP connect and handshake done by the caller on an already connected socket (the
 * tunnel connects itself). */
int kb_tls_handshake_fd(kb_tls_client *c, int fd, gnutls_session_t *session,
                        struct kb_tls_result *r, kb_err *err);

/* The same handshake driven by an event loop, for a session that resumes and so needs no
 * signature. kb_tls_resumable says whether one may be tried now (a ticket or session to
 * resume, no proxy, the server's address looked up less than 30 s ago, copied to *sa).
 * kb_tls_resume_begin makes the session on a non-blocking fd, connected or with its connect
 * under way; kb_tls_resume_step runs the handshake as far as the socket allows. When the
 * server refuses the ticket and asks for our certificate, the handshake stops before
 * anything is signed. That, or any other failure, is REDO: the session is gone, err says
 * why, and the caller drops fd and does it all again with kb_tls_connect, where signing
 * may block (counted as redone); kb_tls_resumable then says no until a handshake there
 * resumes. NO_CONNECTION: the connect failed before a byte went out (session gone, err
 * says why; not counted). On DONE, r is filled, *session is the caller's, and it holds
 * its last flight for the caller's first request: kb_tls_flush before waiting. */
enum kb_tls_step {
    KB_TLS_DONE,
    KB_TLS_WANT_READ,
    KB_TLS_WANT_WRITE,
    KB_TLS_REDO,
    KB_TLS_NO_CONNECTION
};
bool kb_tls_resumable(kb_tls_client *c, struct sockaddr_storage *sa, socklen_t *len);
int kb_tls_resume_begin(kb_tls_client *c, int fd, gnutls_session_t *session, kb_err *err);
enum kb_tls_step kb_tls_resume_step(gnutls_session_t session, struct kb_tls_result *r, kb_err *err);
/* After a failed connect made elsewhere: look the server's name up again. */
void kb_tls_forget_addresses(kb_tls_client *c);

/* Whether the session's server passed verification: in this handshake, or in the one whose
 * ticket it resumed (tickets are only kept from verified sessions). Always false for an
 * unverified peer. What goes to the server beyond the ClientHello is checked against this. */
bool kb_tls_session_verified(gnutls_session_t session);

/* Since the client was made. */
struct kb_tls_counts {
    unsigned long full, resumed;
    unsigned long post_handshake; /* TLS 1.3 post-handshake authentications answered */
    unsigned long renegotiations; /* TLS 1.2 renegotiations completed */
    unsigned long reauth_refused; /* requests not answered (admission, verification) */
    unsigned long redone;         /* begun on an event loop, redone where signing may block */
};
void kb_tls_counts(kb_tls_client *c, struct kb_tls_counts *out);

#endif
