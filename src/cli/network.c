/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "src/network/network.h"
#include "src/tls/certjson.h"
#include "src/util/log.h"

static const char help[] =
    "usage: keybound network profile --key URI --ca FILE --server-name NAME\n"
    "                                (--wired | --ssid SSID) (-o DIR | --install [--reload])\n"
    "       keybound network check [--name NAME]\n\n"
    "802.1X EAP-TLS on the token's key, for NetworkManager or wpa_supplicant. 'profile'\n"
    "evaluates the policy, logs in once (a PIN the token rejects is never written), and writes\n"
    "the profile (with that PIN, mode 0600), the certificate keybound selects with its issuer\n"
    "path, and the CA. 'check' logs in once with the stored PIN, removes it when the token\n"
    "rejects it, and checks that the profile's certificate is still the one keybound would\n"
    "select and still admitted. See keybound(1), NETWORK PROFILES.\n\n"
    "'keybound network profile --help' and 'keybound network check --help' list the options.\n";

static const char help_profile[] =
    "usage: keybound network profile --key URI --ca FILE --server-name NAME\n"
    "           (--wired | --ssid SSID) (-o DIR | --install [--reload]) [OPTIONS]\n\n"
    "Writes an 802.1X EAP-TLS profile for the key: keybound-NAME.nmconnection (nm) or\n"
    "keybound-NAME.conf (wpa), keybound-NAME-cert.pem, keybound-NAME-ca.pem, all 0600, after\n"
    "the policy admitted the key and the token accepted the PIN that the profile then holds.\n\n"
    "  --key URI           the key (its certificate: the newest valid one the policy admits)\n"
    "  --ca FILE           CA of the RADIUS server (or ca in the policy's [network \"NAME\"])\n"
    "  --server-name NAME  the RADIUS server's certificate name (or the policy's server-name)\n"
    "  --wired             wired 802.1X\n"
    "  --ssid SSID         Wi-Fi network SSID\n"
    "  --name NAME         the profile's name (default: the SSID, or 'wired')\n"
    "  --identity ID       EAP identity (default: the certificate's subject CN)\n"
    "  --format nm|wpa     NetworkManager keyfile (default) or wpa_supplicant configuration\n"
    "  --policy FILE       the admission policy (default " KB_DEFAULT_POLICY ")\n"
    "  -o, --output DIR    write into DIR (made 0700 when missing)\n"
    "  --install           write into /etc/NetworkManager/system-connections (nm) or\n"
    "                      /etc/wpa_supplicant (wpa)\n"
    "  --reload            with --install: nmcli connection load (nm), or systemctl\n"
    "                      daemon-reload when a drop-in was written (wpa)\n" KB_COMMON_HELP;

static const char help_check[] =
    "usage: keybound network check [--name NAME] [OPTIONS]\n\n"
    "For each profile keybound wrote (or the one named): logs in once with its stored PIN\n"
    "(the final-try guard applies; a PIN the token rejects is removed from the profile, exit\n"
    "6), and checks that its certificate is still the one keybound would select and that the\n"
    "key is still admitted (exit 1 when not).\n\n"
    "  --name NAME     only this profile\n"
    "  --policy FILE   the admission policy (default: the one the profile was written "
    "with)\n" KB_JSON_HELP
    "  --module PATH     use only this PKCS#11 module (default: all registered with p11-kit)\n"
    "  --modules NAMES   use only these modules registered with p11-kit\n"
    "  --force           log in even when the token reports its final PIN try\n"
    "  -v, --verbose     more diagnostics\n"
    "  -q, --quiet       errors and warnings only\n"
    "  -h, --help        this help\n"
    "The PIN is the one stored in each profile: --pin-file and --pin-env do not apply.\n";

enum {
    OPT_KEY = KB_OPT_FIRST_LOCAL,
    OPT_CA,
    OPT_SERVER_NAME,
    OPT_WIRED,
    OPT_SSID,
    OPT_NAME,
    OPT_IDENTITY,
    OPT_FORMAT,
    OPT_POLICY,
    OPT_INSTALL,
    OPT_RELOAD,
};

static json_object *string_or_null(const char *s)
{
    return s != NULL && *s ? json_object_new_string(s) : NULL;
}

