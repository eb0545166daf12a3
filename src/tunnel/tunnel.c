#include "config.h"

#include "src/tunnel/tunnel.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "pkcs11/objects.h"
#include "pkcs11/uri.h"
#include "policy/render.h"
#include "src/tls/client.h"
#include "src/tls/device.h"
#include "src/util/hostport.h"
#include "src/util/log.h"
#include "src/util/net.h"
#include "src/util/trustfile.h"

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#else
static int sd_notify(int unset, const char *state)
{
    (void)unset;
    (void)state;
    return 0;
}
#endif

/* Per direction, and only while bytes wait: four TLS records. */
#define BUF 65536

/* The identity and TLS client of a tunnel at one time; a reload makes a new one, and the
 * old one lives until its last connection ends. */
struct gen {
    kb_tls_peer peer; /* its own copy: a reload may change the tunnel's settings */
    char proxy[300];
    char alpn[KB_TUNNEL_ALPN_MAX][64];
    char *priority; /* the policy's, copied: the policy is freed after a reload */
    kb_identity *id;
    kb_tls_client *client;
    unsigned refs;
    bool retired; /* the policy no longer admits the device: queued handshakes are dropped */
    struct ctx *x;
};

struct tunnel {
    kb_tunnel_conf *conf;
    struct gen *gen; /* NULL: not admitted, not accepting */
    struct kb_listen where;
    int lfd;
    ev_io lw;
    bool accepting;
    ino_t sock_ino; /* our unix socket file: only that one is removed at the end */
    unsigned active;
    unsigned long total, failed;
    struct ctx *ctx;
};

/* One event loop and its thread; the main one also has the listeners and the signals. */
struct pump_loop {
    struct ev_loop *loop;
    struct ctx *x;
    ev_async wake; /* handshakes finished for this loop (done list) */
    ev_async stop_w;
    struct conn *done; /* under x->lock */
    pthread_t thread;
    bool has_thread;
};

struct conn {
    struct tunnel *t;
    struct pump_loop *pl; /* the loop that pumps it; only that loop's thread touches it */
    struct gen *gen;
    int cfd, sfd;
    gnutls_session_t s;
    ev_io cw, sw;
    ev_timer idle;
    char peer[128];
    /* Taken only while bytes wait in them: an idle connection holds no buffer. */
    char *c2s, *s2c;
    size_t c2s_len, c2s_off, s2c_len, s2c_off;
    bool client_eof, server_eof, bye_sent, client_shut;
    bool send_pending; /* a record_send returned AGAIN: GnuTLS holds that record */
    /* Sending to the server failed (why: in err): what it sent before is still read and
     * delivered, then the client gets the cut. */
    bool send_failed;
    /* The server ended without close_notify (or with an error) after sending what s2c
     * holds: that is delivered, then the client gets a reset. */
    bool cut;               /* why: in err */
    long long cut_deadline; /* how long a cut stream's tail may take to reach the client */
    /* Not 0: the server asked for the certificate again (GNUTLS_E_REAUTH_REQUEST or
     * GNUTLS_E_REHANDSHAKE); pumping pauses while a worker answers. */
    int reauth;
    unsigned long long up, down; /* bytes client->server, server->client */
    long long start_ms;
    struct kb_tls_result r;
    kb_err err;
    int rc;
    struct conn *next;                /* in the worker queue or the done list */
    struct conn *all_prev, *all_next; /* every connection, to close them at the end */
};

struct ctx {
    struct ev_loop *loop;            /* the main loop: listeners, signals, reloads */
    struct pump_loop *loops;         /* loops[0] runs on the main loop */
    unsigned n_loops, n_pumping, rr; /* n_pumping: loops that have their thread */
    ev_async main_wake;              /* a connection closed: capacity, drain */
    const struct kb_tunnel_env *env;
    struct tunnel *tunnels;
    size_t n;
    ev_signal sig_term, sig_int, sig_hup, sig_usr1;
    ev_timer drain;
    ev_timer resume; /* accepting again after running out of descriptors */
    bool draining;
    pthread_mutex_t lock; /* queue, done lists, stop, counters, gens, the all list */
    pthread_cond_t work;
    struct conn *queue, *queue_tail, *done;
    bool stop;
    pthread_t *threads;
    unsigned n_threads;
    unsigned active;
    struct conn *all;
};

/* Asked by kb_tls_reauth on a worker: a device the policy no longer admits (a reload
 * retired its generation) or whose certificate has expired answers nothing. */
static int gen_admitted(void *arg, kb_err *err)
{
    struct gen *g = arg;
    pthread_mutex_lock(&g->x->lock);
    bool retired = g->retired;
    pthread_mutex_unlock(&g->x->lock);
    if (retired)
        return kb_err_set(err, "the device is no longer admitted for this endpoint");
    if (g->id->not_after != 0 && (long long)time(NULL) > g->id->not_after)
        return kb_err_set(err, "the device certificate %s has expired", g->id->subject);
    return 0;
}

static void gen_put(struct gen *g)
{
    if (g != NULL && --g->refs == 0) {
        kb_tls_client_free(g->client);
        kb_identity_free(g->id);
        for (size_t i = 0; i < g->peer.n_pins; i++)
            free(g->peer.pins[i]);
        free(g->peer.pins);
        free(g->priority);
        free(g);
    }
}

