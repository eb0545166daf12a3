/* HOST:PORT as people write it: "vpn.example.com:443", "127.0.0.1:8443", "[::1]:443".
 * The host is lower-cased; a port is required and from 1 to 65535. */
#ifndef KB_HOSTPORT_H
#define KB_HOSTPORT_H

#include <stddef.h>

#include "err.h"

int kb_hostport_parse(const char *text, char *host, size_t host_len, unsigned *port, kb_err *err);

#endif
