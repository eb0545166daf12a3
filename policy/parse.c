/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy.h"
#include "src/util/hostport.h"
#include "src/util/inilines.h"
#include "src/util/suggest.h"
#include "src/util/trustfile.h"

enum section { SEC_NONE, SEC_ADMISSION, SEC_TOKEN, SEC_KEY, SEC_CERT, SEC_ENDPOINT, SEC_NETWORK };

struct parser {
    kb_policy *pol;
    char dir[4096];
    struct kb_ini ini; /* ini.line: the line being read */
    enum section section;
    struct kb_endpoint_rule *endpoint;
    struct kb_network_rule *network;
    unsigned long long seen[SEC_NETWORK + 1]; /* singular keys seen, per section */
};

static bool parse_bool(const char *v, bool *out)
{
    if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0) {
        *out = true;
        return true;
    }
    if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0) {
        *out = false;
        return true;
    }
    return false;
}

long long kb_duration_parse(const char *text)
{
    long long total = 0;
    const char *s = text;
    if (*s == '\0')
        return -1;
    while (*s) {
        if (!isdigit((unsigned char)*s))
            return -1;
        errno = 0;
        char *end;
        long long n = strtoll(s, &end, 10);
        if (errno != 0 || n > 100LL * 365 * 86400)
            return -1;
        long long unit;
        switch (*end) {
        case 's':
            unit = 1;
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        case 'w':
            unit = 7 * 86400;
            break;
        default:
            return -1; /* a bare number is ambiguous: days? seconds? */
        }
        total += n * unit;
        if (total > 100LL * 365 * 86400)
            return -1;
        s = end + 1;
    }
    return total;
}

static int add_string(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 1) * sizeof *nv);
    if (nv == NULL)
        return -1;
    *v = nv;
    if ((nv[*n] = strdup(s)) == NULL)
        return -1;
    (*n)++;
    return 0;
}

/* A file named in the policy, relative to the policy's own directory. */
static char *resolve_path(struct parser *p, const char *v)
{
    if (v[0] == '/' || p->dir[0] == '\0')
        return strdup(v);
    size_t n = strlen(p->dir) + strlen(v) + 2;
    char *out = malloc(n);
    if (out != NULL)
        snprintf(out, n, "%s/%s", p->dir, v);
    return out;
}

/* Splits v into words at blanks; a word may be quoted with "..." to hold blanks. Returns
 * the number of words, or -1 for an unterminated quote, more than max words or a value
 * that does not fit in buf. Words point into buf. */
static int split_words(const char *v, char *buf, size_t len, char **words, int max)
{
    /* A value cut short would lose its last serials or globs: a lost token admitted, an
     * allow pattern widened. */
    if ((size_t)snprintf(buf, len, "%s", v) >= len)
        return -1;
    int n = 0;
    char *s = buf;
    for (;;) {
        while (*s == ' ' || *s == '\t' || *s == ',')
            s++;
        if (*s == '\0')
            return n;
        if (n == max)
            return -1;
        char *w = s, *o = s;
        bool quoted = false;
        while (*s && (quoted || (*s != ' ' && *s != '\t' && *s != ','))) {
            if (*s == '"')
                quoted = !quoted;
            else
                *o++ = *s;
            s++;
        }
        if (quoted)
            return -1;
        bool end = *s == '\0';
        *o = '\0';
        words[n++] = w;
        if (end)
            return n;
        s++;
    }
}

/* The error for a list value that split_words could not take (n <= 0). */
static int list_error(struct parser *p, int n, const char *name, const char *usage)
{
    if (n < 0)
        return kb_ini_fail(
            &p->ini, "%s: a quote is not closed, or the list is longer than keybound takes", name);
    return kb_ini_fail(&p->ini, "%s", usage);
}