/* The peer as the tunnel's settings and the policy's endpoint rule say, copied into g. */
static int gen_peer(struct gen *g, const kb_tunnel_conf *conf, const kb_policy *pol, kb_err *err)
{
    kb_tls_peer *peer = &g->peer;
    if (kb_hostport_parse(conf->connect, peer->host, sizeof peer->host, &peer->port, err) != 0)
        return -1;
    const struct kb_endpoint_rule *rule = kb_policy_endpoint(pol, peer->host, peer->port);
    if (kb_tls_peer_apply(peer, rule, conf->ca[0] ? conf->ca : NULL,
                          conf->server_name[0] ? conf->server_name : NULL, err) != 0)
        return -1;
    peer->connect_timeout_ms = peer->handshake_timeout_ms = conf->connect_timeout_s * 1000;
    if (conf->proxy[0]) {
        snprintf(g->proxy, sizeof g->proxy, "%s", conf->proxy);
        peer->proxy = g->proxy;
    }
    for (size_t a = 0; a < conf->n_alpn && a < KB_ALPN_MAX; a++) {
        snprintf(g->alpn[a], sizeof g->alpn[a], "%s", conf->alpn[a]);
        peer->alpn[peer->n_alpn++] = g->alpn[a];
    }
    /* The generation outlives the policy it was made under: own what points into it. */
    char **pins = peer->pins;
    size_t n_pins = peer->n_pins;
    peer->pins = NULL;
    peer->n_pins = 0;
    if (n_pins > 0) {
        if ((peer->pins = calloc(n_pins, sizeof *peer->pins)) == NULL)
            return kb_err_set(err, "out of memory");
        for (size_t i = 0; i < n_pins; i++)
            if ((peer->pins[peer->n_pins++] = strdup(pins[i])) == NULL)
                return kb_err_set(err, "out of memory");
    }
    if (peer->priority != NULL && (peer->priority = g->priority = strdup(peer->priority)) == NULL)
        return kb_err_set(err, "out of memory");
    return 0;
}

/* Closes a socket with a reset: the other side must not take an aborted stream for a
 * complete one. */
static void reset_close(int fd)
{
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

static void conn_finish(struct ctx *x, struct conn *c, const char *why, bool abort);

static void conn_close(struct ctx *x, struct conn *c, const char *why)
{
    conn_finish(x, c, why, false);
}

/* An error: both sides see an abort (a TCP reset), never an orderly end. */
static void conn_abort(struct ctx *x, struct conn *c, const char *why)
{
    conn_finish(x, c, why, true);
}

/* Runs on c's loop (or after the loops stopped). What the main loop must do about it
 * (accept again, finish a drain) it learns through main_wake. */
static void conn_finish(struct ctx *x, struct conn *c, const char *why, bool abort)
{
    struct tunnel *t = c->t;
    struct ev_loop *loop = c->pl->loop;
    long long ms = kb_now_ms() - c->start_ms;
    if (c->s != NULL)
        kb_log(KB_LOG_INFO,
               "tunnel %s: close %s: %llu bytes up, %llu down, %lld ms, %s handshake%s%s",
               t->conf->name, c->peer, c->up, c->down, ms, c->r.resumed ? "resumed" : "full",
               why ? ": " : "", why ? why : "");
    ev_io_stop(loop, &c->cw);
    ev_io_stop(loop, &c->sw);
    ev_timer_stop(loop, &c->idle);
    if (c->s != NULL)
        kb_tls_close(c->s, c->sfd, abort ? KB_TLS_ABORT : KB_TLS_ORDERLY);
    else if (c->sfd >= 0)
        abort ? reset_close(c->sfd) : (void)close(c->sfd);
    if (abort)
        reset_close(c->cfd);
    else
        close(c->cfd);
    free(c->c2s);
    free(c->s2c);
    pthread_mutex_lock(&x->lock);
    gen_put(c->gen);
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        x->all = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    t->active--;
    x->active--;
    pthread_mutex_unlock(&x->lock);
    free(c);
    ev_async_send(x->loop, &x->main_wake);
}

/* On the main loop: accept again where there is room; end a drain when all are closed. */
static void on_main_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)w;
    (void)revents;
    struct pump_loop *pl = ev_userdata(loop);
    struct ctx *x = pl->x;
    pthread_mutex_lock(&x->lock);
    unsigned active = x->active;
    for (size_t i = 0; i < x->n; i++) {
        struct tunnel *t = &x->tunnels[i];
        if (!t->accepting && t->gen != NULL && !x->draining &&
            t->active < t->conf->max_connections) {
            ev_io_start(loop, &t->lw);
            t->accepting = true;
        }
    }
    pthread_mutex_unlock(&x->lock);
    if (x->draining && active == 0)
        ev_break(loop, EVBREAK_ALL);
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
        kb_log(KB_LOG_WARN, "tunnel %s: %s: %s", c->t->conf->name, c->peer, c->err.msg);
        pthread_mutex_lock(&x->lock);
        c->t->failed++;
        pthread_mutex_unlock(&x->lock);
    }
}

/* Gives c to the handshake workers; x->lock held. */
static void enqueue(struct ctx *x, struct conn *c)
{
    c->next = NULL;
    if (x->queue_tail)
        x->queue_tail->next = c;
    else
        x->queue = c;
    x->queue_tail = c;
    pthread_cond_signal(&x->work);
}

