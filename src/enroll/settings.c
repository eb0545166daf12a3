/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "src/enroll/settings.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pkcs11/uri.h"
#include "policy/policy.h"
#include "src/enroll/est.h"
#include "src/util/inilines.h"
#include "src/util/proxy.h"
#include "src/util/trustfile.h"

/* Their places in kb_enroll_options: the pairs that say one thing two ways. */
enum { I_CA = 1, I_FINGERPRINT = 2, I_MODULE = 11, I_MODULES = 12 };

static int text(const char **dst, const char *what, const char *v, kb_err *err)
{
    if (*v == '\0')
        return kb_err_set(err, "%s: the value is empty", what);
    *dst = v;
    return 0;
}

static int flag(bool *dst, const char *what, const char *v, kb_err *err)
{
    if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0)
        *dst = true;
    else if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0)
        *dst = false;
    else
        return kb_err_set(err, "%s must be yes, no, true or false, not '%s'", what, v);
    return 0;
}

static int opt_est(struct kb_enroll_settings *s, const char *what, const char *v, kb_err *err)
{
    kb_err why;
    if (kb_est_check_url(v, &why) != 0)
        return kb_err_set(err, "%s: %s", what, why.msg);
    s->spec.url = v;
    return 0;
}

/* ca and ca-fingerprint both say how to trust the server: the one given last stands. */
static int opt_ca(struct kb_enroll_settings *s, const char *what, const char *v, kb_err *err)
{
    if (text(&s->spec.ca, what, v, err) != 0)
        return -1;
    s->spec.fingerprint = NULL;
    return 0;
}

static int opt_fingerprint(struct kb_enroll_settings *s, const char *what, const char *v,
                           kb_err *err)
{
    if (kb_est_check_fingerprint(what, v, err) != 0)
        return -1;
    s->spec.fingerprint = v;
    s->spec.ca = NULL;
    return 0;
}

static int opt_save_cacerts(struct kb_enroll_settings *s, const char *what, const char *v,
                            kb_err *err)
{
    return text(&s->spec.save_cacerts, what, v, err);
}

static int opt_policy(struct kb_enroll_settings *s, const char *what, const char *v, kb_err *err)
{
    return text(&s->policy, what, v, err);
}

static int opt_max_wait(struct kb_enroll_settings *s, const char *what, const char *v, kb_err *err)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (!isdigit((unsigned char)*v) || *end != '\0' || errno != 0 || n > 86400)
        return kb_err_set(err, "%s takes seconds from 0 to 86400, not '%s'", what, v);
    s->spec.max_wait_s = (unsigned)n;
    return 0;
}

static int opt_proxy(struct kb_enroll_settings *s, const char *what, const char *v, kb_err *err)
{
    char host[256];
    unsigned port;
    kb_err why;
    if (kb_proxy_parse_url(v, host, sizeof host, &port, &why) != 0)
        return kb_err_set(err, "%s: %s", what, why.msg);
    s->spec.proxy = v;
    return 0;
}

/* Where the PIN comes from instead, for a file that tried to hold it. */
#define PIN_SOURCES                                                                                \
    "write pin-file = FILE (a file only you can read) or pin-env = NAME, or use the systemd "      \
    "credential keybound.pin"

/* Parsed as renew will parse it, so that a typo is refused with its line. A pin-value is
 * refused either way: on the command line by kb_uri_parse, in a file here, saying so. */
static int opt_key(struct kb_enroll_settings *s, const char *what, const char *v, kb_err *err)
{
    bool file = strncmp(what, "--", 2) != 0;
    P11KitUri *uri;
    kb_err why;
    if (kb_uri_parse(v, file ? KB_URI_ALLOW_PIN_VALUE : 0, &uri, &why) != 0)
        return kb_err_set(err, "%s: %s", what, why.msg);
    bool pin_value = p11_kit_uri_get_pin_value(uri) != NULL;
    p11_kit_uri_free(uri);
    if (pin_value)
        return kb_err_set(err,
                          "%s: the URI carries pin-value; a renew file never holds the PIN: "
                          "remove it and " PIN_SOURCES,
                          what);
    s->spec.key_uri = v;
    return 0;
}

