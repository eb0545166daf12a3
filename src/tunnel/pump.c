/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "src/tunnel/shared.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "src/util/log.h"
#include "src/util/net.h"

/* Closes a socket with a reset: the other side must not take an aborted stream for a
 * complete one. */
void kb_tun_reset_close(int fd)
{
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

static void conn_finish(struct ctx *x, struct conn *c, const char *why, bool abort);

void kb_tun_conn_close(struct ctx *x, struct conn *c, const char *why)
{
    conn_finish(x, c, why, false);
}

/* An error: both sides see an abort (a TCP reset), never an orderly end. */
void kb_tun_conn_abort(struct ctx *x, struct conn *c, const char *why)
{
    conn_finish(x, c, why, true);
}

/* Runs on c's loop (or after the loops stopped). What the main loop must do about it
 * (accept again, finish a drain) it learns through main_wake, when it waits for that. */
static void conn_finish(struct ctx *x, struct conn *c, const char *why, bool abort)
{
    struct tunnel *t = c->t;
    struct ev_loop *loop = c->pl->loop;
    long long ms = kb_now_ms() - c->start_ms;
    if (c->s != NULL)
        kb_log(KB_LOG_INFO,
               "tunnel %s: close %s: %llu bytes up, %llu down, %lld ms, %s handshake%s%s",
               c->gen->conf.name, c->peer, c->up, c->down, ms, c->r.resumed ? "resumed" : "full",
               why ? ": " : "", why ? why : "");
    ev_io_stop(loop, &c->cw);
    ev_io_stop(loop, &c->sw);
    ev_timer_stop(loop, &c->idle);
    ev_timer_stop(loop, &c->hs_timer);
    /* A handshake under way has no orderly end; a close_notify already sent is not sent
     * again. */
    if (c->s != NULL)
        kb_tls_close(c->s, c->sfd,
                     abort || c->handshaking ? KB_TLS_ABORT
                     : c->bye_sent           ? KB_TLS_BYE_SENT
                                             : KB_TLS_ORDERLY);
    else if (c->sfd >= 0)
        abort ? kb_tun_reset_close(c->sfd) : (void)close(c->sfd);
    if (abort)
        kb_tun_reset_close(c->cfd);
    else
        close(c->cfd);
    free(c->c2s);
    free(c->s2c);
    pthread_mutex_lock(&x->state_lock);
    kb_tun_gen_put(c->gen);
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        x->all = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    t->active--;
    x->active--;
    /* The control loop only waits for a close when it stopped accepting for want of room,
     * or drains: a wake for every close costs a switch of threads. */
    bool wake = t->full || x->draining;
    pthread_mutex_unlock(&x->state_lock);
    free(c);
    if (wake)
        ev_async_send(x->loop, &x->main_wake);
}

static void drop(char **buf, size_t *len, size_t *off)
{
    free(*buf);
    *buf = NULL;
    *len = *off = 0;
}

/* The server's side failed (a cut, an alert): a rejection of our certificate, which in
 * TLS 1.3 comes after the handshake, counts as a failed connection as in TLS 1.2. */
static void server_failed(struct ctx *x, struct conn *c, int rc)
{
    kb_tls_describe_error(c->s, rc, &c->err);
    if (kb_tls_rejected(c->s, rc)) {
        kb_log(KB_LOG_WARN, "tunnel %s: %s: %s", c->gen->conf.name, c->peer, c->err.msg);
        pthread_mutex_lock(&x->state_lock);
        kb_tun_failed(c->t, KB_FAIL_REJECTED);
        pthread_mutex_unlock(&x->state_lock);
    }
}

/* Pumping stops and a worker answers the server's request for the certificate: it signs on
 * the token, which must never stall a pumping loop. */
static void hand_to_worker(struct ctx *x, struct conn *c)
{
    kb_tls_flush(c->s); /* what is left the worker's sending sends first */
    ev_io_stop(c->pl->loop, &c->cw);
    ev_io_stop(c->pl->loop, &c->sw);
    ev_timer_stop(c->pl->loop, &c->idle);
    kb_tun_enqueue(x, c);
}

/* From a cut or a failed send on, the idle timer fires once, at the deadline for the rest
 * (the idle timeout, 10 s without one): no wake of the connection re-arms it. */
static void arm_deadline(struct conn *c)
{
    double wait = c->gen->conf.idle_timeout_s ? c->gen->conf.idle_timeout_s : 10;
    c->cut_deadline = kb_now_ms() + (long long)(wait * 1000);
    ev_timer_stop(c->pl->loop, &c->idle);
    ev_timer_set(&c->idle, wait, 0);
    ev_timer_start(c->pl->loop, &c->idle);
}

/* The server cut the stream: what it sent still goes to the client, nothing goes to the
 * server any more, and the idle timer now fires once, at the deadline for that tail. */
static void start_cut(struct conn *c)
{
    c->server_eof = c->cut = true;
    drop(&c->c2s, &c->c2s_len, &c->c2s_off);
    c->send_pending = false;
    if (!c->send_failed)
        arm_deadline(c);
}

/* The client's reset must come after the tail of the stream, and a reset discards what
 * the kernel has not delivered yet: wait (on the idle timer, polling) until the client's
 * socket has sent everything, or until the cut's deadline for a client that never reads. */
static void finish_cut(struct ctx *x, struct conn *c)
{
    int queued = 0;
    if (ioctl(c->cfd, SIOCOUTQ, &queued) == 0 && queued > 0 && kb_now_ms() < c->cut_deadline) {
        ev_io_stop(c->pl->loop, &c->cw);
        ev_io_stop(c->pl->loop, &c->sw);
        c->idle.repeat = 0.01;
        ev_timer_again(c->pl->loop, &c->idle);
        return;
    }
    kb_tun_conn_abort(x, c, c->err.msg);
}

/* Moves bytes both ways as far as the sockets let, then waits for what is needed. */
void kb_tun_pump(struct ctx *x, struct conn *c)
{
    for (int round = 0; round < 8; round++) {
        bool progress = false;
        /* Once the server cut the stream only its tail still moves, towards the client. */
        if (c->c2s_len == 0 && !c->client_eof && !c->cut && !c->send_failed && !c->client_drained) {
            if (c->c2s == NULL && (c->c2s = malloc(KB_TUN_BUF)) == NULL) {
                kb_tun_conn_abort(x, c, "out of memory");
                return;
            }
            ssize_t n = read(c->cfd, c->c2s, KB_TUN_BUF);
            if (n > 0) {
                c->c2s_len = (size_t)n;
                c->c2s_off = 0;
                /* Less than asked for: the socket had no more. */
                c->client_drained = (size_t)n < KB_TUN_BUF;
                progress = true;
            } else {
                int e = errno;
                drop(&c->c2s, &c->c2s_len, &c->c2s_off);
                if (n == 0) {
                    c->client_eof = true;
                    progress = true;
                } else if (e == EAGAIN) {
                    c->client_drained = true;
                } else if (e != EINTR) {
                    kb_tun_conn_abort(x, c, "the local client's connection broke");
                    return;
                }
            }
        }
        if (c->c2s_off < c->c2s_len && !c->cut && !c->send_failed) {
            ssize_t w = gnutls_record_send(c->s, c->c2s + c->c2s_off, c->c2s_len - c->c2s_off);
            c->send_pending = w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED;
            if (w > 0) {
                c->c2s_off += (size_t)w;
                c->up += (unsigned long long)w;
                progress = true;
                if (c->c2s_off == c->c2s_len)
                    drop(&c->c2s, &c->c2s_len, &c->c2s_off);
            } else if (!c->send_pending) {
                kb_tls_describe_error(c->s, (int)w, &c->err);
                c->send_failed = true;
                drop(&c->c2s, &c->c2s_len, &c->c2s_off);
                arm_deadline(c);
                progress = true;
            }
        }
        if (c->client_eof && c->c2s_len == 0 && !c->bye_sent && !c->cut && !c->send_failed) {
            int rc = gnutls_bye(c->s, GNUTLS_SHUT_WR);
            if (rc != GNUTLS_E_AGAIN && rc != GNUTLS_E_INTERRUPTED) {
                c->bye_sent = true;
                progress = true;
            }
        }
        if (c->s2c_len == 0 && !c->server_eof && (!c->server_drained || kb_tls_pending(c->s) > 0)) {
            if (c->s2c == NULL && (c->s2c = malloc(KB_TUN_BUF)) == NULL) {
                kb_tun_conn_abort(x, c, "out of memory");
                return;
            }
            /* Several records per write to the client: fewer system calls in bulk. */
            size_t got = 0;
            while (got + 16384 <= KB_TUN_BUF) {
                ssize_t n = gnutls_record_recv(c->s, c->s2c + got, KB_TUN_BUF - got);
                if (n > 0) {
                    got += (size_t)n;
                    continue;
                }
                if (c->send_failed && (n == 0 || n == GNUTLS_E_PREMATURE_TERMINATION)) {
                    start_cut(c); /* the reason stays the failed send's */
                    progress = true;
                } else if (n == 0 || (n == GNUTLS_E_PREMATURE_TERMINATION && c->bye_sent)) {
                    /* After our close_notify many servers (nginx) just close the socket:
                     * the client had finished, nothing is lost. */
                    c->server_eof = true;
                    progress = true;
                } else if (kb_tls_wants_reauth((int)n)) {
                    c->reauth = (int)n;
                } else if (n == GNUTLS_E_AGAIN) {
                    c->server_drained = true;
                } else if (n != GNUTLS_E_INTERRUPTED) {
                    /* What came before the cut is the client's; the reset comes after it. */
                    server_failed(x, c, (int)n);
                    start_cut(c);
                    progress = true;
                }
                break;
            }
            if (got > 0) {
                c->s2c_len = got;
                c->s2c_off = 0;
                progress = true;
            } else {
                drop(&c->s2c, &c->s2c_len, &c->s2c_off);
            }
            if (c->reauth && c->bye_sent) {
                /* Our close_notify is out: TLS allows us no handshake message now. */
                kb_log(KB_LOG_WARN,
                       "tunnel %s: %s: the server asked for the certificate after the local "
                       "client had finished sending (our close_notify was out), when TLS "
                       "allows no answer",
                       c->gen->conf.name, c->peer);
                pthread_mutex_lock(&x->state_lock);
                kb_tun_failed(c->t, KB_FAIL_REAUTH);
                pthread_mutex_unlock(&x->state_lock);
                kb_tun_conn_abort(x, c, "the server's request for the certificate came too late");
                return;
            }
            if (c->reauth) {
                hand_to_worker(x, c);
                return;
            }
        }
        if (c->s2c_off < c->s2c_len) {
            ssize_t w = write(c->cfd, c->s2c + c->s2c_off, c->s2c_len - c->s2c_off);
            if (w > 0) {
                c->s2c_off += (size_t)w;
                c->down += (unsigned long long)w;
                progress = true;
                if (c->s2c_off == c->s2c_len)
                    drop(&c->s2c, &c->s2c_len, &c->s2c_off);
            } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                kb_tun_conn_abort(x, c, "the local client went away");
                return;
            }
        }
        if (c->cut && c->s2c_len == 0) {
            finish_cut(x, c);
            return;
        }
        if (c->server_eof && c->s2c_len == 0 && !c->client_shut) {
            shutdown(c->cfd, SHUT_WR);
            c->client_shut = true;
            progress = true;
        }
        if (c->bye_sent && c->client_shut) {
            kb_tun_conn_close(x, c, NULL);
            return;
        }
        if (!progress && kb_tls_pending(c->s) == 0)
            break;
    }
    /* A handshake on the loop held its last flight back for the first request (if the client
     * sent one already): both go now, as one segment. */
    int held = kb_tls_flush(c->s);
    if (held < 0 && !c->send_failed) {
        kb_tls_describe_error(c->s, GNUTLS_E_PUSH_ERROR, &c->err);
        c->send_failed = true;
        drop(&c->c2s, &c->c2s_len, &c->c2s_off);
        arm_deadline(c);
    }
    int cev = (!c->client_eof && !c->cut && !c->send_failed && c->c2s_len == 0 ? EV_READ : 0) |
              (c->s2c_off < c->s2c_len ? EV_WRITE : 0);
    int sev = c->cut ? 0
                     : (!c->server_eof && c->s2c_len == 0 ? EV_READ : 0) |
                           (!c->send_failed && (held > 0 || c->c2s_off < c->c2s_len ||
                                                (c->client_eof && !c->bye_sent))
                                ? EV_WRITE
                                : 0);
    kb_tun_watch(c->pl->loop, &c->cw, cev);
    kb_tun_watch(c->pl->loop, &c->sw, sev);
    /* Records GnuTLS already holds will not make the socket readable again. */
    if ((sev & EV_READ) && kb_tls_pending(c->s) > 0)
        ev_feed_event(c->pl->loop, &c->sw, EV_READ);
    /* A cut stream's timer is its deadline (arm_deadline), not an idle timeout. */
    if (c->gen->conf.idle_timeout_s && !c->cut && !c->send_failed)
        ev_timer_again(c->pl->loop, &c->idle);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = w->data;
    struct pump_loop *pl = ev_userdata(loop);
    if (revents & EV_READ) {
        if (w == &c->cw)
            c->client_drained = false;
        else
            c->server_drained = false;
    }
    kb_tun_pump(pl->x, c);
}