static int token_allow(struct parser *p, const char *v)
{
    char buf[4096], *words[8];
    int n = split_words(v, buf, sizeof buf, words, 8);
    if (n <= 0)
        return list_error(p, n, "allow",
                          "allow needs manufacturer=GLOB, model=GLOB, serial=GLOB or label=GLOB "
                          "(quote values with blanks)");
    struct kb_token_pattern t = {0};
    for (int i = 0; i < n; i++) {
        char *eq = strchr(words[i], '=');
        char **slot = NULL;
        if (eq != NULL) {
            *eq = '\0';
            slot = strcmp(words[i], "manufacturer") == 0 ? &t.manufacturer
                   : strcmp(words[i], "model") == 0      ? &t.model
                   : strcmp(words[i], "serial") == 0     ? &t.serial
                   : strcmp(words[i], "label") == 0      ? &t.label
                                                         : NULL;
        }
        if (slot == NULL || *slot != NULL) {
            free(t.manufacturer);
            free(t.model);
            free(t.serial);
            free(t.label);
            return kb_ini_fail(&p->ini,
                               "allow: '%s' is not manufacturer=, model=, serial= or label= (each "
                               "at most once)",
                               words[i]);
        }
        *slot = strdup(eq + 1);
    }
    struct kb_token_pattern *nv = realloc(p->pol->allow, (p->pol->n_allow + 1) * sizeof *nv);
    if (nv == NULL)
        return kb_ini_fail(&p->ini, "out of memory");
    p->pol->allow = nv;
    nv[p->pol->n_allow++] = t;
    return 1;
}

static int key_algorithms(struct parser *p, const char *v)
{
    char buf[4096], *words[16];
    int n = split_words(v, buf, sizeof buf, words, 16);
    if (n <= 0)
        return list_error(p, n, "algorithms",
                          "algorithms needs a list such as: ec-p256 ec-p384 rsa-3072+ ed25519");
    static const struct {
        const char *name;
        enum kb_key_type type;
        const char *curve;
    } named[] = {
        {"ec-p256", KB_KEY_EC, "P-256"},  {"ec-p384", KB_KEY_EC, "P-384"},
        {"ec-p521", KB_KEY_EC, "P-521"},  {"ed25519", KB_KEY_EDDSA, "Ed25519"},
        {"ed448", KB_KEY_EDDSA, "Ed448"},
    };
    struct kb_alg_rule *rules = calloc((size_t)n, sizeof *rules);
    if (rules == NULL)
        return kb_ini_fail(&p->ini, "out of memory");
    for (int i = 0; i < n; i++) {
        bool ok = false;
        for (size_t j = 0; j < sizeof named / sizeof named[0] && !ok; j++) {
            if (strcmp(words[i], named[j].name) == 0) {
                rules[i].type = named[j].type;
                snprintf(rules[i].curve, sizeof rules[i].curve, "%s", named[j].curve);
                ok = true;
            }
        }
        if (!ok && strncmp(words[i], "rsa-", 4) == 0 && isdigit((unsigned char)words[i][4])) {
            char *end;
            unsigned long bits = strtoul(words[i] + 4, &end, 10);
            bool plus = *end == '+';
            if ((*end == '\0' || (plus && end[1] == '\0')) && bits >= 1024 && bits <= 16384) {
                rules[i].type = KB_KEY_RSA;
                rules[i].min_bits = (unsigned)bits;
                rules[i].at_least = plus;
                ok = true;
            }
        }
        if (!ok) {
            free(rules);
            return kb_ini_fail(&p->ini,
                               "algorithms: '%s' is unknown; use ec-p256, ec-p384, ec-p521, "
                               "ed25519, ed448, rsa-N or rsa-N+ (N from 1024 to 16384)",
                               words[i]);
        }
    }
    p->pol->algs = rules;
    p->pol->n_algs = (size_t)n;
    return 1;
}

