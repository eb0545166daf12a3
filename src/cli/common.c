/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "pkcs11/uri.h"
#include "src/tls/certjson.h"
#include "src/util/log.h"
#include "src/util/suggest.h"

int kb_cli_common(struct kb_cli *c, int opt, const char *arg)
{
    switch (opt) {
    case KB_OPT_MODULE:
        c->module = arg;
        return 1;
    case KB_OPT_MODULES:
        c->modules = arg;
        return 1;
    case KB_OPT_PIN_FILE:
        c->pin.file = arg;
        return 1;
    case KB_OPT_PIN_ENV:
        c->pin.env = arg;
        return 1;
    case KB_OPT_FORCE:
        c->pin.force = true;
        return 1;
    case KB_OPT_INSECURE_PIN_FILE:
        kb_secret_allow_readable(true);
        return 1;
    case KB_OPT_JSON:
        kb_cli_set_json(true);
        return 1;
    case 'v':
        kb_log_set_verbosity(++c->verbose);
        return 1;
    case 'q':
        c->quiet = true;
        c->verbose = 0;
        kb_log_set_verbosity(-1);
        return 1;
    default:
        return 0;
    }
}

int kb_cli_parse_uri_only(struct kb_cli *c, int argc, char **argv, const char *cmd,
                          const char *help, const char **uri_text)
{
    static const struct option longopts[] = {KB_COMMON_LONGOPTS, {0}};
    int opt;
    while ((opt = kb_cli_getopt(argc, argv, KB_COMMON_SHORTOPTS, longopts)) != -1) {
        if (opt == 'h') {
            fputs(help, stdout);
            return KB_EXIT_OK;
        }
        if (!kb_cli_common(c, opt, optarg))
            return kb_cli_usage(cmd, "%s", kb_cli_bad_option(argv, longopts));
    }
    if (argc - optind > 1)
        return kb_cli_usage(cmd, "takes at most one URI");
    *uri_text = optind < argc ? argv[optind] : NULL;
    return -1;
}

#define ERR_MAX sizeof(((kb_err *)0)->msg)

/* One command per process: what --json asked for, and what the one document will be. */
static struct {
    bool on;
    bool printed;             /* a result document went out */
    char **scanned;           /* the argv kb_cli_getopt has read for --json */
    char error[ERR_MAX + 64]; /* the first message a failure printed on stderr */
} json_out;

int kb_cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
    opterr = 0;
    if (json_out.scanned != argv) {
        /* getopt's own reading, so that a value that looks like --json is not taken for
         * it; "--json=yes" is still a request for JSON, whose error says so. */
        json_out.scanned = argv;
        optind = 0;
        int opt, at;
        while ((at = -1, opt = getopt_long(argc, argv, shortopts, longopts, &at)) != -1) {
            const char *arg = argv[optind - 1];
            if ((opt != '?' && at >= 0 && strcmp(longopts[at].name, "json") == 0) ||
                (opt == '?' && strncmp(arg, "--json=", 7) == 0))
                json_out.on = true;
        }
        optind = 0;
    }
    return getopt_long(argc, argv, shortopts, longopts, NULL);
}

bool kb_cli_json(void)
{
    return json_out.on;
}

void kb_cli_set_json(bool on)
{
    json_out.on = on;
}

static void note_error(const char *msg)
{
    if (json_out.error[0] == '\0')
        snprintf(json_out.error, sizeof json_out.error, "%s", msg);
}

int kb_cli_fail(const kb_err *err)
{
    fprintf(stderr, "keybound: error: %s\n", err->msg);
    note_error(err->msg);
    return KB_EXIT_ERROR;
}

int kb_cli_no_token(kb_p11 *p, const char *uri_text)
{
    kb_err err;
    kb_p11_no_match(p, uri_text, "token", &err);
    return kb_cli_fail(&err);
}

