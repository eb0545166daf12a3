/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "src/tunnel/shared.h"
#include "src/attest/attester.h"

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

/* On the main loop: accept again where there is room; end a drain when all are closed. */
static void on_main_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)w;
    (void)revents;
    struct ctx *x = ev_userdata(loop);
    pthread_mutex_lock(&x->state_lock);
    unsigned active = x->active;
    for (size_t i = 0; i < x->n; i++) {
        struct tunnel *t = &x->tunnels[i];
        if (!t->accepting && !x->draining && t->active < t->conf->max_connections) {
            ev_io_start(loop, &t->lw);
            t->accepting = true;
            t->full = false;
        }
    }
    pthread_mutex_unlock(&x->state_lock);
    if (x->draining && active == 0)
        ev_break(loop, EVBREAK_ALL);
}

static void stats(struct ctx *x)
{
    for (size_t i = 0; i < x->n; i++) {
        struct tunnel *t = &x->tunnels[i];
        pthread_mutex_lock(&x->state_lock);
        unsigned active = t->active;
        unsigned long total = t->total, failed = t->failed;
        struct kb_tun_totals sum;
        kb_tun_totals(t, &sum);
        pthread_mutex_unlock(&x->state_lock);
        const struct kb_tls_counts n = sum.tls;
        kb_log(KB_LOG_INFO,
               "tunnel %s: %u open, %lu accepted, %lu failed; handshakes %lu full, %lu resumed; "
               "%lu token signatures; certificate requests after the handshake: %lu "
               "post-handshake, %lu renegotiations, %lu refused; resumptions on a loop redone on "
               "a worker: %lu",
               t->conf->name, active, total, failed, n.full, n.resumed, sum.sigs, n.post_handshake,
               n.renegotiations, n.reauth_refused, n.redone);
    }
}

/* The policy again, then the next time it must be asked. A tunnel whose device is not
 * admitted keeps accepting: each client is reset at once with a log line, rather than
 * left to its own timeout in the listen queue. */
static void readmit(struct ctx *x, const char *why)
{
    kb_err err;
    if (kb_tun_token_recover(x, &err) != 0) {
        /* Asked now, a lost module would deny every device: keep the verdicts it made. */
        kb_log(KB_LOG_WARN, "%s: the token is not back yet (%s); keeping the current admission",
               why, err.msg);
        x->next_check = (long long)time(NULL) + 5;
    } else if (kb_tun_admit(x, &err) < 0) {
        kb_log(KB_LOG_ERROR, "%s: %s", why, err.msg);
        x->next_check = (long long)time(NULL) + x->recheck_s;
    }
    for (size_t i = 0; i < x->n; i++) {
        struct tunnel *t = &x->tunnels[i];
        pthread_mutex_lock(&x->state_lock);
        bool want = t->active < t->conf->max_connections && !x->draining;
        t->full = !want && !x->draining; /* a lower max-connections: a close says when */
        pthread_mutex_unlock(&x->state_lock);
        if (want && !t->accepting)
            ev_io_start(x->loop, &t->lw);
        else if (!want && t->accepting)
            ev_io_stop(x->loop, &t->lw);
        t->accepting = want;
    }
    long long in = x->next_check - (long long)time(NULL);
    ev_timer_stop(x->loop, &x->recheck);
    ev_timer_set(&x->recheck, in < 1 ? 1 : (double)in, 0);
    ev_timer_start(x->loop, &x->recheck);
}

static void on_recheck(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    struct ctx *x = ev_userdata(loop);
    kb_log(KB_LOG_INFO, "the policy again: a certificate, a CRL or the recheck interval is due");
    readmit(x, "admission");
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    struct ctx *x = ev_userdata(loop);
    if (w->signum == SIGUSR1) {
        stats(x);
    } else if (w->signum == SIGHUP) {
        sd_notify(0, "RELOADING=1");
        pthread_mutex_lock(&x->state_lock);
        x->reloads++;
        pthread_mutex_unlock(&x->state_lock);
        kb_log(KB_LOG_INFO, "reloading the settings, the policy and the certificates");
        kb_pin_forget_rejections();
        if (x->env->config_path != NULL)
            kb_tun_reload_config(x);
        readmit(x, "reload");
        sd_notify(0, "READY=1");
    } else {
        sd_notify(0, "STOPPING=1");
        pthread_mutex_lock(&x->state_lock);
        unsigned active = x->active;
        x->draining = true;
        pthread_mutex_unlock(&x->state_lock);
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
    struct ctx *x = ev_userdata(loop);
    ev_async_send(loop, &x->main_wake); /* it re-arms what has room */
}

static void on_drain_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    struct ctx *x = ev_userdata(loop);
    pthread_mutex_lock(&x->state_lock);
    unsigned active = x->active;
    pthread_mutex_unlock(&x->state_lock);
    kb_log(KB_LOG_WARN, "drain timeout: closing %u connections", active);
    ev_break(loop, EVBREAK_ALL);
}

