/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "src/tunnel/shared.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "src/util/log.h"

int kb_tun_enqueue(struct ctx *x, struct conn *c)
{
    struct tunnel *t = c->t;
    pthread_mutex_lock(&x->queue_lock);
    /* The generation's bound: t->conf is the control loop's, and a pumping loop gives
     * connections to the workers too. */
    if (!c->reauth && t->pending >= c->gen->conf.max_pending) {
        pthread_mutex_unlock(&x->queue_lock);
        return -1;
    }
    if (c->reauth) {
        /* An established connection waits: ahead of new ones. */
        c->next = t->q_head;
        t->q_head = c;
        if (t->q_tail == NULL)
            t->q_tail = c;
    } else {
        c->next = NULL;
        if (t->q_tail)
            t->q_tail->next = c;
        else
            t->q_head = c;
        t->q_tail = c;
    }
    t->pending++;
    pthread_cond_signal(&x->work);
    pthread_mutex_unlock(&x->queue_lock);
    return 0;
}

/* The next connection a free worker may take: round robin over the tunnels, skipping
 * those at their bound of handshakes in flight. queue_lock held. */
static struct conn *take(struct ctx *x)
{
    for (size_t k = 0; k < x->n; k++) {
        struct tunnel *t = &x->tunnels[(x->next_queue + k) % x->n];
        if (t->q_head == NULL || t->in_flight >= x->max_in_flight)
            continue;
        struct conn *c = t->q_head;
        t->q_head = c->next;
        if (t->q_head == NULL)
            t->q_tail = NULL;
        t->pending--;
        t->in_flight++;
        x->next_queue = (x->next_queue + k + 1) % x->n;
        return c;
    }
    return NULL;
}

struct conn *kb_tun_dequeue_any(struct ctx *x)
{
    for (size_t i = 0; i < x->n; i++) {
        struct tunnel *t = &x->tunnels[i];
        if (t->q_head != NULL) {
            struct conn *c = t->q_head;
            t->q_head = c->next;
            if (t->q_head == NULL)
                t->q_tail = NULL;
            t->pending--;
            return c;
        }
    }
    return NULL;
}

/* A client that closed without sending anything before its turn came: a handshake for it
 * would only hold a worker (and maybe a token signature) for nobody. One that sent a
 * request and half-closed is still waiting for the answer. */
static bool client_gone(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0)
        return false;
    if (p.revents & (POLLHUP | POLLERR))
        return true;
    char byte;
    return (p.revents & POLLRDHUP) && recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* Worker: the slow part, away from the loop. */
static void *worker(void *arg)
{
    struct ctx *x = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    for (;;) {
        pthread_mutex_lock(&x->queue_lock);
        struct conn *c = NULL;
        while (!x->stop && (c = take(x)) == NULL)
            pthread_cond_wait(&x->work, &x->queue_lock);
        if (x->stop) {
            pthread_mutex_unlock(&x->queue_lock);
            return NULL;
        }
        pthread_mutex_unlock(&x->queue_lock);
        pthread_mutex_lock(&x->state_lock);
        bool retired = c->gen->retired;
        pthread_mutex_unlock(&x->state_lock);
        if (c->reauth) {
            /* A record GnuTLS holds from an interrupted send goes out first, counted once;
             * the admission check (gen_admitted) runs inside kb_tls_reauth. */
            size_t sent = 0;
            c->rc = c->send_pending ? kb_tls_finish_send(c->s, &sent, &c->err) : 0;
            if (c->rc == 0 && sent > 0) {
                c->c2s_off += sent;
                c->up += sent;
                if (c->c2s_off == c->c2s_len) {
                    free(c->c2s);
                    c->c2s = NULL;
                    c->c2s_len = c->c2s_off = 0;
                }
            }
            c->send_pending = false;
            if (c->rc == 0)
                c->rc = kb_tls_reauth(c->s, c->reauth, &c->err);
        } else if (retired) {
            c->rc = kb_err_set(&c->err, "the device is no longer admitted for this endpoint");
            c->sfd = -1;
        } else if (client_gone(c->cfd)) {
            c->gone = true;
            c->rc = kb_err_set(&c->err, "the local client left before its handshake");
            c->sfd = -1;
        } else {
            c->rc = kb_tls_connect(c->gen->client, &c->s, &c->sfd, &c->r, &c->err);
        }
        struct tunnel *t = c->t;
        pthread_mutex_lock(&x->queue_lock);
        t->in_flight--;
        /* A worker waiting while this tunnel was at its bound may take its next one now. */
        pthread_cond_broadcast(&x->work);
        pthread_mutex_unlock(&x->queue_lock);
        /* Once on the done list c is its loop's, which may free it at once: not one more
         * look at it from here. */
        kb_tun_to_loop(c);
    }
}