/* Pumping stops and a worker answers the server's request for the certificate: it signs on
 * the token, which must never stall a pumping loop. */
static void hand_to_worker(struct ctx *x, struct conn *c)
{
    ev_io_stop(c->pl->loop, &c->cw);
    ev_io_stop(c->pl->loop, &c->sw);
    ev_timer_stop(c->pl->loop, &c->idle);
    pthread_mutex_lock(&x->lock);
    enqueue(x, c);
    pthread_mutex_unlock(&x->lock);
}

/* From a cut or a failed send on, the idle timer fires once, at the deadline for the rest
 * (the idle timeout, 10 s without one): no wake of the connection re-arms it. */
static void arm_deadline(struct conn *c)
{
    double wait = c->t->conf->idle_timeout_s ? c->t->conf->idle_timeout_s : 10;
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
    conn_abort(x, c, c->err.msg);
}

/* Moves bytes both ways as far as the sockets let, then waits for what is needed. */
static void pump(struct ctx *x, struct conn *c)
{
    for (int round = 0; round < 8; round++) {
        bool progress = false;
        /* Once the server cut the stream only its tail still moves, towards the client. */
        if (c->c2s_len == 0 && !c->client_eof && !c->cut && !c->send_failed) {
            if (c->c2s == NULL && (c->c2s = malloc(BUF)) == NULL) {
                conn_abort(x, c, "out of memory");
                return;
            }
            ssize_t n = read(c->cfd, c->c2s, BUF);
            if (n > 0) {
                c->c2s_len = (size_t)n;
                c->c2s_off = 0;
                progress = true;
            } else {
                int e = errno;
                drop(&c->c2s, &c->c2s_len, &c->c2s_off);
                if (n == 0) {
                    c->client_eof = true;
                    progress = true;
                } else if (e != EAGAIN && e != EINTR) {
                    conn_abort(x, c, "the local client's connection broke");
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
        if (c->s2c_len == 0 && !c->server_eof) {
            if (c->s2c == NULL && (c->s2c = malloc(BUF)) == NULL) {
                conn_abort(x, c, "out of memory");
                return;
            }
            /* Several records per write to the client: fewer system calls in bulk. */
            size_t got = 0;
            while (got + 16384 <= BUF) {
                ssize_t n = gnutls_record_recv(c->s, c->s2c + got, BUF - got);
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
                } else if (n != GNUTLS_E_AGAIN && n != GNUTLS_E_INTERRUPTED) {
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
                       c->t->conf->name, c->peer);
                pthread_mutex_lock(&x->lock);
                c->t->failed++;
                pthread_mutex_unlock(&x->lock);
                conn_abort(x, c, "the server's request for the certificate came too late");
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
                conn_abort(x, c, "the local client went away");
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
            conn_close(x, c, NULL);
            return;
        }
        if (!progress && gnutls_record_check_pending(c->s) == 0)
            break;
    }
    int cev = (!c->client_eof && !c->cut && !c->send_failed && c->c2s_len == 0 ? EV_READ : 0) |
              (c->s2c_off < c->s2c_len ? EV_WRITE : 0);
    int sev = c->cut ? 0
                     : (!c->server_eof && c->s2c_len == 0 ? EV_READ : 0) |
                           (!c->send_failed &&
                                    (c->c2s_off < c->c2s_len || (c->client_eof && !c->bye_sent))
                                ? EV_WRITE
                                : 0);
    ev_io_stop(c->pl->loop, &c->cw);
    ev_io_stop(c->pl->loop, &c->sw);
    if (cev) {
        ev_io_set(&c->cw, c->cfd, cev);
        ev_io_start(c->pl->loop, &c->cw);
    }
    if (sev) {
        ev_io_set(&c->sw, c->sfd, sev);
        ev_io_start(c->pl->loop, &c->sw);
        /* Records GnuTLS already holds will not make the socket readable again. */
        if ((sev & EV_READ) && gnutls_record_check_pending(c->s) > 0)
            ev_feed_event(c->pl->loop, &c->sw, EV_READ);
    }
    /* A cut stream's timer is its deadline (arm_deadline), not an idle timeout. */
    if (c->t->conf->idle_timeout_s && !c->cut && !c->send_failed)
        ev_timer_again(c->pl->loop, &c->idle);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct conn *c = w->data;
    struct pump_loop *pl = ev_userdata(loop);
    pump(pl->x, c);
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
            conn_abort(pl->x, c, c->err.msg);
        return;
    }
    conn_close(pl->x, w->data, "idle timeout");
}

/* Worker: the slow part, away from the loop. */
static void *worker(void *arg)
{
    struct ctx *x = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    for (;;) {
        pthread_mutex_lock(&x->lock);
        while (x->queue == NULL && !x->stop)
            pthread_cond_wait(&x->work, &x->lock);
        if (x->stop) {
            pthread_mutex_unlock(&x->lock);
            return NULL;
        }
        struct conn *c = x->queue;
        x->queue = c->next;
        if (x->queue == NULL)
            x->queue_tail = NULL;
        bool retired = c->gen->retired;
        pthread_mutex_unlock(&x->lock);
        if (c->reauth) {
            /* A record GnuTLS holds from an interrupted send goes out first, counted once;
             * the admission check (gen_admitted) runs inside kb_tls_reauth. */
            size_t sent = 0;
            c->rc = c->send_pending ? kb_tls_finish_send(c->s, &sent, &c->err) : 0;
            if (c->rc == 0 && sent > 0) {
                c->c2s_off += sent;
                c->up += sent;
                if (c->c2s_off == c->c2s_len)
                    drop(&c->c2s, &c->c2s_len, &c->c2s_off);
            }
            c->send_pending = false;
            if (c->rc == 0)
                c->rc = kb_tls_reauth(c->s, c->reauth, &c->err);
        } else if (retired) {
            c->rc = kb_err_set(&c->err, "the device is no longer admitted for this endpoint");
            c->sfd = -1;
        } else {
            c->rc = kb_tls_connect(c->gen->client, &c->s, &c->sfd, &c->r, &c->err);
        }
        pthread_mutex_lock(&x->lock);
        c->next = c->pl->done;
        c->pl->done = c;
        pthread_mutex_unlock(&x->lock);
        ev_async_send(c->pl->loop, &c->pl->wake);
    }
}

/* On a pumping loop: the handshakes finished for it. */
static void on_done(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)w;
    (void)revents;
    struct pump_loop *pl = ev_userdata(loop);
    struct ctx *x = pl->x;
    pthread_mutex_lock(&x->lock);
    struct conn *list = pl->done;
    pl->done = NULL;
    pthread_mutex_unlock(&x->lock);
    while (list != NULL) {
        struct conn *c = list;
        list = c->next;
        if (c->reauth) {
            int kind = c->reauth;
            c->reauth = 0;
            if (c->rc != 0) {
                kb_log(KB_LOG_WARN, "tunnel %s: %s: %s", c->t->conf->name, c->peer, c->err.msg);
                pthread_mutex_lock(&x->lock);
                c->t->failed++;
                pthread_mutex_unlock(&x->lock);
                conn_abort(x, c, "the server's request for the certificate was not answered");
                continue;
            }
            kb_log(KB_LOG_INFO, "tunnel %s: %s: %s", c->t->conf->name, c->peer,
                   kind == GNUTLS_E_REAUTH_REQUEST
                       ? "answered the server's certificate request after the handshake"
                       : "renegotiated with the server, which asked for the certificate");
            pump(x, c);
            continue;
        }
        pthread_mutex_lock(&x->lock);
        bool retired = c->gen->retired;
        pthread_mutex_unlock(&x->lock);
        if (c->rc == 0 && retired) {
            kb_tls_close(c->s, c->sfd, KB_TLS_ORDERLY);
            c->s = NULL;
            c->sfd = -1;
            c->rc = kb_err_set(&c->err, "the device is no longer admitted for this endpoint");
        }
        if (c->rc != 0) {
            kb_log(KB_LOG_WARN, "tunnel %s: %s: %s", c->t->conf->name, c->peer, c->err.msg);
            pthread_mutex_lock(&x->lock);
            c->t->failed++;
            pthread_mutex_unlock(&x->lock);
            c->s = NULL;
            conn_close(x, c, NULL);
            continue;
        }
        fcntl(c->sfd, F_SETFL, fcntl(c->sfd, F_GETFL) | O_NONBLOCK);
        kb_log(KB_LOG_INFO, "tunnel %s: open %s -> %s: %s, %s handshake in %lld ms",
               c->t->conf->name, c->peer, c->t->conf->connect, c->r.protocol,
               c->r.resumed ? "resumed" : "full", c->r.handshake_ms);
        ev_io_init(&c->sw, on_io, c->sfd, EV_READ);
        c->sw.data = c;
        pump(x, c);
    }
}

static void peer_name(int fd, const struct sockaddr_storage *ss, char *out, size_t len)
{
    if (ss->ss_family == AF_UNIX) {
        struct ucred cred;
        socklen_t l = sizeof cred;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &l) == 0)
            snprintf(out, len, "uid %u pid %d", (unsigned)cred.uid, (int)cred.pid);
        else
            snprintf(out, len, "unix peer");
        return;
    }
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        port = ntohs(in->sin_port);
        snprintf(out, len, "%s:%u", ip, port);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        port = ntohs(in6->sin6_port);
        snprintf(out, len, "[%s]:%u", ip, port);
    }
}

