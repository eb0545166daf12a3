/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hostport.h"

long long kb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void keepalive(int fd)
{
    int on = 1, idle = 60, intvl = 10, cnt = 5;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

int kb_wait_fd(int fd, short events, int ms, int cancel_fd)
{
    struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = cancel_fd, .events = POLLIN}};
    int n;
    do {
        n = poll(p, cancel_fd >= 0 ? 2 : 1, ms);
    } while (n < 0 && errno == EINTR);
    if (n > 0 && cancel_fd >= 0 && (p[1].revents & POLLIN))
        return -2;
    return n;
}

int kb_tcp_connect_start(const struct sockaddr *sa, socklen_t len, int *out)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return errno;
    keepalive(fd);
    if (connect(fd, sa, len) != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return e;
    }
    *out = fd;
    return 0;
}

int kb_tcp_connect_end(int fd)
{
    int e = 0;
    socklen_t len = sizeof e;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
        return errno;
    return e;
}

/* One address: 0 connected, else the errno (ETIMEDOUT when the deadline passed, ECANCELED
 * when cancel_fd said so). */
static int try_one(const struct sockaddr *sa, socklen_t salen, long long deadline, int cancel_fd,
                   int *out)
{
    int fd = -1;
    int e = kb_tcp_connect_start(sa, salen, &fd);
    if (e != 0)
        return e;
    long long left = deadline - kb_now_ms();
    int n = left > 0 ? kb_wait_fd(fd, POLLOUT, (int)left, cancel_fd) : 0;
    if (n <= 0)
        e = n == 0 ? ETIMEDOUT : n == -2 ? ECANCELED : errno;
    else
        e = kb_tcp_connect_end(fd);
    if (e != 0) {
        close(fd);
        return e;
    }
    /* Back to blocking: GnuTLS's handshake timeout does the waiting from here on. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    *out = fd;
    return 0;
}

int kb_resolve(const char *host, unsigned port, struct kb_addrs *out, kb_err *err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG}, *res;
    char service[8];
    snprintf(service, sizeof service, "%u", port);
    int g = getaddrinfo(host, service, &hints, &res);
    if (g != 0)
        return kb_err_set(err, "cannot resolve %s: %s", host, gai_strerror(g));
    out->n = 0;
    for (struct addrinfo *ai = res; ai != NULL && out->n < KB_ADDRS_MAX; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof out->a[0].sa)
            continue;
        memcpy(&out->a[out->n].sa, ai->ai_addr, ai->ai_addrlen);
        out->a[out->n++].len = ai->ai_addrlen;
    }
    freeaddrinfo(res);
    if (out->n == 0)
        return kb_err_set(err, "cannot resolve %s: no usable address", host);
    return 0;
}

int kb_tcp_connect_to(const struct kb_addrs *addrs, const char *host, unsigned port,
                      unsigned timeout_ms, int cancel_fd, int *fd, unsigned *used, kb_err *err)
{
    long long deadline = kb_now_ms() + timeout_ms;
    int e = ETIMEDOUT;
    unsigned i;
    for (i = 0; i < addrs->n; i++) {
        e = try_one((const struct sockaddr *)&addrs->a[i].sa, addrs->a[i].len, deadline, cancel_fd,
                    fd);
        if (e == 0 || e == ETIMEDOUT || e == ECANCELED)
            break;
    }
    if (e == 0) {
        if (used != NULL)
            *used = i;
        return 0;
    }
    char hp[KB_HOSTPORT_STRLEN];
    kb_hostport_str(host, port, hp, sizeof hp);
    if (e == ECONNREFUSED)
        return kb_err_set(err, "connection to %s refused: nothing listens there", hp);
    if (e == ETIMEDOUT)
        return kb_err_set(err, "connection to %s timed out after %u ms", hp, timeout_ms);
    if (e == ECANCELED)
        return kb_err_set(err, "connection to %s abandoned: stopping", hp);
    return kb_err_set(err, "cannot connect to %s: %s", hp, strerror(e));
}

int kb_tcp_connect(const char *host, unsigned port, unsigned timeout_ms, int cancel_fd, int *fd,
                   kb_err *err)
{
    struct kb_addrs addrs;
    if (kb_resolve(host, port, &addrs, err) != 0)
        return -1;
    return kb_tcp_connect_to(&addrs, host, port, timeout_ms, cancel_fd, fd, NULL, err);
}