void kb_tun_watch(struct ev_loop *loop, ev_io *w, int events)
{
    if (ev_is_active(w) && (w->events & (EV_READ | EV_WRITE)) == events)
        return;
    ev_io_stop(loop, w);
    if (events) {
        ev_io_modify(w, events);
        ev_io_start(loop, w);
    }
}

static void on_idle(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct pump_loop *pl = ev_userdata(loop);
    struct conn *c = w->data;
    if (c->cut || c->send_failed) {
        /* A cut stream never ends as a complete one, idle or not. */
        if (c->s2c_len == 0)
            finish_cut(pl->x, c);
        else
            kb_tun_conn_abort(pl->x, c, c->err.msg);
        return;
    }
    kb_tun_conn_close(pl->x, w->data, "idle timeout");
}

/* On a pumping loop: the handshakes finished for it. */
void kb_tun_conn_watchers(struct conn *c)
{
    ev_io_init(&c->cw, on_io, c->cfd, EV_READ);
    c->cw.data = c;
    ev_init(&c->idle, on_idle);
    c->idle.repeat = c->gen->conf.idle_timeout_s;
    c->idle.data = c;
}

void kb_tun_to_loop(struct conn *c)
{
    struct pump_loop *pl = c->pl;
    pthread_mutex_lock(&pl->done_lock);
    c->next = pl->done;
    pl->done = c;
    pthread_mutex_unlock(&pl->done_lock);
    ev_async_send(pl->loop, &pl->wake);
}