static bool uid_allowed(const struct tunnel *t, int fd)
{
    if (t->conf->n_allow_uid == 0)
        return true;
    struct ucred cred;
    socklen_t l = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &l) != 0)
        return false;
    for (size_t i = 0; i < t->conf->n_allow_uid; i++)
        if (t->conf->allow_uid[i] == cred.uid)
            return true;
    return false;
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct pump_loop *main_pl = ev_userdata(loop);
    struct ctx *x = main_pl->x;
    struct tunnel *t = w->data;
    for (int i = 0; i < 64 && t->gen != NULL; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(t->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The listener would stay readable and spin: pause it a while. */
                kb_log(KB_LOG_WARN, "tunnel %s: cannot accept: %s; pausing for 250 ms",
                       t->conf->name, strerror(errno));
                ev_io_stop(loop, &t->lw);
                t->accepting = false;
                ev_timer_start(loop, &x->resume);
            }
            return;
        }
        if (!uid_allowed(t, fd)) {
            char who[128];
            peer_name(fd, &ss, who, sizeof who);
            kb_log(KB_LOG_WARN, "tunnel %s: refused %s: not in allow-uid", t->conf->name, who);
            close(fd);
            continue;
        }
        struct conn *c = calloc(1, sizeof *c);
        if (c == NULL) {
            close(fd);
            return;
        }
        c->t = t;
        c->cfd = fd;
        c->sfd = -1;
        c->start_ms = kb_now_ms();
        c->pl = &x->loops[x->rr++ % x->n_pumping];
        peer_name(fd, &ss, c->peer, sizeof c->peer);
        ev_io_init(&c->cw, on_io, fd, EV_READ);
        c->cw.data = c;
        ev_init(&c->idle, on_idle);
        c->idle.repeat = t->conf->idle_timeout_s;
        c->idle.data = c;
        pthread_mutex_lock(&x->lock);
        c->gen = t->gen;
        c->gen->refs++;
        t->active++;
        t->total++;
        x->active++;
        c->all_next = x->all;
        if (x->all)
            x->all->all_prev = c;
        x->all = c;
        unsigned active = t->active;
        enqueue(x, c);
        pthread_mutex_unlock(&x->lock);
        if (active >= t->conf->max_connections) {
            /* Backpressure: the kernel's backlog holds the rest. */
            ev_io_stop(loop, &t->lw);
            t->accepting = false;
            return;
        }
    }
}

