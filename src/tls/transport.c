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

static _Thread_local unsigned char scratch[AHEAD];

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
    if (size >= AHEAD)
        return recv(ctx->fd, data, size, 0);
    ssize_t got = recv(ctx->fd, scratch, AHEAD, 0);
    if (got <= 0)
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
    /* Sending stays GnuTLS's own (writev on the descriptor in the send pointer). */
    gnutls_transport_set_ptr2(s, ctx, (gnutls_transport_ptr_t)(long)fd);
    gnutls_transport_set_pull_function(s, pull);
    gnutls_transport_set_pull_timeout_function(s, pull_timeout);
}

void kb_tls_transport_free(struct session_ctx *ctx)
{
    free(ctx->ahead);
    ctx->ahead = NULL;
}

int kb_tls_wait(gnutls_session_t s, int ms, int cancel_fd)
{
    const struct session_ctx *ctx = gnutls_session_get_ptr(s);
    bool writing = gnutls_record_get_direction(s) != 0;
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