static void print_written(const struct kb_net_written *w)
{
    const struct kb_net_entry *e = &w->entry;
    gnutls_datum_t der = {w->cert_der, (unsigned)w->cert_der_len};
    if (kb_cli_json()) {
        json_object *o = json_object_new_object(), *files = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(e->name));
        json_object_object_add(o, "format", json_object_new_string(kb_net_format_name(e->format)));
        json_object_object_add(files, "profile", json_object_new_string(e->profile));
        json_object_object_add(files, "certificate", json_object_new_string(e->certificate));
        json_object_object_add(files, "ca", json_object_new_string(e->ca));
        json_object_object_add(files, "dropin", string_or_null(e->dropin));
        json_object_object_add(o, "files", files);
        json_object_object_add(o, "key_uri", json_object_new_string(e->key_uri));
        json_object_object_add(o, "certificate", w->cert_der ? kb_cert_json(&der) : NULL);
        json_object_object_add(o, "server_name", json_object_new_string(e->server_name));
        json_object_object_add(o, "ssid", string_or_null(e->ssid));
        json_object_object_add(o, "wired", json_object_new_boolean(e->wired));
        json_object_object_add(o, "identity", json_object_new_string(e->identity));
        json_object_object_add(o, "pin_stored", json_object_new_boolean(e->pin_stored));
        kb_cli_print_json(o);
        return;
    }
    printf("Network profile '%s' (%s) for %s, server %s, identity '%s':\n", e->name,
           kb_net_format_name(e->format), e->wired ? "wired 802.1X" : e->ssid, e->server_name,
           e->identity);
    printf("  profile:      %s (%s)\n", e->profile,
           e->pin_stored ? "holds the PIN" : "no PIN: the token needs none here");
    printf("  certificate:  %s\n", e->certificate);
    printf("  ca:           %s\n", e->ca);
    if (e->dropin[0])
        printf("  drop-in:      %s (wpa_supplicant.service: the TPM's store and TCTI)\n",
               e->dropin);
    printf("  key:          %s\n", e->key_uri);
}

static int cmd_profile(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"key", required_argument, NULL, OPT_KEY},
        {"ca", required_argument, NULL, OPT_CA},
        {"server-name", required_argument, NULL, OPT_SERVER_NAME},
        {"wired", no_argument, NULL, OPT_WIRED},
        {"ssid", required_argument, NULL, OPT_SSID},
        {"name", required_argument, NULL, OPT_NAME},
        {"identity", required_argument, NULL, OPT_IDENTITY},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"policy", required_argument, NULL, OPT_POLICY},
        {"output", required_argument, NULL, 'o'},
        {"install", no_argument, NULL, OPT_INSTALL},
        {"reload", no_argument, NULL, OPT_RELOAD},
        KB_COMMON_LONGOPTS,
        {0}};
    const char *cmd = "network profile";
    struct kb_cli c = {0};
    struct kb_net_request rq = {.format = KB_NET_NM};
    int opt, format;
    while ((opt = kb_cli_getopt(argc, argv, "o:" KB_COMMON_SHORTOPTS, longopts)) != -1) {
        switch (opt) {
        case 'h':
            fputs(help_profile, stdout);
            return KB_EXIT_OK;
        case OPT_KEY:
            rq.key_uri = optarg;
            break;
        case OPT_CA:
            rq.ca = optarg;
            break;
        case OPT_SERVER_NAME:
            rq.server_name = optarg;
            break;
        case OPT_WIRED:
            rq.wired = true;
            break;
        case OPT_SSID:
            rq.ssid = optarg;
            break;
        case OPT_NAME:
            rq.name = optarg;
            break;
        case OPT_IDENTITY:
            rq.identity = optarg;
            break;
        case OPT_FORMAT:
            if ((format = kb_net_format_parse(optarg)) < 0)
                return kb_cli_usage(cmd, "--format takes nm or wpa, not '%s'", optarg);
            rq.format = (enum kb_net_format)format;
            break;
        case OPT_POLICY:
            rq.policy_path = optarg;
            break;
        case 'o':
            rq.out_dir = optarg;
            break;
        case OPT_INSTALL:
            rq.install = true;
            break;
        case OPT_RELOAD:
            rq.reload = true;
            break;
        default:
            if (!kb_cli_common(&c, opt, optarg))
                return kb_cli_usage(cmd, "%s", kb_cli_bad_option(argv, longopts));
        }
    }
    if (optind < argc)
        return kb_cli_usage(cmd, "takes no arguments (unexpected '%s')", argv[optind]);
    if (rq.key_uri == NULL)
        return kb_cli_usage(cmd, "needs --key URI (see 'keybound keys')");
    if (rq.wired == (rq.ssid != NULL))
        return kb_cli_usage(cmd, "needs one of --wired and --ssid SSID");
    if (rq.ssid != NULL && (rq.ssid[0] == '\0' || strlen(rq.ssid) > 32))
        return kb_cli_usage(cmd, "--ssid takes 1 to 32 bytes");
    if (rq.identity != NULL && (rq.identity[0] == '\0' || strlen(rq.identity) > 255))
        return kb_cli_usage(cmd, "--identity takes 1 to 255 bytes");
    if ((rq.out_dir != NULL) == rq.install)
        return kb_cli_usage(cmd, "needs one of -o DIR and --install");
    if (rq.reload && !rq.install)
        return kb_cli_usage(cmd, "--reload goes with --install");

    kb_err err;
    kb_policy *pol = NULL;
    P11KitUri *uri = NULL;
    kb_p11 *p = NULL;
    struct kb_net_plan plan;
    struct kb_net_written w = {0};
    int rc;
    if (kb_cli_policy(rq.policy_path, &pol, &err) != 0)
        goto fail;
    /* The network's settings, and a refusal, before any token is touched. */
    rc = kb_net_plan(pol, &rq, &plan, &err);
    if (rc == 1) {
        rc = kb_cli_refuse("%s", err.msg);
        goto out;
    }
    if (rc != 0 || kb_cli_uri(&c, rq.key_uri, &uri, &err) != 0 ||
        kb_cli_load(&c, uri, &p, &err) != 0)
        goto fail;
    rc = kb_net_profile_write(p, &c.pin, pol, &rq, &plan, &w, &err);
    if (rc == 1) {
        rc = kb_cli_refuse("%s", err.msg);
        goto out;
    }
    if (rc != 0)
        goto fail;
    if (w.warning[0])
        kb_log(KB_LOG_WARN, "%s", w.warning);
    print_written(&w);
    rc = KB_EXIT_OK;
    goto out;