/* Listening socket for a tunnel; a unix socket is 0600 and a stale one is replaced only
 * when nothing answers on it. */
/* A socket systemd passed under the name; its address must be loopback or unix unless the
 * tunnel allows remote clients. */
static int activated_listener(struct tunnel *t, kb_err *err)
{
#ifdef HAVE_SYSTEMD
    char **names = NULL;
    int n = sd_listen_fds_with_names(0, &names);
    int found = -1;
    for (int i = 0; i < n; i++) {
        if (found < 0 && names && strcmp(names[i], t->where.path) == 0)
            found = SD_LISTEN_FDS_START + i;
        if (names)
            free(names[i]);
    }
    free(names);
    if (found < 0)
        return kb_err_set(err, "tunnel %s: systemd passed no socket named '%s'", t->conf->name,
                          t->where.path);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(found, (struct sockaddr *)&ss, &sl) != 0)
        return kb_err_set(err, "tunnel %s: the socket '%s' from systemd: %s", t->conf->name,
                          t->where.path, strerror(errno));
    const struct sockaddr_un *un = (const struct sockaddr_un *)&ss;
    struct stat st;
    /* A unix socket is private only as a file of ours that nobody else may open: an
     * abstract one, or one with systemd's default mode 0666, lends the identity to every
     * local user unless allow-uid says who may connect. */
    bool private_unix = ss.ss_family == AF_UNIX && un->sun_path[0] != '\0' &&
                        stat(un->sun_path, &st) == 0 && st.st_uid == geteuid() &&
                        (st.st_mode & 022) == 0; /* connecting needs write permission */
    bool local = (ss.ss_family == AF_UNIX && (private_unix || t->conf->n_allow_uid > 0)) ||
                 (ss.ss_family == AF_INET &&
                  (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127) ||
                 (ss.ss_family == AF_INET6 &&
                  IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr));
    if (!local && !t->conf->allow_remote)
        return kb_err_set(err,
                          "tunnel %s: the socket systemd passed as '%s' is open to others (not "
                          "loopback, or a unix socket others may write to: SocketMode=0600, "
                          "or allow-uid); say allow-remote = yes if that is meant",
                          t->conf->name, t->where.path);
    fcntl(found, F_SETFL, fcntl(found, F_GETFL) | O_NONBLOCK);
    fcntl(found, F_SETFD, FD_CLOEXEC);
    t->lfd = found;
    return 0;
#else
    return kb_err_set(err, "tunnel %s: systemd:%s needs keybound built with libsystemd",
                      t->conf->name, t->where.path);
#endif
}

static int open_listener(struct tunnel *t, kb_err *err)
{
    struct kb_listen *l = &t->where;
    if (kb_listen_parse(t->conf->listen, l, err) != 0)
        return -1;
    if (l->activated)
        return activated_listener(t, err);
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return kb_err_set(err, "tunnel %s: socket: %s", t->conf->name, strerror(errno));
    int on = 1;
    if (!l->is_unix)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (l->is_unix) {
        struct stat st;
        if (lstat(l->path, &st) == 0) {
            if (!S_ISSOCK(st.st_mode)) {
                close(fd);
                return kb_err_set(err, "tunnel %s: %s exists and is not a socket; not replacing it",
                                  t->conf->name, l->path);
            }
            /* Stale only when nobody answers: a socket we may not connect to is someone's. */
            int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            int e = probe < 0                                                       ? errno
                    : connect(probe, (struct sockaddr *)&l->addr, l->addr_len) == 0 ? 0
                                                                                    : errno;
            if (probe >= 0)
                close(probe);
            if (e != ECONNREFUSED) {
                close(fd);
                return kb_err_set(err, "tunnel %s: %s is %s; not replacing it", t->conf->name,
                                  l->path, e == 0 ? "in use by another process" : strerror(e));
            }
            unlink(l->path);
        }
    }
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&l->addr, l->addr_len);
    umask(old);
    if (rc != 0 || listen(fd, 512) != 0) {
        int e = errno;
        close(fd);
        return kb_err_set(err, "tunnel %s: cannot listen on %s: %s", t->conf->name, t->conf->listen,
                          strerror(e));
    }
    struct stat st;
    if (l->is_unix && stat(l->path, &st) == 0)
        t->sock_ino = st.st_ino;
    t->lfd = fd;
    return 0;
}