int kb_cli_usage(const char *cmd, const char *fmt, ...)
{
    char msg[ERR_MAX], line[ERR_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(line, sizeof line, "%s; see 'keybound %s --help'", msg, cmd);
    fprintf(stderr, "keybound %s: %s\n", cmd, line);
    note_error(line);
    return KB_EXIT_ERROR;
}

int kb_cli_refuse(const char *fmt, ...)
{
    char msg[ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "keybound: %s\n", msg);
    note_error(msg);
    return KB_EXIT_REFUSED;
}

int kb_cli_exit_code(int rc)
{
    /* A rejected PIN gets its own code, whatever the command made of it: systemd does not
     * restart on it (RestartPreventExitStatus=6), a script can tell. */
    return rc != KB_EXIT_OK && kb_pin_rejection_seen() ? KB_EXIT_PIN : rc;
}

int kb_cli_json_finish(int rc)
{
    rc = kb_cli_exit_code(rc);
    if (json_out.on && !json_out.printed && rc != KB_EXIT_OK) {
        json_object *o = json_object_new_object();
        /* Every failing path prints its line through the functions above; should one not,
         * the document still says where to look rather than being absent. */
        json_object_object_add(
            o, "error",
            json_object_new_string(json_out.error[0] ? json_out.error : "see standard error"));
        json_object_object_add(o, "exit", json_object_new_int(rc));
        kb_cli_print_json(o);
    }
    return rc;
}

const char *kb_cli_bad_option(char **argv, const struct option *longopts)
{
    static char msg[256];
    const char *arg = argv[optind - 1];
    if (arg[0] != '-' || arg[1] != '-') {
        snprintf(msg, sizeof msg, "unknown option '-%c'", optopt ? optopt : '?');
        return msg;
    }
    const char *name = arg + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const char *names[128], *prefixed[8];
    size_t n = 0, n_prefixed = 0;
    for (const struct option *o = longopts; o->name != NULL && n < 128; o++) {
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) {
            /* getopt says the same for a value given to a flag and for a value missing. */
            snprintf(msg, sizeof msg,
                     o->has_arg == no_argument ? "--%s takes no value"
                                               : "option '--%s' needs a value",
                     o->name);
            return msg;
        }
        if (strncmp(o->name, name, len) == 0 && n_prefixed < 8)
            prefixed[n_prefixed++] = o->name;
        names[n++] = o->name;
    }
    if (n_prefixed > 1) {
        /* getopt takes an unambiguous prefix; this one names several. */
        int w = snprintf(msg, sizeof msg, "option '--%.*s' is ambiguous: ", (int)len, name);
        for (size_t i = 0; i < n_prefixed && w > 0 && (size_t)w < sizeof msg; i++)
            w += snprintf(msg + w, sizeof msg - (size_t)w, "%s--%s", i ? ", " : "", prefixed[i]);
        return msg;
    }
    if (n_prefixed == 1) {
        /* A prefix of exactly one: getopt took it, so what failed is its value. */
        snprintf(msg, sizeof msg, "option '--%s' needs a value", prefixed[0]);
        return msg;
    }
    char typed[64];
    snprintf(typed, sizeof typed, "%.*s", (int)len, name);
    if (strcmp(typed, "json") == 0) {
        /* csr, import-cert, tunnel: PEM, one line, a long run; /status is the tunnel's JSON. */
        snprintf(msg, sizeof msg, "--json: this command prints no JSON document");
        return msg;
    }
    const char *close = kb_suggest(typed, names, n);
    if (close != NULL)
        snprintf(msg, sizeof msg, "unknown option '--%s' (did you mean --%s?)", typed, close);
    else
        snprintf(msg, sizeof msg, "unknown option '--%s'", typed);
    return msg;
}

bool kb_cli_count(const char *arg, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end;
    if (!isdigit((unsigned char)arg[0]))
        return false;
    errno = 0;
    unsigned long v = strtoul(arg, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

int kb_cli_load(struct kb_cli *c, P11KitUri *uri, kb_p11 **out, kb_err *err)
{
    if (c->module != NULL && c->modules != NULL) {
        *out = NULL;
        return kb_err_set(err, "--module PATH and --modules NAMES both choose the modules; "
                               "give one of them");
    }
    const char *module = c->module;
    if (module == NULL && uri != NULL)
        module = p11_kit_uri_get_module_path(uri);
    if (module != NULL)
        return kb_p11_open(out, module, err);
    /* Every command, the tunnel and the systemd units alike, takes the list from the
     * environment; an empty variable counts as unset. */
    const char *names = c->modules, *from = "--modules";
    const char *env = getenv("KEYBOUND_MODULES");
    if (names == NULL && env != NULL && *env != '\0') {
        names = env;
        from = "KEYBOUND_MODULES";
    }
    if (names == NULL && uri != NULL && p11_kit_uri_get_module_name(uri) != NULL) {
        names = p11_kit_uri_get_module_name(uri);
        from = "the URI's module-name";
    }
    return kb_p11_open_registered(out, names, from, err);
}

int kb_cli_uri(struct kb_cli *c, const char *text, P11KitUri **out, kb_err *err)
{
    if (kb_uri_parse(text, 0, out, err) != 0)
        return -1;
    const char *src = p11_kit_uri_get_pin_source(*out);
    if (src != NULL)
        c->pin.uri_source = src;
    return 0;
}

int kb_cli_policy(const char *path, kb_policy **out, kb_err *err)
{
    bool baseline;
    if (kb_policy_load_or_baseline(path, out, &baseline, err) != 0)
        return -1;
    if (baseline && kb_log_verbosity() >= 0)
        fprintf(stderr,
                "keybound: no policy at %s; using the built-in baseline (key sensitive "
                "and never extractable, certificate valid with clientAuth, server always "
                "verified)\n",
                KB_DEFAULT_POLICY);
    return 0;
}

int kb_cli_signer(kb_p11 *p, struct kb_cli *c, const kb_key *k, kb_signer **out, kb_err *err)
{
    if (kb_gnutls_pkcs11_init(p, err) != 0)
        return -1;
    kb_pin_install_gnutls(&c->pin);
    if (kb_signer_open(k->uri, out, err) != 0)
        return -1;
    kb_signer_set_token(*out, k->token);
    kb_pin_settle(); /* the key opened: a PIN the callback gave was accepted */
    return 0;
}

void kb_cli_print_json(json_object *o)
{
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "schema", json_object_new_int(1));
    json_object_object_foreach(o, key, value)
    {
        json_object_object_add(doc, key, json_object_get(value));
    }
    json_object_put(o);
    puts(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
    fflush(stdout);
    json_object_put(doc);
    json_out.printed = true;
}

json_object *kb_cli_cert_json(const kb_cert *c)
{
    gnutls_datum_t der = {c->der, (unsigned)c->der_len};
    return kb_cert_json(&der);
}

void kb_cli_hidden_keys(size_t hidden, const char *hint)
{
    if (hidden)
        fprintf(stderr, "keybound: %zu token%s a login to show private keys%s\n", hidden,
                hidden == 1 ? " needs" : "s need",
                hint ? hint : ": give --pin-file FILE or --pin-env NAME");
}

void kb_cli_time(time_t t, char *buf, size_t len)
{
    struct tm tm;
    if (t == (time_t)-1 || gmtime_r(&t, &tm) == NULL)
        snprintf(buf, len, "unknown");
    else
        strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
