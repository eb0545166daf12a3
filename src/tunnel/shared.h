/* SPDX-License-Identifier: Apache-2.0 */
/* Inside the tunnel: what its rooms share, and nobody else.
 *
 *   tunnel.c      the run: the control loop (signals, reloads, drain, capacity), which
 *                 pumps no connection, and the pumping loops' threads;
 *   listeners.c   listening sockets and accepting (on the control loop);
 *   handshakes.c  the worker threads: TCP connects, handshakes, answers to the server's
 *                 later requests for the certificate (anything that may sign);
 *   resume.c      where a new connection's handshake runs: a resumption on its pumping
 *                 loop (nothing signs there), anything else on a worker;
 *   pump.c        established connections on their pumping loop, and their end;
 *   admission.c   the policy's verdict per tunnel, made into generations; reloads;
 *   tokenwatch.c  a token module that lost its state (a TPM reset), initialised again;
 *   status.c      /status and /metrics (libmicrohttpd, on its own thread, reading under
 *                 state_lock only).
 *
 * A connection is touched by one thread at a time: its pumping loop, or the worker that
 * holds it (handed over through the queue and back through the loop's done list). What a
 * reload may change lives in the generation a connection holds (gen->conf), never read
 * from the shared configuration off the control loop. Locks, each named for what it
 * guards: x->state_lock (generations and their refs, counters, the list of every
 * connection, draining), x->queue_lock (the handshake queue and stop, with x->work), and
 * each loop's done_lock (its done list). state_lock is never held while taking another. */
#ifndef KB_TUNNEL_SHARED_H
#define KB_TUNNEL_SHARED_H

#include <ev.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "src/tls/client.h"
#include "src/tls/identity.h"
#include "src/tunnel/tunnel.h"

/* Why a connection failed, for /metrics (kb_tun_failed). */
enum kb_tun_fail {
    KB_FAIL_NOT_ADMITTED, /* reset: the device is not (or no longer) admitted */
    KB_FAIL_QUEUE_FULL,   /* reset: max-pending-handshakes */
    KB_FAIL_BACKEND,      /* the connection to the server or the handshake failed */
    KB_FAIL_TOKEN,        /* the handshake failed because the token did not sign */
    KB_FAIL_REJECTED,     /* the server rejected our certificate */
    KB_FAIL_REAUTH,       /* a later request for the certificate was not answered */
    KB_FAIL_N
};
extern const char *const kb_tun_fail_names[KB_FAIL_N];

/* What a tunnel's generations did: handshakes, token signatures and their times. */
struct kb_tun_totals {
    struct kb_tls_counts tls;
    unsigned long sigs;
    struct kb_sign_latency latency;
};

/* Per direction, and only while bytes wait: four TLS records. */
#define KB_TUN_BUF 65536

/* The settings, identity and TLS client of a tunnel at one time; a reload makes a new one,
 * and the old one lives until its last connection ends. Immutable once made, but for refs
 * and retired (state_lock). */
struct gen {
    kb_tunnel_conf conf; /* the settings it was made with: what its connections read */
    kb_tls_peer peer;    /* its proxy and ALPN point into conf */
    char *priority;      /* the policy's, copied: the policy is freed after a reload */
    kb_identity *id;
    kb_tls_client *client;
    unsigned refs;
    /* The policy no longer admits this key: queued handshakes are dropped and the
     * server's later requests are not answered. */
    bool retired;
    struct ctx *x;
    struct tunnel *t;
    struct gen *next_live; /* the tunnel's generations not yet freed (state_lock) */
};

struct tunnel {
    kb_tunnel_conf *conf; /* the control loop's only */
    struct gen *gen;      /* NULL: not admitted, not accepting (state_lock) */
    struct kb_listen where;
    int lfd;
    ev_io lw;
    bool accepting;
    bool full;      /* not accepting for max-connections: a close wakes the control loop */
    ino_t sock_ino; /* our unix socket file: only that one is removed at the end */
    unsigned active;
    unsigned long total, failed;
    unsigned long failed_by[KB_FAIL_N];
    /* Its own handshake queue and bounds (queue_lock), so that no tunnel holds every
     * worker: a backend that never answers starves only its own clients. */
    struct conn *q_head, *q_tail;
    unsigned pending, in_flight;
    char why_not[1100]; /* while gen is NULL: why, for each client reset (control loop) */
    /* Counters for the process's life (state_lock): those of the generations already
     * freed; the live ones (gens) add theirs. */
    struct gen *gens;
    struct kb_tun_totals past;
    /* For /status (state_lock): the last verdict ({"decision", "reason", "failed_checks"}),
     * the certificate in use (NULL: none), and where it connects now. */
    json_object *admission_json, *cert_json;
    char connect_now[300];
    /* Its name and listen address as at start (a reload rewrites conf, not these). */
    char name[64], listen[4200];
    struct ctx *ctx;
};

