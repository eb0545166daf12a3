/* SPDX-License-Identifier: Apache-2.0 */
/* HOST:PORT as people write it: "vpn.example.com:443", "127.0.0.1:8443", "[::1]:443".
 * The host is lower-cased; a port is required and from 1 to 65535.
 *
 * A host is a DNS name (letters, digits, '-', '_' and '.', no empty label, in the ASCII
 * form an IDN takes on the wire), an IPv4 address, or an IPv6 address (in brackets in
 * HOST:PORT), with an optional %ZONE. Anything else, a control character above all, is
 * refused: a host name ends up in messages, logs and the TLS server name. */
#ifndef KB_HOSTPORT_H
#define KB_HOSTPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

int kb_hostport_parse(const char *text, char *host, size_t host_len, unsigned *port, kb_err *err);

/* Whether the n bytes at host are a host name or address as above. */
bool kb_host_valid(const char *host, size_t n);

/* A server name (--server-name, server-name =) as it is checked in the certificate and,
 * unless an address, sent as SNI: a valid host, or an IPv6 address in brackets ("[::1]",
 * as in a URL), written to out without them. An error names what the name is for (e.g.
 * "--server-name"): for brackets not around exactly an IPv6 address, for a zone (no
 * certificate names one), and for a name that does not fit in len. */
int kb_server_name_norm(const char *what, const char *name, char *out, size_t len, kb_err *err);

/* The longest host kb_host_valid accepts (a 253-byte name and the root's '.'), and room
 * for any such host in kb_hostport_str. */
#define KB_HOST_MAX 254
#define KB_HOSTPORT_STRLEN (KB_HOST_MAX + sizeof "[]:65535")

/* host and port for a message or a request line: "[::1]:443" for an IPv6 address,
 * "vpn.example.com:443" otherwise; port 0: the host alone, in brackets if IPv6 (a Host
 * header for the default port). Returns buf (len > 0), cut to fit as by snprintf. */
const char *kb_hostport_str(const char *host, unsigned port, char *buf, size_t len);

/* text for a one-line message: control characters, '\\', and bytes above 0x7e written as
 * C escapes (\n, \x01); cut with "..." when it does not fit. */
void kb_printable(const char *text, char *out, size_t len);

#endif