/* The admitted identity for each tunnel, from a fresh look at the tokens and the policy.
 * Returns how many tunnels are admitted, or -1 with err set. */
static int admit(struct ctx *x, kb_err *err)
{
    kb_policy *pol = NULL;
    bool baseline;
    if (kb_policy_load_or_baseline(x->env->policy_path, &pol, &baseline, err) != 0)
        return -1;
    if (baseline)
        kb_log(KB_LOG_INFO, "no policy file: using the built-in baseline");
    kb_trust *trust = kb_trust_load(pol);
    int admitted = 0;
    for (size_t i = 0; i < x->n && trust; i++) {
        struct tunnel *t = &x->tunnels[i];
        kb_token_list tokens = {0};
        kb_objects objs = {0};
        kb_key *only = NULL;
        P11KitUri *uri = NULL;
        kb_err e;
        kb_device d;
        kb_verdict v;
        int rc = -1;
        if (t->conf->key[0]) {
            if (kb_uri_parse(t->conf->key, 0, &uri, &e) == 0)
                rc = kb_objects_one_key(x->env->p11, uri, t->conf->key, x->env->pin, &tokens, &objs,
                                        &only, &e);
        } else {
            rc = kb_objects_collect(x->env->p11, NULL, x->env->pin, true, &tokens, &objs, &e);
        }
        if (rc == 0)
            rc = kb_device_choose(&objs, only, pol, trust, (long long)time(NULL), t->conf->connect,
                                  &d, &v, &e);
        struct gen *g = NULL;
        if (rc == 1) {
            char summary[512];
            kb_verdict_summary(&v, summary, sizeof summary);
            kb_log(KB_LOG_ERROR, "tunnel %s: the device is not admitted for %s: %s", t->conf->name,
                   t->conf->connect, summary);
        } else if (rc < 0) {
            kb_log(KB_LOG_ERROR, "tunnel %s: %s", t->conf->name, e.msg);
        } else {
            if (v.would_deny) {
                char summary[512];
                kb_verdict_summary(&v, summary, sizeof summary);
                kb_log(KB_LOG_WARN, "tunnel %s: %s", t->conf->name, summary);
            }
            g = calloc(1, sizeof *g);
            if (g == NULL || gen_peer(g, t->conf, pol, &e) != 0 ||
                kb_identity_new(&d, &objs, &g->id, &e) != 0 ||
                kb_tls_client_new(&g->peer, g->id, &g->client, &e) != 0) {
                kb_log(KB_LOG_ERROR, "tunnel %s: %s", t->conf->name, g ? e.msg : "out of memory");
                if (g != NULL) {
                    g->refs = 1;
                    gen_put(g);
                }
                g = NULL;
            } else {
                g->refs = 1;
                g->x = x;
                kb_tls_client_set_admission(g->client, gen_admitted, g);
                /* As many key objects as handshake threads: full handshakes sign in parallel
                 * where the token allows it. */
                kb_signer_set_pool(g->id->signer, x->n_threads);
                kb_log(KB_LOG_INFO, "tunnel %s: %s -> %s as %s (key '%s' on token '%s')",
                       t->conf->name, t->conf->listen, t->conf->connect, g->id->subject,
                       d.key->facts.label, d.key->token->facts.label);
            }
        }
        pthread_mutex_lock(&x->lock);
        /* Open connections keep their generation; one whose key the policy no longer
         * admits (another key is, or none) answers no more certificate requests. */
        if (t->gen != NULL && (g == NULL || strcmp(t->gen->id->key_uri, g->id->key_uri) != 0))
            t->gen->retired = true;
        gen_put(t->gen);
        t->gen = g;
        pthread_mutex_unlock(&x->lock);
        admitted += g != NULL;
        kb_objects_free(&objs);
        kb_token_list_free(&tokens);
        if (uri)
            p11_kit_uri_free(uri);
    }
    kb_trust_free(trust);
    kb_policy_free(pol);
    return admitted;
}

/* New settings for the tunnels that exist; listeners stay as they are until a restart. */
static void reload_config(struct ctx *x)
{
    static kb_tunnel_conf fresh[KB_TUNNEL_MAX];
    const char *path = x->env->config_path;
    size_t n = 0;
    kb_err err;
    FILE *f = kb_trustfile_fopen(path, "config", 0, &err);
    if (f == NULL || kb_tunnel_conf_parse(f, path, fresh, &n, &err) != 0) {
        kb_log(KB_LOG_ERROR, "reload: %s; the old settings stay", err.msg);
        if (f != NULL)
            fclose(f);
        return;
    }
    fclose(f);
    for (size_t i = 0; i < x->n; i++) {
        kb_tunnel_conf *old = x->tunnels[i].conf;
        size_t j;
        for (j = 0; j < n && strcmp(fresh[j].name, old->name) != 0; j++)
            ;
        if (j == n) {
            kb_log(KB_LOG_WARN, "tunnel %s is no longer in %s: it runs on until a restart",
                   old->name, path);
            continue;
        }
        if (strcmp(fresh[j].listen, old->listen) != 0)
            kb_log(KB_LOG_WARN, "tunnel %s: listen = %s takes effect at a restart", old->name,
                   fresh[j].listen);
        snprintf(fresh[j].listen, sizeof fresh[j].listen, "%s", old->listen);
        fresh[j].line = old->line;
        *old = fresh[j];
    }
    for (size_t j = 0; j < n; j++) {
        size_t i;
        for (i = 0; i < x->n && strcmp(fresh[j].name, x->tunnels[i].conf->name) != 0; i++)
            ;
        if (i == x->n)
            kb_log(KB_LOG_WARN, "new tunnel %s in %s starts at a restart", fresh[j].name, path);
    }
}

