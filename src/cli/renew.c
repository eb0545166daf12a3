/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const char help[] =
    "usage: keybound renew --key URI --est URL (--ca FILE | --ca-fingerprint sha256:HEX)\n"
    "                      [--if-expires-within DURATION] [--rekey] [--prune] [OPTIONS]\n"
    "       keybound renew --config FILE [OPTIONS]\n\n"
    "Renews the key's certificate over EST /simplereenroll, authenticated with the current\n"
    "certificate (same subject and names). The old certificate stays until the new one is\n"
    "stored; the newest valid one is then used. States and exit codes as for enroll; a\n"
    "certificate that is not due yet (--if-expires-within) prints \"state: MONITORING\" and\n"
    "exits 0.\n\n"
    "  --config FILE                 read the settings from FILE's [renew] section, whose keys\n"
    "                                are these options' long names (keybound.conf(5)); the\n"
    "                                command line overrides the file\n"
    "  --key URI                     the key whose certificate to renew\n"
    "  --est URL, --ca FILE, --ca-fingerprint sha256:HEX, --save-cacerts FILE, --max-wait S,\n"
    "  --proxy URL                   as for enroll\n"
    "  --if-expires-within DURATION  only renew when less than this is left (e.g. 30d)\n"
    "  --rekey                       a new key on the token first; the old key is removed once\n"
    "                                the new certificate is stored and admitted\n"
    "  --prune                       remove the key's expired certificates afterwards\n"
    "  --policy FILE                 the admission policy\n" KB_COMMON_HELP;

enum {
    OPT_CONFIG = KB_OPT_FIRST_LOCAL,
    OPT_FORCE = KB_OPT_FORCE,
    OPT_INSECURE = KB_OPT_INSECURE_PIN_FILE,
};

struct kb_later {
    int opt;
    const char *arg;
};

/* The command line: the options of kb_enroll_options are applied over the file's once it
 * has been read (whichever order they came in), the others at once. later has room for
 * argc entries. */
static int renew(int argc, char **argv, struct kb_cli_est *e, struct kb_later *later)
{
    static const struct option own[] = {{"config", required_argument, NULL, OPT_CONFIG},
                                        {"force", no_argument, NULL, OPT_FORCE},
                                        {"insecure-pin-file", no_argument, NULL, OPT_INSECURE},
                                        {"verbose", no_argument, NULL, 'v'},
                                        {"help", no_argument, NULL, 'h'},
                                        {0}};
    struct option longopts[KB_ENROLL_N_OPTIONS + sizeof own / sizeof own[0]];
    size_t n = kb_cli_enroll_longopts(longopts, false), n_later = 0;
    memcpy(longopts + n, own, sizeof own);
    struct kb_cli c = {0};
    const char *config = NULL;
    kb_err err;
    int opt;
    while ((opt = kb_cli_getopt(argc, argv, KB_COMMON_SHORTOPTS, longopts)) != -1) {
        if (opt >= KB_OPT_ENROLL_TABLE && opt < KB_OPT_ENROLL_TABLE + KB_ENROLL_N_OPTIONS) {
            later[n_later++] = (struct kb_later){opt, optarg};
        } else if (opt == 'h') {
            fputs(help, stdout);
            return KB_EXIT_OK;
        } else if (opt == OPT_CONFIG) {
            config = optarg;
        } else if (!kb_cli_common(&c, opt, optarg)) {
            return kb_cli_usage("renew", "%s", kb_cli_bad_option(argv, longopts));
        }
    }
    if (optind < argc)
        return kb_cli_usage("renew", "unexpected argument '%s'", argv[optind]);
    if (config != NULL && kb_renew_conf_load(config, &e->s, &err) != 0)
        return kb_cli_fail(&err);
    for (size_t i = 0; i < n_later; i++)
        if (kb_cli_enroll_option(&e->s, "renew", later[i].opt, later[i].arg) < 0)
            return KB_EXIT_ERROR;
    /* The file's json = yes counts from here: a settings mistake it holds is JSON too. */
    kb_cli_set_json(e->s.json);
    if (kb_renew_settings_check(&e->s, config, &err) != 0)
        return config ? kb_cli_fail(&err) : kb_cli_usage("renew", "%s", err.msg);
    c.module = e->s.module;
    c.modules = e->s.modules;
    c.pin.file = e->s.pin.file;
    c.pin.env = e->s.pin.env;
    return kb_cli_enroll_run(&c, e->s.spec.key_uri, e);
}

int kb_cmd_renew(int argc, char **argv)
{
    struct kb_cli_est e = {0};
    struct kb_later *later = calloc((size_t)argc + 1, sizeof *later);
    if (later == NULL)
        return kb_cli_usage("renew", "out of memory");
    kb_enroll_settings_init(&e.s);
    e.s.spec.renew = true;
    int rc = renew(argc, argv, &e, later);
    kb_enroll_settings_free(&e.s);
    free(later);
    return rc;
}
