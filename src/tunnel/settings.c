/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "src/tunnel/settings.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "pkcs11/uri.h"
#include "src/tls/client.h"
#include "src/util/hostport.h"
#include "src/util/inilines.h"
#include "src/util/suggest.h"
#include "src/util/proxy.h"

int kb_listen_parse(const char *text, struct kb_listen *l, kb_err *err)
{
    memset(l, 0, sizeof *l);
    if (strncmp(text, "systemd:", 8) == 0) {
        /* A socket systemd passes (FileDescriptorName=NAME); its address is checked when
         * it arrives. */
        if (text[8] == '\0' || strlen(text + 8) >= sizeof l->path ||
            strspn(text + 8, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
                strlen(text + 8))
            return kb_err_set(err,
                              "listen '%s': write systemd:NAME with the socket unit's "
                              "FileDescriptorName",
                              text);
        l->activated = true;
        l->loopback = true;
        snprintf(l->path, sizeof l->path, "%s", text + 8);
        return 0;
    }
    if (strncmp(text, "unix:", 5) == 0) {
        const char *path = text + 5;
        if (path[0] != '/' || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return kb_err_set(err,
                              "listen '%s': a unix socket needs an absolute path of at most "
                              "107 bytes",
                              text);
        l->is_unix = true;
        l->loopback = true;
        snprintf(l->path, sizeof l->path, "%s", path);
        struct sockaddr_un *un = (struct sockaddr_un *)&l->addr;
        un->sun_family = AF_UNIX;
        snprintf(un->sun_path, sizeof un->sun_path, "%s", path);
        l->addr_len = sizeof *un;
        return 0;
    }
    char host[256];
    unsigned port;
    if (kb_hostport_parse(text, host, sizeof host, &port, err) != 0)
        return -1;
    /* A listener is an address, never a name to look up: what it binds to must not
     * depend on DNS. */
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICHOST},
                    *res;
    char service[8];
    snprintf(service, sizeof service, "%u", port);
    int g = getaddrinfo(strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, service, &hints, &res);
    if (g != 0)
        return kb_err_set(err,
                          "listen '%s': write an IP address (127.0.0.1:PORT, [::1]:PORT) or "
                          "unix:/PATH",
                          text);
    memcpy(&l->addr, res->ai_addr, res->ai_addrlen);
    l->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    if (l->addr.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&l->addr;
        l->loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    } else if (l->addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&l->addr;
        l->loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    return 0;
}

int kb_tunnel_conf_check(const kb_tunnel_conf *t, kb_err *err)
{
    char host[256], name[sizeof t->server_name];
    unsigned port;
    struct kb_listen l;
    if (t->from_cli && (t->listen[0] == '\0' || t->connect[0] == '\0'))
        return kb_err_set(err, "give %s%s%s, or --config FILE",
                          t->listen[0] ? "" : "--listen ADDRESS",
                          t->listen[0] || t->connect[0] ? "" : " and ",
                          t->connect[0] ? "" : "--connect HOST:PORT");
    if (t->listen[0] == '\0' || t->connect[0] == '\0')
        return kb_err_set(err, "tunnel '%s' needs listen = ADDRESS and connect = HOST:PORT",
                          t->name);
    if (kb_listen_parse(t->listen, &l, err) != 0 ||
        kb_hostport_parse(t->connect, host, sizeof host, &port, err) != 0 ||
        (t->server_name[0] &&
         kb_server_name_norm("server-name", t->server_name, name, sizeof name, err) != 0))
        return -1;
    if (!l.loopback && !t->allow_remote && t->from_cli)
        return kb_err_set(err,
                          "--listen %s is not loopback: other hosts could use the device's "
                          "identity; listen on 127.0.0.1, [::1] or unix:, or add --allow-remote",
                          t->listen);
    if (!l.loopback && !t->allow_remote)
        return kb_err_set(err,
                          "tunnel '%s' listens on %s, which is not loopback: other hosts could "
                          "use the device's identity; listen on 127.0.0.1, [::1] or unix:, "
                          "or say allow-remote = yes",
                          t->name, t->listen);
    if (t->n_allow_uid > 0 && !l.is_unix && !l.activated && t->from_cli)
        return kb_err_set(err, "--allow-uid needs a unix: listener");
    if (t->n_allow_uid > 0 && !l.is_unix && !l.activated)
        return kb_err_set(err, "tunnel '%s': allow-uid needs a unix: listener", t->name);
    return 0;
}

/* What tunnel.c hands the TLS client must fit it whole. */
_Static_assert(KB_TUNNEL_ALPN_MAX <= KB_ALPN_MAX && KB_TUNNEL_ALPN_LEN == KB_ALPN_LEN,
               "a tunnel's ALPN list must fit the TLS client's");

static int set_text(char *dst, size_t len, const char *what, const char *v, kb_err *err)
{
    if (*v == '\0' || strlen(v) >= len)
        return kb_err_set(err, "%s: the value is empty or longer than %zu bytes", what, len - 1);
    snprintf(dst, len, "%s", v);
    return 0;
}

static bool parse_uint(const char *v, unsigned max, unsigned *out)
{
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    if (!isdigit((unsigned char)*v) || *end != '\0' || n > max)
        return false;
    *out = (unsigned)n;
    return true;
}

/* The next word of a list ("h2, http/1.1"), or NULL after the last. */
static const char *next_word(const char **rest, size_t *len)
{
    const char *w = *rest + strspn(*rest, " ,");
    *len = strcspn(w, " ,");
    *rest = w + *len;
    return *len > 0 ? w : NULL;
}

static int opt_listen(kb_tunnel_conf *t, const char *what, const char *v, kb_err *err)
{
    struct kb_listen l;
    if (kb_listen_parse(v, &l, err) != 0)
        return -1;
    return set_text(t->listen, sizeof t->listen, what, v, err);
}

/* connect (HOST:PORT) and proxy (http://HOST:PORT): checked by parse, kept as written. */
static int set_endpoint(char *dst, size_t len,
                        int (*parse)(const char *, char *, size_t, unsigned *, kb_err *),
                        const char *what, const char *v, kb_err *err)
{
    char host[256];
    unsigned port;
    kb_err why;
    if (parse(v, host, sizeof host, &port, &why) != 0)
        return kb_err_set(err, "%s: %s", what, why.msg);
    return set_text(dst, len, what, v, err);
}

static int opt_connect(kb_tunnel_conf *t, const char *what, const char *v, kb_err *err)
{
    return set_endpoint(t->connect, sizeof t->connect, kb_hostport_parse, what, v, err);
}

static int opt_server_name(kb_tunnel_conf *t, const char *what, const char *v, kb_err *err)
{
    return kb_server_name_norm(what, v, t->server_name, sizeof t->server_name, err);
}

static int opt_ca(kb_tunnel_conf *t, const char *what, const char *v, kb_err *err)
{
    return set_text(t->ca, sizeof t->ca, what, v, err);
}

/* Parsed as the tunnel will parse it to find the key, so that a typo is refused here, with
 * the line it is on, rather than as a denial at start. */
static int opt_key(kb_tunnel_conf *t, const char *what, const char *v, kb_err *err)
{
    P11KitUri *uri;
    kb_err why;
    if (kb_uri_parse(v, 0, &uri, &why) != 0)
        return kb_err_set(err, "%s: %s", what, why.msg);
    p11_kit_uri_free(uri);
    return set_text(t->key, sizeof t->key, what, v, err);
}

static int opt_alpn(kb_tunnel_conf *t, const char *what, const char *v, kb_err *err)
{
    size_t len, added = 0;
    for (const char *w, *rest = v; (w = next_word(&rest, &len)) != NULL; added++) {
        if (t->n_alpn == KB_TUNNEL_ALPN_MAX || len > KB_TUNNEL_ALPN_LEN)
            return kb_err_set(err, "%s: at most %d protocols of 1 to %d bytes", what,
                              KB_TUNNEL_ALPN_MAX, KB_TUNNEL_ALPN_LEN);
        snprintf(t->alpn[t->n_alpn++], sizeof t->alpn[0], "%.*s", (int)len, w);
    }
    return added > 0 ? 0 : kb_err_set(err, "%s: the value is empty", what);
}

static int opt_proxy(kb_tunnel_conf *t, const char *what, const char *v, kb_err *err)
{
    return set_endpoint(t->proxy, sizeof t->proxy, kb_proxy_parse_url, what, v, err);
}

static int opt_connect_timeout(kb_tunnel_conf *t, const char *what, const char *v, kb_err *err)
{
    if (!parse_uint(v, 3600, &t->connect_timeout_s) || t->connect_timeout_s == 0)
        return kb_err_set(err, "%s must be seconds from 1 to 3600, not '%s'", what, v);
    return 0;
}

static int opt_idle_timeout(kb_tunnel_conf *t, const char *what, const char *v, kb_err *err)
{
    if (!parse_uint(v, 7 * 86400, &t->idle_timeout_s))
        return kb_err_set(err, "%s must be seconds up to a week (0: none), not '%s'", what, v);
    return 0;
}

static int opt_max_connections(kb_tunnel_conf *t, const char *what, const char *v, kb_err *err)
{
    if (!parse_uint(v, 100000, &t->max_connections) || t->max_connections == 0)
        return kb_err_set(err, "%s must be from 1 to 100000, not '%s'", what, v);
    return 0;
}

static int opt_max_pending(kb_tunnel_conf *t, const char *what, const char *v, kb_err *err)
{
    if (!parse_uint(v, 100000, &t->max_pending) || t->max_pending == 0)
        return kb_err_set(err, "%s must be from 1 to 100000, not '%s'", what, v);
    return 0;
}

static int opt_allow_remote(kb_tunnel_conf *t, const char *what, const char *v, kb_err *err)
{
    if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0)
        return kb_err_set(err, "%s must be yes or no, not '%s'", what, v);
    t->allow_remote = v[0] == 'y';
    return 0;
}

static int opt_allow_uid(kb_tunnel_conf *t, const char *what, const char *v, kb_err *err)
{
    size_t len, added = 0;
    for (const char *w, *rest = v; (w = next_word(&rest, &len)) != NULL; added++) {
        char num[16];
        unsigned uid;
        snprintf(num, sizeof num, "%.*s", (int)len, w);
        if (t->n_allow_uid == KB_TUNNEL_UID_MAX || len >= sizeof num ||
            !parse_uint(num, 0x7fffffff, &uid))
            return kb_err_set(err, "%s takes up to %d numeric user ids", what, KB_TUNNEL_UID_MAX);
        t->allow_uid[t->n_allow_uid++] = (uid_t)uid;
    }
    return added > 0 ? 0 : kb_err_set(err, "%s: the value is empty", what);
}

const struct kb_tunnel_option kb_tunnel_options[KB_TUNNEL_N_OPTIONS] = {
    {"listen", "ADDR", "where legacy clients connect", NULL, false, opt_listen},
    {"connect", "HOST:PORT", "the mTLS endpoint", NULL, false, opt_connect},
    {"key", "URI", "the key (default: the one the policy admits)", NULL, false, opt_key},
    {"ca", "FILE", "CA for the server when the policy names none", NULL, false, opt_ca},
    {"server-name", "NAME", "name to send and check (default: the policy's or HOST)", NULL, false,
     opt_server_name},
    {"alpn", "PROTO", "offer ALPN protocols, comma-separated (repeatable)", NULL, true, opt_alpn},
    {"proxy", "http://HOST:PORT", "leave through an HTTP CONNECT proxy", NULL, false, opt_proxy},
    {"connect-timeout", "S", "give up connecting and the handshake after S seconds", "10", false,
     opt_connect_timeout},
    {"idle-timeout", "S", "close connections idle this long, 0: never", "0", false,
     opt_idle_timeout},
    {"max-connections", "N", "at most N at once", "1000", false, opt_max_connections},
    {"max-pending-handshakes", "N", "at most N clients waiting for a handshake; beyond, reset",
     "256", false, opt_max_pending},
    {"allow-remote", NULL, "listen on a non-loopback address too (lends the identity!)", NULL,
     false, opt_allow_remote},
    {"allow-uid", "UID", "only these users may connect to a unix: listener (repeatable)", NULL,
     true, opt_allow_uid},
};

void kb_tunnel_conf_defaults(kb_tunnel_conf *t)
{
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < KB_TUNNEL_N_OPTIONS; i++)
        if (kb_tunnel_options[i].def != NULL)
            kb_tunnel_options[i].parse(t, kb_tunnel_options[i].name, kb_tunnel_options[i].def,
                                       NULL);
}