static void stats(struct ctx *x)
{
    for (size_t i = 0; i < x->n; i++) {
        struct tunnel *t = &x->tunnels[i];
        struct kb_tls_counts n = {0};
        unsigned long sigs = 0;
        pthread_mutex_lock(&x->lock);
        unsigned active = t->active;
        unsigned long total = t->total, failed = t->failed;
        if (t->gen) {
            kb_tls_counts(t->gen->client, &n);
            sigs = kb_signer_signatures(t->gen->id->signer);
        }
        pthread_mutex_unlock(&x->lock);
        kb_log(KB_LOG_INFO,
               "tunnel %s: %u open, %lu accepted, %lu failed; handshakes %lu full, %lu resumed; "
               "%lu token signatures; certificate requests after the handshake: %lu "
               "post-handshake, %lu renegotiations, %lu refused",
               t->conf->name, active, total, failed, n.full, n.resumed, sigs, n.post_handshake,
               n.renegotiations, n.reauth_refused);
    }
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    struct pump_loop *main_pl = ev_userdata(loop);
    struct ctx *x = main_pl->x;
    if (w->signum == SIGUSR1) {
        stats(x);
    } else if (w->signum == SIGHUP) {
        sd_notify(0, "RELOADING=1");
        kb_log(KB_LOG_INFO, "reloading the settings, the policy and the certificates");
        kb_pin_forget_rejections();
        if (x->env->config_path != NULL)
            reload_config(x);
        kb_err err;
        if (admit(x, &err) < 0)
            kb_log(KB_LOG_ERROR, "reload: %s", err.msg);
        for (size_t i = 0; i < x->n; i++) {
            struct tunnel *t = &x->tunnels[i];
            pthread_mutex_lock(&x->lock);
            bool want = t->gen != NULL && t->active < t->conf->max_connections && !x->draining;
            pthread_mutex_unlock(&x->lock);
            if (want && !t->accepting)
                ev_io_start(loop, &t->lw);
            else if (!want && t->accepting)
                ev_io_stop(loop, &t->lw);
            t->accepting = want;
        }
        sd_notify(0, "READY=1");
    } else {
        sd_notify(0, "STOPPING=1");
        pthread_mutex_lock(&x->lock);
        unsigned active = x->active;
        x->draining = true;
        pthread_mutex_unlock(&x->lock);
        kb_log(KB_LOG_INFO, "stopping: no new connections; %u open to drain", active);
        for (size_t i = 0; i < x->n; i++) {
            ev_io_stop(loop, &x->tunnels[i].lw);
            x->tunnels[i].accepting = false;
        }
        if (active == 0)
            ev_break(loop, EVBREAK_ALL);
        else
            ev_timer_start(loop, &x->drain);
    }
}

static void on_resume(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    struct pump_loop *main_pl = ev_userdata(loop);
    ev_async_send(loop, &main_pl->x->main_wake); /* it re-arms what has room */
}

static void on_drain_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    struct pump_loop *main_pl = ev_userdata(loop);
    pthread_mutex_lock(&main_pl->x->lock);
    unsigned active = main_pl->x->active;
    pthread_mutex_unlock(&main_pl->x->lock);
    kb_log(KB_LOG_WARN, "drain timeout: closing %u connections", active);
    ev_break(loop, EVBREAK_ALL);
}

