/* SPDX-License-Identifier: Apache-2.0 */
/* Tunnel configuration: [tunnel NAME] sections of an INI file (libinih), or one tunnel
 * from the command line.
 *
 * kb_tunnel_options is the one list of a tunnel's settings: keybound.conf's keys and the
 * command line's --NAME options are the same entries, so a value is parsed and checked by
 * the same code whichever way it came. Unknown sections or keys, bad values and repeated
 * keys are errors with file:line. A listener that is not on loopback or a unix socket is
 * refused unless the tunnel says allow-remote = yes: the device identity is not lent to
 * the network. */
#ifndef KB_TUNNEL_SETTINGS_H
#define KB_TUNNEL_SETTINGS_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "src/util/err.h"

#define KB_TUNNEL_MAX 32
#define KB_TUNNEL_ALPN_MAX 8   /* protocols; as many as the TLS client offers */
#define KB_TUNNEL_ALPN_LEN 255 /* bytes in one, TLS's limit (RFC 7301) */
#define KB_TUNNEL_UID_MAX 8

typedef struct kb_tunnel_conf {
    char name[64];
    /* Given with --listen and --connect, not in a file: messages name the options. */
    bool from_cli;
    char listen[4200];
    char connect[300];
    char server_name[256];
    char ca[4096];
    char key[1100];
    char proxy[300];
    char alpn[KB_TUNNEL_ALPN_MAX][KB_TUNNEL_ALPN_LEN + 1];
    size_t n_alpn;
    unsigned connect_timeout_s;
    unsigned idle_timeout_s; /* 0: none */
    unsigned max_connections;
    unsigned max_pending; /* handshakes waiting for a worker; beyond, clients are reset */
    bool allow_remote;
    uid_t allow_uid[KB_TUNNEL_UID_MAX];
    size_t n_allow_uid;
    unsigned line; /* where the section starts, for messages */
} kb_tunnel_conf;

/* A listen address resolved. */
struct kb_listen {
    bool is_unix;
    bool activated;  /* systemd:NAME, path holds NAME */
    char path[4096]; /* unix */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    bool loopback;
};

/* One setting of a tunnel, as keybound.conf and the command line both take it. */
struct kb_tunnel_option {
    const char *name; /* the key in keybound.conf; --NAME on the command line */
    const char *arg;  /* the value in help; NULL: yes or no, a bare --NAME on the command line */
    const char *help;
    const char *def; /* the default, as text parse takes; NULL: empty */
    bool list;       /* the command line may repeat it, each time adding to the list */
    /* what: the option as the user wrote it ("key", "--key"), for the message. */
    int (*parse)(kb_tunnel_conf *t, const char *what, const char *value, kb_err *err);
};

#define KB_TUNNEL_N_OPTIONS 13
extern const struct kb_tunnel_option kb_tunnel_options[KB_TUNNEL_N_OPTIONS];

/* Every setting at its default. */
void kb_tunnel_conf_defaults(kb_tunnel_conf *t);

/* The [global] section: settings of the process, not of one tunnel. */
struct kb_tunnel_global {
    unsigned admission_recheck_s; /* 0: not set (600) */
    char status[4200];            /* "": not set; checked when the server starts */
};

/* "status" (the [global] key) or "--status": a loopback address or a unix socket. */
int kb_tunnel_status_addr(const char *what, const char *v, kb_err *err);

/* "admission-recheck" (the [global] key) or "--admission-recheck": seconds, 10 to 86400. */
int kb_tunnel_admission_recheck(const char *what, const char *v, unsigned *out, kb_err *err);

/* Parses the file into at most KB_TUNNEL_MAX tunnels and its [global] section (glob may be
 * NULL: checked, not kept); every tunnel is checked. */
int kb_tunnel_conf_parse(FILE *f, const char *name, kb_tunnel_conf *out, size_t *n,
                         struct kb_tunnel_global *glob, kb_err *err);

/* listen and connect present and well-formed, loopback unless allowed. */
int kb_tunnel_conf_check(const kb_tunnel_conf *t, kb_err *err);

/* "127.0.0.1:8080", "[::1]:8080", "localhost:8080", "unix:/run/x.sock", "systemd:NAME". */
int kb_listen_parse(const char *text, struct kb_listen *l, kb_err *err);

#endif
