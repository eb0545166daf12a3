/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "session.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "src/util/net.h"

/* GnuTLS reads a record's 5-byte header, then its body: two system calls a record, and a
 * resumed TLS 1.3 handshake and one request bring seven records or more. This reads what
 * the socket holds, up to AHEAD bytes, at once; bodies as large as that are read straight
 * into GnuTLS's buffer. What is read ahead waits in the session (on the heap, only then)
 * until GnuTLS asks for it. */
#define AHEAD 4096
/* What a session may hold back (vec_push): a handshake's last flight and a first request. */
#define HOLD_MAX 16384

static _Thread_local unsigned char scratch[AHEAD];

static int flush(struct session_ctx *ctx);

static ssize_t pull(gnutls_transport_ptr_t ptr, void *data, size_t size)
{
    struct session_ctx *ctx = ptr;
    if (ctx->ahead_off < ctx->ahead_len) {
        size_t n = ctx->ahead_len - ctx->ahead_off;
        if (n > size)
            n = size;
        memcpy(data, ctx->ahead + ctx->ahead_off, n);
        ctx->ahead_off += n;
        if (ctx->ahead_off == ctx->ahead_len) {
            free(ctx->ahead);
            ctx->ahead = NULL;
            ctx->ahead_len = ctx->ahead_off = 0;
        }
        return (ssize_t)n;
    }
    /* The server may be waiting for what is held. */
    if (ctx->out_len > 0 && flush(ctx) != 0)
        return -1;
    ssize_t got = recv(ctx->fd, size >= AHEAD ? data : scratch, size >= AHEAD ? size : AHEAD, 0);
    if (got < 0)
        ctx->io_errno = errno;
    if (got > 0 && ctx->first_byte < 0)
        ctx->first_byte = *(size >= AHEAD ? (unsigned char *)data : scratch);
    if (got <= 0 || size >= AHEAD)
        return got;
    size_t n = (size_t)got < size ? (size_t)got : size;
    memcpy(data, scratch, n);
    if ((size_t)got > n) {
        ctx->ahead = malloc((size_t)got - n);
        if (ctx->ahead == NULL) {
            errno = ENOMEM; /* the stream cannot go on without those bytes */
            return -1;
        }
        memcpy(ctx->ahead, scratch + n, (size_t)got - n);
        ctx->ahead_len = (size_t)got - n;
        ctx->ahead_off = 0;
    }
    return (ssize_t)n;
}

/* Sends what is held; 0 once nothing is, else -1 with errno (EAGAIN: the socket is full,
 * or not connected yet). Holding goes on: a read that had to send the ClientHello first
 * may find the server's whole flight there already, and the last flight GnuTLS writes
 * after it, in the same call, is held as ever (only kb_tls_flush ends holding). */
static int flush(struct session_ctx *ctx)
{
    while (ctx->out_off < ctx->out_len) {
        ssize_t n =
            send(ctx->fd, ctx->out + ctx->out_off, ctx->out_len - ctx->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            ctx->io_errno = errno;
            return -1;
        }
        ctx->sent = true;
        ctx->out_off += (size_t)n;
    }
    free(ctx->out);
    ctx->out = NULL;
    ctx->out_len = ctx->out_off = 0;
    return 0;
}

/* GnuTLS writes each record with a system call of its own: a resumed handshake's last
 * flight (ChangeCipherSpec and Finished), then the first request, are three segments to the
 * server. While the session holds its output (kb_tls_hold), records wait here for the
 * caller's kb_tls_flush, or for the next read, which could not be answered without them. */
static ssize_t vec_push(gnutls_transport_ptr_t ptr, const giovec_t *iov, int iovcnt)
{
    struct session_ctx *ctx = ptr;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;
    if (ctx->hold && ctx->out_len + total <= HOLD_MAX) {
        /* Two or three records at most: the exact size each time. */
        unsigned char *more = realloc(ctx->out, ctx->out_len + total);
        if (more == NULL) {
            errno = ENOMEM;
            return -1;
        }
        ctx->out = more;
        for (int i = 0; i < iovcnt; i++) {
            memcpy(ctx->out + ctx->out_len, iov[i].iov_base, iov[i].iov_len);
            ctx->out_len += iov[i].iov_len;
        }
        return (ssize_t)total;
    }
    /* What is held goes first: GnuTLS offers these bytes again after an AGAIN. */
    if (ctx->out_len > 0 && flush(ctx) != 0)
        return -1;
    struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    ssize_t n = sendmsg(ctx->fd, &m, MSG_NOSIGNAL);
    if (n > 0)
        ctx->sent = true;
    else
        ctx->io_errno = errno;
    return n;
}

/* GnuTLS waits with this when it keeps the handshake's time itself. */
static int pull_timeout(gnutls_transport_ptr_t ptr, unsigned ms)
{
    struct session_ctx *ctx = ptr;
    if (ctx->ahead_off < ctx->ahead_len)
        return 1;
    struct pollfd p = {.fd = ctx->fd, .events = POLLIN};
    int n;
    do {
        n = poll(&p, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
    } while (n < 0 && errno == EINTR);
    return n;
}

void kb_tls_transport_set(gnutls_session_t s, struct session_ctx *ctx, int fd)
{
    ctx->fd = fd;
    ctx->first_byte = -1;
    gnutls_transport_set_ptr(s, ctx);
    gnutls_transport_set_pull_function(s, pull);
    gnutls_transport_set_pull_timeout_function(s, pull_timeout);
    gnutls_transport_set_vec_push_function(s, vec_push);
}

void kb_tls_transport_free(struct session_ctx *ctx, bool send_held)
{
    /* A last try, without waiting: a close_notify held back is worth a send. */
    if (send_held && ctx->out_len > 0)
        flush(ctx);
    free(ctx->ahead);
    ctx->ahead = NULL;
    free(ctx->out);
    ctx->out = NULL;
    ctx->out_len = ctx->out_off = 0;
}

void kb_tls_hold(gnutls_session_t s)
{
    struct session_ctx *ctx = gnutls_session_get_ptr(s);
    ctx->hold = true;
}

int kb_tls_flush(gnutls_session_t s)
{
    struct session_ctx *ctx = gnutls_session_get_ptr(s);
    ctx->hold = false;
    if (ctx->out_len == 0)
        return 0;
    if (flush(ctx) == 0)
        return 0;
    return errno == EAGAIN ? 1 : -1;
}

bool kb_tls_sent_any(gnutls_session_t s)
{
    const struct session_ctx *ctx = gnutls_session_get_ptr(s);
    return ctx->sent;
}

int kb_tls_wait(gnutls_session_t s, int ms, int cancel_fd)
{
    const struct session_ctx *ctx = gnutls_session_get_ptr(s);
    bool writing = gnutls_record_get_direction(s) != 0 || ctx->out_len > 0;
    /* GnuTLS returns AGAIN after a post-handshake message (a TLS 1.3 ticket) while what
     * follows may already have been read ahead: the socket will not say so. */
    if (!writing && ctx->ahead_off < ctx->ahead_len)
        return 1;
    return kb_wait_fd(ctx->fd, writing ? POLLOUT : POLLIN, ms, cancel_fd);
}

size_t kb_tls_pending(gnutls_session_t s)
{
    const struct session_ctx *ctx = gnutls_session_get_ptr(s);
    return gnutls_record_check_pending(s) + (ctx->ahead_len - ctx->ahead_off);
}

int kb_tls_fd(gnutls_session_t s)
{
    const struct session_ctx *ctx = gnutls_session_get_ptr(s);
    return ctx->fd;
}
