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

/* One address: 0 connected, else the errno (ETIMEDOUT when the deadline passed, ECANCELED
 * when cancel_fd said so). */
static int try_one(const struct addrinfo *ai, long long deadline, int cancel_fd, int *out)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0)
        return errno;
    int e = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        e = errno;
        if (e == EINPROGRESS) {
            long long left = deadline - kb_now_ms();
            int n = left > 0 ? kb_wait_fd(fd, POLLOUT, (int)left, cancel_fd) : 0;
            socklen_t len = sizeof e;
            if (n <= 0)
                e = n == 0 ? ETIMEDOUT : n == -2 ? ECANCELED : errno;
            else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
                e = errno;
        }
    }
    if (e != 0) {
        close(fd);
        return e;
    }
    /* Back to blocking: GnuTLS's handshake timeout does the waiting from here on. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    keepalive(fd);
    *out = fd;
    return 0;
}

int kb_tcp_connect(const char *host, unsigned port, unsigned timeout_ms, int cancel_fd, int *fd,
                   kb_err *err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG}, *res;
    char service[8];
    snprintf(service, sizeof service, "%u", port);
    int g = getaddrinfo(host, service, &hints, &res);
    if (g != 0)
        return kb_err_set(err, "cannot resolve %s: %s", host, gai_strerror(g));
    long long deadline = kb_now_ms() + timeout_ms;
    int e = ETIMEDOUT;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        e = try_one(ai, deadline, cancel_fd, fd);
        if (e == 0 || e == ETIMEDOUT || e == ECANCELED)
            break;
    }
    freeaddrinfo(res);
    if (e == 0)
        return 0;
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
