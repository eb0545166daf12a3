/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "src/util/log.h"
#include "src/tunnel/tunnel.h"
#include "src/util/trustfile.h"

static const char usage[] =
    "usage: keybound tunnel --listen ADDR --connect HOST:PORT [--key URI] [--ca FILE] [OPTIONS]\n"
    "       keybound tunnel --config FILE [OPTIONS]\n\n"
    "Forwards local plaintext connections over mTLS with the token's key: what a client sends to\n"
    "ADDR goes to HOST:PORT, the server verified and the device admitted by the policy first.\n"
    "ADDR is 127.0.0.1:PORT, [::1]:PORT or unix:/PATH (mode 0600). SIGHUP reloads the policy\n"
    "and the certificates, SIGTERM drains, SIGUSR1 logs the counters. The options of one\n"
    "tunnel are the keys of keybound.conf(5), with the same values.\n\n";

#define WORKERS_DEFAULT 4
#define WORKERS_MAX 64

static const char own_help[] =
    "  --config FILE            [tunnel NAME] sections instead (keybound.conf(5))\n"
    "  --policy FILE            the admission policy\n"
    "  --workers N              handshake threads, 1 to 64 (default 4)\n"
    "  --admission-recheck S    evaluate the policy again at least every S seconds (10 to\n"
    "                           86400, default 600; also [global] "
    "admission-recheck)\n"
    "  --status ADDR            serve /status (JSON) and /metrics (Prometheus) on 127.0.0.1:PORT,\n"
    "                           [::1]:PORT or unix:/PATH (also [global] status)\n"
    "  --check                  read the settings and the policy, log in and evaluate each\n"
    "                           tunnel's admission, then exit: 0 all admitted, 1 some not,\n"
    "                           2 a setting is wrong; nothing listens\n" KB_TOKEN_HELP;

enum {
    OPT_CONFIG = KB_OPT_FIRST_LOCAL,
    OPT_POLICY,
    OPT_WORKERS,
    OPT_RECHECK,
    OPT_STATUS,
    OPT_CHECK,
    OPT_TUNNEL, /* + the index in kb_tunnel_options */
};

static void print_help(void)
{
    fputs(usage, stdout);
    for (size_t i = 0; i < KB_TUNNEL_N_OPTIONS; i++) {
        const struct kb_tunnel_option *o = &kb_tunnel_options[i];
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        printf("  %-24s %s", left, o->help);
        if (o->def != NULL)
            printf(" (default %s)", o->def);
        putchar('\n');
    }
    fputs(own_help, stdout);
}

int kb_cli_tunnel_args(int argc, char **argv, struct kb_cli_tunnel *a, kb_err *err)
{
    static const struct option own[] = {{"config", required_argument, NULL, OPT_CONFIG},
                                        {"policy", required_argument, NULL, OPT_POLICY},
                                        {"workers", required_argument, NULL, OPT_WORKERS},
                                        {"admission-recheck", required_argument, NULL, OPT_RECHECK},
                                        {"status", required_argument, NULL, OPT_STATUS},
                                        {"check", no_argument, NULL, OPT_CHECK},
                                        KB_TOKEN_LONGOPTS,
                                        {0}};
    struct option longopts[KB_TUNNEL_N_OPTIONS + sizeof own / sizeof own[0]];
    for (size_t i = 0; i < KB_TUNNEL_N_OPTIONS; i++)
        longopts[i] = (struct option){kb_tunnel_options[i].name,
                                      kb_tunnel_options[i].arg ? required_argument : no_argument,
                                      NULL, OPT_TUNNEL + (int)i};
    memcpy(longopts + KB_TUNNEL_N_OPTIONS, own, sizeof own);

    kb_tunnel_conf_defaults(a->one);
    snprintf(a->one->name, sizeof a->one->name, "cli");
    a->one->from_cli = true;
    a->workers = WORKERS_DEFAULT;
    unsigned long long given = 0;
    const struct kb_tunnel_option *first = NULL;
    int opt;
    while ((opt = kb_cli_getopt(argc, argv, KB_COMMON_SHORTOPTS, longopts)) != -1) {
        unsigned long v;
        if (opt >= OPT_TUNNEL && opt < OPT_TUNNEL + KB_TUNNEL_N_OPTIONS) {
            size_t i = (size_t)(opt - OPT_TUNNEL);
            const struct kb_tunnel_option *o = &kb_tunnel_options[i];
            char what[64];
            snprintf(what, sizeof what, "--%s", o->name);
            /* As a key set twice in keybound.conf: the second would silently win. */
            if ((given & (1ULL << i)) && !o->list)
                return kb_err_set(err, "%s is given twice", what);
            given |= 1ULL << i;
            if (first == NULL)
                first = o;
            if (o->parse(a->one, what, o->arg ? optarg : "yes", err) != 0)
                return -1;
            continue;
        }
        switch (opt) {
        case 'h':
            print_help();
            return 1;
        case OPT_CONFIG:
            a->config = optarg;
            break;
        case OPT_POLICY:
            a->policy = optarg;
            break;
        case OPT_WORKERS:
            if (!kb_cli_count(optarg, 1, WORKERS_MAX, &v))
                return kb_err_set(err, "--workers must be from 1 to %d, not '%s'", WORKERS_MAX,
                                  optarg);
            a->workers = (unsigned)v;
            break;
        case OPT_STATUS:
            if (kb_tunnel_status_addr("--status", optarg, err) != 0)
                return -1;
            a->status = optarg;
            break;
        case OPT_CHECK:
            a->check = true;
            break;
        case OPT_RECHECK:
            if (kb_tunnel_admission_recheck("--admission-recheck", optarg, &a->admission_recheck_s,
                                            err) != 0)
                return -1;
            break;
        default:
            if (!kb_cli_common(&a->c, opt, optarg))
                return kb_err_set(err, "%s", kb_cli_bad_option(argv, longopts));
        }
    }
    if (optind < argc)
        return kb_err_set(err, "unexpected argument '%s'", argv[optind]);
    if (a->config != NULL && first != NULL)
        return kb_err_set(err,
                          "--%s is a setting of one tunnel: with --config, write it in the "
                          "file's [tunnel NAME] sections",
                          first->name);
    if (a->config == NULL && first == NULL)
        return kb_err_set(err, "give --listen and --connect, or --config FILE");
    return 0;
}