static int cert_eku(struct parser *p, const char *v)
{
    static const struct {
        const char *name, *oid;
    } names[] = {
        {"clientAuth", "1.3.6.1.5.5.7.3.2"},   {"serverAuth", "1.3.6.1.5.5.7.3.1"},
        {"codeSigning", "1.3.6.1.5.5.7.3.3"},  {"emailProtection", "1.3.6.1.5.5.7.3.4"},
        {"timeStamping", "1.3.6.1.5.5.7.3.8"}, {"OCSPSigning", "1.3.6.1.5.5.7.3.9"},
    };
    char buf[4096], *words[KB_CERT_LIST_MAX];
    int n = split_words(v, buf, sizeof buf, words, KB_CERT_LIST_MAX);
    if (n <= 0)
        return list_error(p, n, "require-eku",
                          "require-eku needs clientAuth, serverAuth, ... or a dotted OID");
    for (int i = 0; i < n; i++) {
        const char *oid = NULL;
        for (size_t j = 0; j < sizeof names / sizeof names[0]; j++)
            if (strcmp(words[i], names[j].name) == 0)
                oid = names[j].oid;
        if (oid == NULL && strspn(words[i], "0123456789.") == strlen(words[i]) &&
            isdigit((unsigned char)words[i][0]) && strstr(words[i], "..") == NULL &&
            strchr(words[i], '.') != NULL && words[i][strlen(words[i]) - 1] != '.')
            oid = words[i];
        if (oid == NULL)
            return kb_ini_fail(
                &p->ini,
                "require-eku: '%s' is neither a known purpose (clientAuth, "
                "serverAuth, codeSigning, emailProtection, timeStamping, OCSPSigning) "
                "nor a dotted OID",
                words[i]);
        if (add_string(&p->pol->eku, &p->pol->n_eku, oid) != 0)
            return kb_ini_fail(&p->ini, "out of memory");
    }
    return 1;
}

/* Canonical base64 of 32 bytes: 43 characters and one '='. */
static bool is_sha256_b64(const char *v)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (strlen(v) != 44 || v[43] != '=' || strspn(v, alphabet) != 43)
        return false;
    /* The last character carries 4 bits of data and 2 bits that must be zero. */
    return ((strchr(alphabet, v[42]) - alphabet) & 3) == 0;
}

static bool parse_endpoint_name(const char *sec, char **host, unsigned *port)
{
    const char *q = sec + strlen("endpoint");
    while (*q == ' ')
        q++;
    size_t n = strlen(q);
    if (n < 3 || q[0] != '"' || q[n - 1] != '"')
        return false;
    char name[300];
    if (n - 2 >= sizeof name)
        return false;
    memcpy(name, q + 1, n - 2);
    name[n - 2] = '\0';
    char *h = name, *ps = NULL;
    if (name[0] == '[') {
        char *close = strchr(name, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':'))
            return false;
        *close = '\0';
        h = name + 1;
        ps = close[1] == ':' ? close + 2 : NULL;
    } else if ((ps = strchr(name, ':')) != NULL) {
        if (strchr(ps + 1, ':') != NULL)
            return false; /* a bare IPv6 address needs brackets */
        *ps++ = '\0';
    }
    /* Brackets only delimit an IPv6 address; no host name holds one, nor a control
     * character or a blank. */
    if (!kb_host_valid(h, strlen(h)) || (h != name && strchr(h, ':') == NULL))
        return false;
    *port = 0;
    if (ps != NULL) {
        char *end;
        unsigned long v = strtoul(ps, &end, 10);
        if (!isdigit((unsigned char)*ps) || *end != '\0' || v == 0 || v > 65535)
            return false;
        *port = (unsigned)v;
    }
    for (char *c = h; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    *host = strdup(h);
    return *host != NULL;
}

