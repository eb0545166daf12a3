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
    OPT_KEY = KB_OPT_FIRST_LOCAL,
    OPT_EST,
    OPT_CA,
    OPT_FP,
    OPT_WITHIN,
    OPT_REKEY,
    OPT_PRUNE,
    OPT_SAVE,
    OPT_POLICY,
    OPT_MAX_WAIT,
    OPT_PROXY,
};

int kb_cmd_renew(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"key", required_argument, NULL, OPT_KEY},
        {"est", required_argument, NULL, OPT_EST},
        {"ca", required_argument, NULL, OPT_CA},
        {"ca-fingerprint", required_argument, NULL, OPT_FP},
        {"if-expires-within", required_argument, NULL, OPT_WITHIN},
        {"rekey", no_argument, NULL, OPT_REKEY},
        {"prune", no_argument, NULL, OPT_PRUNE},
        {"save-cacerts", required_argument, NULL, OPT_SAVE},
        {"policy", required_argument, NULL, OPT_POLICY},
        {"max-wait", required_argument, NULL, OPT_MAX_WAIT},
        {"proxy", required_argument, NULL, OPT_PROXY},
        KB_COMMON_LONGOPTS,
        {0}};
    struct kb_cli c = {0};
    const char *key_uri = NULL, *url = NULL, *ca = NULL, *fp = NULL, *save = NULL;
    const char *policy_path = NULL, *proxy = NULL;
    long long within = -1;
    bool rekey = false, do_prune = false;
    unsigned long max_wait = 600;
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, KB_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            fputs(help, stdout);
            return KB_EXIT_OK;
        case OPT_KEY:
            key_uri = optarg;
            break;
        case OPT_EST:
            url = optarg;
            break;
        case OPT_CA:
            ca = optarg;
            break;
        case OPT_FP:
            fp = optarg;
            break;
        case OPT_WITHIN:
            if ((within = kb_duration_parse(optarg)) < 0)
                return kb_cli_usage("renew",
                                    "--if-expires-within '%s' is not a duration such "
                                    "as 30d or 12h",
                                    optarg);
            break;
        case OPT_REKEY:
            rekey = true;
            break;
        case OPT_PRUNE:
            do_prune = true;
            break;
        case OPT_SAVE:
            save = optarg;
            break;
        case OPT_POLICY:
            policy_path = optarg;
            break;
        case OPT_MAX_WAIT:
            if (!kb_cli_count(optarg, 0, 86400, &max_wait))
                return kb_cli_usage("renew", "--max-wait takes seconds from 0 to 86400");
            break;
        case OPT_PROXY:
            proxy = optarg;
            break;
        default:
            if (!kb_cli_common(&c, opt, optarg))
                return kb_cli_usage("renew", "%s", kb_cli_bad_option(argv));
        }
    }
    if (optind < argc)
        return kb_cli_usage("renew", "unexpected argument '%s'", argv[optind]);
    if (key_uri == NULL || url == NULL)
        return kb_cli_usage("renew", "--key URI and --est URL are required");

    kb_err err;
    kb_policy *pol = NULL;
    if (kb_cli_policy(policy_path, &pol, &err) != 0)
        return kb_cli_fail(&err);
    struct kb_enroll_spec e = {
        .renew = true,
        .url = url,
        .ca = ca,
        .fingerprint = fp,
        .max_wait_s = (unsigned)max_wait,
        .proxy = proxy,
        .save_cacerts = save,
        .policy = pol,
        .key_uri = key_uri,
        .if_expires_within = within,
        .rekey = rekey,
        .prune = do_prune,
    };
    int rc = kb_cli_enroll_run(&c, key_uri, &e);
    kb_policy_free(pol);
    return rc;
}
