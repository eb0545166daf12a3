/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "src/tunnel/shared.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "src/util/log.h"
#include "src/util/net.h"

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

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

void kb_tun_on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct ctx *x = ev_userdata(loop);
    struct tunnel *t = w->data;
    for (int i = 0; i < 64; i++) {
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
        if (t->gen == NULL) {
            /* Not admitted: at once, and the same for a session that would resume. */
            char who[128];
            peer_name(fd, &ss, who, sizeof who);
            kb_log(KB_LOG_WARN, "tunnel %s: reset %s: %s", t->conf->name, who, t->why_not);
            struct linger l = {1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
            close(fd);
            pthread_mutex_lock(&x->state_lock);
            t->total++;
            kb_tun_failed(t, KB_FAIL_NOT_ADMITTED);
            pthread_mutex_unlock(&x->state_lock);
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
        c->pl = &x->loops[x->rr++ % x->n_loops];
        peer_name(fd, &ss, c->peer, sizeof c->peer);
        pthread_mutex_lock(&x->state_lock);
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
        if (active >= t->conf->max_connections)
            t->full = true; /* from now on a close wakes the control loop */
        pthread_mutex_unlock(&x->state_lock);
        kb_tun_conn_watchers(c);
        kb_tun_handshake(x, c);
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

int kb_tun_socket_open(const struct kb_listen *l, const char *who, const char *text, int *out,
                       ino_t *ino, kb_err *err)
{
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return kb_err_set(err, "%s: socket: %s", who, strerror(errno));
    int on = 1;
    if (!l->is_unix)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (l->is_unix) {
        struct stat st;
        if (lstat(l->path, &st) == 0) {
            if (!S_ISSOCK(st.st_mode)) {
                close(fd);
                return kb_err_set(err, "%s: %s exists and is not a socket; not replacing it", who,
                                  l->path);
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
                return kb_err_set(err, "%s: %s is %s; not replacing it", who, l->path,
                                  e == 0 ? "in use by another process" : strerror(e));
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
        return kb_err_set(err, "%s%scannot listen on %s: %s", who, *who ? ": " : "", text,
                          e == EADDRINUSE ? "something else listens there" : strerror(e));
    }
    struct stat st;
    *ino = 0;
    if (l->is_unix && stat(l->path, &st) == 0)
        *ino = st.st_ino;
    *out = fd;
    return 0;
}

int kb_tun_listener_open(struct tunnel *t, kb_err *err)
{
    struct kb_listen *l = &t->where;
    if (kb_listen_parse(t->conf->listen, l, err) != 0)
        return -1;
    if (l->activated)
        return activated_listener(t, err);
    char who[80] = "";
    if (!t->conf->from_cli) /* "cli" is no name the user gave */
        snprintf(who, sizeof who, "tunnel %s", t->conf->name);
    return kb_tun_socket_open(l, who, t->conf->listen, &t->lfd, &t->sock_ino, err);
}

void kb_tun_listener_close(struct tunnel *t)
{
    if (t->lfd < 0)
        return;
    close(t->lfd);
    t->lfd = -1;
    struct stat st;
    if (t->where.is_unix && !t->where.activated && stat(t->where.path, &st) == 0 &&
        st.st_ino == t->sock_ino)
        unlink(t->where.path);
}