bool kb_network_name_valid(const char *name)
{
    size_t n = strlen(name);
    return n >= 1 && n <= 64 &&
           strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n &&
           strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* [network "NAME"] */
static int start_network(struct parser *p, const char *section)
{
    const char *q = section + strlen("network");
    while (*q == ' ')
        q++;
    size_t n = strlen(q);
    char name[80];
    if (n >= 3 && n - 2 < sizeof name && q[0] == '"' && q[n - 1] == '"') {
        memcpy(name, q + 1, n - 2);
        name[n - 2] = '\0';
    } else {
        name[0] = '\0';
    }
    if (!kb_network_name_valid(name)) {
        char shown[300];
        kb_printable(section, shown, sizeof shown);
        return kb_ini_fail(&p->ini,
                           "section [%s]: write [network \"NAME\"] with a NAME of 1 to 64 "
                           "letters, digits, '.', '_' or '-'",
                           shown);
    }
    if (kb_policy_network(p->pol, name) != NULL)
        return kb_ini_fail(&p->ini, "section [%s] appears twice", section);
    struct kb_network_rule *nv = realloc(p->pol->networks, (p->pol->n_networks + 1) * sizeof *nv);
    if (nv == NULL)
        return kb_ini_fail(&p->ini, "out of memory");
    p->pol->networks = nv;
    nv[p->pol->n_networks] = (struct kb_network_rule){.name = strdup(name)};
    p->network = &nv[p->pol->n_networks++];
    if (p->network->name == NULL)
        return kb_ini_fail(&p->ini, "out of memory");
    p->section = SEC_NETWORK;
    p->seen[SEC_NETWORK] = 0;
    return 1;
}

static int start_section(struct parser *p, const char *section)
{
    p->endpoint = NULL;
    p->network = NULL;
    if (strcmp(section, "admission") == 0)
        p->section = SEC_ADMISSION;
    else if (strcmp(section, "token") == 0)
        p->section = SEC_TOKEN;
    else if (strcmp(section, "key") == 0)
        p->section = SEC_KEY;
    else if (strcmp(section, "certificate") == 0)
        p->section = SEC_CERT;
    else if (strncmp(section, "endpoint", 8) == 0 && (section[8] == ' ' || section[8] == '"')) {
        struct kb_endpoint_rule e = {0};
        if (!parse_endpoint_name(section, &e.host, &e.port)) {
            char shown[300];
            kb_printable(section, shown, sizeof shown);
            return kb_ini_fail(
                &p->ini,
                "section [%s]: write [endpoint \"HOST\"] or [endpoint \"HOST:PORT\"] "
                "with a DNS name or IP address (IPv6 as [endpoint \"[::1]:443\"])",
                shown);
        }
        for (size_t i = 0; i < p->pol->n_endpoints; i++)
            if (strcmp(p->pol->endpoints[i].host, e.host) == 0 &&
                p->pol->endpoints[i].port == e.port) {
                free(e.host);
                return kb_ini_fail(&p->ini, "section [%s] appears twice", section);
            }
        struct kb_endpoint_rule *nv =
            realloc(p->pol->endpoints, (p->pol->n_endpoints + 1) * sizeof *nv);
        if (nv == NULL) {
            free(e.host);
            return kb_ini_fail(&p->ini, "out of memory");
        }
        p->pol->endpoints = nv;
        nv[p->pol->n_endpoints] = e;
        p->endpoint = &nv[p->pol->n_endpoints++];
        p->section = SEC_ENDPOINT;
        p->seen[SEC_ENDPOINT] = 0;
    } else if (strncmp(section, "network", 7) == 0 && (section[7] == ' ' || section[7] == '"')) {
        return start_network(p, section);
    } else {
        char shown[300];
        kb_printable(section, shown, sizeof shown);
        static const char *const sections[] = {"admission", "token", "key", "certificate", NULL};
        const char *close = kb_suggest(section, sections, 0);
        if (close != NULL)
            return kb_ini_fail(&p->ini, "unknown section [%s] (did you mean [%s]?)", shown, close);
        return kb_ini_fail(&p->ini,
                           "unknown section [%s]; sections are [admission], [token], [key], "
                           "[certificate], [endpoint \"HOST[:PORT]\"] and [network \"NAME\"]",
                           shown);
    }
    return 1;
}

static void on_section(void *user, const char *name)
{
    start_section(user, name);
}

enum { REPEATABLE = 1 };

struct key_def {
    enum section section;
    const char *name;
    unsigned flags;
};

static const struct key_def keys[] = {
    {SEC_ADMISSION, "mode", 0},
    {SEC_ADMISSION, "allow-unlisted-endpoints", 0},
    {SEC_TOKEN, "allow", REPEATABLE},
    {SEC_TOKEN, "deny-serial", REPEATABLE},
    {SEC_TOKEN, "require-hardware-slot", 0},
    {SEC_TOKEN, "require-login", 0},
    {SEC_TOKEN, "require-protected-auth-path", 0},
    {SEC_KEY, "require-sensitive", 0},
    {SEC_KEY, "require-not-extractable", 0},
    {SEC_KEY, "require-never-extractable", 0},
    {SEC_KEY, "require-always-sensitive", 0},
    {SEC_KEY, "require-local", 0},
    {SEC_KEY, "algorithms", 0},
    {SEC_KEY, "require-attestation", 0},
    {SEC_KEY, "tpm-ca", REPEATABLE},
    {SEC_CERT, "trust", 0},
    {SEC_CERT, "require-eku", 0},
    {SEC_CERT, "subject", 0},
    {SEC_CERT, "san-uri", 0},
    {SEC_CERT, "min-remaining", 0},
    {SEC_CERT, "renew-before", 0},
    {SEC_CERT, "max-lifetime", 0},
    {SEC_CERT, "crl", 0},
    {SEC_CERT, "allow-ca-device-cert", 0},
    {SEC_ENDPOINT, "ca", 0},
    {SEC_ENDPOINT, "pin-sha256", REPEATABLE},
    {SEC_ENDPOINT, "min-tls", 0},
    {SEC_ENDPOINT, "priority", 0},
    {SEC_ENDPOINT, "server-name", 0},
    {SEC_NETWORK, "ca", 0},
    {SEC_NETWORK, "server-name", 0},
    {SEC_NETWORK, "min-tls", 0},
};

static const char *section_name(enum section s)
{
    static const char *const names[] = {
        "", "[admission]", "[token]", "[key]", "[certificate]", "[endpoint]", "[network]"};
    return names[s];
}

static int set_string(struct parser *p, char **slot, const char *v, bool path)
{
    if (*v == '\0')
        return kb_ini_fail(&p->ini, "the value is empty");
    free(*slot);
    *slot = path ? resolve_path(p, v) : strdup(v);
    return *slot != NULL ? 1 : kb_ini_fail(&p->ini, "out of memory");
}

static int set_bool(struct parser *p, bool *slot, const char *name, const char *v)
{
    return parse_bool(v, slot) ? 1
                               : kb_ini_fail(&p->ini, "%s must be yes or no, not '%s'", name, v);
}

static int set_duration(struct parser *p, long long *slot, const char *name, const char *v)
{
    *slot = kb_duration_parse(v);
    return *slot >= 0
               ? 1
               : kb_ini_fail(&p->ini,
                             "%s: '%s' is not a duration; write e.g. 30d, 12h, 1d12h, 90m (units "
                             "s, m, h, d, w)",
                             name, v);
}

static int handler(void *user, const char *name, const char *v)
{
    struct parser *p = user;
    if (p->section == SEC_NONE)
        return kb_ini_fail(&p->ini,
                           "'%s' stands before any section; put it under [admission], [token], "
                           "[key], [certificate] or [endpoint \"HOST\"]",
                           name);
    size_t k;
    for (k = 0; k < sizeof keys / sizeof keys[0]; k++)
        if (keys[k].section == p->section && strcmp(keys[k].name, name) == 0)
            break;
    if (k == sizeof keys / sizeof keys[0]) {
        /* The section's own keys first: a typo there is the likely one. */
        const char *mine[sizeof keys / sizeof keys[0]], *other[sizeof keys / sizeof keys[0]];
        size_t n_mine = 0, n_other = 0;
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            if (keys[i].section == p->section)
                mine[n_mine++] = keys[i].name;
            else
                other[n_other++] = keys[i].name;
        }
        const char *close = kb_suggest(name, mine, n_mine);
        if (close != NULL)
            return kb_ini_fail(&p->ini, "unknown key '%s' in %s (did you mean '%s'?)", name,
                               section_name(p->section), close);
        close = kb_suggest(name, other, n_other);
        for (size_t i = 0; close != NULL && i < sizeof keys / sizeof keys[0]; i++)
            if (strcmp(keys[i].name, close) == 0)
                return kb_ini_fail(&p->ini, "unknown key '%s' in %s ('%s' belongs in %s)", name,
                                   section_name(p->section), close, section_name(keys[i].section));
        return kb_ini_fail(&p->ini, "unknown key '%s' in %s; see keybound-policy(5)", name,
                           section_name(p->section));
    }
    if (!(keys[k].flags & REPEATABLE)) {
        if (p->seen[p->section] & (1ULL << k))
            return kb_ini_fail(&p->ini, "'%s' is set twice in %s", name, section_name(p->section));
        p->seen[p->section] |= 1ULL << k;
    }
    kb_policy *pol = p->pol;
    struct kb_endpoint_rule *e = p->endpoint;
    /* A network section takes the endpoint's keys for the same things, read the same way. */
    char **ca = e ? &e->ca : p->network ? &p->network->ca : NULL;
    char **server_name = e ? &e->server_name : p->network ? &p->network->server_name : NULL;
    int *min_tls = e ? &e->min_tls : p->network ? &p->network->min_tls : NULL;
    switch (p->section) {
    case SEC_ADMISSION:
        if (strcmp(name, "mode") == 0) {
            if (strcmp(v, "enforce") == 0)
                pol->mode = KB_MODE_ENFORCE;
            else if (strcmp(v, "audit") == 0)
                pol->mode = KB_MODE_AUDIT;
            else if (strcmp(v, "off") == 0)
                pol->mode = KB_MODE_OFF;
            else
                return kb_ini_fail(&p->ini, "mode must be enforce, audit or off, not '%s'", v);
            return 1;
        }
        return set_bool(p, &pol->allow_unlisted_endpoints, name, v);
    case SEC_TOKEN:
        if (strcmp(name, "allow") == 0)
            return token_allow(p, v);
        if (strcmp(name, "deny-serial") == 0) {
            char buf[4096], *words[32];
            int n = split_words(v, buf, sizeof buf, words, 32);
            if (n <= 0)
                return list_error(p, n, "deny-serial",
                                  "deny-serial needs one or more serial numbers (globs)");
            for (int i = 0; i < n; i++)
                if (add_string(&pol->deny_serial, &pol->n_deny_serial, words[i]) != 0)
                    return kb_ini_fail(&p->ini, "out of memory");
            return 1;
        }
        if (strcmp(name, "require-hardware-slot") == 0)
            return set_bool(p, &pol->require_hw_slot, name, v);
        if (strcmp(name, "require-login") == 0)
            return set_bool(p, &pol->require_login, name, v);
        return set_bool(p, &pol->require_protected_auth, name, v);
    case SEC_KEY:
        if (strcmp(name, "algorithms") == 0)
            return key_algorithms(p, v);
        if (strcmp(name, "tpm-ca") == 0) {
            /* One file per line: a list in one value would need quoting rules for paths. */
            if (*v == '\0')
                return kb_ini_fail(&p->ini, "tpm-ca needs a file of EK issuer certificates");
            char *path = resolve_path(p, v);
            if (path == NULL || add_string(&pol->tpm_ca, &pol->n_tpm_ca, path) != 0) {
                free(path);
                return kb_ini_fail(&p->ini, "out of memory");
            }
            free(path);
            return 1;
        }
        if (strcmp(name, "require-attestation") == 0)
            return set_bool(p, &pol->require_attestation, name, v);
        bool *slot =
            strcmp(name, "require-sensitive") == 0           ? &pol->require_sensitive
            : strcmp(name, "require-not-extractable") == 0   ? &pol->require_not_extractable
            : strcmp(name, "require-never-extractable") == 0 ? &pol->require_never_extractable
            : strcmp(name, "require-always-sensitive") == 0  ? &pol->require_always_sensitive
                                                             : &pol->require_local;
        return set_bool(p, slot, name, v);
    case SEC_CERT:
        if (strcmp(name, "trust") == 0)
            return set_string(p, &pol->trust, v, true);
        if (strcmp(name, "crl") == 0)
            return set_string(p, &pol->crl, v, true);
        if (strcmp(name, "subject") == 0)
            return set_string(p, &pol->subject, v, false);
        if (strcmp(name, "san-uri") == 0)
            return set_string(p, &pol->san_uri, v, false);
        if (strcmp(name, "require-eku") == 0)
            return cert_eku(p, v);
        if (strcmp(name, "allow-ca-device-cert") == 0)
            return set_bool(p, &pol->allow_ca_device_cert, name, v);
        if (strcmp(name, "min-remaining") == 0)
            return set_duration(p, &pol->min_remaining, name, v);
        if (strcmp(name, "renew-before") == 0)
            return set_duration(p, &pol->renew_before, name, v);
        return set_duration(p, &pol->max_lifetime, name, v);
    case SEC_ENDPOINT:
    case SEC_NETWORK:
        if (strcmp(name, "ca") == 0)
            return set_string(p, ca, v, true);
        if (strcmp(name, "priority") == 0)
            return set_string(p, &e->priority, v, false);
        if (strcmp(name, "server-name") == 0) {
            kb_err why;
            char norm[KB_HOST_MAX + 1];
            if (kb_server_name_norm("server-name", v, norm, sizeof norm, &why) != 0)
                return kb_ini_fail(&p->ini, "%s", why.msg);
            return set_string(p, server_name, norm, false);
        }
        if (strcmp(name, "min-tls") == 0) {
            if (strcmp(v, "1.2") == 0)
                *min_tls = 12;
            else if (strcmp(v, "1.3") == 0)
                *min_tls = 13;
            else
                return kb_ini_fail(&p->ini, "min-tls must be 1.2 or 1.3, not '%s'", v);
            return 1;
        }
        if (!is_sha256_b64(v))
            return kb_ini_fail(
                &p->ini,
                "pin-sha256 '%s' is not the base64 of a SHA-256 digest (44 "
                "characters ending in '='); see keybound-policy(5) for how to make one",
                v);
        return add_string(&e->pins, &e->n_pins, v) == 0 ? 1 : kb_ini_fail(&p->ini, "out of memory");
    default:
        return kb_ini_fail(&p->ini, "internal error");
    }
}

