/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "src/tunnel/shared.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "src/util/log.h"
#include "src/util/net.h"

/* Where a new connection's handshake runs. A worker thread costs a hand-over each way, a
 * blocking socket and its own waits; a handshake that resumes signs nothing, so it runs on
 * the connection's pumping loop instead, without blocking it. A server that refuses the
 * ticket turns it into a full handshake, which would sign: that one stops before signing
 * (kb_tls_resume_step) and is done again by a worker over a new connection. */

static void on_io(struct ev_loop *loop, ev_io *w, int revents);
static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents);

void kb_tun_handshake(struct ctx *x, struct conn *c)
{
    struct sockaddr_storage sa;
    socklen_t len;
    if (!kb_tls_resumable(c->gen->client, &sa, &len)) {
        kb_tun_to_workers(x, c);
        return;
    }
    c->on_loop = true;
    kb_tun_to_loop(c);
}

/* Back to the workers' way, with nothing of this attempt left. */
static void to_workers(struct ctx *x, struct conn *c)
{
    ev_io_stop(c->pl->loop, &c->sw);
    ev_timer_stop(c->pl->loop, &c->hs_timer);
    if (c->s != NULL)
        kb_tls_close(c->s, -1, KB_TLS_ABORT);
    c->s = NULL;
    if (c->sfd >= 0)
        kb_tun_reset_close(c->sfd);
    c->sfd = -1;
    c->handshaking = false;
    kb_tun_to_workers(x, c);
}

/* The handshake ended, either way: the same end as a worker's (kb_tun_handshake_done). */
static void ended(struct ctx *x, struct conn *c, int rc)
{
    if (rc != 0)
        ev_io_stop(c->pl->loop, &c->sw); /* else it goes on watching, for the pump */
    ev_timer_stop(c->pl->loop, &c->hs_timer);
    c->handshaking = false;
    c->rc = rc;
    kb_tun_handshake_done(x, c);
}

/* The connect's deadline first, then, once the ClientHello went out, the handshake's. */
static void deadline(struct conn *c, unsigned ms)
{
    ev_timer_stop(c->pl->loop, &c->hs_timer);
    ev_timer_set(&c->hs_timer, ms / 1000.0, 0);
    ev_timer_start(c->pl->loop, &c->hs_timer);
}

/* Runs the handshake as far as the socket lets it, then waits for what it needs. */
static void step(struct ctx *x, struct conn *c)
{
    struct ev_loop *loop = c->pl->loop;
    enum kb_tls_step st = kb_tls_resume_step(c->s, &c->r, &c->err);
    switch (st) {
    case KB_TLS_WANT_READ:
    case KB_TLS_WANT_WRITE:
        if (!c->hs_connected && kb_tls_sent_any(c->s)) {
            c->hs_connected = true;
            deadline(c, c->gen->peer.handshake_timeout_ms);
        }
        kb_tun_watch(loop, &c->sw, st == KB_TLS_WANT_WRITE ? EV_WRITE : EV_READ);
        /* Records read ahead will not make the socket readable: another turn takes them. */
        if (st == KB_TLS_WANT_READ && kb_tls_pending(c->s) > 0)
            ev_feed_event(loop, &c->sw, EV_READ);
        return;
    case KB_TLS_NO_CONNECTION:
        /* A refused connect may be a backend restarting, which the workers wait for once;
         * and its address is looked up again. */
        c->s = NULL; /* ended by kb_tls_resume_step */
        kb_tls_forget_addresses(c->gen->client);
        to_workers(x, c);
        return;
    case KB_TLS_REDO:
        c->s = NULL;
        kb_log(KB_LOG_INFO,
               "tunnel %s: %s: %s: the handshake is done again where the token may sign",
               c->gen->conf.name, c->peer, c->err.msg);
        to_workers(x, c);
        return;
    case KB_TLS_DONE:
        c->resumed_here = true;
        ended(x, c, 0);
        return;
    }
}

void kb_tun_resume_start(struct ctx *x, struct conn *c)
{
    struct sockaddr_storage sa;
    socklen_t len;
    pthread_mutex_lock(&x->state_lock);
    bool retired = c->gen->retired;
    pthread_mutex_unlock(&x->state_lock);
    /* Anything unusual (a retired generation, an address to look up, a refused connect)
     * goes to the workers, whose way has the messages and the retry. */
    if (retired || !kb_tls_resumable(c->gen->client, &sa, &len) ||
        kb_tcp_connect_start((struct sockaddr *)&sa, len, &c->sfd) != 0) {
        c->sfd = -1;
        to_workers(x, c);
        return;
    }
    if (kb_tls_resume_begin(c->gen->client, c->sfd, &c->s, &c->err) != 0) {
        to_workers(x, c);
        return;
    }
    c->handshaking = true;
    c->hs_connected = false;
    ev_io_init(&c->sw, on_io, c->sfd, EV_READ);
    c->sw.data = c;
    ev_init(&c->hs_timer, on_timeout);
    c->hs_timer.data = c;
    deadline(c, c->gen->peer.connect_timeout_ms);
    /* The ClientHello goes at once, without waiting to see the connect done: to a near
     * server it is done already; else the socket refuses it and the loop waits until it is
     * writable. */
    step(x, c);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct pump_loop *pl = ev_userdata(loop);
    step(pl->x, w->data);
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct pump_loop *pl = ev_userdata(loop);
    struct conn *c = w->data;
    const struct gen *g = c->gen;
    if (!c->hs_connected)
        kb_err_set(&c->err, "connection to %s timed out after %u ms", g->conf.connect,
                   g->peer.connect_timeout_ms);
    else
        kb_err_set(&c->err, "handshake with %s timed out after %u ms", g->conf.connect,
                   g->peer.handshake_timeout_ms);
    if (c->s != NULL)
        kb_tls_close(c->s, -1, KB_TLS_ABORT);
    c->s = NULL;
    kb_tun_reset_close(c->sfd);
    c->sfd = -1;
    ended(pl->x, c, -1);
}