struct parser {
    struct kb_ini ini; /* ini.line: the line being read */
    kb_tunnel_conf *out;
    size_t n;
    kb_tunnel_conf *cur;
    unsigned long long seen;
    bool in_global, had_global;
    struct kb_tunnel_global glob;
};

int kb_tunnel_status_addr(const char *what, const char *v, kb_err *err)
{
    struct kb_listen l;
    kb_err why;
    if (kb_listen_parse(v, &l, &why) != 0 || l.activated || !l.loopback)
        return kb_err_set(err,
                          "%s '%s': the status server listens on loopback (127.0.0.1:PORT, "
                          "[::1]:PORT) or a unix socket (unix:/PATH) only",
                          what, v);
    return 0;
}

int kb_tunnel_admission_recheck(const char *what, const char *v, unsigned *out, kb_err *err)
{
    if (!parse_uint(v, 86400, out) || *out < 10)
        return kb_err_set(err, "%s must be seconds from 10 to 86400, not '%s'", what, v);
    return 0;
}

static int start_section(struct parser *p, const char *sec)
{
    p->cur = NULL;
    p->seen = 0;
    p->in_global = false;
    if (strcmp(sec, "global") == 0) {
        if (p->had_global)
            return kb_ini_fail(&p->ini, "[global] is given twice");
        p->in_global = p->had_global = true;
        return 1;
    }
    const char *q = sec + 6;
    if (strncmp(sec, "tunnel", 6) != 0 || (q[0] != ' ' && q[0] != '"'))
        return kb_ini_fail(&p->ini, "unknown section [%s]; write [tunnel NAME] or [global]", sec);
    while (*q == ' ')
        q++;
    char name[64];
    size_t len = strlen(q);
    if (len >= 2 && q[0] == '"' && q[len - 1] == '"')
        snprintf(name, sizeof name, "%.*s", (int)(len - 2), q + 1);
    else
        snprintf(name, sizeof name, "%s", q);
    if (name[0] == '\0' || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789-_.") != strlen(name))
        return kb_ini_fail(&p->ini, "tunnel name '%s': use letters, digits, '-', '_' and '.'",
                           name);
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->out[i].name, name) == 0)
            return kb_ini_fail(&p->ini, "tunnel '%s' is defined twice", name);
    if (p->n == KB_TUNNEL_MAX)
        return kb_ini_fail(&p->ini, "more than %d tunnels", KB_TUNNEL_MAX);
    p->cur = &p->out[p->n++];
    kb_tunnel_conf_defaults(p->cur);
    snprintf(p->cur->name, sizeof p->cur->name, "%s", name);
    p->cur->line = p->ini.line;
    return 1;
}