/* Rules that only make sense together; their errors are about the file as a whole. */
static int cross_check(const kb_policy *pol, const char *name, kb_err *err)
{
    if (pol->crl != NULL && pol->trust == NULL)
        return kb_err_set(err,
                          "%s: crl needs trust in [certificate]: a CRL is only believed when it "
                          "is signed by a trust anchor",
                          name);
    /* Evidence no anchor can vouch for proves nothing: every key would be denied. */
    if (pol->require_attestation && pol->n_tpm_ca == 0)
        return kb_err_set(err,
                          "%s: require-attestation needs tpm-ca in [key]: the EK issuers "
                          "(TPM vendors' CAs) that vouch for the TPM",
                          name);
    if (pol->renew_before >= 0 && pol->min_remaining >= 0 && pol->renew_before < pol->min_remaining)
        return kb_err_set(err,
                          "%s: renew-before is shorter than min-remaining: the warning would "
                          "come after the denial",
                          name);
    return 0;
}

static kb_policy *policy_new(void)
{
    kb_policy *pol = calloc(1, sizeof *pol);
    if (pol == NULL)
        return NULL;
    pol->mode = KB_MODE_ENFORCE;
    /* doc/design.md invariant 1: only an explicit "no" admits such a key. */
    pol->require_sensitive = true;
    pol->require_not_extractable = true;
    pol->min_remaining = pol->renew_before = pol->max_lifetime = -1;
    return pol;
}