void kb_tun_on_done(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)w;
    (void)revents;
    struct pump_loop *pl = ev_userdata(loop);
    struct ctx *x = pl->x;
    pthread_mutex_lock(&pl->done_lock);
    struct conn *list = pl->done;
    pl->done = NULL;
    pthread_mutex_unlock(&pl->done_lock);
    while (list != NULL) {
        struct conn *c = list;
        list = c->next;
        if (c->reauth) {
            int kind = c->reauth;
            c->reauth = 0;
            if (c->rc != 0) {
                kb_log(KB_LOG_WARN, "tunnel %s: %s: %s", c->gen->conf.name, c->peer, c->err.msg);
                pthread_mutex_lock(&x->state_lock);
                kb_tun_failed(c->t, KB_FAIL_REAUTH);
                pthread_mutex_unlock(&x->state_lock);
                kb_tun_conn_abort(x, c,
                                  "the server's request for the certificate was not answered");
                continue;
            }
            kb_log(KB_LOG_INFO, "tunnel %s: %s: %s", c->gen->conf.name, c->peer,
                   kind == GNUTLS_E_REAUTH_REQUEST
                       ? "answered the server's certificate request after the handshake"
                       : "renegotiated with the server, which asked for the certificate");
            kb_tun_pump(x, c);
            continue;
        }
        if (c->on_loop) {
            c->on_loop = false;
            if (x->loops_stopped)
                kb_tun_conn_abort(x, c, "stopping");
            else
                kb_tun_resume_start(x, c);
            continue;
        }
        kb_tun_handshake_done(x, c);
    }
}