/* Counts a failed connection; state_lock held. */
static inline void kb_tun_failed(struct tunnel *t, enum kb_tun_fail why)
{
    t->failed++;
    t->failed_by[why]++;
}

/* A pumping loop and its thread. */
struct pump_loop {
    struct ev_loop *loop;
    struct ctx *x;
    ev_async wake; /* handshakes finished for this loop (done list) */
    ev_async stop_w;
    pthread_mutex_t done_lock;
    struct conn *done;
    pthread_t thread;
    bool has_thread;
};

struct conn {
    struct tunnel *t;
    struct pump_loop *pl; /* the loop that pumps it */
    struct gen *gen;
    int cfd, sfd;
    gnutls_session_t s;
    ev_io cw, sw;
    ev_timer idle;
    ev_timer hs_timer; /* the connect's and then the handshake's deadline, on the loop */
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
    bool gone;         /* the local client left before its handshake: dropped, not a failure */
    bool on_loop;      /* in the done list to begin a resumption on its loop (resume.c) */
    bool handshaking;  /* that resumption is under way */
    bool resumed_here; /* it succeeded: sfd is non-blocking already */
    bool hs_connected; /* that resumption's first bytes went out: its deadline is the handshake's */
    /* A read found the socket drained: the next waits for the loop to say it is readable
     * (level-triggered), a system call saved per side and turn. */
    bool client_drained, server_drained;
    unsigned long long up, down; /* bytes client->server, server->client */
    long long start_ms;
    struct kb_tls_result r;
    kb_err err;
    int rc;
    struct conn *next;                /* in the worker queue or the done list */
    struct conn *all_prev, *all_next; /* every connection, to close them at the end */
};

struct ctx {
    struct ev_loop *loop; /* the control loop: listeners, signals, reloads */
    struct pump_loop *loops;
    unsigned n_loops, rr;
    ev_async main_wake; /* a connection closed: capacity, drain */
    const struct kb_tunnel_env *env;
    struct tunnel *tunnels;
    size_t n;
    ev_signal sig_term, sig_int, sig_hup, sig_usr1;
    ev_timer drain;
    ev_timer resume;      /* accepting again after running out of descriptors */
    ev_timer purge;       /* kb_tun_purge_gone */
    ev_timer recheck;     /* the policy again, at next_check */
    ev_async lost_w;      /* a module was marked lost (tokenwatch.c) */
    ev_timer recover;     /* kb_tun_token_recover, until it succeeds */
    long long next_check; /* wall-clock seconds, set by kb_tun_admit */
    unsigned recheck_s;   /* the longest wait between two evaluations */
    /* Under require-attestation: kept across evaluations so that evidence is reused for at
     * most recheck_s (in memory only); used on the control loop alone. */
    struct kb_attester *attester;
    pthread_mutex_t state_lock;
    bool draining;
    unsigned active;
    struct conn *all;
    pthread_mutex_t queue_lock;
    pthread_cond_t work;
    size_t next_queue;      /* the tunnel whose queue a free worker looks at first */
    unsigned max_in_flight; /* per tunnel */
    bool stop;
    pthread_t *threads;
    unsigned n_threads;
    /* Readable once the tunnel stops: connects and handshakes in flight give up at once,
     * so that joining the workers is bounded (peer.cancel_fd points here). */
    int cancel[2];
    /* /status and /metrics (status.c); ready and reloads under state_lock. */
    struct MHD_Daemon *status;
    struct kb_listen status_where;
    int status_fd;
    ino_t status_ino;
    bool ready;
    unsigned long reloads;
    /* The pumping loops' threads have ended: what is left in a done list is ended by the
     * control thread, not begun. */
    bool loops_stopped;
};

