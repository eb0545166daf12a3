/* SPDX-License-Identifier: Apache-2.0 */
/* Inside the TLS client: what client.c, certreq.c and posthandshake.c share, and nobody
 * else.
 *
 * A kb_tls_client is one configuration and its resumption state; each session points at
 * a session_ctx (gnutls_session_get_ptr) holding what its handshakes learnt. Counters,
 * the ticket and the first-handshake gate are guarded by the client's lock. */
#ifndef KB_TLS_SESSION_H
#define KB_TLS_SESSION_H

#include <pthread.h>

#include "src/tls/client.h"
#include "src/util/hostport.h"
#include "src/util/net.h"

/* HOST:PORT for a message, IPv6 in brackets; the buffer lives to the end of the statement's
 * block. */
#define HP(p)                                                                                      \
    kb_hostport_str((p)->host, (p)->port, (char[KB_HOSTPORT_STRLEN]){0}, KB_HOSTPORT_STRLEN)

struct kb_tls_client {
    const kb_tls_peer *peer;
    kb_identity *id;
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t priority;
    gnutls_priority_t reneg_priority;    /* the same without TLS 1.2 tickets, for renegotiations */
    gnutls_priority_t resume12_priority; /* TLS 1.2 only: resuming a TLS 1.2 session */
    pthread_mutex_t lock;                /* guards ticket, counters and the first-handshake gate */
    pthread_cond_t ticket_cv;
    gnutls_datum_t ticket;
    bool ticket_tls12; /* ticket holds a TLS 1.2 session */
    /* A resumption on an event loop was redone: none is tried there until a worker's
     * resumes. */
    bool loop_off;
    bool first_in_flight;    /* a full handshake without a ticket is under way */
    long long first_done_ms; /* when it ended; its ticket may still be on the way */
    bool gate_off;           /* the server gave no ticket in time: do not wait again */
    bool ticketless;         /* kb_tls_settle waited for one in vain: do not wait again */
    struct kb_tls_counts counts;
    /* The server's addresses and when they were looked up (0: to be looked up again). */
    struct kb_addrs addrs;
    unsigned addrs_good; /* the one last connected to */
    long long addrs_ms;
    kb_tls_admit_fn admit;
    void *admit_arg;
};

/* What one session learnt (its gnutls_session_get_ptr), for its messages. */
struct session_ctx {
    kb_tls_client *client;
    bool verified;
    bool established; /* the handshake finished: later errors are about the connection */
    bool got_ticket;
    /* Begun on an event loop (kb_tls_resume_begin): nothing may sign, and wants_signer says
     * that the server asked for what would. */
    bool no_sign, wants_signer;
    long long start_ms;
    /* The socket, what was read from it ahead of GnuTLS, and what is held back to be sent
     * with what follows (transport.c); sent: a byte went out. */
    int fd;
    unsigned char *ahead;
    size_t ahead_len, ahead_off;
    unsigned char *out;
    size_t out_len, out_off;
    bool hold, sent;
    int first_byte; /* what the server sent first, -1 before that: text is no TLS server */
    int io_errno;   /* of the socket's last failed call */
    char why[4608];
    struct kb_tls_request req;
};

/* The certificate retrieve function (gnutls_certificate_set_retrieve_function2): keeps
 * what the CertificateRequest asked for in the session's req and hands out the identity
 * unless the server accepts none of its key type (certreq.c). */
int kb_tls_our_certificate(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int n_req,
                           const gnutls_pk_algorithm_t *pk_algos, int n_pk_algos,
                           gnutls_pcert_st **pcert, unsigned *n_pcert, gnutls_privkey_t *privkey);

/* transport.c: the session's socket, read ahead and written behind; kb_tls_transport_free
 * frees what was read and not taken, and what is held (sent first, without waiting, if
 * send_held), at the session's end. */
void kb_tls_transport_set(gnutls_session_t s, struct session_ctx *ctx, int fd);
void kb_tls_transport_free(struct session_ctx *ctx, bool send_held);

#endif