int kb_policy_parse(FILE *f, const char *name, kb_policy **out, kb_err *err)
{
    *out = NULL;
    struct parser p = {0};
    p.ini = (struct kb_ini){.user = &p,
                            .section = on_section,
                            .key = handler,
                            .kind = "policy",
                            .expected = "[section]"};
    const char *slash = strrchr(name, '/');
    if (slash != NULL)
        snprintf(p.dir, sizeof p.dir, "%.*s", (int)(slash - name), name);
    if (slash == name)
        snprintf(p.dir, sizeof p.dir, "/");
    if ((p.pol = policy_new()) == NULL || (p.pol->path = strdup(name)) == NULL) {
        kb_policy_free(p.pol);
        return kb_err_set(err, "out of memory");
    }
    if (kb_ini_parse(&p.ini, f, name, err) != 0 || cross_check(p.pol, name, err) != 0) {
        kb_policy_free(p.pol);
        return -1;
    }
    *out = p.pol;
    return 0;
}

/* The files a policy names are trusted as much as the policy itself. A missing trust or
 * CA file is a mistake in the policy, found when it is read; a missing CRL is reported (a
 * denial) where it is used, since a CRL is often fetched while the policy stays. */
static int check_named_files(const kb_policy *pol, kb_err *err)
{
    kb_err e;
    const char *bad = NULL;
    if (pol->trust != NULL && kb_trustfile_check(pol->trust, "trust file", 0, &e))
        bad = e.msg;
    if (bad == NULL && pol->crl != NULL &&
        kb_trustfile_check(pol->crl, "CRL file", KB_TF_MISSING_OK, &e))
        bad = e.msg;
    for (size_t i = 0; bad == NULL && i < pol->n_tpm_ca; i++)
        if (kb_trustfile_check(pol->tpm_ca[i], "tpm-ca file", 0, &e))
            bad = e.msg;
    for (size_t i = 0; bad == NULL && i < pol->n_endpoints; i++)
        if (pol->endpoints[i].ca != NULL &&
            kb_trustfile_check(pol->endpoints[i].ca, "endpoint CA file", 0, &e))
            bad = e.msg;
    for (size_t i = 0; bad == NULL && i < pol->n_networks; i++)
        if (pol->networks[i].ca != NULL &&
            kb_trustfile_check(pol->networks[i].ca, "network CA file", 0, &e))
            bad = e.msg;
    return bad == NULL ? 0 : kb_err_set(err, "policy %s: %s", pol->path, bad);
}

