#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const char help[] =
    "usage: keybound renew --key URI --est URL (--ca FILE | --ca-fingerprint sha256:HEX)\n"
    "                      [--if-expires-within DURATION] [--rekey] [--prune] [OPTIONS]\n\n"
    "Renews the key's certificate over EST /simplereenroll, authenticated with the current\n"
    "certificate (same subject and names). The old certificate stays until the new one is\n"
    "stored; the newest valid one is then used. States and exit codes as for enroll; a\n"
    "certificate that is not due yet (--if-expires-within) prints \"state: MONITORING\" and\n"
    "exits 0.\n\n"
    "  --key URI                     the key whose certificate to renew\n"
    "  --est URL, --ca FILE, --ca-fingerprint sha256:HEX, --save-cacerts FILE, --max-wait S,\n"
    "  --proxy URL                   as for enroll\n"
    "  --if-expires-within DURATION  only renew when less than this is left (e.g. 30d)\n"
    "  --rekey                       a new key on the token first; the old key is removed once\n"
    "                                the new certificate is stored and admitted\n"
    "  --prune                       remove the key's expired certificates afterwards\n"
    "  --policy FILE                 the admission policy\n" KB_COMMON_HELP;

enum {
    OPT_KEY = KB_OPT_EST_FIRST_LOCAL,
    OPT_WITHIN,
    OPT_REKEY,
    OPT_PRUNE,
};

int kb_cmd_renew(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"key", required_argument, NULL, OPT_KEY},
        {"if-expires-within", required_argument, NULL, OPT_WITHIN},
        {"rekey", no_argument, NULL, OPT_REKEY},
        {"prune", no_argument, NULL, OPT_PRUNE},
        KB_EST_LONGOPTS,
        KB_COMMON_LONGOPTS,
        {0}};
    struct kb_cli c = {0};
    struct kb_cli_est e = KB_CLI_EST_INIT;
    e.spec.renew = true;
    int opt, rc;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, KB_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            fputs(help, stdout);
            return KB_EXIT_OK;
        case OPT_KEY:
            e.spec.key_uri = optarg;
            break;
        case OPT_WITHIN:
            if ((e.spec.if_expires_within = kb_duration_parse(optarg)) < 0)
                return kb_cli_usage("renew",
                                    "--if-expires-within '%s' is not a duration such "
                                    "as 30d or 12h",
                                    optarg);
            break;
        case OPT_REKEY:
            e.spec.rekey = true;
            break;
        case OPT_PRUNE:
            e.spec.prune = true;
            break;
        default:
            if ((rc = kb_cli_est_option(&e, "renew", opt, optarg)) < 0)
                return KB_EXIT_ERROR;
            if (rc == 0 && !kb_cli_common(&c, opt, optarg))
                return kb_cli_usage("renew", "%s", kb_cli_bad_option(argv, longopts));
        }
    }
    if (optind < argc)
        return kb_cli_usage("renew", "unexpected argument '%s'", argv[optind]);
    if (e.spec.key_uri == NULL || e.spec.url == NULL)
        return kb_cli_usage("renew", "--key URI and --est URL are required");
    return kb_cli_enroll_run(&c, e.spec.key_uri, &e);
}
