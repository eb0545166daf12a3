#include "config.h"

#include "src/tunnel/shared.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "src/util/log.h"

/* Gives c to the handshake workers: from then on a worker owns it until it is back on its
 * loop's done list. */
void kb_tun_enqueue(struct ctx *x, struct conn *c)
{
    pthread_mutex_lock(&x->queue_lock);
    c->next = NULL;
    if (x->queue_tail)
        x->queue_tail->next = c;
    else
        x->queue = c;
    x->queue_tail = c;
    pthread_cond_signal(&x->work);
    pthread_mutex_unlock(&x->queue_lock);
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
        while (x->queue == NULL && !x->stop)
            pthread_cond_wait(&x->work, &x->queue_lock);
        if (x->stop) {
            pthread_mutex_unlock(&x->queue_lock);
            return NULL;
        }
        struct conn *c = x->queue;
        x->queue = c->next;
        if (x->queue == NULL)
            x->queue_tail = NULL;
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
        } else {
            c->rc = kb_tls_connect(c->gen->client, &c->s, &c->sfd, &c->r, &c->err);
        }
        pthread_mutex_lock(&c->pl->done_lock);
        c->next = c->pl->done;
        c->pl->done = c;
        pthread_mutex_unlock(&c->pl->done_lock);
        ev_async_send(c->pl->loop, &c->pl->wake);
    }
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
    if (started == 0)
        return kb_err_set(err, "cannot start handshake threads: %s", strerror(perr));
    return 0;
}

void kb_tun_workers_stop(struct ctx *x)
{
    pthread_mutex_lock(&x->queue_lock);
    x->stop = true;
    pthread_cond_broadcast(&x->work);
    pthread_mutex_unlock(&x->queue_lock);
    for (unsigned i = 0; x->threads && i < x->n_threads; i++)
        pthread_join(x->threads[i], NULL);
    free(x->threads);
    x->threads = NULL;
}