void kb_tun_to_workers(struct ctx *x, struct conn *c)
{
    if (kb_tun_enqueue(x, c) == 0)
        return;
    /* At once, rather than a client waiting for its own timeout. */
    kb_log(KB_LOG_WARN,
           "tunnel %s: reset %s: %u handshakes already waiting (max-pending-handshakes)",
           c->gen->conf.name, c->peer, c->gen->conf.max_pending);
    pthread_mutex_lock(&x->state_lock);
    kb_tun_failed(c->t, KB_FAIL_QUEUE_FULL);
    pthread_mutex_unlock(&x->state_lock);
    kb_tun_conn_abort(x, c, NULL);
}

struct conn *kb_tun_purge_gone(struct ctx *x)
{
    struct conn *gone = NULL;
    pthread_mutex_lock(&x->queue_lock);
    for (size_t i = 0; i < x->n; i++) {
        struct tunnel *t = &x->tunnels[i];
        struct conn **pp = &t->q_head, *prev = NULL;
        while (*pp != NULL) {
            struct conn *c = *pp;
            if (!c->reauth && client_gone(c->cfd)) {
                *pp = c->next;
                t->pending--;
                c->next = gone;
                gone = c;
            } else {
                prev = c;
                pp = &c->next;
            }
        }
        t->q_tail = prev;
    }
    pthread_mutex_unlock(&x->queue_lock);
    return gone;
}

int kb_tun_workers_start(struct ctx *x, kb_err *err)
{
    /* Fewer threads than wanted still work; none at all would queue handshakes forever. */
    x->threads = calloc(x->n_threads, sizeof *x->threads);
    unsigned started = 0;
    int perr = x->threads ? 0 : ENOMEM;
    while (x->threads && started < x->n_threads &&
           (perr = pthread_create(&x->threads[started], NULL, worker, x)) == 0)
        started++;
    x->n_threads = started;
    /* One tunnel may use every worker; among several, none may hold more than half. */
    pthread_mutex_lock(&x->queue_lock);
    x->max_in_flight = x->n > 1 ? (started / 2 ? started / 2 : 1) : started;
    pthread_mutex_unlock(&x->queue_lock);
    if (started == 0)
        return kb_err_set(err, "cannot start handshake threads: %s", strerror(perr));
    return 0;
}

void kb_tun_workers_stop(struct ctx *x)
{
    /* Handshakes in flight give up now rather than at their timeout (up to an hour). */
    if (x->cancel[1] >= 0 && write(x->cancel[1], "x", 1) < 0)
        kb_log(KB_LOG_WARN, "cannot cancel the handshakes in flight: %s", strerror(errno));
    pthread_mutex_lock(&x->queue_lock);
    x->stop = true;
    pthread_cond_broadcast(&x->work);
    pthread_mutex_unlock(&x->queue_lock);
    for (unsigned i = 0; x->threads && i < x->n_threads; i++)
        pthread_join(x->threads[i], NULL);
    free(x->threads);
    x->threads = NULL;
}