int kb_policy_load(const char *path, kb_policy **out, kb_err *err)
{
    *out = NULL;
    /* Whoever can write the policy (or its directory) decides which devices are admitted. */
    FILE *f = kb_trustfile_fopen(path, "policy", 0, err);
    if (f == NULL)
        return -1;
    int rc = kb_policy_parse(f, path, out, err);
    fclose(f);
    if (rc == 0 && check_named_files(*out, err) != 0) {
        kb_policy_free(*out);
        *out = NULL;
        return -1;
    }
    return rc;
}

int kb_policy_load_or_baseline(const char *path, kb_policy **out, bool *baseline, kb_err *err)
{
    static const char default_path[] = KB_SYSCONFDIR "/keybound/policy.conf";
    *baseline = false;
    if (path != NULL)
        return kb_policy_load(path, out, err);
    if (access(default_path, F_OK) == 0)
        return kb_policy_load(default_path, out, err);
    if ((*out = kb_policy_baseline()) == NULL)
        return kb_err_set(err, "out of memory");
    *baseline = true;
    return 0;
}

kb_policy *kb_policy_baseline(void)
{
    kb_policy *pol = policy_new();
    if (pol == NULL)
        return NULL;
    pol->require_never_extractable = true;
    if (add_string(&pol->eku, &pol->n_eku, "1.3.6.1.5.5.7.3.2") != 0) {
        kb_policy_free(pol);
        return NULL;
    }
    /* No endpoint list in the baseline: which servers are trusted is then said by --ca. */
    pol->allow_unlisted_endpoints = true;
    return pol;
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void kb_policy_free(kb_policy *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n_allow; i++) {
        free(p->allow[i].manufacturer);
        free(p->allow[i].model);
        free(p->allow[i].serial);
        free(p->allow[i].label);
    }
    free(p->allow);
    free_strings(p->deny_serial, p->n_deny_serial);
    free(p->algs);
    free_strings(p->tpm_ca, p->n_tpm_ca);
    free(p->trust);
    free_strings(p->eku, p->n_eku);
    free(p->subject);
    free(p->san_uri);
    free(p->crl);
    for (size_t i = 0; i < p->n_endpoints; i++) {
        struct kb_endpoint_rule *e = &p->endpoints[i];
        free(e->host);
        free(e->ca);
        free_strings(e->pins, e->n_pins);
        free(e->priority);
        free(e->server_name);
    }
    free(p->endpoints);
    for (size_t i = 0; i < p->n_networks; i++) {
        free(p->networks[i].name);
        free(p->networks[i].ca);
        free(p->networks[i].server_name);
    }
    free(p->networks);
    free(p->path);
    free(p);
}

const char *kb_mode_name(enum kb_mode m)
{
    return m == KB_MODE_AUDIT ? "audit" : m == KB_MODE_OFF ? "off" : "enforce";
}

const struct kb_endpoint_rule *kb_policy_endpoint(const kb_policy *p, const char *host,
                                                  unsigned port)
{
    const struct kb_endpoint_rule *any_port = NULL;
    for (size_t i = 0; i < p->n_endpoints; i++) {
        const struct kb_endpoint_rule *e = &p->endpoints[i];
        if (strcasecmp(e->host, host) != 0)
            continue;
        if (e->port == port)
            return e;
        if (e->port == 0)
            any_port = e;
    }
    return any_port;
}

const struct kb_network_rule *kb_policy_network(const kb_policy *p, const char *name)
{
    for (size_t i = 0; i < p->n_networks; i++)
        if (strcmp(p->networks[i].name, name) == 0)
            return &p->networks[i];
    return NULL;
}