static void on_purge(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    struct ctx *x = ev_userdata(loop);
    for (struct conn *c = kb_tun_purge_gone(x), *next; c != NULL; c = next) {
        next = c->next;
        kb_log(KB_LOG_INFO, "tunnel %s: %s: the local client left before its handshake",
               c->gen->conf.name, c->peer);
        kb_tun_conn_abort(x, c, NULL);
    }
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

/* One loop per two CPUs, at most 8: established connections are spread over them. The
 * clients a tunnel serves, and the kernel's work for their bytes, run on the same CPUs, so
 * a loop per CPU mostly sleeps and wakes, and each wake is a switch of threads: on a 2-CPU
 * VM 20-25 us by perf's share, a fifth of the CPU per new connection. One loop instead of
 * two there, at the same new connections per second: 1.5 switches per connection instead
 * of 3.9 and 18% less CPU in three runs side by side, 325 us against 443-483 in make
 * bench's TLS 1.3 rounds; bulk throughput is the same (one connection is on one loop
 * either way). */
static unsigned loops_wanted(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN) / 2;
    return n < 1 ? 1 : n > 8 ? 8 : (unsigned)n;
}

int kb_tunnel_run(kb_tunnel_conf *confs, size_t n, const struct kb_tunnel_env *env, kb_err *err)
{
    struct ctx x = {.env = env, .n = n};
    unsigned n_made = 0; /* loops made, to destroy at the end */
    x.recheck_s = env->admission_recheck_s ? env->admission_recheck_s : 600;
    x.cancel[0] = x.cancel[1] = -1;
    x.status_fd = -1;
    if (pipe2(x.cancel, O_CLOEXEC | O_NONBLOCK) != 0)
        return kb_err_set(err, "cannot make a pipe: %s", strerror(errno));
    pthread_mutex_init(&x.state_lock, NULL);
    pthread_mutex_init(&x.queue_lock, NULL);
    pthread_cond_init(&x.work, NULL);
    x.tunnels = calloc(n, sizeof *x.tunnels);
    if (x.tunnels == NULL)
        return kb_err_set(err, "out of memory");
    int rc = -1;
    for (size_t i = 0; i < n; i++) {
        struct tunnel *t = &x.tunnels[i];
        t->conf = &confs[i];
        snprintf(t->name, sizeof t->name, "%s", confs[i].name);
        snprintf(t->listen, sizeof t->listen, "%s", confs[i].listen);
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
    /* Listening first: a port in use is said before the token is touched (no login spent on
     * a tunnel that cannot start). A tunnel the policy does not admit closes its own at the
     * end, before anything was accepted. */
    for (size_t i = 0; i < n && !env->check_only; i++)
        if (kb_tun_listener_open(&x.tunnels[i], err) != 0)
            goto out;
    /* A service cannot be asked for the PIN: that is a setup to fix (exit 2), not a device
     * that fails admission because its keys stay hidden. */
    for (size_t i = 0; i < n; i++) {
        P11KitUri *uri = NULL;
        int bad = confs[i].key[0] && kb_uri_parse(confs[i].key, 0, &uri, err) != 0;
        bad = bad || kb_objects_pin_reachable(env->p11, uri, env->pin, err) != 0;
        if (uri)
            p11_kit_uri_free(uri);
        if (bad)
            goto out;
    }
    int admitted = kb_tun_admit(&x, err);
    if (admitted < 0)
        goto out;
    if (env->check_only) {
        rc = (size_t)admitted == n ? 0 : 1;
        if (rc == 1)
            kb_err_set(err, "%zu of %zu tunnel%s not admitted by the policy", n - (size_t)admitted,
                       n, n == 1 ? " is" : "s are");
        goto out;
    }
    if (admitted == 0) {
        kb_err_set(err, "no tunnel is admitted by the policy; nothing to listen on");
        rc = 1;
        goto out;
    }
    if (kb_tun_status_start(&x, err) != 0)
        goto out;
    /* The control loop pumps nothing: a reload's token enumeration and login stall no
     * established connection. */
    x.loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    x.n_loops = loops_wanted();
    x.loops = calloc(x.n_loops, sizeof *x.loops);
    if (x.loop == NULL || x.loops == NULL) {
        kb_err_set(err, x.loop ? "out of memory" : "cannot create an event loop");
        goto out;
    }
    ev_set_userdata(x.loop, &x);
    n_made = x.n_loops;
    for (unsigned i = 0; i < x.n_loops; i++) {
        struct pump_loop *pl = &x.loops[i];
        pl->x = &x;
        pthread_mutex_init(&pl->done_lock, NULL);
        pl->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
        if (pl->loop == NULL) {
            kb_err_set(err, "cannot create an event loop");
            goto out;
        }
        ev_set_userdata(pl->loop, pl);
        ev_async_init(&pl->wake, kb_tun_on_done);
        ev_async_start(pl->loop, &pl->wake);
        ev_async_init(&pl->stop_w, on_stop);
        ev_async_start(pl->loop, &pl->stop_w);
    }
    ev_async_init(&x.main_wake, on_main_wake);
    ev_async_start(x.loop, &x.main_wake);
    kb_tun_tokenwatch_start(&x);
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
    ev_timer_init(&x.purge, on_purge, 1, 1);
    ev_timer_start(x.loop, &x.purge);
    ev_timer_init(&x.recheck, on_recheck, 1, 0);
    long long in = x.next_check - (long long)time(NULL);
    ev_timer_set(&x.recheck, in < 1 ? 1 : (double)in, 0);
    ev_timer_start(x.loop, &x.recheck);
    for (size_t i = 0; i < n; i++) {
        struct tunnel *t = &x.tunnels[i];
        ev_io_init(&t->lw, kb_tun_on_accept, t->lfd, EV_READ);
        t->lw.data = t;
        ev_io_start(x.loop, &t->lw);
        t->accepting = true;
        kb_log(KB_LOG_INFO, "tunnel %s: listening on %s%s", t->conf->name, t->conf->listen,
               t->gen ? "" : " (not admitted: its clients are reset)");
    }
    /* Fewer pumping loops than wanted still work; none cannot. */
    unsigned pumping = 0;
    while (pumping < x.n_loops &&
           pthread_create(&x.loops[pumping].thread, NULL, loop_thread, &x.loops[pumping]) == 0)
        x.loops[pumping++].has_thread = true;
    bool started = pumping > 0 && kb_tun_workers_start(&x, err) == 0;
    if (pumping == 0)
        kb_err_set(err, "cannot start an event loop thread");
    if (started) {
        x.n_loops = pumping; /* new connections go to loops that run */
        kb_log(KB_LOG_INFO, "%u event loops, %u handshake threads", pumping, x.n_threads);
        pthread_mutex_lock(&x.state_lock);
        x.ready = true;
        pthread_mutex_unlock(&x.state_lock);
        sd_notify(0, "READY=1\nSTATUS=tunnels listening");
        ev_run(x.loop, 0);
    }
    for (unsigned i = 0; i < pumping; i++) {
        ev_async_send(x.loops[i].loop, &x.loops[i].stop_w);
        pthread_join(x.loops[i].thread, NULL);
        x.loops[i].has_thread = false;
    }
    x.loops_stopped = true;
    stats(&x);
    kb_tun_workers_stop(&x);
    kb_tun_tokenwatch_stop(&x);
    /* What the workers finished after the loops stopped, then whatever is still open; the
     * loops' threads are gone, so this thread may touch every connection. */
    for (unsigned i = 0; i < pumping; i++)
        kb_tun_on_done(x.loops[i].loop, &x.loops[i].wake, 0);
    x.draining = false;
    for (struct conn *c; (c = kb_tun_dequeue_any(&x)) != NULL;)
        kb_tun_conn_abort(&x, c, "stopping"); /* a handshake or a request not done */
    /* What is still open ends as it stands: orderly when nothing was in flight, else an
     * abort, so that no stream cut here passes for a complete one. */
    while (x.all != NULL) {
        struct conn *c = x.all;
        if (c->reauth || c->handshaking || c->cut || c->c2s_len > 0 || c->s2c_len > 0)
            kb_tun_conn_abort(&x, c, "stopping");
        else
            kb_tun_conn_close(&x, c, "stopping");
    }
    rc = started ? 0 : -1;
out:
    kb_tun_status_stop(&x); /* its thread reads the tunnels */
    for (size_t i = 0; i < n; i++)
        kb_tun_listener_close(&x.tunnels[i]);
    for (size_t i = 0; i < n; i++) {
        kb_tun_gen_put(x.tunnels[i].gen);
        json_object_put(x.tunnels[i].admission_json);
        json_object_put(x.tunnels[i].cert_json);
    }
    for (unsigned i = 0; i < n_made; i++) {
        if (x.loops[i].loop)
            ev_loop_destroy(x.loops[i].loop);
        pthread_mutex_destroy(&x.loops[i].done_lock);
    }
    if (x.loop)
        ev_loop_destroy(x.loop);
    free(x.loops);
    free(x.tunnels);
    kb_attester_free(x.attester);
    close(x.cancel[0]);
    close(x.cancel[1]);
    pthread_cond_destroy(&x.work);
    pthread_mutex_destroy(&x.queue_lock);
    pthread_mutex_destroy(&x.state_lock);
    return rc;
}