static int opt_within(struct kb_enroll_settings *s, const char *what, const char *v, kb_err *err)
{
    long long d = kb_duration_parse(v);
    if (d < 0)
        return kb_err_set(err, "%s '%s' is not a duration such as 30d or 12h", what, v);
    s->spec.if_expires_within = d;
    return 0;
}

static int opt_rekey(struct kb_enroll_settings *s, const char *what, const char *v, kb_err *err)
{
    return flag(&s->spec.rekey, what, v, err);
}

static int opt_prune(struct kb_enroll_settings *s, const char *what, const char *v, kb_err *err)
{
    return flag(&s->spec.prune, what, v, err);
}

/* module and modules both choose the modules: the one given last stands. */
static int opt_module(struct kb_enroll_settings *s, const char *what, const char *v, kb_err *err)
{
    if (text(&s->module, what, v, err) != 0)
        return -1;
    s->modules = NULL;
    return 0;
}

static int opt_modules(struct kb_enroll_settings *s, const char *what, const char *v, kb_err *err)
{
    if (text(&s->modules, what, v, err) != 0)
        return -1;
    s->module = NULL;
    return 0;
}

static int opt_pin_file(struct kb_enroll_settings *s, const char *what, const char *v, kb_err *err)
{
    return text(&s->pin.file, what, v, err);
}

static int opt_pin_env(struct kb_enroll_settings *s, const char *what, const char *v, kb_err *err)
{
    return text(&s->pin.env, what, v, err);
}

static int opt_json(struct kb_enroll_settings *s, const char *what, const char *v, kb_err *err)
{
    return flag(&s->json, what, v, err);
}

const struct kb_enroll_option kb_enroll_options[KB_ENROLL_N_OPTIONS] = {
    {"est", "URL", true, -1, opt_est},
    [I_CA] = {"ca", "FILE", true, I_FINGERPRINT, opt_ca},
    [I_FINGERPRINT] = {"ca-fingerprint", "sha256:HEX", true, I_CA, opt_fingerprint},
    {"save-cacerts", "FILE", true, -1, opt_save_cacerts},
    {"max-wait", "S", true, -1, opt_max_wait},
    {"proxy", "http://HOST:PORT", true, -1, opt_proxy},
    {"policy", "FILE", true, -1, opt_policy},
    {"key", "URI", false, -1, opt_key},
    {"if-expires-within", "DURATION", false, -1, opt_within},
    {"rekey", NULL, false, -1, opt_rekey},
    {"prune", NULL, false, -1, opt_prune},
    [I_MODULE] = {"module", "PATH", false, I_MODULES, opt_module},
    [I_MODULES] = {"modules", "NAMES", false, I_MODULE, opt_modules},
    {"pin-file", "FILE", false, -1, opt_pin_file},
    {"pin-env", "NAME", false, -1, opt_pin_env},
    {"json", NULL, false, -1, opt_json},
};

void kb_enroll_settings_init(struct kb_enroll_settings *s)
{
    memset(s, 0, sizeof *s);
    s->spec.max_wait_s = 600;
    s->spec.if_expires_within = -1;
}

void kb_enroll_settings_free(struct kb_enroll_settings *s)
{
    for (size_t i = 0; i < KB_ENROLL_N_OPTIONS; i++) {
        free(s->kept[i]);
        s->kept[i] = NULL;
    }
}

int kb_enroll_set(struct kb_enroll_settings *s, size_t i, const char *what, const char *value,
                  kb_err *err)
{
    const struct kb_enroll_option *o = &kb_enroll_options[i];
    if (o->excludes >= 0 && (s->given & (1ULL << o->excludes))) {
        const char *dashes = strncmp(what, "--", 2) == 0 ? "--" : "";
        return kb_err_set(err, "%s and %s%s do not go together: give one of them", what, dashes,
                          kb_enroll_options[o->excludes].name);
    }
    char *copy = strdup(value);
    if (copy == NULL)
        return kb_err_set(err, "out of memory");
    if (o->parse(s, what, copy, err) != 0) {
        free(copy);
        return -1;
    }
    free(s->kept[i]);
    s->kept[i] = copy;
    s->given |= 1ULL << i;
    return 0;
}

struct renew_parser {
    struct kb_ini ini;
    struct kb_enroll_settings *s;
    bool in_renew, had_renew;
};