/* pump.c, on the connection's pumping loop */
void kb_tun_pump(struct ctx *x, struct conn *c);
void kb_tun_conn_close(struct ctx *x, struct conn *c, const char *why);
void kb_tun_conn_abort(struct ctx *x, struct conn *c, const char *why); /* resets both sides */
void kb_tun_on_done(struct ev_loop *loop, ev_async *w, int revents);
/* From any thread: c onto its loop's done list, the loop woken; c is the loop's from then
 * on, and may be freed at once. */
void kb_tun_to_loop(struct conn *c);
/* Its watchers and idle timer, for a connection just accepted (c->gen set). */
void kb_tun_conn_watchers(struct conn *c);
/* Watches w's descriptor for events (0: not at all), touching the loop only if they change:
 * ev_io_set marks a descriptor new, and each such mark costs an epoll_ctl. */
void kb_tun_watch(struct ev_loop *loop, ev_io *w, int events);
/* A handshake ended (c->rc, c->err): the connection is pumped, or ended and counted. */
void kb_tun_handshake_done(struct ctx *x, struct conn *c);
void kb_tun_reset_close(int fd);

/* resume.c. kb_tun_handshake, on the control loop, gives a new connection to its pumping
 * loop when its handshake can resume there, else to the workers; kb_tun_resume_start
 * begins that on the loop (from its done list). */
void kb_tun_handshake(struct ctx *x, struct conn *c);
void kb_tun_resume_start(struct ctx *x, struct conn *c);

/* handshakes.c. kb_tun_enqueue gives c to the workers (a worker owns it until it is back
 * on its loop's done list); a new connection beyond its tunnel's max-pending-handshakes is
 * refused (-1: the caller resets it); a request for the certificate always goes in, first. */
int kb_tun_enqueue(struct ctx *x, struct conn *c);
/* kb_tun_enqueue for a new connection, which is reset (and counted) when refused. */
void kb_tun_to_workers(struct ctx *x, struct conn *c);
/* On the control loop, now and then: queued connections whose client has left are taken
 * out without waiting for their turn (behind a backend that never answers, that turn may
 * be minutes away), so they hold no place in max-pending-handshakes. Returns them, linked
 * by next, for the caller to end. */
struct conn *kb_tun_purge_gone(struct ctx *x);
/* The connections still queued at the end, one by one (NULL: none). */
struct conn *kb_tun_dequeue_any(struct ctx *x);
int kb_tun_workers_start(struct ctx *x, kb_err *err);
void kb_tun_workers_stop(struct ctx *x);

/* listeners.c, on the control loop */
int kb_tun_listener_open(struct tunnel *t, kb_err *err);
/* A listening socket on l (a unix socket made 0600, a stale one replaced); who and text
 * name it in errors. */
int kb_tun_socket_open(const struct kb_listen *l, const char *who, const char *text, int *fd,
                       ino_t *ino, kb_err *err);
void kb_tun_listener_close(struct tunnel *t);
void kb_tun_on_accept(struct ev_loop *loop, ev_io *w, int revents);

/* admission.c, on the control loop. kb_tun_admit evaluates the policy for every tunnel
 * and swaps generations; it sets next_check to the earliest moment a verdict may change:
 * a certificate's notAfter less min-remaining, its notAfter, a CRL's nextUpdate, or the
 * recheck interval. */
int kb_tun_admit(struct ctx *x, kb_err *err);
void kb_tun_reload_config(struct ctx *x);
void kb_tun_gen_put(struct gen *g); /* state_lock held */
/* For the process's life (reloads make new generations, they reset nothing): the freed
 * generations' totals and the live ones'; state_lock held. */
void kb_tun_totals(const struct tunnel *t, struct kb_tun_totals *out);

/* status.c, on the control loop: the server for env->status_addr (none when NULL), and
 * its end (the unix socket removed). */
int kb_tun_status_start(struct ctx *x, kb_err *err);
void kb_tun_status_stop(struct ctx *x);

/* tokenwatch.c, on the control loop. While a module is lost, connections that need a
 * signature on it fail at once (the signers refuse), resumed and established ones go on,
 * and the module is initialised again every second until that works. */
void kb_tun_tokenwatch_start(struct ctx *x);
void kb_tun_tokenwatch_stop(struct ctx *x);
/* 0: no module is lost (any more); -1 with err: one still is. */
int kb_tun_token_recover(struct ctx *x, kb_err *err);

#endif