static void on_stop(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void *loop_thread(void *arg)
{
    struct pump_loop *pl = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    ev_run(pl->loop, 0);
    return NULL;
}

/* About one loop per core: established connections are spread over them. */
static unsigned loops_wanted(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 8 ? 8 : (unsigned)n;
}

int kb_tunnel_run(kb_tunnel_conf *confs, size_t n, const struct kb_tunnel_env *env, kb_err *err)
{
    struct ctx x = {.env = env, .n = n};
    x.tunnels = calloc(n, sizeof *x.tunnels);
    if (x.tunnels == NULL)
        return kb_err_set(err, "out of memory");
    int rc = -1;
    for (size_t i = 0; i < n; i++) {
        struct tunnel *t = &x.tunnels[i];
        t->conf = &confs[i];
        t->ctx = &x;
        t->lfd = -1;
    }
    /* Two descriptors per connection: as many as the hard limit allows. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    x.n_threads = env->workers ? env->workers : 4;
    int admitted = admit(&x, err);
    if (admitted < 0)
        goto out;
    if (admitted == 0) {
        kb_err_set(err, "no tunnel is admitted by the policy; nothing to listen on");
        rc = 1;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (open_listener(&x.tunnels[i], err) != 0)
            goto out;
    pthread_mutex_init(&x.lock, NULL);
    pthread_cond_init(&x.work, NULL);
    x.n_loops = loops_wanted();
    x.loops = calloc(x.n_loops, sizeof *x.loops);
    if (x.loops == NULL) {
        kb_err_set(err, "out of memory");
        goto out;
    }
    for (unsigned i = 0; i < x.n_loops; i++) {
        struct pump_loop *pl = &x.loops[i];
        pl->x = &x;
        pl->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
        if (pl->loop == NULL) {
            kb_err_set(err, "cannot create an event loop");
            goto out;
        }
        ev_set_userdata(pl->loop, pl);
        ev_async_init(&pl->wake, on_done);
        ev_async_start(pl->loop, &pl->wake);
        ev_async_init(&pl->stop_w, on_stop);
        ev_async_start(pl->loop, &pl->stop_w);
    }
    x.loop = x.loops[0].loop;
    ev_async_init(&x.main_wake, on_main_wake);
    ev_async_start(x.loop, &x.main_wake);
    ev_signal_init(&x.sig_term, on_signal, SIGTERM);
    ev_signal_init(&x.sig_int, on_signal, SIGINT);
    ev_signal_init(&x.sig_hup, on_signal, SIGHUP);
    ev_signal_init(&x.sig_usr1, on_signal, SIGUSR1);
    ev_signal_start(x.loop, &x.sig_term);
    ev_signal_start(x.loop, &x.sig_int);
    ev_signal_start(x.loop, &x.sig_hup);
    ev_signal_start(x.loop, &x.sig_usr1);
    ev_timer_init(&x.drain, on_drain_timeout, env->drain_timeout_s, 0);
    ev_timer_init(&x.resume, on_resume, 0.25, 0);
    for (size_t i = 0; i < n; i++) {
        struct tunnel *t = &x.tunnels[i];
        ev_io_init(&t->lw, on_accept, t->lfd, EV_READ);
        t->lw.data = t;
        if (t->gen != NULL) {
            ev_io_start(x.loop, &t->lw);
            t->accepting = true;
        }
        kb_log(KB_LOG_INFO, "tunnel %s: listening on %s%s", t->conf->name, t->conf->listen,
               t->gen ? "" : " (not admitted: not accepting)");
    }
    /* Fewer threads than wanted still work; none at all would queue handshakes forever. */
    x.threads = calloc(x.n_threads, sizeof *x.threads);
    unsigned started = 0;
    int perr = x.threads ? 0 : ENOMEM;
    while (x.threads && started < x.n_threads &&
           (perr = pthread_create(&x.threads[started], NULL, worker, &x)) == 0)
        started++;
    x.n_threads = started;
    x.n_pumping = 1;
    for (unsigned i = 1; i < x.n_loops; i++) {
        x.loops[i].has_thread =
            pthread_create(&x.loops[i].thread, NULL, loop_thread, &x.loops[i]) == 0;
        if (!x.loops[i].has_thread)
            break;
        x.n_pumping = i + 1;
    }
    if (x.n_threads == 0) {
        kb_err_set(err, "cannot start handshake threads: %s", strerror(perr));
        x.draining = true;
    } else {
        kb_log(KB_LOG_INFO, "%u event loops, %u handshake threads", x.n_pumping, x.n_threads);
        sd_notify(0, "READY=1\nSTATUS=tunnels listening");
        ev_run(x.loop, 0);
    }
    for (unsigned i = 1; i < x.n_loops; i++) {
        if (x.loops[i].has_thread) {
            ev_async_send(x.loops[i].loop, &x.loops[i].stop_w);
            pthread_join(x.loops[i].thread, NULL);
        }
    }
    stats(&x);
    pthread_mutex_lock(&x.lock);
    x.stop = true;
    pthread_cond_broadcast(&x.work);
    pthread_mutex_unlock(&x.lock);
    for (unsigned i = 0; x.threads && i < x.n_threads; i++)
        pthread_join(x.threads[i], NULL);
    free(x.threads);
    /* What the workers finished after the loops stopped, then whatever is still open; the
     * loops' threads are gone, so this thread may touch every connection. */
    for (unsigned i = 0; i < x.n_loops; i++)
        on_done(x.loops[i].loop, &x.loops[i].wake, 0);
    x.draining = false;
    while (x.queue != NULL) {
        struct conn *c = x.queue;
        x.queue = c->next;
        conn_abort(&x, c, "stopping"); /* a handshake or a request not done */
    }
    /* What is still open ends as it stands: orderly when nothing was in flight, else an
     * abort, so that no stream cut here passes for a complete one. */
    while (x.all != NULL) {
        struct conn *c = x.all;
        if (c->reauth || c->cut || c->c2s_len > 0 || c->s2c_len > 0)
            conn_abort(&x, c, "stopping");
        else
            conn_close(&x, c, "stopping");
    }
    rc = x.n_threads == 0 ? -1 : 0;
out:
    for (size_t i = 0; i < n; i++) {
        struct tunnel *t = &x.tunnels[i];
        if (t->lfd >= 0) {
            close(t->lfd);
            struct stat st;
            if (t->where.is_unix && !t->where.activated && stat(t->where.path, &st) == 0 &&
                st.st_ino == t->sock_ino)
                unlink(t->where.path);
        }
    }
    for (size_t i = 0; i < n; i++)
        gen_put(x.tunnels[i].gen);
    for (unsigned i = 0; x.loops && i < x.n_loops; i++)
        if (x.loops[i].loop)
            ev_loop_destroy(x.loops[i].loop);
    free(x.loops);
    free(x.tunnels);
    return rc;
}
