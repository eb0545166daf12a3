#include "config.h"

#include "hostport.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

int kb_hostport_parse(const char *text, char *host, size_t host_len, unsigned *port, kb_err *err)
{
    const char *h = text, *colon;
    size_t n;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':')
            return kb_err_set(err, "'%s' is not HOST:PORT; write an IPv6 address as [::1]:443",
                              text);
        h = text + 1;
        n = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL || memchr(text, ':', (size_t)(colon - text)) != NULL)
            return kb_err_set(err,
                              "'%s' is not HOST:PORT (e.g. vpn.example.com:443; an IPv6 "
                              "address as [::1]:443)",
                              text);
        n = (size_t)(colon - text);
    }
    char *end;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (n == 0 || colon[1] == '\0' || *end != '\0' || p == 0 || p > 65535 ||
        !isdigit((unsigned char)colon[1]))
        return kb_err_set(err, "'%s' is not HOST:PORT with a port from 1 to 65535", text);
    if (n >= host_len || memchr(h, ' ', n) != NULL)
        return kb_err_set(err, "'%s': the host name is not valid", text);
    for (size_t i = 0; i < n; i++)
        host[i] = (char)tolower((unsigned char)h[i]);
    host[n] = '\0';
    *port = (unsigned)p;
    return 0;
}