int kb_cmd_tunnel(int argc, char **argv)
{
    static kb_tunnel_conf confs[KB_TUNNEL_MAX];
    struct kb_cli_tunnel a = {.one = &confs[0]};
    kb_err err;
    int rc = kb_cli_tunnel_args(argc, argv, &a, &err);
    if (rc != 0)
        return rc > 0 ? KB_EXIT_OK : kb_cli_usage("tunnel", "%s", err.msg);
    /* A service's log goes to a file as often as to the journal, which stamps its own. */
    kb_log_set_timestamps(true);
    size_t n = 1;
    struct kb_tunnel_global glob = {0};
    if (a.config != NULL) {
        /* The config can say allow-remote: it is trusted like the policy. */
        FILE *f = kb_trustfile_fopen(a.config, "config", 0, &err);
        if (f == NULL)
            return kb_cli_fail(&err);
        rc = kb_tunnel_conf_parse(f, a.config, confs, &n, &glob, &err);
        fclose(f);
        if (rc != 0)
            return kb_cli_fail(&err);
    } else if (kb_tunnel_conf_check(a.one, &err) != 0) {
        return kb_cli_fail(&err);
    }
    /* One module set and one PIN source for every tunnel of this process. */
    kb_p11 *p = NULL;
    if (kb_cli_load(&a.c, NULL, &p, &err) != 0 || kb_gnutls_pkcs11_init(p, &err) != 0) {
        kb_p11_close(p);
        return kb_cli_fail(&err);
    }
    kb_pin_install_gnutls(&a.c.pin);
    struct kb_tunnel_env env = {.p11 = p,
                                .pin = &a.c.pin,
                                .policy_path = a.policy,
                                .config_path = a.config,
                                .workers = a.workers,
                                .drain_timeout_s = 10,
                                .admission_recheck_s = a.admission_recheck_s
                                                           ? a.admission_recheck_s
                                                           : glob.admission_recheck_s,
                                .recheck_from_cli = a.admission_recheck_s != 0,
                                .check_only = a.check,
                                .status_addr = a.status         ? a.status
                                               : glob.status[0] ? glob.status
                                                                : NULL};
    rc = kb_tunnel_run(confs, n, &env, &err);
    kb_p11_close(p);
    if (rc < 0)
        return kb_cli_fail(&err);
    if (rc == 1) {
        fprintf(stderr, "keybound: denied: %s\n", err.msg);
        return KB_EXIT_REFUSED;
    }
    if (a.check)
        printf("check: %zu tunnel%s admitted; nothing listened\n", n, n == 1 ? "" : "s");
    return KB_EXIT_OK;
}
