/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "proxy.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "hostport.h"
#include "net.h"

int kb_proxy_reply(const char *buf, size_t len, int *status, size_t *header_len, kb_err *err)
{
    /* The whole header block first: the status means nothing without its end. */
    const char *end = NULL;
    for (size_t i = 0; i + 3 < len; i++)
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0) {
            end = buf + i + 4;
            break;
        }
    if (end == NULL) {
        for (size_t i = 0; i + 1 < len; i++)
            if (buf[i] == '\n' && buf[i + 1] == '\n') {
                end = buf + i + 2;
                break;
            }
    }
    size_t k = len < 7 ? len : 7;
    if (memcmp(buf, "HTTP/1.", k) != 0)
        return kb_err_set(err, "the proxy's reply is not HTTP/1.x");
    if (len < 13 || end == NULL)
        return 0;
    if ((buf[7] != '0' && buf[7] != '1') || buf[8] != ' ')
        return kb_err_set(err, "the proxy's reply is not HTTP/1.x");
    int code = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return kb_err_set(err, "the proxy's reply has no three-digit status");
        code = code * 10 + (buf[i] - '0');
    }
    if (buf[12] != ' ' && buf[12] != '\r' && buf[12] != '\n')
        return kb_err_set(err, "the proxy's reply has no three-digit status");
    for (const char *c = buf; c < end; c++)
        if (*c == '\0')
            return kb_err_set(err, "the proxy's reply holds a NUL byte");
    *status = code;
    *header_len = (size_t)(end - buf);
    return 1;
}

int kb_proxy_parse_url(const char *url, char *host, size_t host_len, unsigned *port, kb_err *err)
{
    const char *hp = url;
    if (strncasecmp(url, "http://", 7) == 0)
        hp = url + 7;
    else if (strstr(url, "://") != NULL)
        return kb_err_set(err, "proxy '%s' must be http://HOST:PORT", url);
    char buf[300];
    snprintf(buf, sizeof buf, "%s", hp);
    size_t n = strlen(buf);
    if (n > 0 && buf[n - 1] == '/')
        buf[n - 1] = '\0';
    return kb_hostport_parse(buf, host, host_len, port, err);
}

static const char *env_either(const char *lower, const char *upper, const char **name)
{
    const char *v = getenv(lower);
    *name = lower;
    if (v == NULL || *v == '\0') {
        v = getenv(upper);
        *name = upper;
    }
    return v != NULL && *v != '\0' ? v : NULL;
}

/* Whether one no_proxy entry (len bytes at e) covers host. */
static bool no_proxy_entry(const char *e, size_t len, const char *host)
{
    while (len > 0 && (*e == ' ' || *e == '\t'))
        e++, len--;
    while (len > 0 && (e[len - 1] == ' ' || e[len - 1] == '\t'))
        len--;
    if (len > 0 && *e == '.')
        e++, len--;
    if (len == 0)
        return false;
    if (len == 1 && *e == '*')
        return true;
    size_t h = strlen(host);
    if (h == len)
        return strncasecmp(host, e, len) == 0;
    return h > len && host[h - len - 1] == '.' && strncasecmp(host + h - len, e, len) == 0;
}

const char *kb_proxy_for(const char *host, const char *given, const char **from)
{
    *from = "--proxy";
    if (given != NULL)
        return given;
    const char *name, *np_name;
    const char *proxy = env_either("https_proxy", "HTTPS_PROXY", &name);
    if (proxy == NULL)
        return NULL;
    const char *np = env_either("no_proxy", "NO_PROXY", &np_name);
    for (const char *c = np; c != NULL && *c;) {
        const char *comma = strchr(c, ',');
        size_t len = comma ? (size_t)(comma - c) : strlen(c);
        if (no_proxy_entry(c, len, host))
            return NULL;
        c = comma ? comma + 1 : c + len;
    }
    *from = name;
    return proxy;
}

int kb_proxy_connect(int fd, const char *proxy, const char *host, unsigned port,
                     unsigned timeout_ms, int cancel_fd, kb_err *err)
{
    char req[700], hp[KB_HOSTPORT_STRLEN];
    kb_hostport_str(host, port, hp, sizeof hp);
    int n = snprintf(req, sizeof req, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", hp, hp);
    if (write(fd, req, (size_t)n) != n)
        return kb_err_set(err, "proxy %s: cannot send CONNECT: %s", proxy, strerror(errno));
    char buf[8192];
    size_t len = 0;
    long long deadline = kb_now_ms() + timeout_ms;
    for (;;) {
        int status;
        size_t header_len;
        kb_err why;
        int rc = kb_proxy_reply(buf, len, &status, &header_len, &why);
        if (rc < 0)
            return kb_err_set(err, "proxy %s: %s", proxy, why.msg);
        if (rc == 1) {
            if (status / 100 != 2)
                return kb_err_set(err, "proxy %s refused CONNECT to %s (HTTP %d)", proxy, hp,
                                  status);
            return 0;
        }
        if (len == sizeof buf)
            return kb_err_set(err, "proxy %s: its reply headers are longer than %zu bytes", proxy,
                              sizeof buf);
        long long left = deadline - kb_now_ms();
        int w = left > 0 ? kb_wait_fd(fd, POLLIN, (int)left, cancel_fd) : 0;
        if (w == -2)
            return kb_err_set(err, "proxy %s: CONNECT abandoned: stopping", proxy);
        if (w <= 0)
            return kb_err_set(err, "proxy %s did not answer CONNECT within %u ms", proxy,
                              timeout_ms);
        /* One byte at a time: what follows the headers belongs to TLS. */
        ssize_t r = read(fd, buf + len, 1);
        if (r <= 0)
            return kb_err_set(err, "proxy %s closed the connection during CONNECT", proxy);
        len++;
    }
}