static void on_section(void *user, const char *name)
{
    start_section(user, name);
}

static int handler(void *user, const char *key, const char *v)
{
    struct parser *p = user;
    if (p->in_global) {
        kb_err why;
        if (strcmp(key, "status") == 0) {
            if (p->glob.status[0])
                return kb_ini_fail(&p->ini, "'%s' is set twice in [global]", key);
            if (strlen(v) >= sizeof p->glob.status || kb_tunnel_status_addr(key, v, &why) != 0)
                return kb_ini_fail(&p->ini, "%s", why.msg);
            snprintf(p->glob.status, sizeof p->glob.status, "%s", v);
            return 1;
        }
        if (strcmp(key, "admission-recheck") != 0)
            return kb_ini_fail(&p->ini, "unknown key '%s' in [global]; see keybound.conf(5)", key);
        if (p->glob.admission_recheck_s != 0)
            return kb_ini_fail(&p->ini, "'%s' is set twice in [global]", key);
        if (kb_tunnel_admission_recheck(key, v, &p->glob.admission_recheck_s, &why) != 0)
            return kb_ini_fail(&p->ini, "%s", why.msg);
        return 1;
    }
    if (p->cur == NULL)
        return kb_ini_fail(&p->ini, "'%s' stands before any [tunnel NAME] section", key);
    size_t k;
    for (k = 0; k < KB_TUNNEL_N_OPTIONS; k++)
        if (strcmp(kb_tunnel_options[k].name, key) == 0)
            break;
    if (k == KB_TUNNEL_N_OPTIONS) {
        const char *names[KB_TUNNEL_N_OPTIONS];
        for (size_t i = 0; i < KB_TUNNEL_N_OPTIONS; i++)
            names[i] = kb_tunnel_options[i].name;
        const char *close = kb_suggest(key, names, KB_TUNNEL_N_OPTIONS);
        if (close != NULL)
            return kb_ini_fail(&p->ini, "unknown key '%s' in [tunnel %s] (did you mean '%s'?)", key,
                               p->cur->name, close);
        return kb_ini_fail(&p->ini, "unknown key '%s' in [tunnel %s]; see keybound.conf(5)", key,
                           p->cur->name);
    }
    if (p->seen & (1ULL << k))
        return kb_ini_fail(&p->ini, "'%s' is set twice in [tunnel %s]", key, p->cur->name);
    p->seen |= 1ULL << k;
    kb_err why;
    if (kb_tunnel_options[k].parse(p->cur, key, v, &why) != 0)
        return kb_ini_fail(&p->ini, "%s", why.msg);
    return 1;
}

int kb_tunnel_conf_parse(FILE *f, const char *name, kb_tunnel_conf *out, size_t *n,
                         struct kb_tunnel_global *glob, kb_err *err)
{
    struct parser p = {.out = out};
    p.ini = (struct kb_ini){.user = &p,
                            .section = on_section,
                            .key = handler,
                            .kind = "config",
                            .expected = "[tunnel NAME]"};
    *n = 0;
    if (kb_ini_parse(&p.ini, f, name, err) != 0)
        return -1;
    if (p.n == 0)
        return kb_err_set(err, "%s: no [tunnel NAME] section", name);
    for (size_t i = 0; i < p.n; i++) {
        kb_err why;
        if (kb_tunnel_conf_check(&out[i], &why) != 0)
            return kb_err_set(err, "%s:%u: %s", name, out[i].line, why.msg);
    }
    *n = p.n;
    if (glob != NULL)
        *glob = p.glob;
    return 0;
}
