/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

/* After the handshake: the server's later requests for the certificate, its tickets and
 * its alerts (contract in client.h). */
#include "session.h"

#include <poll.h>
#include <stdio.h>
#include <time.h>

#include "src/util/log.h"
#include "src/util/net.h"

bool kb_tls_wants_reauth(int rc)
{
    return rc == GNUTLS_E_REAUTH_REQUEST || rc == GNUTLS_E_REHANDSHAKE;
}

/* Without an admission check of the caller's: the certificate must still be valid. */
static int cert_current(const kb_identity *id, kb_err *err)
{
    time_t now = time(NULL);
    if (id->not_after != 0 && (long long)now > id->not_after) {
        char when[64] = "?";
        time_t t = (time_t)id->not_after;
        struct tm tm;
        if (gmtime_r(&t, &tm) != NULL)
            strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tm);
        return kb_err_set(err, "the device certificate %s expired on %s", id->subject, when);
    }
    return 0;
}

int kb_tls_finish_send(gnutls_session_t s, size_t *sent, kb_err *err)
{
    struct session_ctx *ctx = gnutls_session_get_ptr(s);
    const kb_tls_peer *peer = ctx->client->peer;
    unsigned timeout = peer->handshake_timeout_ms ? peer->handshake_timeout_ms : 10000;
    long long deadline = kb_now_ms() + timeout;
    *sent = 0;
    for (;;) {
        ssize_t n = gnutls_record_send(s, NULL, 0);
        if (n >= 0) {
            *sent = (size_t)n;
            return 0;
        }
        long long left = deadline - kb_now_ms();
        if ((n != GNUTLS_E_AGAIN && n != GNUTLS_E_INTERRUPTED) || left <= 0) {
            if (left <= 0)
                return kb_err_set(err, "sending to %s timed out", HP(peer));
            kb_tls_describe_error(s, (int)n, err);
            return -1;
        }
        struct pollfd p = {.fd = kb_tls_fd(s), .events = POLLOUT};
        poll(&p, 1, (int)left);
    }
}

int kb_tls_reauth(gnutls_session_t s, int why, kb_err *err)
{
    struct session_ctx *ctx = gnutls_session_get_ptr(s);
    kb_tls_client *c = ctx->client;
    const kb_tls_peer *peer = c->peer;
    bool tls13 = why == GNUTLS_E_REAUTH_REQUEST;
    const char *what =
        tls13 ? "asked for our certificate after the handshake" : "asked to renegotiate";
    kb_err no;
    int rc = GNUTLS_E_INTERNAL_ERROR;
    /* Only a server that proved itself may have anything signed for it. */
    if (!kb_tls_session_verified(s)) {
        kb_err_set(err, "server %s %s before it was verified; not answering", HP(peer), what);
        goto refused;
    }
    if (c->id == NULL) {
        kb_err_set(err, "server %s %s; this connection carries no device identity", HP(peer), what);
        goto refused;
    }
    if (!tls13 && gnutls_safe_renegotiation_status(s) == 0) {
        kb_err_set(err,
                   "server %s asked to renegotiate without secure renegotiation (RFC 5746); "
                   "refused",
                   HP(peer));
        goto refused;
    }
    if ((c->admit ? c->admit(c->admit_arg, &no) : cert_current(c->id, &no)) != 0) {
        kb_err_set(err, "server %s %s; not answering: %s", HP(peer), what, no.msg);
        goto refused;
    }
    if (!tls13) {
        /* The new handshake must verify the server again, name and all. */
        ctx->verified = false;
        ctx->why[0] = '\0';
        if ((rc = gnutls_priority_set(s, c->reneg_priority)) < 0) {
            kb_tls_describe_error(s, rc, err);
            return -1;
        }
    }
    unsigned timeout = peer->handshake_timeout_ms ? peer->handshake_timeout_ms : 10000;
    long long deadline = kb_now_ms() + timeout;
    for (;;) {
        rc = tls13 ? gnutls_reauth(s, 0) : gnutls_handshake(s);
        if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
            long long left = deadline - kb_now_ms();
            if (left <= 0) {
                rc = GNUTLS_E_TIMEDOUT;
                break;
            }
            /* A handshake may need to write while nothing is to be read. */
            if (kb_tls_wait(s, (int)left, peer->cancel_fd ? *peer->cancel_fd : -1) == -2) {
                kb_err_set(err, "the answer to %s abandoned: stopping", HP(peer));
                return -1;
            }
            continue;
        }
        if (rc == GNUTLS_E_WARNING_ALERT_RECEIVED)
            continue;
        break;
    }
    if (rc == GNUTLS_E_GOT_APPLICATION_DATA) {
        kb_err_set(err, "server %s sent data in the middle of the renegotiation it asked for",
                   HP(peer));
        return -1;
    }
    if (rc < 0) {
        kb_tls_describe_error(s, rc, err);
        return -1;
    }
    if (!kb_tls_session_verified(s)) {
        kb_err_set(err, "server %s was not verified again in the renegotiation", HP(peer));
        return -1;
    }
    pthread_mutex_lock(&c->lock);
    if (tls13)
        c->counts.post_handshake++;
    else
        c->counts.renegotiations++;
    pthread_mutex_unlock(&c->lock);
    kb_log(KB_LOG_DEBUG, "server %s %s: %s", HP(peer), what,
           ctx->req.sent ? "our certificate was sent" : ctx->req.why_not);
    return 0;
refused:
    pthread_mutex_lock(&c->lock);
    c->counts.reauth_refused++;
    pthread_mutex_unlock(&c->lock);
    return -1;
}

int kb_tls_settle(gnutls_session_t s, unsigned wait_ms, kb_err *err)
{
    struct session_ctx *ctx = gnutls_session_get_ptr(s);
    kb_tls_client *c = ctx->client;
    if (gnutls_protocol_get_version(s) != GNUTLS_TLS1_3)
        return 0;
    pthread_mutex_lock(&c->lock);
    bool ticketless = c->ticketless;
    pthread_mutex_unlock(&c->lock);
    /* A server that sent none in time before is not waited for again: one wait, not one per
     * handshake. What it may still send is read below all the same. */
    long long deadline = kb_now_ms() + (ticketless ? 0 : wait_ms);
    char buf[4096];
    unsigned late = 0;
    while (!ctx->got_ticket) {
        long long left = deadline - kb_now_ms();
        /* Past the deadline only what has already arrived is read, and not forever. */
        if (left <= 0 && ++late > 16)
            break;
        if (kb_tls_pending(s) == 0) {
            struct pollfd p = {.fd = kb_tls_fd(s), .events = POLLIN};
            if (poll(&p, 1, left > 0 ? (int)left : 0) <= 0)
                break;
        }
        ssize_t n = gnutls_record_recv(s, buf, sizeof buf);
        if (n == 0)
            break;
        if (n < 0 && kb_tls_wants_reauth((int)n)) {
            if (kb_tls_reauth(s, (int)n, err) != 0)
                return -1;
        } else if (n < 0 && gnutls_error_is_fatal((int)n)) {
            kb_tls_describe_error(s, (int)n, err);
            return -1;
        }
    }
    if (!ctx->got_ticket && !ticketless && wait_ms > 0) {
        pthread_mutex_lock(&c->lock);
        c->ticketless = true;
        pthread_mutex_unlock(&c->lock);
        kb_log(KB_LOG_DEBUG,
               "server %s sent no session ticket within %u ms: not waiting for one again",
               HP(c->peer), wait_ms);
    }
    return 0;
}