fail:
    rc = kb_cli_fail(&err);
out:
    kb_net_written_free(&w);
    kb_p11_close(p);
    if (uri)
        p11_kit_uri_free(uri);
    kb_policy_free(pol);
    return rc;
}

static void print_checks(const struct kb_net_check *v, size_t n)
{
    if (kb_cli_json()) {
        json_object *o = json_object_new_object(), *a = json_object_new_array();
        for (size_t i = 0; i < n; i++) {
            json_object *j = json_object_new_object();
            json_object_object_add(j, "name", json_object_new_string(v[i].name));
            json_object_object_add(j, "ok", json_object_new_boolean(v[i].ok));
            json_object_object_add(j, "pin", json_object_new_string(v[i].pin));
            json_object_object_add(j, "certificate_current",
                                   json_object_new_boolean(v[i].certificate_current));
            json_object_object_add(j, "admitted", json_object_new_boolean(v[i].admitted));
            json_object_object_add(j, "reason", string_or_null(v[i].reason));
            json_object_array_add(a, j);
        }
        json_object_object_add(o, "profiles", a);
        kb_cli_print_json(o);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i].ok)
            printf("network profile %s: ok (PIN %s, certificate current, admitted)\n", v[i].name,
                   v[i].pin);
        else /* on stderr, as every other command says why it failed */
            fprintf(stderr, "keybound: network profile %s: %s\n", v[i].name, v[i].reason);
    }
}

static int cmd_check(int argc, char **argv)
{
    static const struct option longopts[] = {{"name", required_argument, NULL, OPT_NAME},
                                             {"policy", required_argument, NULL, OPT_POLICY},
                                             KB_COMMON_LONGOPTS,
                                             {0}};
    const char *cmd = "network check", *name = NULL, *policy_path = NULL;
    struct kb_cli c = {0};
    int opt;
    while ((opt = kb_cli_getopt(argc, argv, KB_COMMON_SHORTOPTS, longopts)) != -1) {
        if (opt == 'h') {
            fputs(help_check, stdout);
            return KB_EXIT_OK;
        }
        if (opt == OPT_NAME)
            name = optarg;
        else if (opt == OPT_POLICY)
            policy_path = optarg;
        else if (!kb_cli_common(&c, opt, optarg))
            return kb_cli_usage(cmd, "%s", kb_cli_bad_option(argv, longopts));
    }
    if (optind < argc)
        return kb_cli_usage(cmd, "takes no arguments (unexpected '%s')", argv[optind]);
    if (c.pin.file || c.pin.env)
        return kb_cli_usage(cmd, "uses the PIN stored in each profile; --pin-file and --pin-env "
                                 "do not apply");

    kb_err err;
    kb_p11 *p = NULL;
    struct kb_net_check *v = NULL;
    size_t n = 0;
    int rc = KB_EXIT_OK;
    if (kb_cli_load(&c, NULL, &p, &err) != 0 ||
        kb_net_check_all(p, &c.pin, policy_path, name, &v, &n, &err) != 0) {
        rc = kb_cli_fail(&err);
        goto out;
    }
    print_checks(v, n);
    /* The worst outcome: a rejected PIN, an error, a refusal. */
    for (size_t i = 0; i < n; i++) {
        int e = v[i].exit_code;
        if (e == KB_EXIT_PIN || (e == KB_EXIT_ERROR && rc != KB_EXIT_PIN) ||
            (e == KB_EXIT_REFUSED && rc == KB_EXIT_OK))
            rc = e;
    }
out:
    free(v);
    kb_p11_close(p);
    return rc;
}

int kb_cmd_network(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : NULL;
    if (sub == NULL)
        return kb_cli_usage("network", "needs 'profile' or 'check'");
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        fputs(help, stdout);
        return KB_EXIT_OK;
    }
    if (strcmp(sub, "profile") == 0)
        return cmd_profile(argc - 1, argv + 1);
    if (strcmp(sub, "check") == 0)
        return cmd_check(argc - 1, argv + 1);
    return kb_cli_usage("network", "'%s' is not 'profile' or 'check'", sub);
}
