#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "src/tunnel/tunnel.h"
#include "src/util/hostport.h"
#include "src/util/trustfile.h"

static const char help[] =
    "usage: keybound tunnel --listen ADDR --connect HOST:PORT [--key URI] [--ca FILE] [OPTIONS]\n"
    "       keybound tunnel --config FILE [OPTIONS]\n\n"
    "Forwards local plaintext connections over mTLS with the token's key: what a client sends to\n"
    "ADDR goes to HOST:PORT, the server verified and the device admitted by the policy first.\n"
    "ADDR is 127.0.0.1:PORT, [::1]:PORT or unix:/PATH (mode 0600). SIGHUP reloads the policy\n"
    "and the certificates, SIGTERM drains, SIGUSR1 logs the counters.\n\n"
    "  --listen ADDR            where legacy clients connect\n"
    "  --connect HOST:PORT      the mTLS endpoint\n"
    "  --key URI                the key (default: the one the policy admits)\n"
    "  --ca FILE                CA for the server when the policy names none\n"
    "  --server-name NAME       name to send and check (default: the policy's or HOST)\n"
    "  --alpn PROTO             offer an ALPN protocol (repeatable)\n"
    "  --proxy http://HOST:PORT leave through an HTTP CONNECT proxy\n"
    "  --idle-timeout S         close connections idle this long (default: never)\n"
    "  --max-connections N      at most N at once (default 1000)\n"
    "  --allow-remote           listen on a non-loopback address too (lends the identity!)\n"
    "  --config FILE            [tunnel NAME] sections instead (keybound.conf(5))\n"
    "  --policy FILE            the admission policy\n"
    "  --workers N              handshake threads (default 4)\n" KB_COMMON_HELP;

enum {
    OPT_LISTEN = KB_OPT_FIRST_LOCAL,
    OPT_CONNECT,
    OPT_KEY,
    OPT_CA,
    OPT_SERVER_NAME,
    OPT_ALPN,
    OPT_PROXY,
    OPT_IDLE,
    OPT_MAX,
    OPT_REMOTE,
    OPT_CONFIG,
    OPT_POLICY,
    OPT_WORKERS,
};

static int set(char *dst, size_t len, const char *v, const char *what)
{
    if (strlen(v) >= len)
        return kb_cli_usage("tunnel", "%s is too long", what);
    snprintf(dst, len, "%s", v);
    return -1;
}

int kb_cmd_tunnel(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"connect", required_argument, NULL, OPT_CONNECT},
        {"key", required_argument, NULL, OPT_KEY},
        {"ca", required_argument, NULL, OPT_CA},
        {"server-name", required_argument, NULL, OPT_SERVER_NAME},
        {"alpn", required_argument, NULL, OPT_ALPN},
        {"proxy", required_argument, NULL, OPT_PROXY},
        {"idle-timeout", required_argument, NULL, OPT_IDLE},
        {"max-connections", required_argument, NULL, OPT_MAX},
        {"allow-remote", no_argument, NULL, OPT_REMOTE},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"policy", required_argument, NULL, OPT_POLICY},
        {"workers", required_argument, NULL, OPT_WORKERS},
        KB_COMMON_LONGOPTS,
        {0}};
    struct kb_cli c = {0};
    static kb_tunnel_conf confs[KB_TUNNEL_MAX];
    kb_tunnel_conf *one = &confs[0];
    kb_tunnel_conf_defaults(one);
    snprintf(one->name, sizeof one->name, "cli");
    const char *config = NULL, *policy = NULL;
    unsigned workers = 4;
    bool single = false;
    int opt, rc;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, KB_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        unsigned long v;
        rc = -1;
        switch (opt) {
        case 'h':
            fputs(help, stdout);
            return KB_EXIT_OK;
        case OPT_LISTEN:
            rc = set(one->listen, sizeof one->listen, optarg, "--listen"), single = true;
            break;
        case OPT_CONNECT:
            rc = set(one->connect, sizeof one->connect, optarg, "--connect"), single = true;
            break;
        case OPT_KEY:
            rc = set(one->key, sizeof one->key, optarg, "--key");
            break;
        case OPT_CA:
            rc = set(one->ca, sizeof one->ca, optarg, "--ca");
            break;
        case OPT_SERVER_NAME: {
            kb_err why;
            if (kb_server_name_norm("--server-name", optarg, one->server_name,
                                    sizeof one->server_name, &why) != 0)
                return kb_cli_fail(&why);
            break;
        }
        case OPT_ALPN:
            if (one->n_alpn == KB_TUNNEL_ALPN_MAX)
                return kb_cli_usage("tunnel", "at most %d --alpn", KB_TUNNEL_ALPN_MAX);
            rc = set(one->alpn[one->n_alpn++], 64, optarg, "--alpn");
            break;
        case OPT_PROXY:
            rc = set(one->proxy, sizeof one->proxy, optarg, "--proxy");
            break;
        case OPT_IDLE:
        case OPT_MAX:
        case OPT_WORKERS:
            if (!kb_cli_count(optarg, opt == OPT_IDLE ? 0 : 1, 100000, &v))
                return kb_cli_usage("tunnel", "'%s' is not a count", optarg);
            if (opt == OPT_IDLE)
                one->idle_timeout_s = (unsigned)v;
            else if (opt == OPT_MAX)
                one->max_connections = (unsigned)v;
            else
                workers = (unsigned)(v > 64 ? 64 : v);
            break;
        case OPT_REMOTE:
            one->allow_remote = true;
            break;
        case OPT_CONFIG:
            config = optarg;
            break;
        case OPT_POLICY:
            policy = optarg;
            break;
        default:
            if (!kb_cli_common(&c, opt, optarg))
                return kb_cli_usage("tunnel", "%s", kb_cli_bad_option(argv));
        }
        if (rc >= 0)
            return rc;
    }
    if (optind < argc)
        return kb_cli_usage("tunnel", "unexpected argument '%s'", argv[optind]);
    if ((config != NULL) == single)
        return kb_cli_usage("tunnel", "give --listen and --connect, or --config FILE");

    kb_err err;
    size_t n = 1;
    if (config != NULL) {
        /* The config can say allow-remote: it is trusted like the policy. */
        FILE *f = kb_trustfile_fopen(config, "config", 0, &err);
        if (f == NULL)
            return kb_cli_fail(&err);
        rc = kb_tunnel_conf_parse(f, config, confs, &n, &err);
        fclose(f);
        if (rc != 0)
            return kb_cli_fail(&err);
    } else if (kb_tunnel_conf_check(one, &err) != 0) {
        return kb_cli_fail(&err);
    }
    /* One module set and one PIN source for every tunnel of this process. */
    kb_p11 *p = NULL;
    if (kb_cli_load(&c, NULL, &p, &err) != 0 || kb_gnutls_pkcs11_init(p, &err) != 0) {
        kb_p11_close(p);
        return kb_cli_fail(&err);
    }
    kb_pin_install_gnutls(&c.pin);
    struct kb_tunnel_env env = {.p11 = p,
                                .pin = &c.pin,
                                .policy_path = policy,
                                .config_path = config,
                                .workers = workers,
                                .drain_timeout_s = 10};
    rc = kb_tunnel_run(confs, n, &env, &err);
    kb_p11_close(p);
    if (rc < 0)
        return kb_cli_fail(&err);
    if (rc == 1) {
        fprintf(stderr, "keybound: denied: %s\n", err.msg);
        return KB_EXIT_REFUSED;
    }
    return KB_EXIT_OK;
}
