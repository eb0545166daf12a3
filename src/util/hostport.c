/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "hostport.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kb_printable(const char *text, char *out, size_t len)
{
    size_t o = 0;
    if (len == 0)
        return;
    for (const unsigned char *s = (const unsigned char *)text; *s; s++) {
        char esc[8];
        if (*s == '\n')
            snprintf(esc, sizeof esc, "\\n");
        else if (*s == '\t')
            snprintf(esc, sizeof esc, "\\t");
        else if (*s == '\\')
            snprintf(esc, sizeof esc, "\\\\");
        else if (*s < 0x20 || *s > 0x7e)
            snprintf(esc, sizeof esc, "\\x%02x", *s);
        else
            snprintf(esc, sizeof esc, "%c", *s);
        size_t n = strlen(esc);
        if (o + n + 4 > len) { /* room for "..." and the NUL */
            snprintf(out + o, len - o, "%s", len - o > 3 ? "..." : "");
            return;
        }
        memcpy(out + o, esc, n);
        o += n;
    }
    out[o] = '\0';
}

static bool ipv6_valid(const char *h, size_t n)
{
    char buf[64];
    const char *pct = memchr(h, '%', n);
    size_t addr = pct ? (size_t)(pct - h) : n;
    if (addr == 0 || addr >= sizeof buf)
        return false;
    memcpy(buf, h, addr);
    buf[addr] = '\0';
    unsigned char bin[16];
    if (inet_pton(AF_INET6, buf, bin) != 1)
        return false;
    if (pct == NULL)
        return true;
    /* A zone: an interface name or number. */
    size_t zone = n - addr - 1;
    if (zone == 0 || zone > 32)
        return false;
    for (size_t i = addr + 1; i < n; i++)
        if (!isalnum((unsigned char)h[i]) && h[i] != '-' && h[i] != '_' && h[i] != '.')
            return false;
    return true;
}

bool kb_host_valid(const char *h, size_t n)
{
    if (n == 0 || n > 253 + 1)
        return false;
    if (memchr(h, ':', n) != NULL)
        return ipv6_valid(h, n);
    /* A DNS name, or an IPv4 address (which has the same characters). A final '.' (the
     * root) is allowed; an empty label is not. */
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if (isascii(c) && (isalnum(c) || c == '-' || c == '_')) {
            if (++label > 63 || (label == 1 && c == '-'))
                return false;
        } else {
            return false;
        }
    }
    return n <= 253 || (n == 254 && h[253] == '.');
}

int kb_server_name_norm(const char *what, const char *name, char *out, size_t len, kb_err *err)
{
    const char *h = name;
    size_t n = strlen(name);
    /* "[::1]" is the address as a URL writes it; the brackets are no part of the name.
     * Kept, the name would be taken for neither an address (which gets no SNI) nor a DNS
     * name, and would match no certificate. */
    bool bracketed = n >= 2 && name[0] == '[' && name[n - 1] == ']';
    if (bracketed)
        h++, n -= 2;
    char shown[200];
    kb_printable(name, shown, sizeof shown);
    if (!kb_host_valid(h, n) || (bracketed && memchr(h, ':', n) == NULL))
        return kb_err_set(err,
                          "%s '%s' is not a valid server name (a DNS name such as "
                          "vpn.example.com, or an IP address)",
                          what, shown);
    /* A zone says which link to reach the address on; a certificate has none, and with
     * one the name would not even be taken for an address. */
    if (memchr(h, '%', n) != NULL)
        return kb_err_set(err, "%s '%s': a server name has no zone; give the address alone", what,
                          shown);
    if (n >= len)
        return kb_err_set(err, "%s '%s' is longer than %zu bytes", what, shown, len - 1);
    memcpy(out, h, n);
    out[n] = '\0';
    return 0;
}

const char *kb_hostport_str(const char *host, unsigned port, char *buf, size_t len)
{
    /* Only an IPv6 address holds a ':', and without brackets its last group would read as
     * the port. */
    bool v6 = strchr(host, ':') != NULL;
    if (port == 0)
        snprintf(buf, len, v6 ? "[%s]" : "%s", host);
    else
        snprintf(buf, len, v6 ? "[%s]:%u" : "%s:%u", host, port);
    return buf;
}

int kb_hostport_parse(const char *text, char *host, size_t host_len, unsigned *port, kb_err *err)
{
    const char *h = text, *colon;
    size_t n;
    char shown[300];
    kb_printable(text, shown, sizeof shown);
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':')
            return kb_err_set(err, "'%s' is not HOST:PORT; write an IPv6 address as [::1]:443",
                              shown);
        h = text + 1;
        n = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL || memchr(text, ':', (size_t)(colon - text)) != NULL)
            return kb_err_set(err,
                              "'%s' is not HOST:PORT (e.g. vpn.example.com:443; an IPv6 "
                              "address as [::1]:443)",
                              shown);
        n = (size_t)(colon - text);
    }
    char *end;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (n == 0 || colon[1] == '\0' || *end != '\0' || p == 0 || p > 65535 ||
        !isdigit((unsigned char)colon[1]))
        return kb_err_set(err, "'%s' is not HOST:PORT with a port from 1 to 65535", shown);
    if (n >= host_len || !kb_host_valid(h, n) || (text[0] == '[' && memchr(h, ':', n) == NULL))
        return kb_err_set(err,
                          "'%s': the host name is not valid (a DNS name such as "
                          "vpn.example.com, an IPv4 address, or an IPv6 address in brackets)",
                          shown);
    for (size_t i = 0; i < n; i++)
        host[i] = (char)tolower((unsigned char)h[i]);
    host[n] = '\0';
    *port = (unsigned)p;
    return 0;
}