static void on_section(void *user, const char *name)
{
    struct renew_parser *p = user;
    p->in_renew = false;
    if (strcmp(name, "renew") != 0) {
        kb_ini_fail(&p->ini, "unknown section [%s]; a renew file has one [renew] section", name);
        return;
    }
    if (p->had_renew) {
        kb_ini_fail(&p->ini, "[renew] is given twice");
        return;
    }
    p->in_renew = p->had_renew = true;
}

static int on_key(void *user, const char *key, const char *value)
{
    struct renew_parser *p = user;
    char keys[400] = "";
    for (size_t i = 0; i < KB_ENROLL_N_OPTIONS; i++)
        snprintf(keys + strlen(keys), sizeof keys - strlen(keys), "%s%s", i ? ", " : "",
                 kb_enroll_options[i].name);
    if (!p->in_renew)
        return kb_ini_fail(&p->ini, "'%s' stands before the [renew] section", key);
    /* The PIN itself is never written down where keybound reads settings: a file is read
     * by whoever reads /etc, backed up and copied around. */
    if (strcmp(key, "pin") == 0 || strcmp(key, "pin-value") == 0)
        return kb_ini_fail(&p->ini, "'%s': a renew file never holds the PIN; " PIN_SOURCES, key);
    /* Said on the command line, each time, never kept: a file must not make every timer
     * run spend a PIN try the token has warned about, or accept a readable PIN file. */
    if (strcmp(key, "force") == 0 || strcmp(key, "insecure-pin-file") == 0 ||
        strcmp(key, "verbose") == 0 || strcmp(key, "config") == 0)
        return kb_ini_fail(&p->ini,
                           "'%s' is for the command line only (keybound renew --%s); keys are "
                           "the long options of keybound renew: %s",
                           key, key, keys);
    size_t i;
    for (i = 0; i < KB_ENROLL_N_OPTIONS; i++)
        if (strcmp(kb_enroll_options[i].name, key) == 0)
            break;
    if (i == KB_ENROLL_N_OPTIONS)
        return kb_ini_fail(&p->ini,
                           "unknown key '%s' in [renew]; keys are the long options of keybound "
                           "renew: %s",
                           key, keys);
    if (p->s->given & (1ULL << i))
        return kb_ini_fail(&p->ini, "'%s' is set twice in [renew]", key);
    kb_err why;
    if (kb_enroll_set(p->s, i, key, value, &why) != 0)
        return kb_ini_fail(&p->ini, "%s", why.msg);
    return 1;
}

int kb_renew_conf_parse(FILE *f, const char *name, struct kb_enroll_settings *s, kb_err *err)
{
    struct renew_parser p = {.s = s};
    p.ini = (struct kb_ini){.user = &p,
                            .section = on_section,
                            .key = on_key,
                            .kind = "renew config",
                            .expected = "[renew]"};
    s->given = 0;
    int rc = kb_ini_parse(&p.ini, f, name, err);
    s->given = 0; /* the command line starts afresh: what it says replaces the file's */
    if (rc != 0)
        return -1;
    if (!p.had_renew)
        return kb_err_set(err, "%s: no [renew] section; see keybound.conf(5)", name);
    return 0;
}

int kb_renew_conf_load(const char *path, struct kb_enroll_settings *s, kb_err *err)
{
    /* It names the policy, the PIN file and where the token's key goes: trusted as they are. */
    FILE *f = kb_trustfile_fopen(path, "renew config", 0, err);
    if (f == NULL)
        return -1;
    int rc = kb_renew_conf_parse(f, path, s, err);
    fclose(f);
    return rc;
}

int kb_renew_settings_check(const struct kb_enroll_settings *s, const char *config, kb_err *err)
{
    const char *key = s->spec.key_uri == NULL ? "key" : NULL;
    const char *est = s->spec.url == NULL ? "est" : NULL;
    if (key == NULL && est == NULL)
        return 0;
    if (config == NULL)
        return kb_err_set(err, "--key URI and --est URL are required");
    return kb_err_set(err, "%s: no %s%s%s in [renew]: write %s%s%s there, or give %s%s%s", config,
                      key ? key : "", key && est ? " or " : "", est ? est : "",
                      key ? "key = URI" : "", key && est ? " and " : "", est ? "est = URL" : "",
                      key ? "--key URI" : "", key && est ? " and " : "", est ? "--est URL" : "");
}