void kb_tun_handshake_done(struct ctx *x, struct conn *c)
{
    pthread_mutex_lock(&x->state_lock);
    bool retired = c->gen->retired;
    pthread_mutex_unlock(&x->state_lock);
    bool no_longer = c->rc == 0 && retired;
    if (no_longer) {
        ev_io_stop(c->pl->loop, &c->sw);
        kb_tls_close(c->s, c->sfd, KB_TLS_ORDERLY);
        c->s = NULL;
        c->sfd = -1;
        c->rc = kb_err_set(&c->err, "the device is no longer admitted for this endpoint");
    }
    if (c->rc != 0) {
        kb_log(c->gone ? KB_LOG_INFO : KB_LOG_WARN, "tunnel %s: %s: %s", c->gen->conf.name, c->peer,
               c->err.msg);
        pthread_mutex_lock(&x->state_lock);
        if (!c->gone)
            kb_tun_failed(c->t, no_longer           ? KB_FAIL_NOT_ADMITTED
                                : c->r.token_failed ? KB_FAIL_TOKEN
                                                    : KB_FAIL_BACKEND);
        pthread_mutex_unlock(&x->state_lock);
        c->s = NULL;
        kb_tun_conn_close(x, c, NULL);
        return;
    }
    if (!c->resumed_here)
        fcntl(c->sfd, F_SETFL, fcntl(c->sfd, F_GETFL) | O_NONBLOCK);
    kb_log(KB_LOG_DEBUG, "tunnel %s: %s: handshake on %s; the server %s", c->gen->conf.name,
           c->peer, c->resumed_here ? "its pumping loop" : "a handshake thread",
           !c->r.cert_requested ? "asked for no certificate"
           : c->r.cert_sent     ? "asked for the certificate, sent"
                                : "asked for a certificate, none sent");
    kb_log(KB_LOG_INFO, "tunnel %s: open %s -> %s: %s, %s handshake in %lld ms", c->gen->conf.name,
           c->peer, c->gen->conf.connect, c->r.protocol, c->r.resumed ? "resumed" : "full",
           c->r.handshake_ms);
    /* On the loop the handshake's watcher goes on as the pump's: re-adding the descriptor
     * would cost a system call. The client has likely sent already; the server waits for
     * that, and the loop says when it answers. */
    if (ev_is_active(&c->sw)) {
        ev_set_cb(&c->sw, on_io);
    } else {
        ev_io_init(&c->sw, on_io, c->sfd, EV_READ);
        c->sw.data = c;
    }
    c->client_drained = false;
    c->server_drained = true;
    kb_tun_pump(x, c);
}
